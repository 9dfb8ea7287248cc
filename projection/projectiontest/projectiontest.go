// Package projectiontest runs projections in tests: the real
// projection.Manager over events the test appends to an in-memory journal
// (or to bolt or PostgreSQL, WithJournal, or to the journal of an
// actortest system, WithEnv), with retry backoff on a manual clock, so a test can run a
// projection to the head of the log and assert its read model, and drive a
// failing event through its retries, to failure and past it with Skip,
// deterministically.
//
//	k := projectiontest.New(t, reg)
//	k.Append("account-alice", bank.Deposited{Amount: 100})
//	k.Run(projection.Projection{Name: "balances", Handler: balances})
//	// assert the read model
//
// # Clocks
//
// Retry backoff runs on the kit's actortest.ManualClock (Kit.Clock): a
// projection waiting to retry an event waits until the test advances that
// clock, which ExpectRetry and ExpectFailsAt do by exactly the backoff
// of the projection's Retry policy. Event timestamps (Envelope.Time) of
// Append come from the same clock. Every Expect method and Run waits for
// the projection, which runs in its own goroutine, on the wall clock,
// bounded by WaitTimeout: reaching it fails the test with the last status
// seen. That bound never lets manual time pass.
package projectiontest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/orchestrix/orchestrix"
	"github.com/orchestrix/orchestrix/actor/actortest"
	"github.com/orchestrix/orchestrix/journal"
	"github.com/orchestrix/orchestrix/journal/mem"
	"github.com/orchestrix/orchestrix/projection"
)

// WaitTimeout bounds, on the wall clock, each wait of a Kit for a
// projection to reach a state, so a stuck projection fails the test
// instead of hanging it.
const WaitTimeout = actortest.WaitTimeout

// Option configures New.
type Option func(*Kit)

// WithClock makes the kit time retries (and stamp appended events) with c,
// for a test that shares one manual clock with an actortest.Env or a saga
// runner.
func WithClock(c *actortest.ManualClock) Option { return func(k *Kit) { k.Clock = c } }

// WithJournal makes the kit run its projections over j (journal/bolt,
// journal/postgres, or the journal of a system under test) instead of a
// new in-memory journal, for integration tests of a projection on the
// backend it will run on. j must implement journal.Watcher (every
// backend of this module does). The test owns j: the kit does not close
// it. Append writes to j; a projection sees the events already in j too.
func WithJournal(j journal.Journal) Option { return func(k *Kit) { k.Journal = j } }

// WithEnv runs the kit on the journal and the manual clock of an
// actortest.Env (WithJournal(env.Log) and WithClock(env.Clock)), so the
// projections under test follow what the system's aggregates commit, on
// the system's time. Pass the system's registry to New
// (env.System.Registry()).
func WithEnv(env *actortest.Env) Option {
	return func(k *Kit) { k.Journal, k.Clock = env.Log, env.Clock }
}

// WithRetry sets the manager's retry policy (projection.Config.Retry), used
// by projections that set no Retry of their own.
func WithRetry(r projection.Retry) Option { return func(k *Kit) { k.retry = r } }

// Kit is a projection.Manager on a journal (in-memory unless WithJournal)
// and a manual clock.
// Its methods fail the test (t.Fatal) on error, so they must be called from
// the test goroutine. The manager and journal are closed when the test
// ends.
type Kit struct {
	// Journal is the log the projections read: a new in-memory journal,
	// or the one given WithJournal or WithEnv. Append writes to it, and a
	// test may append through it directly.
	Journal journal.Journal
	// Registry encodes appended events and decodes them for handlers.
	Registry *orchestrix.Registry
	// Clock times retry backoff and stamps appended events.
	Clock *actortest.ManualClock
	// Manager is the real projection manager, for what the kit does not
	// wrap (Stop, Rebuild, Statuses).
	Manager *projection.Manager

	t       testing.TB
	retry   projection.Retry
	mu      sync.Mutex
	retries map[string]projection.Retry
	// released is, per projection, the retry wait (position, failed
	// attempts) ExpectRetry last advanced the clock past.
	released map[string]retryWait
}

type retryWait struct {
	position uint64
	attempts int
}

// New returns a kit whose manager decodes with reg. A nil reg fails the
// test.
func New(t testing.TB, reg *orchestrix.Registry, opts ...Option) *Kit {
	t.Helper()
	if reg == nil {
		t.Fatal("projectiontest.New: nil Registry")
	}
	k := &Kit{t: t, Registry: reg, retries: make(map[string]projection.Retry), released: make(map[string]retryWait)}
	for _, o := range opts {
		o(k)
	}
	if k.Clock == nil {
		k.Clock = actortest.NewManualClock(time.Time{})
	}
	if k.Journal == nil {
		j, err := mem.New(mem.Config{})
		if err != nil {
			t.Fatalf("projectiontest: in-memory journal: %v", err)
		}
		t.Cleanup(func() { _ = j.Close() })
		k.Journal = j
	}
	m, err := projection.NewManager(projection.Config{
		Journal: k.Journal, Registry: reg, Checkpoints: projection.NewMemCheckpoints(),
		Retry: k.retry, Clock: k.Clock,
	})
	if err != nil {
		t.Fatalf("projectiontest: %v", err)
	}
	t.Cleanup(func() { _ = m.Close() })
	k.Manager = m
	return k
}

// Append encodes events with the registry and appends them to stream
// (named Kind + "-" + id) in one commit, stamped with the clock's time,
// and returns the journal position of the last one. An event of an
// unregistered type fails the test.
func (k *Kit) Append(stream string, events ...any) uint64 {
	k.t.Helper()
	if len(events) == 0 {
		k.t.Fatalf("projectiontest: Append to %q without events", stream)
	}
	envs := make([]orchestrix.Envelope, 0, len(events))
	for _, ev := range events {
		env, err := k.Registry.Marshal(ev)
		if err != nil {
			k.t.Fatalf("projectiontest: encoding %T for %q: %v", ev, stream, err)
		}
		env.Source, env.Subject, env.Time = "/projectiontest", stream, k.Clock.Now()
		envs = append(envs, env)
	}
	res, err := k.Journal.Append(context.Background(), stream, journal.Any, envs)
	if err != nil {
		k.t.Fatalf("projectiontest: appending to %q: %v", stream, err)
	}
	return res.LastPosition
}

// Add starts p on the manager without waiting for it. A nil
// p.Checkpoints uses the kit's in-memory checkpoint store.
func (k *Kit) Add(p projection.Projection) {
	k.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), WaitTimeout)
	defer cancel()
	if err := k.Manager.Add(ctx, p); err != nil {
		k.t.Fatalf("projectiontest: adding projection %q: %v", p.Name, err)
	}
	retry := p.Retry
	if retry == (projection.Retry{}) {
		retry = k.retry
	}
	k.mu.Lock()
	k.retries[p.Name] = retry
	k.mu.Unlock()
}

// Run adds p and waits until it has handled everything appended so far
// (ExpectCaughtUp), then returns its status: the read model is ready to be
// asserted.
func (k *Kit) Run(p projection.Projection) projection.Status {
	k.t.Helper()
	k.Add(p)
	return k.ExpectCaughtUp(p.Name)
}

// ExpectCaughtUp waits until the projection's checkpoint reaches the
// journal's last position at the time of the call (an as-of projection
// may complete before) and returns its status. It fails the test at once,
// with the error the projection reports, if it fails, stops or retries
// on the way (see ExpectPosition).
func (k *Kit) ExpectCaughtUp(name string) projection.Status {
	k.t.Helper()
	head, err := k.Journal.(journal.Watcher).LastPosition(context.Background()) // NewManager checked it
	if err != nil {
		k.t.Fatalf("projectiontest: journal head: %v", err)
	}
	return k.ExpectPosition(name, head)
}

// ExpectPosition waits until the projection's checkpoint is at least pos
// (or, for an as-of projection, it completes) and returns its status. It
// fails the test at once if the projection fails, stops or starts
// retrying first: a retry waits on the manual clock, which does not move
// while the test waits here (ExpectRetry moves it).
func (k *Kit) ExpectPosition(name string, pos uint64) projection.Status {
	k.t.Helper()
	st, err := k.wait(name, func(s projection.Status) (bool, error) {
		switch {
		case s.State == projection.StateCompleted:
			return true, nil
		case s.State == projection.StateFailed:
			return false, fmt.Errorf("failed at position %d: %w", s.FailedPosition, s.LastError)
		case s.State == projection.StateStopped:
			return false, errors.New("stopped")
		case s.State == projection.StateRetrying && !k.advanced(name, s):
			return false, fmt.Errorf("retrying position %d after %d failed attempt(s), waiting on the manual clock (drive it with ExpectRetry): %w",
				s.FailedPosition, s.Attempts, s.LastError)
		}
		return s.Position >= pos, nil
	})
	if err != nil {
		k.t.Fatalf("projectiontest: projection %q did not reach position %d: %v (last status %s)", name, pos, err, format(st))
	}
	return st
}

// ExpectRetry waits until the projection is waiting to retry the event at
// position after attempt failed attempts, then advances the kit's clock
// by the backoff its Retry policy sets for that wait, which lets the next
// attempt run. It returns the status seen while retrying (LastError is the
// attempt's error). It fails the test if the projection fails, moves past
// position, or retries another event first.
func (k *Kit) ExpectRetry(name string, position uint64, attempt int) projection.Status {
	k.t.Helper()
	st := k.expectRetrying(name, position, attempt)
	k.mu.Lock()
	k.released[name] = retryWait{position, attempt}
	k.mu.Unlock()
	k.Clock.Advance(k.retryOf(name).Backoff(attempt))
	return st
}

func (k *Kit) expectRetrying(name string, position uint64, attempt int) projection.Status {
	k.t.Helper()
	st, err := k.wait(name, func(s projection.Status) (bool, error) {
		switch {
		case s.State == projection.StateRetrying && s.FailedPosition == position && s.Attempts == attempt:
			return true, nil
		case s.State == projection.StateRetrying && s.FailedPosition != position:
			return false, fmt.Errorf("retrying position %d instead", s.FailedPosition)
		case s.State == projection.StateRetrying && s.Attempts > attempt:
			return false, fmt.Errorf("already at attempt %d", s.Attempts)
		case s.State == projection.StateFailed:
			return false, fmt.Errorf("failed at position %d after %d attempt(s): %w", s.FailedPosition, s.Attempts, s.LastError)
		case s.Position >= position:
			return false, errors.New("handled the event")
		case s.State == projection.StateStopped || s.State == projection.StateCompleted:
			return false, fmt.Errorf("%s", s.State)
		}
		return false, nil
	})
	if err != nil {
		k.t.Fatalf("projectiontest: projection %q is not retrying position %d after %d failed attempt(s): %v (last status %s)",
			name, position, attempt, err, format(st))
	}
	return st
}

// ExpectFailsAt drives the projection's retries of the event at position
// on the kit's clock (ExpectRetry for each wait its Retry policy allows)
// and waits until it stops in projection.StateFailed there after exactly
// attempts attempts. It returns the *projection.EventError the status
// reports. It fails the test if the projection recovers, fails elsewhere
// or after another number of attempts. Skip then passes over the event.
func (k *Kit) ExpectFailsAt(name string, position uint64, attempts int) *projection.EventError {
	k.t.Helper()
	if attempts < 1 {
		k.t.Fatalf("projectiontest: ExpectFailsAt %q: attempts %d, want at least 1", name, attempts)
	}
	for i := 1; i < attempts; i++ {
		k.ExpectRetry(name, position, i)
	}
	st, err := k.wait(name, func(s projection.Status) (bool, error) {
		switch {
		case s.State == projection.StateFailed:
			if s.FailedPosition != position || s.Attempts != attempts {
				return false, fmt.Errorf("failed at position %d after %d attempt(s): %w", s.FailedPosition, s.Attempts, s.LastError)
			}
			return true, nil
		case s.State == projection.StateRetrying && (s.FailedPosition != position || s.Attempts >= attempts):
			return false, fmt.Errorf("retrying position %d after %d failed attempt(s)", s.FailedPosition, s.Attempts)
		case s.Position >= position:
			return false, errors.New("handled the event")
		case s.State == projection.StateStopped || s.State == projection.StateCompleted:
			return false, fmt.Errorf("%s", s.State)
		}
		return false, nil
	})
	if err != nil {
		k.t.Fatalf("projectiontest: projection %q did not fail at position %d after %d attempt(s): %v (last status %s)",
			name, position, attempts, err, format(st))
	}
	k.forget(name)
	var ee *projection.EventError
	if !errors.As(st.LastError, &ee) {
		k.t.Fatalf("projectiontest: projection %q failed with %v, not a *projection.EventError", name, st.LastError)
	}
	return ee
}

// Skip passes over the event the projection failed at (Manager.Skip) and
// returns without waiting; ExpectCaughtUp then waits for the rest. It
// fails the test if the projection is not failed at position.
func (k *Kit) Skip(name string, position uint64) {
	k.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), WaitTimeout)
	defer cancel()
	k.forget(name)
	if err := k.Manager.Skip(ctx, name, position); err != nil {
		k.t.Fatalf("projectiontest: skipping position %d of %q: %v", position, name, err)
	}
}

// Status returns the projection's current status.
func (k *Kit) Status(name string) projection.Status {
	k.t.Helper()
	st, err := k.Manager.Status(context.Background(), name)
	if err != nil {
		k.t.Fatalf("projectiontest: status of %q: %v", name, err)
	}
	return st
}

// advanced reports whether s is a retry wait ExpectRetry already let pass
// (the status shows it until the next attempt ends).
func (k *Kit) advanced(name string, s projection.Status) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.released[name] == retryWait{s.FailedPosition, s.Attempts}
}

func (k *Kit) forget(name string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	delete(k.released, name)
}

func (k *Kit) retryOf(name string) projection.Retry {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.retries[name]
}

// wait blocks until cond reports done or an error, or WaitTimeout passes
// on the wall clock, and returns the last status seen.
func (k *Kit) wait(name string, cond func(projection.Status) (bool, error)) (projection.Status, error) {
	ctx, cancel := context.WithTimeout(context.Background(), WaitTimeout)
	defer cancel()
	var condErr error
	st, err := k.Manager.Wait(ctx, name, func(s projection.Status) bool {
		done, err := cond(s)
		condErr = err
		return done || err != nil
	})
	switch {
	case condErr != nil:
		return st, condErr
	case errors.Is(err, context.DeadlineExceeded):
		return st, fmt.Errorf("still waiting after %v of wall-clock time (projectiontest.WaitTimeout); retry backoff runs on the kit's manual clock", WaitTimeout)
	}
	return st, err
}

func format(s projection.Status) string {
	return fmt.Sprintf("{state %s, position %d, head %d, attempts %d, failed position %d, last error %v}",
		s.State, s.Position, s.Head, s.Attempts, s.FailedPosition, s.LastError)
}

// FailTimes wraps h so that the first n calls whose batch holds the event
// at position fail with err: the events of the batch before it are handed
// to h, as a handler failing half-way would have applied them, and the
// rest are not. Later calls go to h unchanged. It turns a projection's
// retry path into something a test can assert: with n below the Retry
// policy's attempts the projection recovers (a read model equal to a run
// without failures shows the handler tolerates the redelivered events);
// with n at or above, it fails at position.
func FailTimes(h projection.Handler, position uint64, n int, err error) projection.Handler {
	var mu sync.Mutex
	left := n
	return projection.HandlerFunc(func(ctx context.Context, batch []projection.Event) error {
		for i := range batch {
			if batch[i].Position != position {
				continue
			}
			mu.Lock()
			fail := left > 0
			if fail {
				left--
			}
			mu.Unlock()
			if !fail {
				break
			}
			if i > 0 {
				if herr := h.Handle(ctx, batch[:i]); herr != nil {
					return herr
				}
			}
			return err
		}
		return h.Handle(ctx, batch)
	})
}
