package actor_test

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/orchestrix/orchestrix/actor"
	"github.com/orchestrix/orchestrix/actor/actortest"
	"github.com/orchestrix/orchestrix/aggregate"
	"github.com/orchestrix/orchestrix/internal/banktest"
	"github.com/orchestrix/orchestrix/journal"
	boltjournal "github.com/orchestrix/orchestrix/journal/bolt"
)

// A concrete (non-interface) event type, which the runtime hands to the
// registry by pointer.
type (
	payloadAdd   struct{ N int64 }
	payloadAdded struct {
		N    int64  `json:"n"`
		Note string `json:"note"`
	}
)

var payloadTallies = aggregate.Definition[int64, payloadAdd, payloadAdded]{
	Kind:    "ptally",
	Initial: func(string) int64 { return 0 },
	Decide: func(_ int64, c payloadAdd) ([]payloadAdded, error) {
		// Two events of different sizes, so payloads of one batch differ.
		return []payloadAdded{{N: c.N, Note: strings.Repeat("<n>", int(c.N%7))}, {N: -c.N}}, nil
	},
	Evolve: func(s int64, e payloadAdded) int64 { return s + e.N },
	Events: []aggregate.EventType{aggregate.Event[payloadAdded]("test.payload.added")},
}

// TestAggregate_ConcurrentCommands_StoredPayloadsAreTheirOwn sends many
// concurrent commands to a few aggregates (so that batches hold several
// commands, are pipelined and recycled with their payload buffers) and
// checks that every stored event carries exactly json.Marshal of its own
// event: a payload buffer reused before its append completed would show
// up as another command's bytes. It runs over the interface event type of
// banktest (boxed events) and a concrete one (passed by pointer), on the
// mem journal and on bbolt.
func TestAggregate_ConcurrentCommands_StoredPayloadsAreTheirOwn(t *testing.T) {
	const aggregates, senders, each = 4, 16, 60
	backends := map[string]func(t *testing.T) (*actortest.Env, journal.Journal){
		"mem": func(t *testing.T) (*actortest.Env, journal.Journal) {
			env := actortest.NewSystem(t)
			return env, env.Journal
		},
		"bolt": func(t *testing.T) (*actortest.Env, journal.Journal) {
			j, err := boltjournal.Open(filepath.Join(t.TempDir(), "j.db"), boltjournal.Config{NoSync: true})
			require.NoError(t, err)
			t.Cleanup(func() { j.Close() })
			return actortest.NewSystem(t, actortest.WithBackend(j)), j
		},
	}
	for name, newEnv := range backends {
		t.Run(name+"/interface events", func(t *testing.T) {
			env, j := newEnv(t)
			h := register(t, env, banktest.Accounts())
			ctx := ctxT(t)
			for a := range aggregates {
				_, err := h.Send(ctx, fmt.Sprint("acct-", a), banktest.OpenAccount{Owner: fmt.Sprint("owner <", a, ">")})
				require.NoError(t, err)
			}
			var wg sync.WaitGroup
			for s := range senders {
				wg.Go(func() {
					for i := range each {
						amount := int64(1 + s*each + i)
						if _, err := h.Send(ctx, fmt.Sprint("acct-", amount%aggregates), banktest.Deposit{Amount: amount}); err != nil {
							t.Error(err)
							return
						}
					}
				})
			}
			wg.Wait()
			seen := map[int64]bool{}
			for a := range aggregates {
				for i, rec := range readStream(t, j, h.Stream(fmt.Sprint("acct-", a))) {
					if i == 0 {
						checkPayload(t, rec, banktest.Opened{Owner: fmt.Sprint("owner <", a, ">")})
						continue
					}
					var d banktest.Deposited
					require.NoError(t, json.Unmarshal(rec.Envelope.Data, &d))
					checkPayload(t, rec, d)
					require.Equal(t, int64(a), d.Amount%aggregates, "deposit %d stored in acct-%d", d.Amount, a)
					require.False(t, seen[d.Amount], "deposit %d stored twice", d.Amount)
					seen[d.Amount] = true
				}
			}
			require.Len(t, seen, senders*each)
		})
		t.Run(name+"/concrete events", func(t *testing.T) {
			env, j := newEnv(t)
			h, err := actor.Register(env.System, payloadTallies)
			require.NoError(t, err)
			ctx := ctxT(t)
			var wg sync.WaitGroup
			for s := range senders {
				wg.Go(func() {
					for i := range each {
						n := int64(1 + s*each + i)
						if _, err := h.Send(ctx, fmt.Sprint("t-", n%aggregates), payloadAdd{N: n}); err != nil {
							t.Error(err)
							return
						}
					}
				})
			}
			wg.Wait()
			seen := map[int64]bool{}
			for a := range aggregates {
				recs := readStream(t, j, h.Stream(fmt.Sprint("t-", a)))
				require.Zero(t, len(recs)%2)
				for i := 0; i < len(recs); i += 2 {
					var e payloadAdded
					require.NoError(t, json.Unmarshal(recs[i].Envelope.Data, &e))
					checkPayload(t, recs[i], payloadAdded{N: e.N, Note: strings.Repeat("<n>", int(e.N%7))})
					checkPayload(t, recs[i+1], payloadAdded{N: -e.N})
					require.False(t, seen[e.N], "command %d stored twice", e.N)
					seen[e.N] = true
				}
			}
			require.Len(t, seen, senders*each)
		})
	}
}

// checkPayload fails t unless rec's payload is json.Marshal(want).
func checkPayload(t *testing.T, rec journal.Record, want any) {
	t.Helper()
	b, err := json.Marshal(want)
	require.NoError(t, err)
	require.Equal(t, string(b), string(rec.Envelope.Data), "%s version %d", rec.Stream, rec.Version)
}
