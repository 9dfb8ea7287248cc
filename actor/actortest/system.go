// Package actortest is the test kit for code that runs on the actor
// runtime. Everything in it is deterministic: the runtime runs on a
// ManualClock, on in-memory stores with fault injection, and nothing a
// test asserts depends on timing.
//
//   - NewHarness runs one aggregate definition on the real runtime: Run a
//     command and get its events, state, version and error; Restart and
//     ExpectRecovers (recovery from snapshot + events must give the same
//     state); StateAt and ExpectStateAt for time travel. It runs
//     aggregatetest.CheckSerialization on the definition first.
//   - EventProbe (NewEventProbe, Env.EventProbe, Harness.EventProbe) sees
//     the events persisted after it was created, on any journal:
//     ExpectPersisted, FishPersisted, ExpectNothingPersisted.
//   - NewSystem starts a system on the in-memory journal and snapshot
//     store (or any journal, WithBackend) and shuts it down when the test
//     ends; Env.Restart restarts it on the same stores.
//   - ManualClock drives the runtime's timers (passivation), and, when
//     passed to them, projections and sagas; Recorder records telemetry
//     observations.
//
// # Clocks
//
// Two clocks are in play and the kits keep them apart.
//
// The ManualClock is the system's time. It moves only when the test
// calls Advance or Set, and Advance fires the timers that fall due, in
// order, before it returns. One ManualClock drives everything a test
// runs: the runtime (Env.Clock: event timestamps, passivation,
// DelayAppends), and, when they share it, projections
// (projectiontest.WithEnv or WithClock: retry backoff) and sagas
// (sagatest.New or sagatest.WithEnv: step deadlines, attempt timeouts,
// retry backoff, process timeouts).
//
// The wall clock only bounds waiting, for liveness: every wait of a kit
// gives up after WaitTimeout of real time and fails the test saying so —
// an EventProbe's wait (ProbeWait), each call of a Harness
// (HarnessTimeout), Recorder.WaitFor's timeout, Env's shutdown,
// projectiontest.WaitTimeout and sagatest.WaitTimeout. These waits cover
// work that runs on goroutines in real time (appends, Tell, projections
// and sagas reacting to events) and never let system time pass: a test
// that needs time to pass advances the manual clock, then expects what
// the advance caused. A passing test never waits for a bound to run out,
// so it is generous; a failure message names the clock it waited on and,
// for a probe of an Env, what the manual clock was at.
//
// The flake this rules out is a timer armed after the test advanced the
// clock: the advance fires nothing, and a wall-clock wait runs out. The
// kits advance only once the timer is known to be armed
// (projectiontest.Kit.ExpectRetry, sagatest.Kit.ExpectRetry), and say in
// their documentation when a timer is armed (a saga step's deadline
// before its command is sent; a process's timeouts once
// sagatest.ExpectCaughtUp returns).

package actortest

import (
	"context"
	"fmt"
	"github.com/orchestrix/orchestrix/telemetry"
	"sync"
	"testing"
	"time"

	"github.com/orchestrix/orchestrix/actor"
	"github.com/orchestrix/orchestrix/journal"
	memjournal "github.com/orchestrix/orchestrix/journal/mem"
	memsnapshot "github.com/orchestrix/orchestrix/snapshot/mem"
)

// Env is a running test system and the in-memory stores behind it.
type Env struct {
	System *actor.System
	// Log is the journal the system writes to: Journal, or the one given
	// with WithBackend.
	Log journal.Journal
	// Journal is the in-memory journal with fault injection (nil with
	// WithBackend).
	Journal   *memjournal.Journal
	Snapshots *memsnapshot.Store // nil with WithoutSnapshots
	Clock     *ManualClock
	Observed  *Recorder

	t   testing.TB
	cfg []func(*actor.Config)
}

// Option adjusts NewSystem.
type Option func(*options)

type options struct {
	cfg           []func(*actor.Config)
	noSnapshots   bool
	journal       *memjournal.Journal
	backend       journal.Journal
	snapshots     *memsnapshot.Store
	clock         *ManualClock
	samples       []any
	noSerialCheck bool
}

// WithConfig lets a test change the Config before the system starts (its
// Journal, Snapshots, Clock and Observer are already set). Several
// WithConfig options apply in order.
func WithConfig(f func(*actor.Config)) Option {
	return func(o *options) { o.cfg = append(o.cfg, f) }
}

// WithoutSnapshots starts the system without a snapshot store.
func WithoutSnapshots() Option { return func(o *options) { o.noSnapshots = true } }

// WithJournal makes the system use j instead of a new journal (to run two
// systems on one journal).
func WithJournal(j *memjournal.Journal) Option { return func(o *options) { o.journal = j } }

// WithBackend makes the system use any journal (bolt, postgres) instead
// of an in-memory one, for integration tests; Env.Journal is then nil and
// Env.Log is j. The test owns j and closes it.
func WithBackend(j journal.Journal) Option { return func(o *options) { o.backend = j } }

// WithSnapshotStore makes the system use s instead of a new snapshot store.
func WithSnapshotStore(s *memsnapshot.Store) Option { return func(o *options) { o.snapshots = s } }

// WithClock makes the system use c instead of a new ManualClock, so that
// one clock drives the runtime and the projections, sagas and other
// systems of a test.
func WithClock(c *ManualClock) Option { return func(o *options) { o.clock = c } }

// NewSystem starts an actor.System on a new in-memory journal and snapshot
// store with a ManualClock at Epoch and a Recorder as observer. The system
// is shut down (within WaitTimeout, wall clock) when the test ends,
// failing the test if the shutdown fails.
func NewSystem(t testing.TB, opts ...Option) *Env {
	t.Helper()
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	env := &Env{Clock: o.clock, Observed: &Recorder{}, t: t}
	if env.Clock == nil {
		env.Clock = NewManualClock(time.Time{})
	}
	env.Journal = o.journal
	if o.backend != nil {
		env.Log = o.backend
	} else if env.Journal == nil {
		j, err := memjournal.New(memjournal.Config{})
		if err != nil {
			t.Fatalf("actortest: journal: %v", err)
		}
		env.Journal = j
	}
	if env.Log == nil {
		env.Log = env.Journal
	}
	if !o.noSnapshots {
		env.Snapshots = o.snapshots
		if env.Snapshots == nil {
			env.Snapshots = memsnapshot.New(memsnapshot.Config{})
		}
	}
	env.cfg = o.cfg
	env.start(t)
	return env
}

// start starts a system on env's stores, clock and observer.
func (e *Env) start(t testing.TB) {
	t.Helper()
	cfg := actor.Config{Journal: e.Log, Clock: e.Clock, Observer: e.Observed}
	if e.Snapshots != nil {
		cfg.Snapshots = e.Snapshots
	}
	for _, f := range e.cfg {
		f(&cfg)
	}
	sys, err := actor.NewSystem(cfg)
	if err != nil {
		t.Fatalf("actortest: NewSystem: %v", err)
	}
	e.System = sys
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), WaitTimeout)
		defer cancel()
		if err := sys.Shutdown(ctx); err != nil {
			t.Errorf("actortest: shutdown: %v", err)
		}
	})
}

// Restart shuts the system down (active aggregates save their
// passivation snapshots) and starts a new one on the same journal,
// snapshot store, clock, observer and configuration, as a restarted
// process would. Env.System is the new system; definitions must be
// registered again (Harness.Restart does that).
func (e *Env) Restart() {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), WaitTimeout)
	defer cancel()
	if err := e.System.Shutdown(ctx); err != nil {
		e.t.Fatalf("actortest: restart: shutdown: %v", err)
	}
	e.start(e.t)
}

// EventProbe returns a probe on the system's journal, decoding with the
// system's registry, that sees the events committed from now on; its
// failures describe the system's manual clock (ProbeClock).
func (e *Env) EventProbe(t testing.TB, opts ...ProbeOption) *EventProbe {
	t.Helper()
	return NewEventProbe(t, e.Log, e.System.Registry(), append([]ProbeOption{ProbeClock(e.Clock)}, opts...)...)
}

// Recorder is a telemetry.Observer that keeps every observation so tests can
// wait for one.
type Recorder struct {
	mu   sync.Mutex
	obs  []telemetry.Observation
	wake chan struct{}
}

var _ telemetry.Observer = (*Recorder)(nil)

// Observe records o.
func (r *Recorder) Observe(o telemetry.Observation) {
	r.mu.Lock()
	r.obs = append(r.obs, o)
	if r.wake != nil {
		close(r.wake)
		r.wake = nil
	}
	r.mu.Unlock()
}

// All returns a copy of the observations so far.
func (r *Recorder) All() []telemetry.Observation {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]telemetry.Observation(nil), r.obs...)
}

// Count returns how many observations match.
func (r *Recorder) Count(match func(telemetry.Observation) bool) int {
	n := 0
	for _, o := range r.All() {
		if match(o) {
			n++
		}
	}
	return n
}

// WaitFor waits up to timeout until n observations match, and returns the
// nth; it fails the test otherwise.
func (r *Recorder) WaitFor(t testing.TB, timeout time.Duration, n int, match func(telemetry.Observation) bool) telemetry.Observation {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		r.mu.Lock()
		seen := 0
		for _, o := range r.obs {
			if match(o) {
				if seen++; seen == n {
					r.mu.Unlock()
					return o
				}
			}
		}
		if r.wake == nil {
			r.wake = make(chan struct{})
		}
		wake := r.wake
		r.mu.Unlock()
		select {
		case <-wake:
		case <-deadline.C:
			t.Fatalf("actortest: %d matching observations within %v, saw %d", n, timeout, seen)
			return telemetry.Observation{}
		}
	}
}

// Is returns a matcher for observations of kind about aggregate id ("" for
// any id).
func Is(kind telemetry.ObservationKind, id string) func(telemetry.Observation) bool {
	return func(o telemetry.Observation) bool { return o.Kind == kind && (id == "" || o.AggregateID == id) }
}

// String describes the recorded observations, for failure messages.
func (r *Recorder) String() string {
	out := ""
	for _, o := range r.All() {
		out += fmt.Sprintf("%s %s/%s v%d err=%v\n", o.Kind, o.AggregateKind, o.AggregateID, o.Version, o.Err)
	}
	return out
}
