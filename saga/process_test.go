package saga_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/orchestrix/orchestrix"
	"github.com/orchestrix/orchestrix/actor/actortest"
	"github.com/orchestrix/orchestrix/projection"
	"github.com/orchestrix/orchestrix/saga"
)

// Bonus is the state of the test process manager: an account that
// receives 100 in deposits gets a bonus of 10, once; an account still
// empty an hour after opening gets a welcome credit of 1.
type Bonus struct {
	Total    int64
	Paid     bool
	Welcomed bool
}

// bonusProcess builds the test process. Accounts whose id starts with
// "plain" do not take part: their Opened event starts no process.
func bonusProcess(w *world) *saga.Process[Bonus] {
	p := saga.NewProcess[Bonus]("bonus")
	saga.On(p, func(ev projection.Event, _ Opened) (string, bool) {
		id := ev.Envelope.Subject
		return id, !strings.HasPrefix(id, "plain")
	}, func(_ context.Context, pc *saga.ProcessContext[Bonus], _ Opened) error {
		pc.Schedule("welcome", time.Hour)
		return nil
	}, saga.Starts())
	saga.On(p, saga.BySubject[Deposited], func(ctx context.Context, pc *saga.ProcessContext[Bonus], e Deposited) error {
		pc.State.Total += e.Amount
		pc.Cancel("welcome")
		if pc.State.Total >= 100 && !pc.State.Paid {
			if _, err := w.accounts.Send(ctx, pc.ID, Refund{Amount: 10}, pc.SendOptions("bonus")...); err != nil {
				return err
			}
			pc.State.Paid = true
			pc.Complete()
		}
		return nil
	})
	p.OnTimeout(func(ctx context.Context, pc *saga.ProcessContext[Bonus], name string) error {
		if name == "welcome" && pc.State.Total == 0 {
			if _, err := w.accounts.Send(ctx, pc.ID, Refund{Amount: 1}, pc.SendOptions("welcome")...); err != nil {
				return err
			}
			pc.State.Welcomed = true
		}
		return nil
	})
	return p
}

func mustRegisterProcess[S any](t testing.TB, r *saga.Runner, p *saga.Process[S]) *saga.ProcessManager[S] {
	t.Helper()
	m, err := saga.RegisterProcess(r, p)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func (w *world) deposit(ctx context.Context, id string, amount int64) {
	w.t.Helper()
	if _, err := w.accounts.Send(ctx, id, Deposit{Amount: amount}); err != nil {
		w.t.Fatal(err)
	}
}

func TestProcess_CorrelatedEvents_ChangeStateAndSendCommandOnce(t *testing.T) {
	ctx := testContext(t)
	w := newWorld(t, nil)
	w.start()
	bonus := mustRegisterProcess(t, w.runner, bonusProcess(w))
	w.open(ctx, "a", 0, false)
	w.open(ctx, "b", 0, false)
	w.deposit(ctx, "a", 50)
	w.deposit(ctx, "b", 30)
	w.deposit(ctx, "a", 60)

	st, err := bonus.Wait(ctx, "a", func(st saga.ProcessStatus[Bonus]) bool { return st.Done })
	if err != nil {
		t.Fatal(err)
	}
	if st.State != (Bonus{Total: 110, Paid: true}) || st.Version != 3 || len(st.Timers) != 0 || st.Failures != 0 {
		t.Fatalf("status of a = %+v", st)
	}
	// Events after completion are ignored.
	w.deposit(ctx, "a", 70)
	if err := bonus.CaughtUp(ctx); err != nil {
		t.Fatal(err)
	}
	if st, err = bonus.Status(ctx, "a"); err != nil || st.Version != 3 || st.State.Total != 110 {
		t.Fatalf("status of a after completion = %+v, %v", st, err)
	}
	if a, _ := w.balance(ctx, "a"); a != 50+60+70+10 {
		t.Errorf("a = %d, want 190 (one bonus)", a)
	}
	// b is below the threshold: still running, its welcome timer cancelled.
	if st, err = bonus.Status(ctx, "b"); err != nil || st.Done || st.State.Total != 30 || len(st.Timers) != 0 {
		t.Fatalf("status of b = %+v, %v", st, err)
	}
}

func TestProcess_EventOfUnbegunProcess_WithoutStarts_IsIgnored(t *testing.T) {
	ctx := testContext(t)
	w := newWorld(t, nil)
	w.start()
	bonus := mustRegisterProcess(t, w.runner, bonusProcess(w))
	w.open(ctx, "plain1", 0, false) // its Opened starts no process
	w.deposit(ctx, "plain1", 200)
	if err := bonus.CaughtUp(ctx); err != nil {
		t.Fatal(err)
	}
	st, err := bonus.Status(ctx, "plain1")
	if err != nil {
		t.Fatal(err)
	}
	if st.Begun || st.Version != 0 {
		t.Errorf("status = %+v, want a process that never began", st)
	}
	if b, _ := w.balance(ctx, "plain1"); b != 200 {
		t.Errorf("plain1 = %d, want 200 (no bonus)", b)
	}
}

// TestProcess_Timeout_FiresOnManualClockAfterRestart: the welcome timeout
// is recorded with the process, re-armed by a new runner and fires when
// the manual clock passes it, once.
func TestProcess_Timeout_FiresOnManualClockAfterRestart(t *testing.T) {
	ctx := testContext(t)
	clock := actortest.NewManualClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	w := newWorld(t, clock)
	w.start()
	bonus := mustRegisterProcess(t, w.runner, bonusProcess(w))
	w.open(ctx, "c", 0, false)
	st, err := bonus.Wait(ctx, "c", func(st saga.ProcessStatus[Bonus]) bool { return st.Begun })
	if err != nil {
		t.Fatal(err)
	}
	want := clock.Now().Add(time.Hour)
	if at := st.Timers["welcome"]; !at.Equal(want) {
		t.Fatalf("welcome timer at %v, want %v", at, want)
	}

	w.stop()
	w.start()
	bonus = mustRegisterProcess(t, w.runner, bonusProcess(w))
	if err := bonus.CaughtUp(ctx); err != nil {
		t.Fatal(err)
	}
	clock.Advance(59 * time.Minute)
	if err := bonus.CaughtUp(ctx); err != nil {
		t.Fatal(err)
	}
	if st, _ := bonus.Status(ctx, "c"); st.State.Welcomed {
		t.Fatal("welcome fired before its time")
	}
	clock.Advance(time.Minute)
	st, err = bonus.Wait(ctx, "c", func(st saga.ProcessStatus[Bonus]) bool { return st.State.Welcomed })
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Timers) != 0 || st.Version != 2 || st.Done {
		t.Errorf("status after the timeout = %+v", st)
	}

	// Another restart and more time: nothing fires again.
	w.stop()
	w.start()
	bonus = mustRegisterProcess(t, w.runner, bonusProcess(w))
	if err := bonus.CaughtUp(ctx); err != nil {
		t.Fatal(err)
	}
	clock.Advance(24 * time.Hour)
	if err := bonus.CaughtUp(ctx); err != nil {
		t.Fatal(err)
	}
	if c, v := w.balance(ctx, "c"); c != 1 || v != 2 {
		t.Errorf("c = %d at version %d, want one welcome credit of 1 at version 2", c, v)
	}
}

func TestProcess_HandlerRejected_RecordsFailureAndGoesOn(t *testing.T) {
	ctx := testContext(t)
	w := newWorld(t, nil)
	w.start()
	p := saga.NewProcess[Bonus]("unlucky")
	saga.On(p, saga.BySubject[Deposited], func(_ context.Context, pc *saga.ProcessContext[Bonus], e Deposited) error {
		pc.State.Total += e.Amount
		if e.Amount == 13 {
			return saga.Reject(errors.New("unlucky amount"))
		}
		return nil
	})
	m := mustRegisterProcess(t, w.runner, p)
	w.open(ctx, "d", 0, false)
	w.deposit(ctx, "d", 5)
	w.deposit(ctx, "d", 13)
	w.deposit(ctx, "d", 7)
	st, err := m.Wait(ctx, "d", func(st saga.ProcessStatus[Bonus]) bool { return st.Version == 3 })
	if err != nil {
		t.Fatal(err)
	}
	if st.State.Total != 12 || st.Failures != 1 || st.LastFailure == nil ||
		!strings.Contains(st.LastFailure.Reason, "unlucky amount") || st.LastFailure.Type != "test.account.deposited" || st.LastFailure.Position == 0 {
		t.Errorf("status = %+v (last failure %+v)", st, st.LastFailure)
	}
}

// TestProcess_TransientError_RetriedWithSameCommandID: the first attempt
// sends the bonus and then fails as if the reply were lost; the retry
// sends it again with the same command id, and the account is credited
// once.
func TestProcess_TransientError_RetriedWithSameCommandID(t *testing.T) {
	ctx := testContext(t)
	w := newWorld(t, nil)
	w.start()
	var attempts atomic.Int32
	p := saga.NewProcess[Bonus]("flaky")
	saga.On(p, saga.BySubject[Deposited], func(ctx context.Context, pc *saga.ProcessContext[Bonus], e Deposited) error {
		attempts.Add(1)
		if _, err := w.accounts.Send(ctx, pc.ID, Refund{Amount: 10}, pc.SendOptions("bonus")...); err != nil {
			return err
		}
		if pc.Attempt == 1 {
			return fmt.Errorf("reply lost: %w", orchestrix.ErrOutcomeUnknown)
		}
		pc.State.Paid = true
		pc.Complete()
		return nil
	})
	m := mustRegisterProcess(t, w.runner, p)
	w.open(ctx, "e", 0, false)
	w.deposit(ctx, "e", 100)
	st, err := m.Wait(ctx, "e", func(st saga.ProcessStatus[Bonus]) bool { return st.Done })
	if err != nil {
		t.Fatal(err)
	}
	if !st.State.Paid || attempts.Load() != 2 {
		t.Errorf("status %+v after %d attempts, want paid after 2", st, attempts.Load())
	}
	if e, v := w.balance(ctx, "e"); e != 110 || v != 3 {
		t.Errorf("e = %d at version %d, want 110 at version 3 (one bonus)", e, v)
	}
}

func TestRegisterProcess_InvalidDefinitions(t *testing.T) {
	w := newWorld(t, nil)
	w.start()
	handle := func(context.Context, *saga.ProcessContext[Bonus], Deposited) error { return nil }
	type unregistered struct{}
	for name, p := range map[string]*saga.Process[Bonus]{
		"no handlers": saga.NewProcess[Bonus]("empty"),
		"bad name":    saga.On(saga.NewProcess[Bonus]("has-dash"), saga.BySubject[Deposited], handle),
		"two handlers for one type": saga.On(saga.On(saga.NewProcess[Bonus]("twice"),
			saga.BySubject[Deposited], handle), saga.BySubject[Deposited], handle),
		"nil handler": saga.On(saga.NewProcess[Bonus]("nilh"), saga.BySubject[Deposited], nil),
		"unregistered type": saga.On(saga.NewProcess[Bonus]("unreg"), saga.BySubject[unregistered],
			func(context.Context, *saga.ProcessContext[Bonus], unregistered) error { return nil }),
	} {
		if _, err := saga.RegisterProcess(w.runner, p); !errors.Is(err, saga.ErrInvalidSaga) {
			t.Errorf("%s: err = %v, want ErrInvalidSaga", name, err)
		}
	}
	mustRegisterProcess(t, w.runner, bonusProcess(w))
	if _, err := saga.RegisterProcess(w.runner, bonusProcess(w)); !errors.Is(err, saga.ErrAlreadyRegistered) {
		t.Errorf("second registration: err = %v, want ErrAlreadyRegistered", err)
	}
}

// TestProcess_Chaos_KillAndRestart runs the bonus process for many
// accounts while the actor system and the runner are killed and restarted
// at random points, and checks that every process completes and that
// every account got exactly one bonus: events redelivered after a restart
// re-send their commands with the same ids, which the accounts
// deduplicate.
//
// Set PROCESS_CHAOS_SEED to replay a run.
func TestProcess_Chaos_KillAndRestart(t *testing.T) {
	for _, b := range worldBackends {
		t.Run(b.name, func(t *testing.T) { processChaos(t, b.new(t, nil)) })
	}
}

func processChaos(t *testing.T, w *world) {
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("PROCESS_CHAOS_SEED"); s != "" {
		var err error
		if seed, err = strconv.ParseUint(s, 10, 64); err != nil {
			t.Fatalf("PROCESS_CHAOS_SEED: %v", err)
		}
	}
	t.Logf("seed %d (PROCESS_CHAOS_SEED=%d to replay)", seed, seed)
	rng := rand.New(rand.NewPCG(seed, seed^0xa5a5))
	accounts, kills := 200, 5
	if testing.Short() {
		accounts, kills = 50, 2
	}
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	w.dedup = 1 << 20
	w.start()
	bonus := mustRegisterProcess(t, w.runner, bonusProcess(w))
	for i := range accounts {
		w.open(ctx, acct(i), 0, false)
	}
	// Every account gets 4 deposits of 30: the bonus is due at the 4th.
	deposits := make([]string, 0, 4*accounts)
	for i := range accounts {
		for range 4 {
			deposits = append(deposits, acct(i))
		}
	}
	rng.Shuffle(len(deposits), func(i, j int) { deposits[i], deposits[j] = deposits[j], deposits[i] })
	killAt := make(map[int]bool)
	for range kills {
		killAt[rng.IntN(len(deposits))] = true
	}
	for i, id := range deposits {
		if killAt[i] {
			w.stop()
			w.start()
			bonus = mustRegisterProcess(t, w.runner, bonusProcess(w))
		}
		w.deposit(ctx, id, 30)
	}
	for i := range accounts {
		st, err := bonus.Wait(ctx, acct(i), func(st saga.ProcessStatus[Bonus]) bool { return st.Done })
		if err != nil {
			t.Fatalf("%s: %v (status %+v)", acct(i), err, st)
		}
		if st.State.Total != 120 || !st.State.Paid {
			t.Errorf("%s: state %+v", acct(i), st.State)
		}
		// Opened, 4 deposits, one bonus.
		if b, v := w.balance(ctx, acct(i)); b != 130 || v != 6 {
			t.Errorf("%s: balance %d at version %d, want 130 at version 6", acct(i), b, v)
		}
	}
}

// TestProcess_TransientErrorForever_GivesUpAndOthersProceed: a handler
// that never succeeds for one account gives up after
// projection.DefaultMaxAttempts calls, its failure is recorded, and another
// account's process, read in the same batch, is not held back for good.
func TestProcess_TransientErrorForever_GivesUpAndOthersProceed(t *testing.T) {
	ctx := testContext(t)
	w := newWorld(t, nil)
	w.start()
	var calls atomic.Int32
	p := saga.NewProcess[Bonus]("stuck")
	saga.On(p, saga.BySubject[Deposited], func(_ context.Context, pc *saga.ProcessContext[Bonus], e Deposited) error {
		if pc.ID == "broken" {
			calls.Add(1)
			return fmt.Errorf("downstream unavailable: %w", orchestrix.ErrOutcomeUnknown)
		}
		pc.State.Total += e.Amount
		return nil
	})
	m := mustRegisterProcess(t, w.runner, p)
	w.open(ctx, "broken", 0, false)
	w.open(ctx, "fine", 0, false)
	w.deposit(ctx, "broken", 1)
	w.deposit(ctx, "fine", 2)
	if err := m.CaughtUp(ctx); err != nil {
		t.Fatal(err)
	}
	st, err := m.Status(ctx, "broken")
	if err != nil {
		t.Fatal(err)
	}
	if st.Failures != 1 || st.LastFailure == nil || !strings.Contains(st.LastFailure.Reason, "gave up after 10 attempts") {
		t.Errorf("broken: %+v (last failure %+v)", st, st.LastFailure)
	}
	if n := calls.Load(); n != projection.DefaultMaxAttempts {
		t.Errorf("handler called %d times, want %d", n, projection.DefaultMaxAttempts)
	}
	if st, err := m.Status(ctx, "fine"); err != nil || st.State.Total != 2 {
		t.Errorf("fine: %+v, %v", st, err)
	}
}

// TestProcess_InvalidCorrelationID_StopsVisibly: a correlate function
// that returns an invalid id stops the manager's projection with the
// event's position and the reason, instead of skipping the event.
func TestProcess_InvalidCorrelationID_StopsVisibly(t *testing.T) {
	ctx := testContext(t)
	w := newWorld(t, nil)
	w.start()
	p := saga.NewProcess[Bonus]("badid")
	saga.On(p, func(ev projection.Event, e Deposited) (string, bool) {
		if e.Amount == 1 {
			return "", true // a bug in the correlate function
		}
		return ev.Envelope.Subject, true
	}, func(_ context.Context, pc *saga.ProcessContext[Bonus], e Deposited) error {
		pc.State.Total += e.Amount
		return nil
	})
	m := mustRegisterProcess(t, w.runner, p)
	w.open(ctx, "a", 0, false)
	w.deposit(ctx, "a", 1)
	w.deposit(ctx, "a", 5)
	err := m.CaughtUp(ctx)
	if err == nil || !strings.Contains(err.Error(), "invalid") {
		t.Fatalf("CaughtUp: %v, want the projection's failure", err)
	}
	sts, err := m.Projections(ctx)
	if err != nil {
		t.Fatal(err)
	}
	st := sts[0]
	if st.State != projection.StateFailed || !errors.Is(st.LastError, saga.ErrInvalidID) || st.FailedPosition == 0 {
		t.Fatalf("events projection: %+v", st)
	}
	// The operator passes over the poisoned event; the next one is handled.
	if err := m.Skip(ctx, st.FailedPosition); err != nil {
		t.Fatal(err)
	}
	if err := m.CaughtUp(ctx); err != nil {
		t.Fatal(err)
	}
	if got, err := m.Status(ctx, "a"); err != nil || got.State.Total != 5 {
		t.Errorf("after Skip: %+v, %v", got, err)
	}
}

// TestProcess_JournalReadsFail_RetriedUntilTheyWork: the runner's
// projections retry a failing journal without a limit by default, so a
// journal outage delays processes instead of stopping them.
func TestProcess_JournalReadsFail_RetriedUntilTheyWork(t *testing.T) {
	ctx := testContext(t)
	w := newWorld(t, nil)
	w.cfg = func(c *saga.Config) {
		c.Retry = projection.Retry{InitialBackoff: time.Millisecond, MaxBackoff: time.Millisecond}
	}
	w.start()
	bonus := mustRegisterProcess(t, w.runner, bonusProcess(w))
	w.open(ctx, "a", 0, false)
	if err := bonus.CaughtUp(ctx); err != nil {
		t.Fatal(err)
	}
	// More failures than projection.DefaultMaxAttempts, for every read.
	for range 4 * projection.DefaultMaxAttempts {
		w.journal.FailNextRead(nil)
	}
	w.deposit(ctx, "a", 150)
	if err := bonus.CaughtUp(ctx); err != nil {
		t.Fatal(err)
	}
	w.journal.ClearFaults() // for the test's own reads
	st, err := bonus.Wait(ctx, "a", func(st saga.ProcessStatus[Bonus]) bool { return st.Done })
	if err != nil {
		t.Fatalf("%v (status %+v)", err, st)
	}
	if b, _ := w.balance(ctx, "a"); b != 160 {
		t.Errorf("a = %d, want 160", b)
	}
}

// TestProcess_TwoRunnersOverlap_EffectsOnce: two runners execute the same
// process manager on one journal at the same time (a rolling deploy, or a
// runner started twice). Both handle every event; the process stream's
// expected versions let one record each input and the other skip it, and
// the shared command ids keep the bonus single.
func TestProcess_TwoRunnersOverlap_EffectsOnce(t *testing.T) {
	ctx := testContext(t)
	w := newWorld(t, nil)
	w.dedup = 1 << 10
	w.start()
	first := mustRegisterProcess(t, w.runner, bonusProcess(w))
	second, err := saga.NewRunner(saga.Config{
		Journal: w.store, Registry: w.sys.Registry(), Checkpoints: projection.NewMemCheckpoints(),
		Retry: projection.Retry{InitialBackoff: time.Millisecond, MaxBackoff: 20 * time.Millisecond},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { second.Close() })
	other := mustRegisterProcess(t, second, bonusProcess(w))

	const accounts = 50
	for i := range accounts {
		w.open(ctx, acct(i), 0, false)
	}
	for range 2 {
		for i := range accounts {
			w.deposit(ctx, acct(i), 60)
		}
	}
	for _, m := range []*saga.ProcessManager[Bonus]{first, other} {
		if err := m.CaughtUp(ctx); err != nil {
			t.Fatal(err)
		}
	}
	for i := range accounts {
		st, err := first.Wait(ctx, acct(i), func(st saga.ProcessStatus[Bonus]) bool { return st.Done })
		if err != nil {
			t.Fatal(err)
		}
		// Opened and two deposits: three inputs, each recorded once.
		if st.Version != 3 || st.State != (Bonus{Total: 120, Paid: true}) {
			t.Errorf("%s: %+v", acct(i), st)
		}
		if b, v := w.balance(ctx, acct(i)); b != 130 || v != 4 {
			t.Errorf("%s: balance %d at version %d, want 130 at version 4 (one bonus)", acct(i), b, v)
		}
	}
}
