package main

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/orchestrix/orchestrix"
	"github.com/orchestrix/orchestrix/actor"
	"github.com/orchestrix/orchestrix/actor/actortest"
	"github.com/orchestrix/orchestrix/aggregate/aggregatetest"
	boltjournal "github.com/orchestrix/orchestrix/journal/bolt"
	"github.com/orchestrix/orchestrix/projection"
)

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// checkSchedule checks every notification's calls against the policy and
// the manual clock: per round the attempts are 1, 2, 3, … without repeats,
// attempt n+1 happens exactly Delay(id, round, n) after attempt n, that
// delay lies within the jitter band, a round ends at its first success or
// after MaxAttempts failures, and nothing is delivered twice.
func checkSchedule(t *testing.T, ch *FlakyChannel, p Policy, ids []string) {
	t.Helper()
	deliveries := ch.Deliveries()
	for _, id := range ids {
		require.LessOrEqual(t, deliveries[id], 1, "%s delivered more than once", id)
		calls := ch.Calls(id)
		require.NotEmpty(t, calls, id)
		for i, c := range calls {
			if i > 0 && calls[i-1].Round == c.Round {
				prev := calls[i-1]
				require.Equal(t, prev.Attempt+1, c.Attempt, "%s call %d", id, i)
				require.Error(t, prev.Err, "%s: attempt after a success", id)
				wait := c.At.Sub(prev.At)
				require.Equal(t, p.Delay(id, c.Round, prev.Attempt), wait, "%s round %d attempt %d", id, c.Round, c.Attempt)
				base := p.Base(prev.Attempt)
				require.LessOrEqual(t, wait, base)
				require.Greater(t, wait, time.Duration(float64(base)*(1-p.Jitter)))
			} else {
				require.Equal(t, 1, c.Attempt, "%s: round %d starts at attempt 1", id, c.Round)
			}
			require.LessOrEqual(t, c.Attempt, p.MaxAttempts)
		}
	}
}

func TestRun_DeliversOrDeadLettersThenReplaysOnAManualClock(t *testing.T) {
	ctx := testContext(t)
	dir := t.TempDir()
	clock := actortest.NewManualClock(time.Time{})
	ch := DemoChannel(clock)
	var out bytes.Buffer
	require.NoError(t, run(ctx, &out, dir, Options{Clock: clock, Channel: ch}))
	text := out.String()
	for _, want := range []string{
		"n-3 dead-lettered round 1, attempt 4 (failed: down, down, down, down)",
		`n-3 to dave@example.org: round 1, 4 attempts, last error "recipient dave@example.org: mailbox unavailable"`,
		`n-6 to dave@example.org: round 1, 4 attempts, last error "recipient dave@example.org: mailbox unavailable"`,
		"replayed n-3: round 2",
		"replayed n-6: round 2",
		"n-3 delivered     round 2, attempt 1",
		"dead letters left: 0",
		"channel: 8 notifications delivered, 0 more than once",
	} {
		require.Contains(t, text, want)
	}

	ids := make([]string, 0, len(DemoRequests))
	for _, r := range DemoRequests {
		ids = append(ids, r.ID)
	}
	checkSchedule(t, ch, DemoPolicy, ids)
	deliveries := ch.Deliveries()
	for _, id := range ids {
		require.Equal(t, 1, deliveries[id], id)
	}
	// The dead-lettered ones used up every attempt of round 1.
	for _, id := range []string{"n-3", "n-6"} {
		calls := ch.Calls(id)
		require.Len(t, calls, DemoPolicy.MaxAttempts+1, id)
		require.Equal(t, 2, calls[len(calls)-1].Round)
	}
	// Some notification needed retries, so the backoff was exercised.
	require.Greater(t, len(ch.Calls("n-1")), 1)

	// The journal holds exactly one outcome per attempt.
	j, err := boltjournal.Open(filepath.Join(dir, JournalFile), boltjournal.Config{})
	require.NoError(t, err)
	defer j.Close()
	reg := orchestrix.NewRegistry()
	require.NoError(t, Notifications.RegisterEvents(reg))
	for _, id := range ids {
		seen := map[string]bool{}
		delivered := 0
		for rec, err := range j.Read(ctx, "notification-"+id, 1, math.MaxUint64, math.MaxInt) {
			require.NoError(t, err)
			ev, err := reg.Unmarshal(rec.Envelope)
			require.NoError(t, err)
			var key string
			switch e := ev.(type) {
			case AttemptFailed:
				key = fmt.Sprint(e.Round, "/", e.Attempt)
			case Delivered:
				key = fmt.Sprint(e.Round, "/", e.Attempt)
				delivered++
			}
			if key != "" {
				require.False(t, seen[key], "%s: outcome of %s recorded twice", id, key)
				seen[key] = true
			}
		}
		require.Equal(t, 1, delivered, id)
		require.Len(t, seen, len(ch.Calls(id)), "%s: one outcome per call", id)
	}
}

// testPolicy retries five times, 1 s doubling up to 8 s, 30% jitter.
var testPolicy = Policy{MaxAttempts: 5, InitialBackoff: time.Second, MaxBackoff: 8 * time.Second, Multiplier: 2, Jitter: 0.3, Seed: 3}

func openTest(t *testing.T, dir string, clock *actortest.ManualClock, ch *FlakyChannel) *Service {
	t.Helper()
	svc, err := Open(dir, Config{Channel: ch, Policy: testPolicy, Clock: clock})
	require.NoError(t, err)
	return svc
}

func requestAll(t *testing.T, svc *Service, n int, recipient func(i int) string) []string {
	t.Helper()
	var ids []string
	for i := 1; i <= n; i++ {
		id := fmt.Sprintf("m-%02d", i)
		require.NoError(t, svc.Request(testContext(t), id, recipient(i), "hello"))
		ids = append(ids, id)
	}
	return ids
}

func TestService_Settle_EveryNotificationEndsDeliveredOrDeadLettered(t *testing.T) {
	ctx := testContext(t)
	clock := actortest.NewManualClock(time.Time{})
	ch := NewFlakyChannel(5, 0.6, clock)
	svc := openTest(t, t.TempDir(), clock, ch)
	defer func() { require.NoError(t, svc.Close(ctx)) }()
	ids := requestAll(t, svc, 20, func(int) string { return "someone@example.org" })
	require.NoError(t, svc.Settle(ctx))

	dead, err := svc.DeadLetters()
	require.NoError(t, err)
	deadByID := map[string]DeadLetter{}
	for _, d := range dead {
		deadByID[d.ID] = d
	}
	deliveries := ch.Deliveries()
	for _, id := range ids {
		n, err := svc.Notification(ctx, id)
		require.NoError(t, err)
		calls := ch.Calls(id)
		switch n.Status {
		case StatusDelivered:
			require.Equal(t, 1, deliveries[id])
			require.Equal(t, len(calls), n.Attempts)
			require.NotContains(t, deadByID, id)
		case StatusDeadLettered:
			require.Zero(t, deliveries[id])
			require.Len(t, calls, testPolicy.MaxAttempts)
			d := deadByID[id]
			require.Equal(t, testPolicy.MaxAttempts, d.Attempts)
			require.Equal(t, ErrUnavailable.Error(), d.LastError)
			require.Equal(t, calls[len(calls)-1].At, d.At)
		default:
			t.Fatalf("%s ended %q", id, n.Status)
		}
	}
	// With a 60% failure rate over 20 notifications both outcomes occur
	// (seed 5), so both branches above were checked.
	require.NotEmpty(t, dead)
	require.Less(t, len(dead), len(ids))
	checkSchedule(t, ch, testPolicy, ids)
	sched, err := svc.Schedule()
	require.NoError(t, err)
	require.Empty(t, sched)
}

func TestService_Open_AfterAStopMidWayResumesWithoutSendingTwice(t *testing.T) {
	ctx := testContext(t)
	dir := t.TempDir()
	clock := actortest.NewManualClock(time.Time{})
	ch := NewFlakyChannel(9, 0.5, clock)
	svc := openTest(t, dir, clock, ch)
	ids := requestAll(t, svc, 10, func(int) string { return "someone@example.org" })

	// The first attempts are made; the failed ones wait for a retry when
	// the service stops.
	waitCaughtUp(t, svc) // every first attempt is armed
	clock.Advance(0)
	waitCaughtUp(t, svc)
	pending, err := svc.Schedule()
	require.NoError(t, err)
	require.NotEmpty(t, pending, "some first attempts failed (seed 9)")
	require.Less(t, len(pending), len(ids), "some first attempts succeeded (seed 9)")
	for _, p := range pending {
		require.Equal(t, 2, p.Attempt)
		require.Equal(t, actortest.Epoch.Add(testPolicy.Delay(p.ID, 1, 1)), p.Due)
	}
	require.NoError(t, svc.Close(ctx))

	// A new service on the same files: the delivered ones are not sent
	// again, the pending ones resume from the durable schedule.
	svc = openTest(t, dir, clock, ch)
	defer func() { require.NoError(t, svc.Close(ctx)) }()
	resumed, err := svc.Schedule()
	require.NoError(t, err)
	require.Equal(t, pending, resumed)
	require.NoError(t, svc.Settle(ctx))

	for _, id := range ids {
		n, err := svc.Notification(ctx, id)
		require.NoError(t, err)
		require.Contains(t, []Status{StatusDelivered, StatusDeadLettered}, n.Status, id)
		require.Equal(t, len(ch.Calls(id)), n.Attempts, "%s: one call per recorded attempt", id)
	}
	checkSchedule(t, ch, testPolicy, ids)
}

func TestService_Rebuild_ReplayingTheWholeLogSendsNothingAgain(t *testing.T) {
	ctx := testContext(t)
	clock := actortest.NewManualClock(time.Time{})
	ch := NewFlakyChannel(5, 0.6, clock)
	svc := openTest(t, t.TempDir(), clock, ch)
	defer func() { require.NoError(t, svc.Close(ctx)) }()
	ids := requestAll(t, svc, 8, func(int) string { return "someone@example.org" })
	require.NoError(t, svc.Settle(ctx))
	before := map[string]int{}
	for _, id := range ids {
		before[id] = len(ch.Calls(id))
	}
	deadBefore, err := svc.DeadLetters()
	require.NoError(t, err)

	// Both projections see every event again (at-least-once redelivery
	// taken to the extreme); the read models come out the same and the
	// channel is not called.
	require.NoError(t, svc.manager.Rebuild(ctx, DispatcherProjection))
	require.NoError(t, svc.manager.Rebuild(ctx, DeadLettersProjection))
	require.NoError(t, svc.Settle(ctx))
	clock.Advance(time.Hour)
	for _, id := range ids {
		require.Equal(t, before[id], len(ch.Calls(id)), id)
	}
	deadAfter, err := svc.DeadLetters()
	require.NoError(t, err)
	require.Equal(t, deadBefore, deadAfter)
}

func TestService_Replay_DeliversADeadLetterOnceTheChannelWorks(t *testing.T) {
	ctx := testContext(t)
	clock := actortest.NewManualClock(time.Time{})
	ch := NewFlakyChannel(1, 0, clock)
	ch.SetDown("down@example.org", "no route")
	svc := openTest(t, t.TempDir(), clock, ch)
	defer func() { require.NoError(t, svc.Close(ctx)) }()
	require.NoError(t, svc.Request(ctx, "a", "down@example.org", "hi"))
	require.NoError(t, svc.Request(ctx, "b", "up@example.org", "hi"))
	require.NoError(t, svc.Settle(ctx))

	dead, err := svc.DeadLetters()
	require.NoError(t, err)
	require.Len(t, dead, 1)
	require.Equal(t, "a", dead[0].ID)
	require.Equal(t, "down@example.org", dead[0].Recipient)
	require.Equal(t, testPolicy.MaxAttempts, dead[0].Attempts)
	require.Equal(t, "recipient down@example.org: no route", dead[0].LastError)

	// Only a dead letter can be replayed.
	_, err = svc.Replay(ctx, "b", "why not")
	require.ErrorIs(t, err, ErrNotDeadLettered)
	_, err = svc.Replay(ctx, "nobody", "why not")
	require.ErrorIs(t, err, ErrUnknown)

	// Still down: the replayed round is dead-lettered again.
	round, err := svc.Replay(ctx, "a", "try again")
	require.NoError(t, err)
	require.Equal(t, 2, round)
	require.NoError(t, svc.Settle(ctx))
	dead, err = svc.DeadLetters()
	require.NoError(t, err)
	require.Len(t, dead, 1)
	require.Equal(t, 2, dead[0].Round)

	ch.Repair("down@example.org")
	round, err = svc.Replay(ctx, "a", "repaired")
	require.NoError(t, err)
	require.Equal(t, 3, round)
	require.NoError(t, svc.Settle(ctx))
	dead, err = svc.DeadLetters()
	require.NoError(t, err)
	require.Empty(t, dead)
	n, err := svc.Notification(ctx, "a")
	require.NoError(t, err)
	require.Equal(t, Notification{Recipient: "down@example.org", Body: "hi", Status: StatusDelivered, Round: 3, Attempts: 1}, n)
	require.Equal(t, map[string]int{"a": 1, "b": 1}, ch.Deliveries())
	require.Len(t, ch.Calls("a"), 2*testPolicy.MaxAttempts+1)
	checkSchedule(t, ch, testPolicy, []string{"a", "b"})
}

// The outcome of an attempt is recorded with the attempt's command id
// (OutcomeCommandID): a dispatcher that records it again (a redelivery,
// a retry after an unknown outcome) gets the first result back, and
// nothing more is persisted.
func TestNotifications_RecordFailure_RepeatedWithItsCommandIDIsPersistedOnce(t *testing.T) {
	h := actortest.NewHarness(t, Notifications)
	p := h.EventProbe()
	require.NoError(t, h.Run("x", Request{Recipient: "someone@example.org", Body: "hi"}).Err)
	fail := RecordFailure{Round: 1, Attempt: 1, Error: "boom", NextAttemptAt: actortest.Epoch.Add(time.Second)}
	id := actor.WithCommandID(OutcomeCommandID("x", 1, 1))

	first := h.Run("x", fail, id)
	again := h.Run("x", fail, id)
	require.NoError(t, first.Err)
	require.NoError(t, again.Err)
	require.True(t, again.Result.Duplicate)
	require.Equal(t, first.Version, again.Version)
	actortest.ExpectPersisted[Requested](p, "x")
	failed, _ := actortest.ExpectPersisted[AttemptFailed](p, "x")
	require.Equal(t, "boom", failed.Error)
	p.ExpectNothingPersisted(0)

	// Without the command id the aggregate still refuses a second outcome
	// for the same attempt.
	require.ErrorIs(t, h.Run("x", fail).Err, ErrStaleOutcome)
	p.ExpectNothingPersisted(0)
	h.ExpectRecovers("x")
}

// The dispatcher does not make an attempt whose outcome is already
// recorded: it records attempt 2 as the one pending.
func TestService_Send_AnOutcomeRecordedFirstIsNotAttemptedAgain(t *testing.T) {
	ctx := testContext(t)
	clock := actortest.NewManualClock(time.Time{})
	ch := NewFlakyChannel(1, 0, clock)
	svc := openTest(t, t.TempDir(), clock, ch)
	defer func() { require.NoError(t, svc.Close(ctx)) }()
	require.NoError(t, svc.Request(ctx, "x", "someone@example.org", "hi"))
	require.NoError(t, svc.Request(ctx, "x", "someone@example.org", "hi"), "a retried request is a duplicate")

	fail := RecordFailure{Round: 1, Attempt: 1, Error: "boom", NextAttemptAt: clock.Now().Add(time.Second)}
	_, err := svc.notifications.Send(ctx, "x", fail, actor.WithCommandID(OutcomeCommandID("x", 1, 1)))
	require.NoError(t, err)

	require.NoError(t, svc.Settle(ctx))
	n, err := svc.Notification(ctx, "x")
	require.NoError(t, err)
	require.Equal(t, StatusDelivered, n.Status)
	require.Equal(t, 2, n.Attempts)
	require.Len(t, ch.Calls("x"), 1, "attempt 1 was recorded before the dispatcher made it")
}

func TestNotifications_Decide_Rules(t *testing.T) {
	at := actortest.Epoch
	aggregatetest.New(t, Notifications).
		When(Request{Recipient: " ", Body: "x"}).
		ThenError(ErrInvalidRequest)
	aggregatetest.New(t, Notifications).
		Given(Requested{Recipient: "r", Body: "b"}).
		When(Request{Recipient: "r", Body: "b"}).
		ThenError(ErrAlreadyRequested)
	aggregatetest.New(t, Notifications).
		When(RecordDelivery{Round: 1, Attempt: 1}).
		ThenError(ErrUnknown)
	aggregatetest.New(t, Notifications).
		Given(Requested{Recipient: "r", Body: "b"}, AttemptFailed{Round: 1, Attempt: 1, Error: "e", NextAttemptAt: at}).
		When(RecordDelivery{Round: 1, Attempt: 1}).
		ThenError(ErrStaleOutcome)
	aggregatetest.New(t, Notifications).
		Given(Requested{Recipient: "r", Body: "b"}, AttemptFailed{Round: 1, Attempt: 1, Error: "e", NextAttemptAt: at}).
		When(RecordFailure{Round: 1, Attempt: 2, Error: "e2", GiveUp: true}).
		Then(AttemptFailed{Round: 1, Attempt: 2, Error: "e2"}, DeadLettered{Recipient: "r", Round: 1, Attempts: 2, LastError: "e2"}).
		ThenState(Notification{Recipient: "r", Body: "b", Status: StatusDeadLettered, Round: 1, Attempts: 2, LastError: "e2"})
	aggregatetest.New(t, Notifications).
		Given(Requested{Recipient: "r", Body: "b"}).
		When(Replay{}).
		ThenError(ErrNotDeadLettered)
	aggregatetest.New(t, Notifications).
		Given(Requested{Recipient: "r", Body: "b"}, AttemptFailed{Round: 1, Attempt: 1, Error: "e"}, DeadLettered{Recipient: "r", Round: 1, Attempts: 1, LastError: "e"}).
		When(Replay{Reason: "fixed"}).
		Then(Replayed{Round: 2, Reason: "fixed"}).
		ThenState(Notification{Recipient: "r", Body: "b", Status: StatusPending, Round: 2})
	aggregatetest.New(t, Notifications).
		Given(Requested{Recipient: "r", Body: "b"}, Replayed{Round: 2}).
		When(RecordDelivery{Round: 1, Attempt: 1}).
		ThenError(ErrStaleOutcome)
}

func TestPolicy_Delay_IsExponentialWithBoundedReproducibleJitter(t *testing.T) {
	p := Policy{MaxAttempts: 6, InitialBackoff: 100 * time.Millisecond, MaxBackoff: time.Second, Multiplier: 2, Jitter: 0.5, Seed: 42}
	require.NoError(t, p.Validate())
	bases := []time.Duration{100, 200, 400, 800, 1000, 1000}
	spread := map[time.Duration]bool{}
	for n, base := range bases {
		require.Equal(t, base*time.Millisecond, p.Base(n+1))
		for _, id := range []string{"a", "b", "c", "d"} {
			d := p.Delay(id, 1, n+1)
			require.Equal(t, d, p.Delay(id, 1, n+1), "reproducible")
			require.LessOrEqual(t, d, base*time.Millisecond)
			require.Greater(t, d, base*time.Millisecond/2)
			spread[d] = true
		}
	}
	require.Greater(t, len(spread), len(bases), "jitter spreads notifications apart")

	noJitter := p
	noJitter.Jitter = 0
	require.Equal(t, 400*time.Millisecond, noJitter.Delay("a", 1, 3))
}

func TestPolicy_Validate_RejectsUnusablePolicies(t *testing.T) {
	good := testPolicy
	require.NoError(t, good.Validate())
	for name, mutate := range map[string]func(*Policy){
		"no attempts":       func(p *Policy) { p.MaxAttempts = 0 },
		"no backoff":        func(p *Policy) { p.InitialBackoff = 0 },
		"max below initial": func(p *Policy) { p.MaxBackoff = p.InitialBackoff / 2 },
		"shrinking":         func(p *Policy) { p.Multiplier = 0.5 },
		"jitter of 1":       func(p *Policy) { p.Jitter = 1 },
		"negative jitter":   func(p *Policy) { p.Jitter = -0.1 },
		"NaN multiplier":    func(p *Policy) { p.Multiplier = math.NaN() },
	} {
		p := good
		mutate(&p)
		require.Error(t, p.Validate(), name)
		_, err := Open(t.TempDir(), Config{Channel: NewFlakyChannel(1, 0, nil), Policy: p})
		require.Error(t, err, name)
	}
	_, err := Open(t.TempDir(), Config{Policy: good})
	require.ErrorContains(t, err, "Channel is nil")
}

// waitCaughtUp waits until both projections have handled every commit.
func waitCaughtUp(t *testing.T, svc *Service) {
	t.Helper()
	ctx := testContext(t)
	head, err := svc.journal.LastPosition(ctx)
	require.NoError(t, err)
	for _, name := range []string{DispatcherProjection, DeadLettersProjection} {
		_, err := svc.manager.Wait(ctx, name, func(st projection.Status) bool { return st.Position >= head })
		require.NoError(t, err)
	}
}

func TestDispatcher_Attempt_SkipsAnAttemptRecordedElsewhere(t *testing.T) {
	ctx := testContext(t)
	clock := actortest.NewManualClock(time.Time{})
	ch := NewFlakyChannel(1, 0, clock)
	svc := openTest(t, t.TempDir(), clock, ch)
	defer func() { require.NoError(t, svc.Close(ctx)) }()
	require.NoError(t, svc.Request(ctx, "x", "someone@example.org", "hi"))
	waitCaughtUp(t, svc) // attempt 1 is armed

	// The dispatcher falls behind the log (its projection stops) while
	// the attempt's outcome is recorded by someone else, say a previous
	// dispatcher whose outcome commit the log has but this one has not
	// seen yet. When the stale timer fires, the attempt is not made.
	require.NoError(t, svc.manager.Stop(ctx, DispatcherProjection))
	_, err := svc.notifications.Send(ctx, "x", RecordDelivery{Round: 1, Attempt: 1}, actor.WithCommandID(OutcomeCommandID("x", 1, 1)))
	require.NoError(t, err)
	clock.Advance(time.Second)
	require.Empty(t, ch.Calls("x"))

	require.NoError(t, svc.manager.Start(ctx, DispatcherProjection))
	require.NoError(t, svc.Settle(ctx))
	clock.Advance(time.Hour)
	require.Empty(t, ch.Calls("x"))
	n, err := svc.Notification(ctx, "x")
	require.NoError(t, err)
	require.Equal(t, StatusDelivered, n.Status)
}
