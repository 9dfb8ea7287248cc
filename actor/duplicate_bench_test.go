package actor_test

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"testing"

	"github.com/orchestrix/orchestrix/actor"
	"github.com/orchestrix/orchestrix/internal/banktest"
	"github.com/orchestrix/orchestrix/internal/pgtest"
	"github.com/orchestrix/orchestrix/journal"
	"github.com/orchestrix/orchestrix/journal/bolt"
	"github.com/orchestrix/orchestrix/journal/postgres"
)

// BenchmarkSend_Duplicate is what a retried command costs its sender now
// that the dedup cache keeps no events (a duplicate reads its events back
// from the journal) against a new command, one sender at a time on a warm
// aggregate, on bbolt without fsync and on PostgreSQL:
//
//	go test -run XXX -bench Send_Duplicate -count 3 ./actor
func BenchmarkSend_Duplicate(b *testing.B) {
	for _, backend := range []string{"bolt", "postgres"} {
		for _, dup := range []bool{false, true} {
			b.Run(backend+"/"+map[bool]string{false: "new", true: "duplicate"}[dup], func(b *testing.B) {
				benchDuplicate(b, openBenchJournal(b, backend), dup)
			})
		}
	}
}

// openBenchJournal opens a journal of backend for b, closed when b ends:
// bbolt without fsync, or PostgreSQL on a new database of the tests'
// throwaway server (b is skipped without PostgreSQL binaries).
func openBenchJournal(b *testing.B, backend string) journal.Journal {
	var j interface {
		journal.Journal
		Close() error
	}
	var err error
	if backend == "postgres" {
		j, err = postgres.Open(context.Background(), pgtest.DSN(b), postgres.Config{})
	} else {
		j, err = bolt.Open(filepath.Join(b.TempDir(), "journal.db"), bolt.Config{NoSync: true})
	}
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = j.Close() })
	return j
}

func benchDuplicate(b *testing.B, j journal.Journal, dup bool) {
	sys, err := actor.NewSystem(actor.Config{Journal: j, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	defer sys.Close()
	h, err := actor.Register(sys, banktest.Accounts())
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	if _, err := h.Send(ctx, "acc", banktest.OpenAccount{Owner: "o"}); err != nil {
		b.Fatal(err)
	}
	// A few hundred earlier commands, so the retried one is not
	// the newest entry.
	for i := range 300 {
		if _, err := h.Send(ctx, "acc", banktest.Deposit{Amount: 1}, actor.WithCommandID(fmt.Sprint("cmd-", i))); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		id := fmt.Sprint("retry-", i)
		if dup {
			id = "cmd-100"
		}
		r, err := h.Send(ctx, "acc", banktest.Deposit{Amount: 1}, actor.WithCommandID(id))
		if err != nil {
			b.Fatal(err)
		}
		if r.Duplicate != dup || len(r.Events) != 1 {
			b.Fatalf("duplicate %v with %d events, want %v with 1", r.Duplicate, len(r.Events), dup)
		}
	}
}
