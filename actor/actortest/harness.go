package actortest

import (
	"context"
	"errors"
	"math"
	"testing"

	"github.com/orchestrix/orchestrix"
	"github.com/orchestrix/orchestrix/actor"
	"github.com/orchestrix/orchestrix/aggregate"
	"github.com/orchestrix/orchestrix/aggregate/aggregatetest"
	"github.com/orchestrix/orchestrix/internal/roundtrip"
)

// HarnessTimeout bounds, on the wall clock, each call a Harness makes into
// the runtime (a command, a state read), so a hung aggregate fails the test
// instead of hanging it.
const HarnessTimeout = WaitTimeout

// WithSerializationSamples gives NewHarness sample commands, events or
// states for its serialization check (aggregatetest.WithSamples).
func WithSerializationSamples(values ...any) Option {
	return func(o *options) { o.samples = append(o.samples, values...) }
}

// WithoutSerializationCheck turns off the serialization check NewHarness
// runs by default.
func WithoutSerializationCheck() Option { return func(o *options) { o.noSerialCheck = true } }

// Harness runs one aggregate definition on a real actor runtime (NewSystem:
// in-memory journal and snapshot store with fault injection, manual clock)
// so a test can send commands and look at what the runtime did: the
// events, the state, the version and the reply, recovery after a restart,
// and time travel.
//
//	h := actortest.NewHarness(t, bank.Accounts)
//	out := h.Run("acc-1", bank.Open{Owner: "ada"})
//	require.NoError(t, out.Err)
//	h.ExpectRecovers("acc-1")
//
// A Harness is used from the test goroutine only.
type Harness[S, C, E any] struct {
	t      testing.TB
	def    aggregate.Definition[S, C, E]
	env    *Env
	handle *actor.Handle[S, C, E]
}

// Outcome is what one command did.
type Outcome[S, E any] struct {
	// Events are the events the command committed (none on error).
	Events []E
	// State and Version are the aggregate's committed state and version
	// after the command (the zero state and 0 for an aggregate that does
	// not exist, see aggregate.Definition.Creates).
	State   S
	Version uint64
	// Err is the error Send returned (a *actor.CommandError), nil when
	// the command succeeded.
	Err error
	// Result is Send's full result.
	Result actor.Result[E]
}

// NewHarness starts a system with opts (see NewSystem), registers def in
// it, and checks that def's commands, events and state survive
// serialization through the system's registry
// (aggregatetest.CheckSerialization; see WithSerializationSamples and
// WithoutSerializationCheck). The system is shut down when the test ends.
func NewHarness[S, C, E any](t testing.TB, def aggregate.Definition[S, C, E], opts ...Option) *Harness[S, C, E] {
	t.Helper()
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	h := &Harness[S, C, E]{t: t, def: def, env: NewSystem(t, opts...)}
	h.register()
	if !o.noSerialCheck {
		aggregatetest.CheckSerialization(t, def,
			aggregatetest.WithRegistry(h.env.System.Registry()), aggregatetest.WithSamples(o.samples...))
	}
	return h
}

func (h *Harness[S, C, E]) register() {
	h.t.Helper()
	handle, err := actor.Register(h.env.System, h.def)
	if err != nil {
		h.t.Fatalf("actortest: register %q: %v", h.def.Kind, err)
	}
	h.handle = handle
}

// Env returns the running system and its stores, clock and observer.
func (h *Harness[S, C, E]) Env() *Env { return h.env }

// Handle returns the handle of the definition in the current system (a new
// one after each Restart).
func (h *Harness[S, C, E]) Handle() *actor.Handle[S, C, E] { return h.handle }

// EventProbe returns a probe on the events of this aggregate kind committed
// from now on.
func (h *Harness[S, C, E]) EventProbe(opts ...ProbeOption) *EventProbe {
	h.t.Helper()
	return h.env.EventProbe(h.t, append([]ProbeOption{ProbeKind(h.def.Kind)}, opts...)...)
}

func ctxTimeout() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), HarnessTimeout)
}

// Run sends cmd to aggregate id through the runtime (Handle.Send) and
// returns what it did. A rejected or failed command is not a test failure:
// its error is in Outcome.Err. Run fails the test only when the state
// cannot be read afterwards.
func (h *Harness[S, C, E]) Run(id string, cmd C, opts ...actor.SendOption) Outcome[S, E] {
	h.t.Helper()
	ctx, cancel := ctxTimeout()
	defer cancel()
	res, err := h.handle.Send(ctx, id, cmd, opts...)
	out := Outcome[S, E]{Events: res.Events, Err: err, Result: res}
	out.State, out.Version = h.State(id)
	return out
}

// State returns the committed state and version of aggregate id (the zero
// state and 0 when it does not exist); it fails the test on any other
// error.
func (h *Harness[S, C, E]) State(id string) (S, uint64) {
	h.t.Helper()
	ctx, cancel := ctxTimeout()
	defer cancel()
	s, v, err := h.handle.State(ctx, id)
	if err != nil && !errors.Is(err, orchestrix.ErrNotFound) {
		h.t.Fatalf("actortest: %v", err)
	}
	return s, v
}

// StateAt returns the state of aggregate id after its event at version
// (Handle.StateAt), failing the test on error.
func (h *Harness[S, C, E]) StateAt(id string, version uint64) (S, uint64) {
	h.t.Helper()
	ctx, cancel := ctxTimeout()
	defer cancel()
	s, v, err := h.handle.StateAt(ctx, id, version)
	if err != nil {
		h.t.Fatalf("actortest: %v", err)
	}
	return s, v
}

// ExpectStateAt fails the test unless the state of aggregate id at version
// equals want (compared field by field, the difference named).
func (h *Harness[S, C, E]) ExpectStateAt(id string, version uint64, want S) {
	h.t.Helper()
	got, reached := h.StateAt(id, version)
	if reached != version {
		h.t.Errorf("actortest: state of %s %q at version %d: only version %d exists", h.def.Kind, id, version, reached)
	}
	if d := roundtrip.Diff(want, got); d != "" {
		h.t.Errorf("actortest: state of %s %q at version %d differs from the expected state: %s", h.def.Kind, id, version, d)
	}
}

// Restart shuts the system down and starts a new one on the same stores
// and clock (Env.Restart), then registers the definition again. Aggregates
// recover on their next message from their newest snapshot and the events
// after it.
func (h *Harness[S, C, E]) Restart() {
	h.t.Helper()
	h.env.Restart()
	h.register()
}

// ExpectRecovers checks that aggregate id recovers to the state it has
// now: it reads the live state, rebuilds it by folding every event of the
// stream from Initial (when none was deleted), restarts the system
// (recovery from snapshot + events) and reads it again, and fails the test
// with the first differing field when any of them differs. A state that
// changes on recovery usually means Evolve is not pure or the state does
// not survive its snapshot encoding.
func (h *Harness[S, C, E]) ExpectRecovers(id string) {
	h.t.Helper()
	live, version := h.State(id)
	if folded, ok := h.fold(id); ok {
		if d := roundtrip.Diff(live, folded); d != "" {
			h.t.Errorf("actortest: %s %q: folding its events from Initial gives another state than the live one: %s", h.def.Kind, id, d)
		}
	}
	h.Restart()
	got, gotVersion := h.State(id)
	if gotVersion != version {
		h.t.Errorf("actortest: %s %q recovered at version %d, was %d", h.def.Kind, id, gotVersion, version)
	}
	if d := roundtrip.Diff(live, got); d != "" {
		h.t.Errorf("actortest: %s %q recovered to another state after a restart: %s", h.def.Kind, id, d)
	}
}

// fold replays the whole stream of id from the journal; ok is false when
// its first events were deleted.
func (h *Harness[S, C, E]) fold(id string) (S, bool) {
	h.t.Helper()
	ctx, cancel := ctxTimeout()
	defer cancel()
	state := h.def.Initial(id)
	reg := h.env.System.Registry()
	want := uint64(1)
	for rec, err := range h.env.Log.Read(ctx, h.handle.Stream(id), 1, math.MaxUint64, math.MaxInt) {
		if err != nil {
			h.t.Fatalf("actortest: reading %s: %v", h.handle.Stream(id), err)
		}
		if rec.Version != want {
			return state, false
		}
		want++
		v, err := reg.UnmarshalFor(ctx, rec.Envelope)
		if err != nil {
			h.t.Fatalf("actortest: decoding %s v%d: %v", rec.Stream, rec.Version, err)
		}
		e, ok := v.(E)
		if !ok {
			h.t.Fatalf("actortest: %s v%d decodes to %T, not an event of %q", rec.Stream, rec.Version, v, h.def.Kind)
		}
		state = h.def.Evolve(state, e)
	}
	return state, true
}
