package projectiontest_test

import (
	"context"
	"errors"
	"maps"
	"sync"
	"testing"
	"time"

	"github.com/orchestrix/orchestrix"
	"github.com/orchestrix/orchestrix/internal/kittest"
	"github.com/orchestrix/orchestrix/projection"
	"github.com/orchestrix/orchestrix/projection/projectiontest"
)

type (
	Deposited struct {
		Amount int `json:"amount"`
	}
	Withdrawn struct {
		Amount int `json:"amount"`
	}
)

func registry(t testing.TB) *orchestrix.Registry {
	t.Helper()
	reg := orchestrix.NewRegistry()
	if err := orchestrix.Register[Deposited](reg, "test.Deposited"); err != nil {
		t.Fatal(err)
	}
	if err := orchestrix.Register[Withdrawn](reg, "test.Withdrawn"); err != nil {
		t.Fatal(err)
	}
	return reg
}

// balances is a read model: the balance of each account, and how many
// times each position was applied (to see redeliveries).
type balances struct {
	mu      sync.Mutex
	balance map[string]int
	applied map[uint64]int
}

func newBalances() *balances {
	return &balances{balance: map[string]int{}, applied: map[uint64]int{}}
}

func (b *balances) Handle(_ context.Context, batch []projection.Event) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, ev := range batch {
		if b.applied[ev.Position] > 0 {
			continue // idempotent on redelivery
		}
		b.applied[ev.Position]++
		switch e := ev.Data.(type) {
		case Deposited:
			b.balance[ev.Envelope.Subject] += e.Amount
		case Withdrawn:
			b.balance[ev.Envelope.Subject] -= e.Amount
		}
	}
	return nil
}

func (b *balances) snapshot() map[string]int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return maps.Clone(b.balance)
}

var errBoom = errors.New("boom")

func TestKit_Run_BuildsReadModelToHead(t *testing.T) {
	k := projectiontest.New(t, registry(t))
	k.Append("account-alice", Deposited{Amount: 100}, Withdrawn{Amount: 30})
	k.Append("account-bob", Deposited{Amount: 20})
	k.Append("order-1", Deposited{Amount: 999}) // filtered out
	last := k.Append("account-alice", Deposited{Amount: 5})

	b := newBalances()
	st := k.Run(projection.Projection{Name: "balances", Handler: b, Filter: projection.Filter{Kinds: []string{"account"}}, BatchSize: 2})
	if st.Position != last || st.State != projection.StateRunning {
		t.Fatalf("status %+v, want running at %d", st, last)
	}
	want := map[string]int{"account-alice": 75, "account-bob": 20}
	if got := b.snapshot(); !maps.Equal(got, want) {
		t.Fatalf("read model %v, want %v", got, want)
	}

	// Live: a later append is handled too.
	k.Append("account-bob", Withdrawn{Amount: 20})
	k.ExpectCaughtUp("balances")
	if got := b.snapshot()["account-bob"]; got != 0 {
		t.Fatalf("bob %d after a live withdrawal, want 0", got)
	}
}

func TestKit_Run_StopsAtUntilPosition(t *testing.T) {
	k := projectiontest.New(t, registry(t))
	k.Append("account-a", Deposited{Amount: 1})
	asOf := k.Append("account-a", Deposited{Amount: 2})
	k.Append("account-a", Deposited{Amount: 4})
	b := newBalances()
	st := k.Run(projection.Projection{Name: "asof", Handler: b, UntilPosition: asOf})
	if st.State != projection.StateCompleted || st.Position != asOf {
		t.Fatalf("status %+v, want completed at %d", st, asOf)
	}
	if got := b.snapshot()["account-a"]; got != 3 {
		t.Fatalf("balance %d as of %d, want 3", got, asOf)
	}
}

func TestKit_ExpectCaughtUp_FailsOnFailedProjection(t *testing.T) {
	kittest.ExpectFatal(t, "failed at position 2", func(ft testing.TB) {
		k := projectiontest.New(ft, registry(t))
		k.Append("account-a", Deposited{Amount: 1})
		k.Append("account-a", Deposited{Amount: 2})
		k.Run(projection.Projection{Name: "p", Retry: projection.Retry{MaxAttempts: 1},
			Handler: projectiontest.FailTimes(newBalances(), 2, 100, errBoom)})
	})
}

func TestKit_ExpectCaughtUp_FailsAtOnceOnRetry(t *testing.T) {
	kittest.ExpectFatal(t, "retrying position 1 after 1 failed attempt(s)", func(ft testing.TB) {
		k := projectiontest.New(ft, registry(t))
		bad := k.Append("account-a", Deposited{Amount: 1})
		k.Run(projection.Projection{Name: "p", Handler: projectiontest.FailTimes(newBalances(), bad, 1, errBoom)})
	})
}

func TestKit_ExpectFailsAt_DrivesBackoffOnManualClock(t *testing.T) {
	k := projectiontest.New(t, registry(t))
	k.Append("account-a", Deposited{Amount: 1})
	bad := k.Append("account-a", Deposited{Amount: 2})
	k.Append("account-a", Deposited{Amount: 4})
	b := newBalances()
	retry := projection.Retry{MaxAttempts: 3, InitialBackoff: time.Second, MaxBackoff: time.Minute}
	k.Add(projection.Projection{Name: "p", Retry: retry, Handler: projectiontest.FailTimes(b, bad, 100, errBoom)})

	start := k.Clock.Now()
	ee := k.ExpectFailsAt("p", bad, 3)
	if ee.Position != bad || ee.Attempts != 3 || !errors.Is(ee, errBoom) {
		t.Fatalf("error %+v, want position %d after 3 attempts wrapping errBoom", ee, bad)
	}
	// Two waits, of 1 s and 2 s, on the manual clock, and nothing more.
	if got := k.Clock.Now().Sub(start); got != 3*time.Second {
		t.Fatalf("manual clock advanced %v, want 3s", got)
	}
	st := k.Status("p")
	if st.State != projection.StateFailed || st.FailedPosition != bad || st.Position != bad-1 {
		t.Fatalf("status %+v, want failed at %d with checkpoint %d", st, bad, bad-1)
	}
	if got := b.snapshot()["account-a"]; got != 1 {
		t.Fatalf("balance %d, want only the event before the failing one", got)
	}

	// Skip moves past the poisoned event; the rest is handled.
	k.Skip("p", bad)
	st = k.ExpectCaughtUp("p")
	if st.State != projection.StateRunning || st.LastError != nil {
		t.Fatalf("status after Skip %+v", st)
	}
	if got := b.snapshot()["account-a"]; got != 1+4 {
		t.Fatalf("balance %d after Skip, want 5 (the skipped 2 left out)", got)
	}
}

func TestKit_ExpectFailsAt_FailsWhenProjectionRecovers(t *testing.T) {
	kittest.ExpectFatal(t, "handled the event", func(ft testing.TB) {
		k := projectiontest.New(ft, registry(t), projectiontest.WithRetry(projection.Retry{MaxAttempts: 5}))
		bad := k.Append("account-a", Deposited{Amount: 1})
		k.Add(projection.Projection{Name: "p", Handler: projectiontest.FailTimes(newBalances(), bad, 2, errBoom)})
		k.ExpectFailsAt("p", bad, 5)
	})
}

func TestKit_ExpectFailsAt_FailsOnWrongAttempts(t *testing.T) {
	kittest.ExpectFatal(t, "failed at position 1 after 2 attempt(s)", func(ft testing.TB) {
		k := projectiontest.New(ft, registry(t), projectiontest.WithRetry(projection.Retry{MaxAttempts: 2}))
		bad := k.Append("account-a", Deposited{Amount: 1})
		k.Add(projection.Projection{Name: "p", Handler: projectiontest.FailTimes(newBalances(), bad, 100, errBoom)})
		k.ExpectFailsAt("p", bad, 3)
	})
}

func TestKit_ExpectRetry_RecoversAfterTransientFailures(t *testing.T) {
	k := projectiontest.New(t, registry(t))
	k.Append("account-a", Deposited{Amount: 1})
	bad := k.Append("account-a", Deposited{Amount: 2}, Deposited{Amount: 4})
	bad-- // the first event of that commit
	b := newBalances()
	start := k.Clock.Now()
	k.Add(projection.Projection{Name: "p", Handler: projectiontest.FailTimes(b, bad, 3, errBoom)})
	// The batch 1..3 fails (call 1), then event 2 alone fails twice.
	st := k.ExpectRetry("p", bad, 1)
	if !errors.Is(st.LastError, errBoom) {
		t.Fatalf("retrying status %+v, want errBoom", st)
	}
	k.ExpectRetry("p", bad, 2)
	st = k.ExpectCaughtUp("p")
	if st.LastError != nil || st.Attempts != 0 {
		t.Fatalf("status %+v after recovery", st)
	}
	if got := b.snapshot()["account-a"]; got != 7 {
		t.Fatalf("balance %d, want 7", got)
	}
	// The default backoff, on the manual clock: 100 ms, then 200 ms.
	if got := k.Clock.Now().Sub(start); got != 300*time.Millisecond {
		t.Fatalf("manual clock advanced %v, want 300ms", got)
	}
}

func TestKit_ExpectRetry_FailsWhenNotRetrying(t *testing.T) {
	kittest.ExpectFatal(t, "handled the event", func(ft testing.TB) {
		k := projectiontest.New(ft, registry(t))
		pos := k.Append("account-a", Deposited{Amount: 1})
		k.Add(projection.Projection{Name: "p", Handler: newBalances()})
		k.ExpectRetry("p", pos, 1)
	})
}

func TestFailTimes_HandsOverTheEventsBeforeTheFailingOne(t *testing.T) {
	b := newBalances()
	h := projectiontest.FailTimes(b, 3, 1, errBoom)
	batch := []projection.Event{
		{Data: Deposited{Amount: 1}}, {Data: Deposited{Amount: 2}}, {Data: Deposited{Amount: 4}},
	}
	for i := range batch {
		batch[i].Position = uint64(i + 2)
		batch[i].Envelope.Subject = "a"
	}
	if err := h.Handle(context.Background(), batch); !errors.Is(err, errBoom) {
		t.Fatalf("first call: %v, want errBoom", err)
	}
	if got := b.snapshot()["a"]; got != 1 {
		t.Fatalf("after the failed call the model holds %d, want 1 (the event before position 3)", got)
	}
	if err := h.Handle(context.Background(), batch); err != nil {
		t.Fatalf("second call: %v", err)
	}
	if got := b.snapshot()["a"]; got != 7 {
		t.Fatalf("after the second call %d, want 7", got)
	}
}

func TestNew_SharedClockStampsEvents(t *testing.T) {
	reg := registry(t)
	k := projectiontest.New(t, reg)
	k.Clock.Advance(time.Hour)
	k.Append("account-a", Deposited{Amount: 1})
	var at time.Time
	k.Run(projection.Projection{Name: "p", Handler: projection.EachEvent(func(_ context.Context, ev projection.Event) error {
		at = ev.Envelope.Time
		return nil
	})})
	if !at.Equal(k.Clock.Now()) {
		t.Fatalf("event time %v, want the clock's %v", at, k.Clock.Now())
	}
}
