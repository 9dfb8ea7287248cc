package actor_test

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/orchestrix/orchestrix/actor"
	"github.com/orchestrix/orchestrix/internal/banktest"
)

// Random commands, retries, time passing and restarts on one aggregate
// whose command ids' hashes are forced into four values (so every lookup
// in the dedup structures meets colliding ids): a retry of a command that
// is still remembered (inside the window and among the newest
// DedupMaxEntries) gets its original result and is not stored again, a
// retry of one that left the window executes again, and every deposit
// that executed is in the balance exactly once — live and after restarts
// that recover the window from snapshots and the journal.
func TestAggregate_Dedup_RandomRetries_CollidingHashes(t *testing.T) {
	for _, name := range []string{"mem", "bolt"} {
		t.Run(name, func(t *testing.T) {
			actor.SetIDTagMask(t, 3)
			const window, max = time.Minute, 40
			seed := uint64(time.Now().UnixNano())
			t.Logf("seed %d", seed)
			rng := rand.New(rand.NewPCG(seed, 1))
			ctx := ctxT(t)
			open, reopen := dedupStorage(t, name)
			r := &dedupRig{t: t, open: open, reopen: reopen, snapshots: true,
				cfg: func(c *actor.Config) { c.DedupWindow, c.DedupMaxEntries = window, max }}
			r.start()
			opened, err := r.h.Send(ctx, "a1", banktest.OpenAccount{Owner: "ada"}, actor.WithCommandID("open"))
			require.NoError(t, err)

			type execution struct {
				id  string
				at  time.Time
				res actor.Result[banktest.Event]
			}
			// Every command that executed, in commit order (the opening
			// one too: it takes a place in the dedup cache, but is not
			// retried as a deposit).
			execs := []execution{{id: "open", at: r.clock.Now(), res: opened}}
			last := map[string]int{"open": 0}
			executed := int64(0)
			var duplicates, again, restarts int
			steps := 600
			if testing.Short() {
				steps = 200
			}
			for step := range steps {
				msg := fmt.Sprintf("seed %d step %d", seed, step)
				switch k := rng.IntN(100); {
				case k < 20:
					r.clock.Advance(time.Duration(rng.IntN(2000)) * time.Millisecond)
				case k < 22:
					r.restart(ctx)
					restarts++
				case k < 55:
					// A retry: of one of the newest max/2 executions (inside
					// the window unless time moved on) or of one that is out
					// of the window by time. Ids evicted by the cap while
					// still inside the window are not retried: executing
					// them again would leave two of their executions in the
					// window, which recovery folds differently.
					i := len(execs) - 1 - rng.IntN(min(len(execs), max/2))
					if rng.IntN(4) == 0 {
						i = rng.IntN(len(execs))
					}
					e := execs[i]
					if e.id == "open" || last[e.id] != i {
						continue // executed again since: its newest execution counts
					}
					age := r.clock.Now().Sub(e.at)
					newer := len(execs) - 1 - last[e.id]
					switch {
					case age <= window && newer < max:
						assertDuplicate(t, e.res, r.deposit(ctx, e.id), msg+" "+e.id)
						duplicates++
					case age > window:
						res := r.deposit(ctx, e.id)
						require.False(t, res.Duplicate, "%s: %s executes again after the window", msg, e.id)
						executed++
						again++
						last[e.id] = len(execs)
						execs = append(execs, execution{id: e.id, at: r.clock.Now(), res: res})
					}
				default:
					id := fmt.Sprintf("cmd-%d", len(execs))
					if rng.IntN(2) == 0 {
						id = fmt.Sprintf("0190a5b4-0000-7000-8000-%012x", len(execs))
					}
					res := r.deposit(ctx, id)
					require.False(t, res.Duplicate, "%s: new id %s", msg, id)
					executed++
					last[id] = len(execs)
					execs = append(execs, execution{id: id, at: r.clock.Now(), res: res})
				}
			}
			t.Logf("%d executions (%d of them again after the window), %d duplicates answered, %d restarts", executed, again, duplicates, restarts)
			require.Equal(t, executed, r.balance(ctx), "every execution applied once")
			require.Len(t, readStream(t, r.j, "account-a1"), int(executed)+1)
		})
	}
}
