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
func BenchmarkSaga_Transfers(b *testing.B) {
	b.Run("journal=mem", func(b *testing.B) {
		j, err := memjournal.New(memjournal.Config{})
		if err != nil {
			b.Fatal(err)
		}
		benchTransfers(b, j)
	})
	b.Run("journal=bolt", func(b *testing.B) {
		j, err := boltjournal.Open(filepath.Join(b.TempDir(), "bench.db"), boltjournal.Options{})
		if err != nil {
			b.Fatal(err)
		}
		benchTransfers(b, j)
	})
}

func benchTransfers(b *testing.B, j journal.Journal) {
	ctx := context.Background()
	defer j.Close()
	sys, err := actor.NewSystem(actor.Config{Journal: j, DedupWindow: 10_000})
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
