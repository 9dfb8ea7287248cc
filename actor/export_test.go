package actor

import (
	"testing"
	"time"
)

// AwaitIdle waits until the mailbox of h's active aggregate id has no
// runner, nothing queued, and takes commands inline: after a Send returns,
// the actor's mailbox goroutine may still be finishing the run that
// answered it, and until it lets go a new command is queued for it rather
// than run on the sender's goroutine.
func AwaitIdle[S, C, E any](t testing.TB, h *Handle[S, C, E], id string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		sh := h.routes.shardOf(id)
		sh.mu.RLock()
		var mb *mailbox
		if e := sh.m[id]; e != nil {
			mb = e.mb
		}
		sh.mu.RUnlock()
		if mb != nil && mb.status.Load() == mbIdle && mb.users.Load() == 0 && mb.systems.Load() == 0 && mb.direct.Load() {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("aggregate %q: mailbox never went idle", id)
		}
		time.Sleep(time.Millisecond)
	}
}

// SetIDTagMask narrows the hashes of command ids to mask's bits (so that
// they collide in the dedup structures) until the test ends. Call it
// before starting the test's systems, whose cleanups then run first.
func SetIDTagMask(t testing.TB, mask uint64) {
	old := idTagMask
	idTagMask = mask
	t.Cleanup(func() { idTagMask = old })
}
