package actor_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/orchestrix/orchestrix/actor"
	"github.com/orchestrix/orchestrix/actor/actortest"
	"github.com/orchestrix/orchestrix/internal/banktest"
	memjournal "github.com/orchestrix/orchestrix/journal/mem"
	memsnapshot "github.com/orchestrix/orchestrix/snapshot/mem"
)

// BenchmarkRecovery_FromSnapshot_DedupReadBack activates an aggregate from
// a snapshot at its head when all of its events are inside the dedup
// window (the worst case: a busy aggregate restarted at once), with the
// dedup window on (reads back up to DedupMaxEntries events before the
// snapshot) and off (reads nothing).
func BenchmarkRecovery_FromSnapshot_DedupReadBack(b *testing.B) {
	ctx := context.Background()
	for _, events := range []int{100, 20_000} {
		j, err := memjournal.New(memjournal.Config{})
		if err != nil {
			b.Fatal(err)
		}
		snaps := memsnapshot.New(memsnapshot.Config{})
		clock := actortest.NewManualClock(actortest.Epoch)
		sys, err := actor.NewSystem(actor.Config{Journal: j, Snapshots: snaps, Clock: clock})
		if err != nil {
			b.Fatal(err)
		}
		h, err := actor.Register(sys, banktest.Accounts())
		if err != nil {
			b.Fatal(err)
		}
		if _, err := h.Send(ctx, "a1", banktest.OpenAccount{Owner: "ada"}); err != nil {
			b.Fatal(err)
		}
		for range events - 1 {
			if _, err := h.Send(ctx, "a1", banktest.Deposit{Amount: 1}); err != nil {
				b.Fatal(err)
			}
		}
		if err := sys.Shutdown(ctx); err != nil { // saves the snapshot at the head
			b.Fatal(err)
		}
		for _, window := range []string{"on", "off"} {
			b.Run(fmt.Sprintf("events=%d/dedup=%s", events, window), func(b *testing.B) {
				cfg := actor.Config{Journal: j, Snapshots: snaps, Clock: clock}
				if window == "off" {
					cfg.DedupWindow = -1
				}
				for b.Loop() {
					sys, err := actor.NewSystem(cfg)
					if err != nil {
						b.Fatal(err)
					}
					h, err := actor.Register(sys, banktest.Accounts())
					if err != nil {
						b.Fatal(err)
					}
					if _, _, err := h.State(ctx, "a1"); err != nil {
						b.Fatal(err)
					}
					b.StopTimer()
					if err := sys.Close(); err != nil {
						b.Fatal(err)
					}
					b.StartTimer()
				}
			})
		}
	}
}
