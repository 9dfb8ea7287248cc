// Package sagatest runs sagas and process managers in tests: the real
// saga.Runner on an actortest system and its ManualClock, with every
// command the sagas send intercepted, so a test can assert which commands
// a saga sends (with their deterministic ids), make a chosen step's
// command be rejected, fail or hang until its deadline, and assert the
// compensations and the final status — without running the target
// aggregates unless it wants them.
//
//	k := sagatest.New(t)
//	stock := sagatest.Fake(k, shop.Stock) // commands answered by the kit
//	payments := sagatest.Fake(k, shop.Payments)
//	orders := sagatest.Register(k, shop.OrderSaga(stock, payments))
//
//	k.Reject(sagatest.Step("charge"), shop.ErrCardDeclined)
//	sagatest.Begin(k, orders, "o-1", shop.Order{...}) // or Append an event its StartOn selects
//	sagatest.ExpectSent[shop.Reserve](k, "stock", "sku-1")
//	sagatest.ExpectSent[shop.Charge](k, "payment", "o-1")  // rejected
//	sagatest.ExpectSent[shop.Release](k, "stock", "sku-1") // compensation
//	sagatest.ExpectFinished(k, orders, "o-1", saga.StateCompensated)
//	k.ExpectNothingSent()
//
// # Targets
//
// A saga sends commands through typed actor handles. Fake registers an
// aggregate definition whose commands the kit answers itself: they succeed
// without events unless a rule (Reject, Fail, Hang) says otherwise, and no
// aggregate runs. Real registers a definition that runs as usual; its
// commands are recorded too, and rules apply to them before they reach the
// aggregate.
//
// The kit records every command that a saga's action or compensation or a
// process handler sends with the ctx it was given (or one derived from
// it), as a Sent: its target, body, id, correlation id, the step (or
// process input) that sent it, and what the kit answered. Commands sent
// from anywhere else — the test setting up its aggregates, a projection —
// are neither recorded nor answered: they reach their aggregate (a Fake
// target's definition then runs as a real one).
//
// # Clocks
//
// One actortest.ManualClock (Kit.Clock, the Env's clock) drives the actor
// system, the runner's deadlines, attempt timeouts and retry backoff, the
// process managers' timeouts, and the runner's projections. To run a
// projection under test on the same time and journal, build one Env and
// pass it to WithEnv here and to projectiontest.WithEnv. System time
// moves only when the test advances that clock.
//
// Every wait of the kit (ExpectSent, ExpectFinished, ExpectCaughtUp,
// ExpectRetry) is bounded by WaitTimeout on the wall clock: it bounds how
// long the test waits for goroutines that run in real time and never lets
// system time pass. The common flake — advancing the manual clock before
// the saga has armed the timer the advance should fire — is avoided by
// advancing only once the timer is known to be armed:
//
//   - a step's deadline (saga.Timeout, Orchestration.Deadline) and the
//     attempt timeout are armed before the step's command is sent, so
//     ExpectSent of that command, then Clock.Advance, is exact (the kit's
//     runner has no attempt timeout unless the test sets one, so an
//     advance past a deadline cannot also start a retry; see New);
//   - a retry's backoff is armed after the failed attempt returns:
//     ExpectRetry waits until the runner has armed it, then advances the
//     clock by exactly the Retry policy's backoff;
//   - a process's timeouts are armed once ExpectCaughtUp returns (after a
//     timeout fired, ExpectProcess its record first).
package sagatest

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/orchestrix/orchestrix"
	"github.com/orchestrix/orchestrix/actor"
	"github.com/orchestrix/orchestrix/actor/actortest"
	"github.com/orchestrix/orchestrix/aggregate"
	"github.com/orchestrix/orchestrix/internal/commandtap"
	"github.com/orchestrix/orchestrix/journal"
	"github.com/orchestrix/orchestrix/projection"
	"github.com/orchestrix/orchestrix/saga"
)

// WaitTimeout bounds, on the wall clock, each wait of a Kit, so a saga
// that never gets there fails the test instead of hanging it.
const WaitTimeout = actortest.WaitTimeout

// Option configures New.
type Option func(*options)

type options struct {
	env   *actortest.Env
	retry projection.Retry
	cfg   []func(*saga.Config)
}

// WithEnv runs the kit on env (its system, journal and ManualClock)
// instead of a new actortest.NewSystem, to share one clock and journal
// with other kits. Only one Kit may run on an Env, and the Env must not
// be restarted while it runs: the runner and the interception belong to
// the system the kit started on.
func WithEnv(env *actortest.Env) Option { return func(o *options) { o.env = env } }

// WithRetry sets the runner's Retry policy (saga.Config.Retry). The
// kit's default is projection.Retry's (10 attempts, backoff from 100 ms).
func WithRetry(r projection.Retry) Option { return func(o *options) { o.retry = r } }

// WithConfig lets a test change the runner's Config before the runner
// starts (its Journal, Registry, Checkpoints, Clock, System, Retry and
// AttemptTimeout are set; see New for the last). Keep the Clock: a
// different one would not be the system's, and ExpectRetry could not see
// the runner's retry waits.
func WithConfig(f func(*saga.Config)) Option { return func(o *options) { o.cfg = append(o.cfg, f) } }

// Kit is a saga.Runner on an actortest system, with every command the
// system's handles send intercepted. Its methods fail the test (t.Fatal),
// so they must be called from the test goroutine. The runner is closed
// when the test ends, before the system.
type Kit struct {
	// Env is the actor system, its in-memory journal and its clock.
	Env *actortest.Env
	// Clock is Env.Clock: the one clock of the system, the runner and
	// its projections.
	Clock *actortest.ManualClock
	// Runner is the real saga runner.
	Runner *saga.Runner
	// Retry is the runner's Retry policy (ExpectRetry advances by its
	// backoff).
	Retry projection.Retry

	t   testing.TB
	cfg saga.Config

	mu    sync.Mutex
	sent  []Sent
	taken int // sent[:taken] were taken by ExpectSent
	fakes map[string]bool
	rules []*rule
	wake  chan struct{} // closed and replaced when something is recorded
	armed []*armed      // the runner's pending timers
}

// New starts a Runner on a new actortest system (or the one of WithEnv),
// with the system's clock, journal and registry, in-memory checkpoints,
// and the kit's command interception.
//
// The runner has no attempt timeout (saga.Config.AttemptTimeout is
// negative) unless WithConfig sets one: a hanging command then ends only
// at its step's deadline, so one Advance past the deadline is exact. With
// an attempt timeout shorter than the deadline, an Advance past both
// would race the retry the attempt timeout causes; advance to the attempt
// timeout, ExpectRetry, and so on, instead.
func New(t testing.TB, opts ...Option) *Kit {
	t.Helper()
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	if o.env == nil {
		o.env = actortest.NewSystem(t)
	}
	k := &Kit{
		Env: o.env, Clock: o.env.Clock, Retry: o.retry, t: t,
		fakes: make(map[string]bool), wake: make(chan struct{}),
	}
	if err := commandtap.Attach(k.Env.System, tap{k}); err != nil {
		t.Fatalf("sagatest: %v", err)
	}
	cfg := saga.Config{
		Journal: k.Env.Log, Registry: k.Env.System.Registry(), Checkpoints: projection.NewMemCheckpoints(),
		Clock: armClock{k.Clock, k}, System: k.Env.System, Retry: o.retry,
		AttemptTimeout: -1, // see New
	}
	for _, f := range o.cfg {
		f(&cfg)
	}
	k.Retry, k.cfg = cfg.Retry, cfg
	k.start()
	return k
}

// start starts a runner on k.cfg and closes it when the test ends.
func (k *Kit) start() {
	k.t.Helper()
	r, err := saga.NewRunner(k.cfg)
	if err != nil {
		k.t.Fatalf("sagatest: %v", err)
	}
	k.Runner = r
	k.t.Cleanup(func() {
		if err := r.Close(); err != nil {
			k.t.Errorf("sagatest: closing the runner: %v", err)
		}
	})
}

// Restart closes the runner, as a process that stops does (commands in
// flight, hanging ones included, see their context cancelled; nothing
// more is recorded), and starts a new one on the same journal,
// checkpoints and clock. Register the orchestrations and processes again
// on the new Runner: it resumes every unfinished saga from its stream and
// re-sends the command of the step it was executing, with the same
// command id. Rules and the commands recorded so far are kept.
func (k *Kit) Restart() {
	k.t.Helper()
	if err := k.Runner.Close(); err != nil {
		k.t.Fatalf("sagatest: restart: closing the runner: %v", err)
	}
	k.start()
}

// ClearRules drops every rule: from now on Fake targets accept and Real
// ones execute every command.
func (k *Kit) ClearRules() {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.rules = nil
}

// armClock is the kit's ManualClock as the runner sees it: it keeps the
// timers the runner arms that have neither fired nor been stopped, so
// ExpectRetry can wait until a retry's backoff is armed.
type armClock struct {
	*actortest.ManualClock
	k *Kit
}

// armed is a timer the runner armed; done is set (under Kit.mu) when it
// fires or is stopped.
type armed struct {
	d    time.Duration
	done bool
	t    orchestrix.Timer
	k    *Kit
}

func (c armClock) AfterFunc(d time.Duration, f func()) orchestrix.Timer {
	a := &armed{d: d, k: c.k}
	c.k.mu.Lock()
	c.k.armed = append(c.k.armed, a)
	c.k.mu.Unlock()
	a.t = c.ManualClock.AfterFunc(d, func() {
		a.finish()
		f()
	})
	c.k.mu.Lock()
	c.k.signalLocked()
	c.k.mu.Unlock()
	return a
}

func (a *armed) Stop() bool {
	a.finish()
	return a.t.Stop()
}

func (a *armed) finish() {
	a.k.mu.Lock()
	defer a.k.mu.Unlock()
	if a.done {
		return
	}
	a.done = true
	for i, x := range a.k.armed {
		if x == a {
			a.k.armed = append(a.k.armed[:i], a.k.armed[i+1:]...)
			break
		}
	}
}

// Fake registers def on the kit's system as a target whose commands the
// kit answers: they succeed without events (no aggregate runs, nothing is
// stored) unless a rule says otherwise. It returns the handle to build the
// saga with.
func Fake[S, C, E any](k *Kit, def aggregate.Definition[S, C, E]) *actor.Handle[S, C, E] {
	k.t.Helper()
	h := Real(k, def)
	k.mu.Lock()
	k.fakes[def.Kind] = true
	k.mu.Unlock()
	return h
}

// Real registers def on the kit's system as a real target: its commands
// are recorded and then executed by the aggregate, unless a rule answers
// them first.
func Real[S, C, E any](k *Kit, def aggregate.Definition[S, C, E]) *actor.Handle[S, C, E] {
	k.t.Helper()
	h, err := actor.Register(k.Env.System, def)
	if err != nil {
		k.t.Fatalf("sagatest: registering %q: %v", def.Kind, err)
	}
	return h
}

// Register registers the orchestration o with the kit's runner.
func Register[D any](k *Kit, o *saga.Orchestration[D]) *saga.Saga[D] {
	k.t.Helper()
	s, err := saga.Register(k.Runner, o)
	if err != nil {
		k.t.Fatalf("sagatest: %v", err)
	}
	return s
}

// RegisterProcess registers the process p with the kit's runner.
func RegisterProcess[S any](k *Kit, p *saga.Process[S]) *saga.ProcessManager[S] {
	k.t.Helper()
	m, err := saga.RegisterProcess(k.Runner, p)
	if err != nil {
		k.t.Fatalf("sagatest: %v", err)
	}
	return m
}

// Begin begins saga id of s with data (saga.Saga.Begin).
func Begin[D any](k *Kit, s *saga.Saga[D], id string, data D) {
	k.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), WaitTimeout)
	defer cancel()
	if err := s.Begin(ctx, id, data); err != nil {
		k.t.Fatalf("sagatest: beginning %s %q: %v", s.Name(), id, err)
	}
}

// Append encodes events with the system's registry and appends them to
// stream (journal.StreamName(kind, id)) in one commit, stamped with the
// clock's time, as if aggregate id had committed them: the events a
// saga's StartOn or a process's handlers react to. It returns the
// position of the last one.
func (k *Kit) Append(stream string, events ...any) uint64 {
	k.t.Helper()
	return k.AppendCorrelated(stream, "", events...)
}

// AppendCorrelated is Append with the events' correlation id set, as the
// events of a command a saga sent carry the saga's id
// (saga.ByCorrelationID).
func (k *Kit) AppendCorrelated(stream, correlationID string, events ...any) uint64 {
	k.t.Helper()
	if len(events) == 0 {
		k.t.Fatalf("sagatest: Append to %q without events", stream)
	}
	_, id, ok := journal.SplitStream(stream)
	if !ok {
		k.t.Fatalf("sagatest: Append: stream %q is not kind-id", stream)
	}
	envs := make([]orchestrix.Envelope, 0, len(events))
	for _, ev := range events {
		env, err := k.Env.System.Registry().Marshal(ev)
		if err != nil {
			k.t.Fatalf("sagatest: encoding %T for %q: %v", ev, stream, err)
		}
		env.Source, env.Subject, env.Time, env.CorrelationID = "/sagatest", id, k.Clock.Now(), correlationID
		envs = append(envs, env)
	}
	ctx, cancel := context.WithTimeout(context.Background(), WaitTimeout)
	defer cancel()
	res, err := k.Env.Log.Append(ctx, stream, journal.Any, envs)
	if err != nil {
		k.t.Fatalf("sagatest: appending to %q: %v", stream, err)
	}
	return res.LastPosition
}

// Answer is what the kit did with a command.
type Answer int

// Answers.
const (
	// Accepted: a Fake target's command, answered as a success without
	// events.
	Accepted Answer = iota
	// Passed: a Real target's command, handed to the aggregate.
	Passed
	// Rejected by a Reject rule.
	Rejected
	// Failed by a Fail rule, with an unknown outcome.
	Failed
	// Hung by a Hang rule: answered only when the sender gave up.
	Hung
	// Dropped: a told command (Handle.Tell) a rule applied to; nobody
	// waits for its answer.
	Dropped
)

func (a Answer) String() string {
	switch a {
	case Accepted:
		return "accepted"
	case Passed:
		return "passed"
	case Rejected:
		return "rejected"
	case Failed:
		return "failed"
	case Hung:
		return "hung"
	case Dropped:
		return "dropped"
	}
	return fmt.Sprintf("Answer(%d)", int(a))
}

// Sent is one command a handle of the kit's system sent.
type Sent struct {
	// Kind and AggregateID are the target.
	Kind, AggregateID string
	// Command is the command's body.
	Command any
	// ID is the command id (a saga's is deterministic: the same for
	// every attempt); CorrelationID is the saga or process id for the
	// commands a saga sends.
	ID, CorrelationID string
	// Saga and SagaID name the orchestration or process manager and the
	// instance that sent the command.
	Saga, SagaID string
	// Process is set when a process manager's handler sent it.
	Process bool
	// Step is the step whose action (or, with Compensating, whose
	// compensation) sent it; for a process, the input being handled: the
	// event's type name or "timeout <name>".
	Step         string
	Compensating bool
	// Attempt is the sender's attempt, from 1.
	Attempt int
	// Told is set for a command sent with Handle.Tell (from a derived
	// goroutine of the handler, say; a told command is never awaited).
	Told bool
	// Answer is what the kit did with it.
	Answer Answer
}

func (s Sent) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%T to %s/%s (id %s, %s)", s.Command, s.Kind, s.AggregateID, s.ID, s.Answer)
	switch {
	case s.Saga == "":
	case s.Process:
		fmt.Fprintf(&b, " from process %s %q on %s, attempt %d", s.Saga, s.SagaID, s.Step, s.Attempt)
	case s.Compensating:
		fmt.Fprintf(&b, " from saga %s %q compensating step %q, attempt %d", s.Saga, s.SagaID, s.Step, s.Attempt)
	default:
		fmt.Fprintf(&b, " from saga %s %q step %q, attempt %d", s.Saga, s.SagaID, s.Step, s.Attempt)
	}
	return b.String()
}

// Match selects commands for a rule. Step, Compensation, To and
// CommandOf make them; All combines them.
type Match func(Sent) bool

// Step selects the commands sent by the action of the orchestration
// step named name (not by its compensation).
func Step(name string) Match {
	return func(s Sent) bool { return s.Saga != "" && !s.Process && !s.Compensating && s.Step == name }
}

// Compensation selects the commands sent by the compensation of the step
// named name.
func Compensation(name string) Match {
	return func(s Sent) bool { return s.Saga != "" && !s.Process && s.Compensating && s.Step == name }
}

// Input selects the commands a process manager's handler sent while
// handling input: an event type name, or "timeout <name>".
func Input(input string) Match {
	return func(s Sent) bool { return s.Process && s.Step == input }
}

// To selects the commands to aggregate kind, id ("" for any id).
func To(kind, id string) Match {
	return func(s Sent) bool { return s.Kind == kind && (id == "" || s.AggregateID == id) }
}

// CommandOf selects the commands whose body is a C.
func CommandOf[C any]() Match {
	return func(s Sent) bool { _, ok := s.Command.(C); return ok }
}

// All selects the commands every one of ms selects.
func All(ms ...Match) Match {
	return func(s Sent) bool {
		for _, m := range ms {
			if !m(s) {
				return false
			}
		}
		return true
	}
}

type rule struct {
	match  Match
	answer Answer
	err    error
	left   int // -1: unlimited
}

// ErrInjected is the cause of the failures of a Fail rule. The sender
// sees it wrapped in an error matching orchestrix.ErrOutcomeUnknown.
var ErrInjected = errors.New("sagatest: injected failure")

// Reject makes every command m selects from now on be refused, as its
// aggregate's Decide returning err would: the sender sees an
// *actor.CommandError matching aggregate.ErrRejected and err, and a saga
// step compensates (a process records the failure). It applies to Real
// targets too, before the aggregate runs.
func (k *Kit) Reject(m Match, err error) {
	k.t.Helper()
	if err == nil {
		k.t.Fatal("sagatest: Reject with a nil error")
	}
	k.add(&rule{match: m, answer: Rejected, err: &aggregate.RejectedError{Err: err}, left: -1})
}

// Fail makes the next n commands m selects fail with an unknown outcome
// (an error matching orchestrix.ErrOutcomeUnknown and ErrInjected), as a
// journal I/O error does. The saga retries them with the same command id
// after the Retry backoff on the manual clock: see ExpectRetry.
func (k *Kit) Fail(m Match, n int) {
	k.t.Helper()
	if n < 1 {
		k.t.Fatalf("sagatest: Fail %d times", n)
	}
	k.add(&rule{match: m, answer: Failed, err: fmt.Errorf("%w: %w", orchestrix.ErrOutcomeUnknown, ErrInjected), left: n})
}

// Hang makes every command m selects from now on go unanswered until its
// sender gives up: the step's deadline passes or its attempt timeout runs
// out, both on the manual clock. The sender then sees an error matching
// orchestrix.ErrOutcomeUnknown. ExpectSent the hanging command before
// advancing the clock: the timers that end the wait are armed by then.
func (k *Kit) Hang(m Match) {
	k.t.Helper()
	k.add(&rule{match: m, answer: Hung, left: -1})
}

func (k *Kit) add(r *rule) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.rules = append(k.rules, r)
}

// tap is the kit as the system's commandtap.Tap (unexported, so the
// kit's API does not show the seam).
type tap struct{ k *Kit }

// Command records a command sent by a saga step or a process handler and
// answers it by the first rule that selects it, or by its target's
// default; any other command goes on to its aggregate unrecorded.
func (p tap) Command(ctx context.Context, c commandtap.Command) (pass bool, err error) {
	k := p.k
	s := Sent{
		Kind: c.Kind, AggregateID: c.AggregateID, Command: c.Body, ID: c.ID, CorrelationID: c.CorrelationID,
		Told: c.Told,
	}
	o, ok := commandtap.OriginOf(ctx)
	if !ok {
		return true, nil // not sent by a saga: none of the kit's business
	}
	s.Saga, s.SagaID, s.Process, s.Step, s.Compensating, s.Attempt = o.Saga, o.ID, o.Process, o.Step, o.Compensating, o.Attempt
	k.mu.Lock()
	var hit *rule
	for _, r := range k.rules {
		if r.left != 0 && r.match(s) {
			hit = r
			if r.left > 0 {
				r.left--
			}
			break
		}
	}
	switch {
	case hit != nil && c.Told:
		s.Answer = Dropped
	case hit != nil:
		s.Answer, err = hit.answer, hit.err
	case k.fakes[c.Kind]:
		s.Answer = Accepted
	default:
		s.Answer, pass = Passed, true
	}
	k.sent = append(k.sent, s)
	k.signalLocked()
	k.mu.Unlock()
	if s.Answer == Hung {
		<-ctx.Done()
		return false, fmt.Errorf("%w: sagatest: the command hung until its sender gave up: %w", orchestrix.ErrOutcomeUnknown, context.Cause(ctx))
	}
	return pass, err
}

func (k *Kit) signalLocked() {
	close(k.wake)
	k.wake = make(chan struct{})
}

// await calls cond under the kit's lock each time something is recorded,
// until it reports true or WaitTimeout passes on the wall clock; it
// reports whether cond held.
func (k *Kit) await(cond func() bool) bool {
	deadline := time.NewTimer(WaitTimeout)
	defer deadline.Stop()
	for {
		k.mu.Lock()
		ok := cond()
		wake := k.wake
		k.mu.Unlock()
		if ok {
			return true
		}
		select {
		case <-wake:
		case <-deadline.C:
			return false
		}
	}
}

// Sent returns every command sent so far, in the order the kit saw them,
// whether ExpectSent took them or not.
func (k *Kit) Sent() []Sent {
	k.mu.Lock()
	defer k.mu.Unlock()
	return append([]Sent(nil), k.sent...)
}

// ExpectSent takes the next command sent (in the order the kit saw
// them), waiting up to WaitTimeout on the wall clock, and fails the test
// unless it goes to aggregate kind and id ("" for any id) and its body is
// a C. It returns the body and the record.
func ExpectSent[C any](k *Kit, kind, id string) (C, Sent) {
	k.t.Helper()
	var zero C
	var s Sent
	got := k.await(func() bool {
		if k.taken < len(k.sent) {
			s = k.sent[k.taken]
			k.taken++
			return true
		}
		return false
	})
	if !got {
		k.t.Fatalf("sagatest: no command sent within %v (wall clock), want %T to %s/%s; sent so far:\n%s",
			WaitTimeout, zero, kind, orAny(id), k.describe())
		return zero, s
	}
	c, ok := s.Command.(C)
	switch {
	case s.Kind != kind || (id != "" && s.AggregateID != id):
		k.t.Fatalf("sagatest: next command sent is %s, want one to %s/%s", s, kind, orAny(id))
	case !ok:
		k.t.Fatalf("sagatest: next command sent is %s (%+v), want a %s", s, s.Command, reflect.TypeFor[C]())
	}
	return c, s
}

func orAny(id string) string {
	if id == "" {
		return "*"
	}
	return id
}

// ExpectNothingSent fails the test if a command was sent that ExpectSent
// has not taken. It does not wait: call it once the saga is finished
// (ExpectFinished) or the process manager has caught up (ExpectCaughtUp),
// when everything they were going to send has been sent.
func (k *Kit) ExpectNothingSent() {
	k.t.Helper()
	k.mu.Lock()
	rest := append([]Sent(nil), k.sent[k.taken:]...)
	k.mu.Unlock()
	if len(rest) > 0 {
		lines := make([]string, len(rest))
		for i, s := range rest {
			lines[i] = "  " + s.String()
		}
		k.t.Fatalf("sagatest: %d unexpected command(s) sent:\n%s", len(rest), strings.Join(lines, "\n"))
	}
}

func (k *Kit) describe() string {
	k.mu.Lock()
	defer k.mu.Unlock()
	if len(k.sent) == 0 {
		return "  (none)"
	}
	lines := make([]string, len(k.sent))
	for i, s := range k.sent {
		mark := "  "
		if i < k.taken {
			mark = "  (taken) "
		}
		lines[i] = mark + s.String()
	}
	return strings.Join(lines, "\n")
}

// ExpectRetry waits until the runner is waiting to retry after failed
// attempt number attempt — a timer of exactly Retry.Backoff(attempt) is
// pending on the manual clock — then advances the clock by that backoff,
// which lets the retry run. It fails the test if no such wait is armed
// within WaitTimeout (wall clock).
func (k *Kit) ExpectRetry(attempt int) {
	k.t.Helper()
	d := k.Retry.Backoff(attempt)
	ok := k.await(func() bool {
		for _, a := range k.armed {
			if a.d == d {
				return true
			}
		}
		return false
	})
	if !ok {
		k.t.Fatalf("sagatest: no retry wait of %v (the backoff after %d failed attempt(s)) armed within %v (wall clock); commands sent:\n%s",
			d, attempt, WaitTimeout, k.describe())
	}
	k.Clock.Advance(d)
}

// ExpectFinished waits until saga id of s is finished (a terminal state,
// saga.Finished) and fails the test unless it ended in state want. It
// returns the status: Done and Undone list the steps completed and
// compensated, in order; Failure and CompensationFailure say why.
// Waiting is bounded by WaitTimeout on the wall clock; a saga that waits
// on the manual clock (a retry, a hanging step) does not finish until the
// test advances it.
func ExpectFinished[D any](k *Kit, s *saga.Saga[D], id string, want saga.State) saga.Status[D] {
	k.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), WaitTimeout)
	defer cancel()
	st, err := s.Wait(ctx, id, saga.Finished)
	if err != nil {
		k.t.Fatalf("sagatest: saga %s %q not finished within %v (wall clock): %v; it is %s at step %q, attempt %d, last error %q, with %d timer(s) pending on the manual clock (advance it once they are armed); commands sent:\n%s",
			s.Name(), id, WaitTimeout, err, st.State, st.StepName, st.Attempt, st.LastError, k.Clock.Timers(), k.describe())
		return st
	}
	if st.State != want {
		reason := ""
		if st.Failure != nil {
			reason = fmt.Sprintf("; step %q failed: %s", st.Failure.Step, st.Failure.Reason)
		}
		if st.CompensationFailure != nil {
			reason += fmt.Sprintf("; compensation of %q failed: %s", st.CompensationFailure.Step, st.CompensationFailure.Reason)
		}
		k.t.Fatalf("sagatest: saga %s %q ended %s, want %s (done %v, undone %v%s)", s.Name(), id, st.State, want, st.Done, st.Undone, reason)
	}
	return st
}

// ExpectCaughtUp waits until process manager m has handled every event
// committed so far and armed the timeouts they set (m.CaughtUp), within
// WaitTimeout on the wall clock. Advance the clock after it to fire those
// timeouts.
//
// A timeout that fired is handled on a goroutine of its own and is not an
// event committed yet: after advancing the clock, wait for the process to
// record it with ExpectProcess (its Version grows by one), then
// ExpectCaughtUp arms the timeouts its handler set.
func ExpectCaughtUp[S any](k *Kit, m *saga.ProcessManager[S]) {
	k.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), WaitTimeout)
	defer cancel()
	if err := m.CaughtUp(ctx); err != nil {
		k.t.Fatalf("sagatest: process manager %s did not catch up within %v (wall clock): %v; commands sent:\n%s",
			m.Name(), WaitTimeout, err, k.describe())
	}
}

// ExpectProcess waits until the status of process id of m satisfies cond
// (m.Wait) and returns it; it fails the test when it does not within
// WaitTimeout on the wall clock. Versions count the inputs the process
// recorded, so waiting for a version waits for an input's record:
//
//	sagatest.ExpectProcess(k, m, "i1", sagatest.Version[Payment](2))
func ExpectProcess[S any](k *Kit, m *saga.ProcessManager[S], id string, cond func(saga.ProcessStatus[S]) bool) saga.ProcessStatus[S] {
	k.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), WaitTimeout)
	defer cancel()
	st, err := m.Wait(ctx, id, cond)
	if err != nil {
		k.t.Fatalf("sagatest: process %s %q did not reach the expected status within %v (wall clock): %v; last status: version %d, done %v, timers %v, failures %d; commands sent:\n%s",
			m.Name(), id, WaitTimeout, err, st.Version, st.Done, st.Timers, st.Failures, k.describe())
	}
	return st
}

// Version is an ExpectProcess condition: the process has recorded at
// least v inputs.
func Version[S any](v uint64) func(saga.ProcessStatus[S]) bool {
	return func(st saga.ProcessStatus[S]) bool { return st.Version >= v }
}

// ProcessStatus returns the status of process id of m.
func ProcessStatus[S any](k *Kit, m *saga.ProcessManager[S], id string) saga.ProcessStatus[S] {
	k.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), WaitTimeout)
	defer cancel()
	st, err := m.Status(ctx, id)
	if err != nil {
		k.t.Fatalf("sagatest: status of process %s %q: %v", m.Name(), id, err)
	}
	return st
}
