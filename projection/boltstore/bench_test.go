package boltstore_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/orchestrix/orchestrix"
	"github.com/orchestrix/orchestrix/journal"
	boltjournal "github.com/orchestrix/orchestrix/journal/bolt"
	"github.com/orchestrix/orchestrix/projection"
	"github.com/orchestrix/orchestrix/projection/boltstore"
	bolt "go.etcd.io/bbolt"
)

// BenchmarkStore_Handler_CatchUpBoltJournal measures an exactly-once
// projection catching up on 100,000 events stored in a bbolt journal:
// reading the journal file, decoding (JSON), and one bbolt read-model
// transaction per batch of 1,024 events (fsync on, the read model's
// default). Reported as events/s.
func BenchmarkStore_Handler_CatchUpBoltJournal(b *testing.B) {
	const events, perAppend = 100_000, 100
	ctx := context.Background()
	reg := orchestrix.NewRegistry()
	if err := orchestrix.Register[Deposited](reg, "test.Deposited"); err != nil {
		b.Fatal(err)
	}
	j, err := boltjournal.Open(filepath.Join(b.TempDir(), "journal.db"), boltjournal.Config{NoSync: true})
	if err != nil {
		b.Fatal(err)
	}
	defer j.Close()
	for a := range events / perAppend {
		batch := make([]orchestrix.Envelope, perAppend)
		for i := range batch {
			env, err := reg.Marshal(Deposited{Amount: i})
			if err != nil {
				b.Fatal(err)
			}
			env.Source = "/bench"
			batch[i] = env
		}
		if _, err := j.Append(ctx, fmt.Sprintf("account-%d", a%100), journal.Any, batch); err != nil {
			b.Fatal(err)
		}
	}
	db, err := bolt.Open(filepath.Join(b.TempDir(), "rm.db"), 0o600, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	s, err := boltstore.New(db, boltstore.Config{})
	if err != nil {
		b.Fatal(err)
	}
	m, err := projection.NewManager(projection.Config{Journal: j, Registry: reg})
	if err != nil {
		b.Fatal(err)
	}
	defer m.Close()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		name := fmt.Sprint("p", i)
		if err := m.Add(ctx, projection.Projection{Name: name, Handler: s.Handler(name, count), Checkpoints: s, BatchSize: 1024}); err != nil {
			b.Fatal(err)
		}
		if _, err := m.Wait(ctx, name, func(st projection.Status) bool { return st.Live && st.Position == events }); err != nil {
			b.Fatal(err)
		}
		if err := m.Stop(ctx, name); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(events)*float64(b.N)/b.Elapsed().Seconds(), "events/s")
}
