// Package actortest holds deterministic test helpers for the actor runtime:
// a manual clock, a probe actor, an observation recorder, and NewSystem,
// which starts a system on the in-memory journal and snapshot store (both
// with fault injection) and shuts it down when the test ends.
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
}

// Option adjusts NewSystem.
type Option func(*options)

type options struct {
	cfg         []func(*actor.Config)
	noSnapshots bool
	journal     *memjournal.Journal
	backend     journal.Journal
	snapshots   *memsnapshot.Store
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

// NewSystem starts an actor.System on a new in-memory journal and snapshot
// store with a ManualClock at Epoch and a Recorder as observer. The system
// is shut down (with a 10 s limit) when the test ends, failing the test if
// the shutdown fails.
func NewSystem(t testing.TB, opts ...Option) *Env {
	t.Helper()
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	env := &Env{Clock: NewManualClock(time.Time{}), Observed: &Recorder{}}
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
	cfg := actor.Config{Journal: env.Log, Clock: env.Clock, Observer: env.Observed}
	if !o.noSnapshots {
		env.Snapshots = o.snapshots
		if env.Snapshots == nil {
			env.Snapshots = memsnapshot.New(memsnapshot.Config{})
		}
		cfg.Snapshots = env.Snapshots
	}
	for _, f := range o.cfg {
		f(&cfg)
	}
	sys, err := actor.NewSystem(cfg)
	if err != nil {
		t.Fatalf("actortest: NewSystem: %v", err)
	}
	env.System = sys
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := sys.Shutdown(ctx); err != nil {
			t.Errorf("actortest: shutdown: %v", err)
		}
	})
	return env
}

// EventProbe returns a probe on the system's journal, decoding with the
// system's registry, that sees the events committed from now on.
func (e *Env) EventProbe(t testing.TB, opts ...ProbeOption) *EventProbe {
	t.Helper()
	return NewEventProbe(t, e.Log, e.System.Registry(), opts...)
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
