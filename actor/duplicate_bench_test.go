package actor_test

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"testing"

	"github.com/orchestrix/orchestrix/actor"
	"github.com/orchestrix/orchestrix/internal/banktest"
	"github.com/orchestrix/orchestrix/journal/bolt"
)

// BenchmarkSend_Duplicate is what a retried command costs its sender now
// that the dedup cache keeps no events (a duplicate reads its events back
// from the journal) against a new command, one sender at a time on a warm
// aggregate, bbolt without fsync (so "new" is CPU, not the disk):
//
//	go test -run XXX -bench Send_Duplicate -count 3 ./actor
func BenchmarkSend_Duplicate(b *testing.B) {
	for _, dup := range []bool{false, true} {
		b.Run(map[bool]string{false: "new", true: "duplicate"}[dup], func(b *testing.B) {
			j, err := bolt.Open(filepath.Join(b.TempDir(), "journal.db"), bolt.Config{NoSync: true})
			if err != nil {
				b.Fatal(err)
			}
			defer j.Close()
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
		})
	}
}
