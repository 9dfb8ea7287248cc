package saga_test

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/orchestrix/orchestrix"
	"github.com/orchestrix/orchestrix/actor"
	"github.com/orchestrix/orchestrix/actor/actortest"
	"github.com/orchestrix/orchestrix/aggregate"
	"github.com/orchestrix/orchestrix/journal"
	memjournal "github.com/orchestrix/orchestrix/journal/mem"
	"github.com/orchestrix/orchestrix/projection"
	"github.com/orchestrix/orchestrix/saga"
)

// The transfer saga against real accounts: which steps complete, which
// are undone, and what the balances end as.
func TestSaga_Begin_Transfer(t *testing.T) {
	type account struct {
		balance  int64
		noCredit bool
		// want is the balance and stream version after the saga.
		want        int64
		wantVersion uint64
	}
	for _, tc := range []struct {
		name        string
		from, to    account
		amount      int64
		state       saga.State
		done        []string
		undone      []string
		failedStep  string // "" for none
		failureText string
		version     uint64 // of the saga's stream; 0: not checked
	}{{
		name:   "every step completes",
		from:   account{balance: 100, want: 70, wantVersion: 2},
		to:     account{want: 30, wantVersion: 2},
		amount: 30, state: saga.StateCompleted,
		done: []string{"debit", "credit"}, version: 4,
	}, {
		name:   "credit rejected reverses the debit",
		from:   account{balance: 100, want: 100, wantVersion: 3}, // opened, withdrawn, refunded
		to:     account{noCredit: true, want: 0, wantVersion: 1},
		amount: 30, state: saga.StateCompensated,
		done: []string{"debit"}, undone: []string{"debit"},
		failedStep: "credit", failureText: ErrNoCredit.Error(),
	}, {
		name:   "first step rejected compensates nothing",
		from:   account{balance: 10, want: 10, wantVersion: 1},
		to:     account{want: 0, wantVersion: 1},
		amount: 30, state: saga.StateCompensated,
		failedStep: "debit", failureText: "insufficient",
	}} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := testContext(t)
			w := newWorld(t, nil)
			w.start()
			w.open(ctx, "from", tc.from.balance, tc.from.noCredit)
			w.open(ctx, "to", tc.to.balance, tc.to.noCredit)
			transfers := mustRegister(t, w.runner, transferSaga(w.accounts))

			if err := transfers.Begin(ctx, "t1", Transfer{From: "from", To: "to", Amount: tc.amount}); err != nil {
				t.Fatal(err)
			}
			// Begin is idempotent: the first data stays.
			if err := transfers.Begin(ctx, "t1", Transfer{From: "from", To: "to", Amount: 99}); err != nil {
				t.Fatal(err)
			}
			st, err := transfers.Wait(ctx, "t1", saga.Finished)
			if err != nil {
				t.Fatal(err)
			}
			if st.State != tc.state || !slices.Equal(st.Done, tc.done) || !slices.Equal(st.Undone, tc.undone) || st.Data.Amount != tc.amount {
				t.Fatalf("status = %+v", st)
			}
			if tc.version != 0 && st.Version != tc.version {
				t.Errorf("saga at version %d, want %d", st.Version, tc.version)
			}
			switch f := st.Failure; {
			case tc.failedStep == "" && f != nil:
				t.Fatalf("failure = %+v, want none", f)
			case tc.failedStep != "" && (f == nil || f.Step != tc.failedStep || !strings.Contains(f.Reason, tc.failureText) || f.TimedOut):
				t.Fatalf("failure = %+v, want step %q failing with %q", f, tc.failedStep, tc.failureText)
			}
			for id, want := range map[string]account{"from": tc.from, "to": tc.to} {
				if got, v := w.balance(ctx, id); got != want.want || v != want.wantVersion {
					t.Errorf("%s = %d at version %d, want %d at version %d", id, got, v, want.want, want.wantVersion)
				}
			}
		})
	}
}

// recorder is the log of the actions a test orchestration ran.
type recorder struct {
	mu  sync.Mutex
	log []string
	ids map[string][]string // action → command ids of its attempts
}

func (r *recorder) add(entry, commandID string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.log = append(r.log, entry)
	if r.ids == nil {
		r.ids = make(map[string][]string)
	}
	r.ids[entry] = append(r.ids[entry], commandID)
}

func (r *recorder) entries() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.log)
}

// step returns an action that logs its call and returns err.
func (r *recorder) step(name string, err error) saga.Action[int] {
	return func(_ context.Context, sc *saga.Context[int]) error {
		r.add(name, sc.CommandID())
		return err
	}
}

// tstep is one step of a table orchestration: its action and
// compensation log their calls and fail with doErr and undoErr; noUndo
// leaves the step without a compensation.
type tstep struct {
	name           string
	doErr, undoErr error
	noUndo         bool
}

// How a saga ends for the outcomes of its steps: what ran, in which
// order, and what its status says.
func TestSaga_StepOutcomes(t *testing.T) {
	boom := errors.New("out of stock")
	for _, tc := range []struct {
		name        string
		maxAttempts int
		steps       []tstep
		ran         []string
		state       saga.State
		undone      []string
		failure     string // "step: text the reason contains"
		compFailure string // same, for CompensationFailure; "" for none
	}{{
		name: "compensations run in reverse order, skipping the failed step",
		steps: []tstep{
			{name: "s0"}, {name: "s1", noUndo: true}, {name: "s2"},
			{name: "s3", doErr: saga.Reject(boom)}, {name: "s4"},
		},
		ran:     []string{"do s0", "do s1", "do s2", "do s3", "undo s2", "undo s0"},
		state:   saga.StateCompensated,
		undone:  []string{"s2", "s0"},
		failure: "s3: out of stock",
	}, {
		name: "a rejected compensation ends the saga failed, with its reason",
		steps: []tstep{
			{name: "reserve"},
			{name: "charge", undoErr: saga.Reject(errors.New("refund window closed"))},
			{name: "ship", doErr: saga.Reject(errors.New("no courier")), noUndo: true},
		},
		// The saga stops at the failed compensation: reserve is not undone.
		ran:         []string{"do reserve", "do charge", "do ship", "undo charge"},
		state:       saga.StateFailed,
		failure:     "ship: no courier",
		compFailure: "charge: refund window closed",
	}, {
		name:        "a transient error fails the step after MaxAttempts",
		maxAttempts: 2,
		steps:       []tstep{{name: "a"}, {name: "b", doErr: orchestrix.ErrOutcomeUnknown, noUndo: true}},
		ran:         []string{"do a", "do b", "do b", "undo a"},
		state:       saga.StateCompensated,
		undone:      []string{"a"},
		failure:     "b: gave up after 2 attempts",
	}} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := testContext(t)
			w := newWorld(t, nil)
			if tc.maxAttempts != 0 {
				w.cfg = func(c *saga.Config) { c.Retry.MaxAttempts = tc.maxAttempts }
			}
			w.start()
			var rec recorder
			o := saga.New[int]("order")
			for _, st := range tc.steps {
				var undo saga.Action[int]
				if !st.noUndo {
					undo = rec.step("undo "+st.name, st.undoErr)
				}
				o.Step(st.name, rec.step("do "+st.name, st.doErr), undo)
			}
			s := mustRegister(t, w.runner, o)
			if err := s.Begin(ctx, "o1", 7); err != nil {
				t.Fatal(err)
			}
			st, err := s.Wait(ctx, "o1", saga.Finished)
			if err != nil {
				t.Fatal(err)
			}
			if got := rec.entries(); !slices.Equal(got, tc.ran) {
				t.Fatalf("ran %v, want %v", got, tc.ran)
			}
			if st.State != tc.state || !slices.Equal(st.Undone, tc.undone) {
				t.Fatalf("status = %+v", st)
			}
			checkFailure(t, "failure", st.Failure, tc.failure)
			checkFailure(t, "compensation failure", st.CompensationFailure, tc.compFailure)
			// Every command id is distinct: action and compensation of a
			// step too; the attempts of one action share theirs.
			seen := map[string]string{}
			for entry, ids := range rec.ids {
				if other, dup := seen[ids[0]]; dup {
					t.Errorf("%s and %s share command id %s", entry, other, ids[0])
				}
				seen[ids[0]] = entry
				for _, id := range ids[1:] {
					if id != ids[0] {
						t.Errorf("attempts of %s have command ids %v", entry, ids)
					}
				}
			}
		})
	}
}

// checkFailure checks f against want, "step: text the reason contains"
// ("" for no failure).
func checkFailure(t *testing.T, what string, f *saga.StepFailure, want string) {
	t.Helper()
	if want == "" {
		if f != nil {
			t.Errorf("%s = %+v, want none", what, f)
		}
		return
	}
	step, reason, _ := strings.Cut(want, ": ")
	if f == nil || f.Step != step || !strings.Contains(f.Reason, reason) {
		t.Errorf("%s = %+v, want step %q with reason containing %q", what, f, step, reason)
	}
}

func TestSaga_TransientError_RetriedWithSameCommandID(t *testing.T) {
	ctx := testContext(t)
	w := newWorld(t, nil)
	w.start()
	var rec recorder
	calls := 0
	flaky := func(_ context.Context, sc *saga.Context[int]) error {
		rec.add("do flaky", sc.CommandID())
		if calls++; calls < 3 {
			return fmt.Errorf("lost the reply: %w", orchestrix.ErrOutcomeUnknown)
		}
		sc.Data = 42 // recorded with the completion
		return nil
	}
	s := mustRegister(t, w.runner, saga.New[int]("flaky").Step("flaky", flaky, nil))
	if err := s.Begin(ctx, "f1", 1); err != nil {
		t.Fatal(err)
	}
	st, err := s.Wait(ctx, "f1", saga.Finished)
	if err != nil {
		t.Fatal(err)
	}
	ids := rec.ids["do flaky"]
	if st.State != saga.StateCompleted || len(ids) != 3 || ids[0] != ids[1] || ids[1] != ids[2] {
		t.Fatalf("state %v, command ids of the attempts %v", st.State, ids)
	}
	if st.Data != 42 {
		t.Errorf("data = %d, want 42 recorded by the step", st.Data)
	}
}

// A step whose commands fail with orchestrix.ErrClosed (the system they
// go to is shutting down) keeps retrying past Retry.MaxAttempts: stopping
// a service must not compensate its sagas.
func TestSaga_ClosedSystem_DoesNotCountAsAttempt(t *testing.T) {
	ctx := testContext(t)
	w := newWorld(t, nil)
	w.cfg = func(c *saga.Config) { c.Retry.MaxAttempts = 2 }
	w.start()
	var calls atomic.Int32
	s := mustRegister(t, w.runner, saga.New[int]("closing").
		Step("a", func(context.Context, *saga.Context[int]) error {
			if calls.Add(1) <= 5 {
				return fmt.Errorf("send: %w", orchestrix.ErrClosed)
			}
			return nil
		}, nil))
	if err := s.Begin(ctx, "c1", 1); err != nil {
		t.Fatal(err)
	}
	st, err := s.Wait(ctx, "c1", saga.Finished)
	if err != nil {
		t.Fatal(err)
	}
	if st.State != saga.StateCompleted || calls.Load() != 6 {
		t.Fatalf("state %v after %d calls, want completed after 6 (failure %+v)", st.State, calls.Load(), st.Failure)
	}
}

func TestSaga_Command_UnknownOutcomeIsDeduplicated(t *testing.T) {
	ctx := testContext(t)
	w := newWorld(t, nil)
	w.start()
	w.open(ctx, "a", 100, false)
	w.open(ctx, "b", 0, false)
	credit := saga.Command(w.accounts, func(t Transfer) (string, AccountCommand) { return t.To, Deposit{t.Amount} })
	s := mustRegister(t, w.runner, saga.New[Transfer]("transfer").
		Step("debit", saga.Command(w.accounts, func(t Transfer) (string, AccountCommand) { return t.From, Withdraw{t.Amount} }), nil).
		Step("credit", func(ctx context.Context, sc *saga.Context[Transfer]) error {
			if sc.Attempt == 1 {
				// The deposit is stored, but its reply is lost.
				w.journal.FailNextAppendAfterStore(nil)
			}
			return credit(ctx, sc)
		}, nil))

	if err := s.Begin(ctx, "t1", Transfer{From: "a", To: "b", Amount: 25}); err != nil {
		t.Fatal(err)
	}
	st, err := s.Wait(ctx, "t1", saga.Finished)
	if err != nil {
		t.Fatal(err)
	}
	if st.State != saga.StateCompleted {
		t.Fatalf("status = %+v", st)
	}
	b, v := w.balance(ctx, "b")
	if b != 25 || v != 2 {
		t.Fatalf("b = %d at version %d, want 25 at version 2 (one deposit)", b, v)
	}
}

// blocker is an action that waits for its context to end, counting calls.
type blocker struct {
	mu    sync.Mutex
	calls int
}

func (b *blocker) action(ctx context.Context, _ *saga.Context[int]) error {
	b.mu.Lock()
	b.calls++
	b.mu.Unlock()
	<-ctx.Done()
	return ctx.Err()
}

func TestSaga_Timeout_FiresOnManualClockAfterRestart(t *testing.T) {
	ctx := testContext(t)
	clock := actortest.NewManualClock(time.Time{})
	w := newWorld(t, clock)
	// No attempt timeout: the manual clock steps through every timer due
	// during an Advance, so a 30 s attempt timeout would fire (and its
	// retry, registered meanwhile, run) a varying number of times within
	// the minutes this test advances.
	w.cfg = func(c *saga.Config) { c.AttemptTimeout = -1 }
	var rec recorder
	var wait blocker
	orchestration := func() *saga.Orchestration[int] {
		return saga.New[int]("timed").
			Step("reserve", rec.step("do reserve", nil), rec.step("undo reserve", nil)).
			Step("await", wait.action, rec.step("undo await", nil), saga.Timeout(5*time.Minute)).
			Step("never", rec.step("do never", nil), nil)
	}
	awaiting := func(st saga.Status[int]) bool { return st.StepName == "await" && st.Attempt >= 1 }

	w.start()
	s := mustRegister(t, w.runner, orchestration())
	if err := s.Begin(ctx, "x", 1); err != nil {
		t.Fatal(err)
	}
	st, err := s.Wait(ctx, "x", awaiting)
	if err != nil {
		t.Fatal(err)
	}
	if want := actortest.Epoch.Add(5 * time.Minute); !st.Deadline.Equal(want) {
		t.Fatalf("deadline = %v, want %v", st.Deadline, want)
	}
	clock.Advance(4 * time.Minute) // not yet due

	// Restart: the deadline is read back from the saga's stream.
	w.stop()
	w.start()
	s = mustRegister(t, w.runner, orchestration())
	if _, err := s.Wait(ctx, "x", awaiting); err != nil {
		t.Fatal(err)
	}
	clock.Advance(time.Minute)
	st, err = s.Wait(ctx, "x", saga.Finished)
	if err != nil {
		t.Fatal(err)
	}
	if st.State != saga.StateCompensated || st.Failure == nil || !st.Failure.TimedOut || st.Failure.Step != "await" {
		t.Fatalf("status %+v, failure %+v", st, st.Failure)
	}
	if got, want := rec.entries(), []string{"do reserve", "undo reserve"}; !slices.Equal(got, want) {
		t.Fatalf("ran %v, want %v", got, want)
	}
	if wait.calls != 2 {
		t.Errorf("await ran %d times, want once per runner", wait.calls)
	}
}

func TestSaga_Deadline_CoversEveryStep(t *testing.T) {
	ctx := testContext(t)
	clock := actortest.NewManualClock(time.Time{})
	w := newWorld(t, clock)
	w.cfg = func(c *saga.Config) { c.AttemptTimeout = -1 } // as in the test above
	w.start()
	var wait blocker
	s := mustRegister(t, w.runner, saga.New[int]("timed").Step("await", wait.action, nil).Deadline(time.Hour))
	if err := s.Begin(ctx, "x", 1); err != nil {
		t.Fatal(err)
	}
	st, err := s.Wait(ctx, "x", func(st saga.Status[int]) bool { return st.Attempt >= 1 })
	if err != nil {
		t.Fatal(err)
	}
	if !st.Deadline.Equal(actortest.Epoch.Add(time.Hour)) {
		t.Fatalf("deadline = %v", st.Deadline)
	}
	clock.Advance(time.Hour)
	if st, err = s.Wait(ctx, "x", saga.Finished); err != nil || !st.Failure.TimedOut {
		t.Fatalf("status %+v, err %v", st, err)
	}
}

func TestRunner_Restart_ResumesUnfinishedSaga(t *testing.T) {
	ctx := testContext(t)
	w := newWorld(t, nil)
	w.start()
	release := make(chan struct{})
	var rec recorder
	gate := func(ctx context.Context, sc *saga.Context[int]) error {
		rec.add("do gate", sc.CommandID())
		select {
		case <-release:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	orchestration := func() *saga.Orchestration[int] {
		return saga.New[int]("resume").Step("first", rec.step("do first", nil), nil).Step("gate", gate, nil)
	}
	s := mustRegister(t, w.runner, orchestration())
	for i := range 3 {
		if err := s.Begin(ctx, fmt.Sprint("r", i), i); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 3 {
		if _, err := s.Wait(ctx, fmt.Sprint("r", i), func(st saga.Status[int]) bool { return st.StepName == "gate" && st.Attempt == 1 }); err != nil {
			t.Fatal(err)
		}
	}
	w.stop()
	close(release)
	w.start()
	s = mustRegister(t, w.runner, orchestration())
	for i := range 3 {
		st, err := s.Wait(ctx, fmt.Sprint("r", i), saga.Finished)
		if err != nil || st.State != saga.StateCompleted {
			t.Fatalf("saga r%d: %+v, %v", i, st, err)
		}
	}
	entries := rec.entries()
	if n := strings.Count(strings.Join(entries, ","), "do first"); n != 3 {
		t.Errorf("first step ran %d times, want 3 (recorded steps are not repeated): %v", n, entries)
	}
	gateIDs := rec.ids["do gate"]
	if len(gateIDs) != 6 {
		t.Fatalf("gate ran %d times, want 6 (3 sagas × 2 runners)", len(gateIDs))
	}
	perID := map[string]int{}
	for _, id := range gateIDs {
		perID[id]++
	}
	for id, n := range perID {
		if n != 2 {
			t.Errorf("command id %s used %d times, want 2 (same id after the restart)", id, n)
		}
	}
}

// Orders are requested through an aggregate whose event starts the saga.
type Request struct{ Amount int64 }
type Requested struct {
	From, To string
	Amount   int64
}

var Requests = aggregate.Definition[struct{}, Requested, Requested]{
	Kind:    "request",
	Initial: func(string) struct{} { return struct{}{} },
	Decide:  func(_ struct{}, c Requested) ([]Requested, error) { return []Requested{c}, nil },
	Evolve:  func(s struct{}, _ Requested) struct{} { return s },
	Events:  []aggregate.EventType{aggregate.Event[Requested]("test.transfer.requested")},
}

func TestOrchestration_StartOn_BeginsSagaPerEvent(t *testing.T) {
	ctx := testContext(t)
	w := newWorld(t, nil)
	w.start()
	requests, err := actor.Register(w.sys, Requests)
	if err != nil {
		t.Fatal(err)
	}
	w.open(ctx, "a", 100, false)
	w.open(ctx, "b", 0, false)
	s := mustRegister(t, w.runner, transferSaga(w.accounts).
		StartOn(projection.Filter{Kinds: []string{"request"}}, func(ev projection.Event) (string, Transfer, bool) {
			r := ev.Data.(Requested)
			return ev.Envelope.Subject, Transfer{From: r.From, To: r.To, Amount: r.Amount}, true
		}))
	for i := range 5 {
		if _, err := requests.Send(ctx, fmt.Sprint("req", i), Requested{From: "a", To: "b", Amount: 10}, actor.WithTraceParent("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 5 {
		st, err := s.Wait(ctx, fmt.Sprint("req", i), saga.Finished)
		if err != nil || st.State != saga.StateCompleted {
			t.Fatalf("saga req%d: %+v, %v", i, st, err)
		}
	}
	if b, v := w.balance(ctx, "b"); b != 50 || v != 6 {
		t.Fatalf("b = %d at version %d, want 50 at 6", b, v)
	}
	// The saga's commands join the trace of the event that started it.
	for rec, err := range w.journal.Read(ctx, w.accounts.Stream("b"), 2, 2, 1) {
		if err != nil {
			t.Fatal(err)
		}
		if rec.Envelope.TraceParent == "" || !strings.HasPrefix(rec.Envelope.CorrelationID, "req") {
			t.Fatalf("deposit envelope: traceparent %q correlation %q", rec.Envelope.TraceParent, rec.Envelope.CorrelationID)
		}
	}
	sts, err := s.Projections(ctx)
	if err != nil || len(sts) != 2 {
		t.Fatalf("projections %v, %v", sts, err)
	}
}

func TestOrchestration_StartOn_InvalidIDFailsTriggerVisibly(t *testing.T) {
	ctx := testContext(t)
	w := newWorld(t, nil)
	w.start()
	requests, err := actor.Register(w.sys, Requests)
	if err != nil {
		t.Fatal(err)
	}
	s := mustRegister(t, w.runner, saga.New[int]("bad").Step("x", func(context.Context, *saga.Context[int]) error { return nil }, nil).
		StartOn(projection.Filter{Kinds: []string{"request"}}, func(projection.Event) (string, int, bool) { return "", 0, true }))
	if _, err := requests.Send(ctx, "r", Requested{}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		sts, err := s.Projections(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if st := sts[1]; st.State == projection.StateFailed {
			if !errors.Is(st.LastError, saga.ErrInvalidID) {
				t.Fatalf("last error = %v, want ErrInvalidID", st.LastError)
			}
			// An operator passes over the poisoned event.
			if err := s.SkipTrigger(ctx, st.FailedPosition); err != nil {
				t.Fatal(err)
			}
			if err := s.SkipTrigger(ctx, st.FailedPosition); !errors.Is(err, projection.ErrNotFailed) {
				t.Fatalf("second SkipTrigger: %v, want ErrNotFailed", err)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("trigger projection never failed: %+v", sts)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestRegister_InvalidOrchestration(t *testing.T) {
	w := newWorld(t, nil)
	w.start()
	noop := func(context.Context, *saga.Context[int]) error { return nil }
	for name, o := range map[string]*saga.Orchestration[int]{
		"no steps":       saga.New[int]("empty"),
		"dash in name":   saga.New[int]("a-b").Step("x", noop, nil),
		"empty name":     saga.New[int]("").Step("x", noop, nil),
		"nil action":     saga.New[int]("n").Step("x", nil, nil),
		"duplicate step": saga.New[int]("d").Step("x", noop, nil).Step("x", noop, nil),
		"bad timeout":    saga.New[int]("t").Step("x", noop, nil, saga.Timeout(-time.Second)),
		"nil start":      saga.New[int]("s").Step("x", noop, nil).StartOn(projection.Filter{}, nil),
	} {
		if _, err := saga.Register(w.runner, o); !errors.Is(err, saga.ErrInvalidSaga) {
			t.Errorf("%s: err = %v, want ErrInvalidSaga", name, err)
		}
	}
	if _, err := saga.Register(w.runner, saga.New[int]("ok").Step("x", noop, nil)); err != nil {
		t.Fatal(err)
	}
	if _, err := saga.Register(w.runner, saga.New[int]("ok").Step("x", noop, nil)); !errors.Is(err, saga.ErrAlreadyRegistered) {
		t.Errorf("second registration: err = %v", err)
	}
}

func TestSaga_Begin_InvalidID(t *testing.T) {
	ctx := testContext(t)
	w := newWorld(t, nil)
	w.start()
	s := mustRegister(t, w.runner, saga.New[int]("ids").Step("x", func(context.Context, *saga.Context[int]) error { return nil }, nil))
	for _, id := range []string{"", strings.Repeat("x", saga.MaxIDLength+1), "a\nb", "\xff"} {
		if err := s.Begin(ctx, id, 1); !errors.Is(err, saga.ErrInvalidID) {
			t.Errorf("Begin(%q): err = %v, want ErrInvalidID", id, err)
		}
	}
	st, err := s.Status(ctx, "never-begun")
	if err != nil || st.State != saga.StateUnknown {
		t.Errorf("status of an unknown saga: %+v, %v", st, err)
	}
}

func TestNewRunner_InvalidConfig(t *testing.T) {
	if _, err := saga.NewRunner(saga.Config{}); !errors.Is(err, saga.ErrInvalidSaga) {
		t.Fatalf("err = %v, want ErrInvalidSaga", err)
	}
}

func TestRunner_Close_RejectsRegistration(t *testing.T) {
	w := newWorld(t, nil)
	w.start()
	if err := w.runner.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := saga.Register(w.runner, saga.New[int]("late").Step("x", func(context.Context, *saga.Context[int]) error { return nil }, nil)); !errors.Is(err, orchestrix.ErrClosed) {
		t.Fatalf("err = %v, want ErrClosed", err)
	}
}

// The saga's stream holds its progress as events any journal reader sees.
func TestSaga_Stream_RecordsProgressEvents(t *testing.T) {
	ctx := testContext(t)
	w := newWorld(t, nil)
	w.start()
	w.open(ctx, "a", 100, false)
	w.open(ctx, "frozen", 0, true)
	transfers := mustRegister(t, w.runner, transferSaga(w.accounts))
	if err := transfers.Begin(ctx, "t1", Transfer{From: "a", To: "frozen", Amount: 5}); err != nil {
		t.Fatal(err)
	}
	if _, err := transfers.Wait(ctx, "t1", saga.Finished); err != nil {
		t.Fatal(err)
	}
	var types []string
	for rec, err := range w.journal.Read(ctx, "saga.transfer-t1", 1, ^uint64(0), 100) {
		if err != nil {
			t.Fatal(err)
		}
		if rec.Envelope.CorrelationID != "t1" || rec.Envelope.Subject != "t1" {
			t.Errorf("event %d: correlation %q subject %q", rec.Version, rec.Envelope.CorrelationID, rec.Envelope.Subject)
		}
		types = append(types, rec.Envelope.Type)
	}
	want := []string{saga.TypeStarted, saga.TypeStepCompleted, saga.TypeStepFailed, saga.TypeStepCompensated, saga.TypeCompensated}
	if !slices.Equal(types, want) {
		t.Fatalf("stream holds %v, want %v", types, want)
	}
	if head, err := w.journal.Head(ctx, transfers.Stream("t1")); err != nil || head != 5 {
		t.Fatalf("head %d, %v", head, err)
	}
}

// behindReads is a journal whose stream reads lag behind its global log:
// the first reads of every saga stream return nothing, as a read that
// races a commit's publication could.
type behindReads struct {
	*memjournal.Journal
	mu    sync.Mutex
	empty map[string]int // reads of a stream answered empty so far
}

func (b *behindReads) Read(ctx context.Context, stream string, from, to uint64, limit int) iter.Seq2[journal.Record, error] {
	b.mu.Lock()
	hide := strings.HasPrefix(stream, saga.StreamKindPrefix) && b.empty[stream] < 2
	if hide {
		b.empty[stream]++
	}
	b.mu.Unlock()
	if hide {
		return func(func(journal.Record, error) bool) {}
	}
	return b.Journal.Read(ctx, stream, from, to, limit)
}

// TestSaga_StreamReadBehindGlobalLog_InstanceRetriesAndFinishes: the
// driver starts an instance for a Started event it read from the global
// log; when a read of the saga's stream does not show that event yet, the
// instance reads again instead of ending with the saga unfinished (which
// left Wait blocked for good).
func TestSaga_StreamReadBehindGlobalLog_InstanceRetriesAndFinishes(t *testing.T) {
	ctx := testContext(t)
	w := newWorld(t, nil)
	lagging := &behindReads{Journal: w.journal, empty: map[string]int{}}
	w.cfg = func(c *saga.Config) { c.Journal = lagging }
	w.start()
	w.open(ctx, "a", 100, false)
	w.open(ctx, "b", 0, false)
	transfers := mustRegister(t, w.runner, transferSaga(w.accounts))

	if err := transfers.Begin(ctx, "t1", Transfer{From: "a", To: "b", Amount: 30}); err != nil {
		t.Fatal(err)
	}
	st, err := transfers.Wait(ctx, "t1", saga.Finished)
	if err != nil {
		t.Fatalf("wait: %v (status %+v)", err, st)
	}
	if st.State != saga.StateCompleted || !slices.Equal(st.Done, []string{"debit", "credit"}) {
		t.Fatalf("status = %+v", st)
	}
	lagging.mu.Lock()
	hidden := lagging.empty[transfers.Stream("t1")]
	lagging.mu.Unlock()
	if hidden != 2 {
		t.Errorf("%d reads of the saga stream answered empty, want 2", hidden)
	}
	if b, _ := w.balance(ctx, "b"); b != 30 {
		t.Errorf("b = %d, want 30", b)
	}
}

// TestRunner_MaxActive_BoundsExecutingSagas begins 10 sagas whose only
// step blocks until the test releases it, with MaxActive 2: never more
// than 2 actions run at once, and every saga completes as slots free up.
func TestRunner_MaxActive_BoundsExecutingSagas(t *testing.T) {
	ctx := testContext(t)
	w := newWorld(t, nil)
	w.cfg = func(c *saga.Config) { c.MaxActive = 2 }
	w.start()
	var running, most atomic.Int32
	started, release := make(chan string, 10), make(chan struct{})
	block := func(ctx context.Context, sc *saga.Context[Transfer]) error {
		n := running.Add(1)
		for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
		}
		started <- sc.ID
		defer running.Add(-1)
		select {
		case <-release:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	s := mustRegister(t, w.runner, saga.New[Transfer]("blocking").Step("wait", block, nil))
	for i := range 10 {
		if err := s.Begin(ctx, fmt.Sprint("s", i), Transfer{}); err != nil {
			t.Fatal(err)
		}
	}
	for range 10 {
		select {
		case <-started:
		case <-ctx.Done():
			t.Fatalf("only %d actions started: %v", len(started), ctx.Err())
		}
		if a := s.Active(); a > 2 {
			t.Fatalf("%d sagas executing, MaxActive is 2", a)
		}
		release <- struct{}{}
	}
	for i := range 10 {
		if st, err := s.Wait(ctx, fmt.Sprint("s", i), saga.Finished); err != nil || st.State != saga.StateCompleted {
			t.Fatalf("saga s%d: %+v, %v", i, st, err)
		}
	}
	if m := most.Load(); m > 2 {
		t.Errorf("%d actions ran at once, MaxActive is 2", m)
	}
}
