package saga_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/orchestrix/orchestrix/actor"
	"github.com/orchestrix/orchestrix/journal"
	boltjournal "github.com/orchestrix/orchestrix/journal/bolt"
	memjournal "github.com/orchestrix/orchestrix/journal/mem"
	"github.com/orchestrix/orchestrix/projection"
	"github.com/orchestrix/orchestrix/saga"
)

// BenchmarkSaga_Transfers measures completed two-step transfer sagas per
// second: b.N sagas begin at once over 100 accounts and the benchmark ends
// when all have finished. Each saga records 4 events and sends 2 commands.
func BenchmarkSaga_Transfers(b *testing.B) { onJournals(b, benchTransfers) }

// onJournals runs bench on the in-memory journal and on bbolt with fsync.
func onJournals(b *testing.B, bench func(*testing.B, journal.Journal)) {
	b.Run("journal=mem", func(b *testing.B) {
		j, err := memjournal.New(memjournal.Config{})
		if err != nil {
			b.Fatal(err)
		}
		bench(b, j)
	})
	b.Run("journal=bolt", func(b *testing.B) {
		j, err := boltjournal.Open(filepath.Join(b.TempDir(), "bench.db"), boltjournal.Config{})
		if err != nil {
			b.Fatal(err)
		}
		bench(b, j)
	})
}

func benchTransfers(b *testing.B, j journal.Journal) {
	ctx := context.Background()
	defer j.Close()
	sys, err := actor.NewSystem(actor.Config{Journal: j, DedupMaxEntries: 10_000})
	if err != nil {
		b.Fatal(err)
	}
	defer sys.Shutdown(ctx)
	accounts, err := actor.Register(sys, Accounts)
	if err != nil {
		b.Fatal(err)
	}
	const n = 100
	for i := range n {
		if _, err := accounts.Send(ctx, acct(i), Open{Balance: 1 << 40}); err != nil {
			b.Fatal(err)
		}
	}
	runner, err := saga.NewRunner(saga.Config{Journal: j, Registry: sys.Registry(), Checkpoints: projection.NewMemCheckpoints()})
	if err != nil {
		b.Fatal(err)
	}
	defer runner.Close()
	transfers, err := saga.Register(runner, transferSaga(accounts))
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	errs := make(chan error, b.N)
	for i := range b.N {
		go func() {
			id := fmt.Sprint("b", i)
			if err := transfers.Begin(ctx, id, Transfer{From: acct(i % n), To: acct((i + 1) % n), Amount: 1}); err != nil {
				errs <- err
				return
			}
			errs <- nil
		}()
	}
	for range b.N {
		if err := <-errs; err != nil {
			b.Fatal(err)
		}
	}
	for i := range b.N {
		st, err := transfers.Wait(ctx, fmt.Sprint("b", i), saga.Finished)
		if err != nil || st.State != saga.StateCompleted {
			b.Fatalf("saga %d: %+v %v", i, st, err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "sagas/s")
}

// BenchmarkProcess_CatchUp measures events handled per second by a process
// manager catching up: b.N deposits over 1,000 accounts are in the journal
// before it starts; each handled event reads the process's newest record
// and appends the next one (no commands).
func BenchmarkProcess_CatchUp(b *testing.B) { onJournals(b, benchProcess) }

func benchProcess(b *testing.B, j journal.Journal) {
	ctx := context.Background()
	defer j.Close()
	sys, err := actor.NewSystem(actor.Config{Journal: j})
	if err != nil {
		b.Fatal(err)
	}
	defer sys.Shutdown(ctx)
	accounts, err := actor.Register(sys, Accounts)
	if err != nil {
		b.Fatal(err)
	}
	const n = 1000
	for i := range n {
		if _, err := accounts.Send(ctx, acct(i), Open{}); err != nil {
			b.Fatal(err)
		}
	}
	errs := make(chan error, n)
	for w := range n {
		go func() {
			for i := w; i < b.N; i += n {
				if _, err := accounts.Send(ctx, acct(w), Deposit{Amount: 1}); err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	for range n {
		if err := <-errs; err != nil {
			b.Fatal(err)
		}
	}
	runner, err := saga.NewRunner(saga.Config{Journal: j, Registry: sys.Registry(), Checkpoints: projection.NewMemCheckpoints()})
	if err != nil {
		b.Fatal(err)
	}
	defer runner.Close()
	p := saga.NewProcess[Bonus]("count")
	saga.On(p, saga.BySubject[Deposited], func(_ context.Context, pc *saga.ProcessContext[Bonus], e Deposited) error {
		pc.State.Total += e.Amount
		return nil
	})
	b.ResetTimer()
	m, err := saga.RegisterProcess(runner, p)
	if err != nil {
		b.Fatal(err)
	}
	if err := m.CaughtUp(ctx); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
	var total int64
	for i := range min(n, b.N) {
		st, err := m.Status(ctx, acct(i))
		if err != nil {
			b.Fatal(err)
		}
		total += st.State.Total
	}
	if total != int64(b.N) {
		b.Fatalf("processes counted %d deposits, want %d", total, b.N)
	}
}
