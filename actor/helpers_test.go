package actor_test

import (
	"context"
	"github.com/orchestrix/orchestrix/internal/banktest"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/orchestrix/orchestrix"
	"github.com/orchestrix/orchestrix/actor"
	"github.com/orchestrix/orchestrix/actor/actortest"
	"github.com/orchestrix/orchestrix/aggregate"
	"github.com/orchestrix/orchestrix/journal"
)

const wait = 10 * time.Second

type accountHandle = actor.Handle[banktest.Account, banktest.Command, banktest.Event]

func register(t *testing.T, env *actortest.Env, def aggregate.Definition[banktest.Account, banktest.Command, banktest.Event]) *accountHandle {
	t.Helper()
	h, err := actor.Register(env.System, def)
	require.NoError(t, err)
	return h
}

// ctxT is a test's context: its deadline (wait) only guards against a
// hang, it is not an assertion about speed.
func ctxT(t *testing.T) context.Context { return ctxWithin(t, wait) }

// ctxWithin is ctxT for a test whose whole scenario runs under one
// context and takes seconds even on a quiet machine (several systems
// started on a real database), so that a loaded machine does not turn
// the hang guard into a failure.
func ctxWithin(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func readStream(t *testing.T, j journal.Journal, stream string) []journal.Record {
	t.Helper()
	var out []journal.Record
	for rec, err := range j.Read(context.Background(), stream, 1, ^uint64(0), 1<<30) {
		require.NoError(t, err)
		out = append(out, rec)
	}
	return out
}

// gate is a journal that holds appends until the test releases them, and
// can fail a held append.
type gate struct {
	journal.Journal
	mu      sync.Mutex
	holding bool
	calls   [][]orchestrix.Envelope
	entered chan struct{}
	release chan error
}

func newGate(j journal.Journal) *gate {
	return &gate{Journal: j, entered: make(chan struct{}, 100), release: make(chan error, 100)}
}

// Hold makes the following appends wait for Release.
func (g *gate) Hold() {
	g.mu.Lock()
	g.holding = true
	g.mu.Unlock()
}

// Open lets appends through without waiting again.
func (g *gate) Open() {
	g.mu.Lock()
	g.holding = false
	g.mu.Unlock()
}

func (g *gate) Append(ctx context.Context, stream string, exp journal.ExpectedVersion, events []orchestrix.Envelope) (journal.AppendResult, error) {
	g.mu.Lock()
	g.calls = append(g.calls, slices.Clone(events)) // the runtime reuses events once the append reported
	holding := g.holding
	g.mu.Unlock()
	if holding {
		g.entered <- struct{}{}
		select {
		case err := <-g.release:
			if err != nil {
				return journal.AppendResult{}, err
			}
		case <-ctx.Done():
			return journal.AppendResult{}, ctx.Err()
		}
	}
	return g.Journal.Append(ctx, stream, exp, events)
}

func (g *gate) Calls() [][]orchestrix.Envelope {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([][]orchestrix.Envelope(nil), g.calls...)
}

func (g *gate) waitEntered(t *testing.T) {
	t.Helper()
	select {
	case <-g.entered:
	case <-time.After(wait):
		t.Fatal("append never started")
	}
}

type sendResult struct {
	res actor.Result[banktest.Event]
	err error
}

func sendAsync(ctx context.Context, h *accountHandle, id string, cmd banktest.Command, opts ...actor.SendOption) chan sendResult {
	ch := make(chan sendResult, 1)
	go func() {
		res, err := h.Send(ctx, id, cmd, opts...)
		ch <- sendResult{res, err}
	}()
	return ch
}

func recv(t *testing.T, ch chan sendResult) sendResult {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(wait):
		t.Fatal("no reply")
		return sendResult{}
	}
}

func orchestrixExact(v uint64) journal.ExpectedVersion { return journal.Exact(v) }
