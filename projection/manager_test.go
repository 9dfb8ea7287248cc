package projection_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/orchestrix/orchestrix"
	"github.com/orchestrix/orchestrix/projection"
)

var errBoom = errors.New("boom")

func TestManager_Add_CatchesUpThenFollowsLive(t *testing.T) {
	j, reg := newJournal(t), newRegistry(t)
	for i := 1; i <= 3; i++ {
		appendOne(t, j, reg, stream("account", i), Deposited{Amount: i}, epoch)
	}
	m := newManager(t, projection.Config{Journal: j, Registry: reg, Checkpoints: projection.NewMemCheckpoints()})
	recs := map[string]*recorder{}
	for name, size := range map[string]int{"batch-1": 1, "batch-2": 2, "default": 0} {
		recs[name] = &recorder{}
		if err := m.Add(context.Background(), projection.Projection{Name: name, Handler: recs[name], BatchSize: size}); err != nil {
			t.Fatal(err)
		}
	}
	for name := range recs {
		wait(t, m, name, "catch-up", func(s projection.Status) bool { return s.Live && s.Position == 3 })
	}

	// A commit wakes the live projections; no polling interval involved.
	p := appendOne(t, j, reg, stream("account", 9), Deposited{Amount: 9}, epoch)
	for name, rec := range recs {
		st := wait(t, m, name, "live event", func(s projection.Status) bool { return s.Live && s.Position == p })
		if st.Head != p || st.Lag != 0 {
			t.Errorf("%s: head %d lag %d, want %d and 0", name, st.Head, st.Lag, p)
		}
		if got, want := rec.seen(), []uint64{1, 2, 3, 4}; !slices.Equal(got, want) {
			t.Fatalf("%s: handled positions %v, want %v", name, got, want)
		}
		if d, ok := rec.payloads[3].(Deposited); !ok || d.Amount != 9 {
			t.Fatalf("%s: payload %#v, want Deposited{9}", name, rec.payloads[3])
		}
	}
}

func TestManager_Add_FiltersByKindAndType(t *testing.T) {
	j, reg := newJournal(t), newRegistry(t)
	appendOne(t, j, reg, stream("account", 1), Opened{Owner: "ada"}, epoch)
	appendOne(t, j, reg, stream("order", 1), Shipped{Carrier: "ups"}, epoch)
	appendOne(t, j, reg, stream("account", 2), Deposited{Amount: 5}, epoch)
	// Not registered, but excluded by both filters: never decoded.
	last := appendRaw(t, j, stream("audit", 1), "test.Unregistered", `{}`)

	m := newManager(t, projection.Config{Journal: j, Registry: reg, Checkpoints: projection.NewMemCheckpoints()})
	byKind, byType, both := &recorder{}, &recorder{}, &recorder{}
	ctx := context.Background()
	for _, p := range []projection.Projection{
		{Name: "kind", Handler: byKind, Filter: projection.Filter{Kinds: []string{"account"}}},
		{Name: "type", Handler: byType, Filter: projection.Filter{Types: []string{typeShipped, typeDeposited}}},
		{Name: "both", Handler: both, Filter: projection.Filter{Kinds: []string{"account"}, Types: []string{typeDeposited}}},
	} {
		if err := m.Add(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	for name, want := range map[string][]uint64{"kind": {1, 3}, "type": {2, 3}, "both": {3}} {
		// Excluded records still advance the checkpoint to the head.
		wait(t, m, name, "head", func(s projection.Status) bool { return s.Live && s.Position == last })
		rec := map[string]*recorder{"kind": byKind, "type": byType, "both": both}[name]
		if got := rec.seen(); !slices.Equal(got, want) {
			t.Errorf("%s: handled %v, want %v", name, got, want)
		}
	}
}

func TestManager_Add_UnknownEventTypeFails(t *testing.T) {
	j, reg := newJournal(t), newRegistry(t)
	appendOne(t, j, reg, stream("account", 1), Deposited{Amount: 1}, epoch)
	bad := appendRaw(t, j, stream("account", 1), "test.Unregistered", `{}`)
	appendOne(t, j, reg, stream("account", 1), Deposited{Amount: 2}, epoch)

	m := newManager(t, projection.Config{Journal: j, Registry: reg, Checkpoints: projection.NewMemCheckpoints()})
	rec := &recorder{}
	if err := m.Add(context.Background(), projection.Projection{Name: "p", Handler: rec}); err != nil {
		t.Fatal(err)
	}
	st := wait(t, m, "p", "failure", inState(projection.StateFailed))
	if !errors.Is(st.LastError, orchestrix.ErrUnknownEventType) {
		t.Fatalf("LastError %v, want ErrUnknownEventType", st.LastError)
	}
	var ee *projection.EventError
	if !errors.As(st.LastError, &ee) || ee.Position != bad || ee.Type != "test.Unregistered" {
		t.Fatalf("LastError %#v, want an EventError at %d", st.LastError, bad)
	}
	if st.FailedPosition != bad || st.Position != bad-1 {
		t.Fatalf("failed at %d with checkpoint %d, want %d and %d", st.FailedPosition, st.Position, bad, bad-1)
	}
	if got := rec.seen(); !slices.Equal(got, []uint64{1}) {
		t.Fatalf("handled %v, want [1]", got)
	}
}

func TestManager_Add_AppliesUpcasters(t *testing.T) {
	type Renamed struct {
		Owner    string `json:"owner"`
		Currency string `json:"currency"`
	}
	j := newJournal(t)
	reg := orchestrix.NewRegistry()
	if err := orchestrix.Register[Renamed](reg, "test.Renamed", orchestrix.WithSchemaVersion(2)); err != nil {
		t.Fatal(err)
	}
	if err := reg.AddUpcaster("test.Renamed", 1, orchestrix.UpcastJSON(func(m map[string]any) error {
		m["currency"] = "EUR"
		return nil
	})); err != nil {
		t.Fatal(err)
	}
	appendRaw(t, j, stream("account", 1), "test.Renamed", `{"owner":"ada"}`) // schema version 1

	m := newManager(t, projection.Config{Journal: j, Registry: reg, Checkpoints: projection.NewMemCheckpoints()})
	rec := &recorder{}
	if err := m.Add(context.Background(), projection.Projection{Name: "p", Handler: rec}); err != nil {
		t.Fatal(err)
	}
	wait(t, m, "p", "event", atPosition(1))
	if got, want := rec.payloads[0], (Renamed{Owner: "ada", Currency: "EUR"}); got != want {
		t.Fatalf("payload %#v, want %#v", got, want)
	}
}

// failingAt is a per-event handler that fails at one position until
// healed, counting calls per position.
type failingAt struct {
	mu     sync.Mutex
	at     uint64
	failed bool
	calls  map[uint64]int
	rec    recorder
}

func newFailingAt(at uint64) *failingAt {
	return &failingAt{at: at, failed: true, calls: map[uint64]int{}}
}

func (f *failingAt) Handle(ctx context.Context, batch []projection.Event) error {
	f.mu.Lock()
	for _, ev := range batch {
		f.calls[ev.Position]++
		if ev.Position == f.at && f.failed {
			f.mu.Unlock()
			return fmt.Errorf("position %d: %w", ev.Position, errBoom)
		}
	}
	f.mu.Unlock()
	return f.rec.Handle(ctx, batch)
}

func (f *failingAt) heal() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failed = false
}

func (f *failingAt) callsAt(p uint64) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[p]
}

func TestManager_Add_RetriesWithBackoffThenFails(t *testing.T) {
	j, reg := newJournal(t), newRegistry(t)
	for i := 1; i <= 5; i++ {
		appendOne(t, j, reg, stream("account", i), Deposited{Amount: i}, epoch)
	}
	clock := newManualClock()
	var logs syncBuffer
	m := newManager(t, projection.Config{
		Journal: j, Registry: reg, Checkpoints: projection.NewMemCheckpoints(),
		Clock: clock, Logger: newLogger(&logs),
		Retry: projection.Retry{MaxAttempts: 3, InitialBackoff: time.Second},
	})
	h := newFailingAt(3)
	if err := m.Add(context.Background(), projection.Projection{Name: "p", Handler: h}); err != nil {
		t.Fatal(err)
	}
	// The batch 1..5 fails once; then events go one by one, and event 3
	// is retried after 1 s and 2 s of (manual) time.
	st := wait(t, m, "p", "first retry", func(s projection.Status) bool { return s.State == projection.StateRetrying && s.Attempts == 1 })
	if st.FailedPosition != 3 || st.Position != 0 || !errors.Is(st.LastError, errBoom) {
		t.Fatalf("retrying status %+v", st)
	}
	clock.Advance(time.Second)
	wait(t, m, "p", "second retry", func(s projection.Status) bool { return s.State == projection.StateRetrying && s.Attempts == 2 })
	clock.Advance(time.Second) // not yet: the second wait is 2 s
	clock.Advance(time.Second)
	st = wait(t, m, "p", "failure", inState(projection.StateFailed))

	var ee *projection.EventError
	if !errors.As(st.LastError, &ee) || !errors.Is(st.LastError, errBoom) {
		t.Fatalf("LastError %v, want an EventError wrapping errBoom", st.LastError)
	}
	if st.FailedPosition != 3 || st.Attempts != 3 || ee.Attempts != 3 || ee.Position != 3 {
		t.Fatalf("status %+v, error %+v: want failed at 3 after 3 attempts", st, ee)
	}
	if st.Position != 2 {
		t.Fatalf("checkpoint %d, want 2 (the handled prefix)", st.Position)
	}
	if got := h.callsAt(3); got != 1+3 { // the whole batch once, then 3 attempts alone
		t.Fatalf("event 3 handled %d times, want 4", got)
	}
	if got := h.rec.seen(); !slices.Equal(got, []uint64{1, 2}) {
		t.Fatalf("applied %v, want [1 2]", got)
	}
	if !strings.Contains(logs.String(), "projection failed") || !strings.Contains(logs.String(), "position=3") {
		t.Fatalf("no failure log line; logs:\n%s", logs.String())
	}

	// Start again once the cause is fixed: it resumes at the event.
	h.heal()
	if err := m.Start(context.Background(), "p"); err != nil {
		t.Fatal(err)
	}
	wait(t, m, "p", "recovery", func(s projection.Status) bool { return s.Live && s.Position == 5 && s.LastError == nil })
	if got := h.rec.seen(); !slices.Equal(got, []uint64{1, 2, 3, 4, 5}) {
		t.Fatalf("applied %v, want 1..5", got)
	}
}

func TestManager_Add_TransientErrorRecovers(t *testing.T) {
	j, reg := newJournal(t), newRegistry(t)
	appendOne(t, j, reg, stream("account", 1), Deposited{Amount: 1}, epoch)
	clock := newManualClock()
	m := newManager(t, projection.Config{Journal: j, Registry: reg, Checkpoints: projection.NewMemCheckpoints(), Clock: clock})
	var calls int
	var mu sync.Mutex
	h := projection.EachEvent(func(context.Context, projection.Event) error {
		mu.Lock()
		defer mu.Unlock()
		calls++
		if calls == 1 {
			panic("first call panics")
		}
		return nil
	})
	if err := m.Add(context.Background(), projection.Projection{Name: "p", Handler: h}); err != nil {
		t.Fatal(err)
	}
	st := wait(t, m, "p", "retry", inState(projection.StateRetrying))
	if st.LastError == nil || !strings.Contains(st.LastError.Error(), "panicked") {
		t.Fatalf("LastError %v, want the panic", st.LastError)
	}
	clock.Advance(projection.DefaultInitialBackoff)
	wait(t, m, "p", "recovery", func(s projection.Status) bool { return s.Live && s.Position == 1 && s.LastError == nil })
}

func TestManager_Add_PermanentErrorIsNotRetried(t *testing.T) {
	j, reg := newJournal(t), newRegistry(t)
	appendOne(t, j, reg, stream("account", 1), Deposited{Amount: 1}, epoch)
	m := newManager(t, projection.Config{Journal: j, Registry: reg, Checkpoints: projection.NewMemCheckpoints(), Clock: newManualClock()})
	router := projection.NewRouter() // no route for Deposited
	if err := m.Add(context.Background(), projection.Projection{Name: "p", Handler: router}); err != nil {
		t.Fatal(err)
	}
	st := wait(t, m, "p", "failure", inState(projection.StateFailed))
	if !errors.Is(st.LastError, projection.ErrNoRoute) || st.Attempts != 1 {
		t.Fatalf("status %+v, want ErrNoRoute after 1 attempt", st)
	}
}

func TestRouter_Handle_DispatchesByPayloadType(t *testing.T) {
	j, reg := newJournal(t), newRegistry(t)
	appendOne(t, j, reg, stream("account", 1), Opened{Owner: "ada"}, epoch)
	appendOne(t, j, reg, stream("account", 1), Deposited{Amount: 7}, epoch)
	appendOne(t, j, reg, stream("account", 1), Deposited{Amount: 3}, epoch)
	var mu sync.Mutex
	owners, total := map[string]string{}, 0
	r := projection.NewRouter()
	projection.On(r, func(_ context.Context, ev projection.Event, e Opened) error {
		mu.Lock()
		defer mu.Unlock()
		owners[ev.Envelope.Subject] = e.Owner
		return nil
	})
	projection.On(r, func(_ context.Context, _ projection.Event, e Deposited) error {
		mu.Lock()
		defer mu.Unlock()
		total += e.Amount
		return nil
	})
	m := newManager(t, projection.Config{Journal: j, Registry: reg, Checkpoints: projection.NewMemCheckpoints()})
	if err := m.Add(context.Background(), projection.Projection{Name: "p", Handler: r}); err != nil {
		t.Fatal(err)
	}
	wait(t, m, "p", "head", atPosition(3))
	mu.Lock()
	defer mu.Unlock()
	if owners["account-1"] != "ada" || total != 10 {
		t.Fatalf("owners %v total %d, want ada and 10", owners, total)
	}
}

func TestManager_Skip_PassesOverPoisonedEvent(t *testing.T) {
	j, reg := newJournal(t), newRegistry(t)
	for i := 1; i <= 4; i++ {
		appendOne(t, j, reg, stream("account", i), Deposited{Amount: i}, epoch)
	}
	m := newManager(t, projection.Config{Journal: j, Registry: reg, Checkpoints: projection.NewMemCheckpoints(),
		Retry: projection.Retry{MaxAttempts: 1}})
	h := newFailingAt(2)
	ctx := context.Background()
	if err := m.Add(ctx, projection.Projection{Name: "p", Handler: h, BatchSize: 1}); err != nil {
		t.Fatal(err)
	}
	wait(t, m, "p", "failure", inState(projection.StateFailed))

	if err := m.Skip(ctx, "p", 3); !errors.Is(err, projection.ErrNotFailed) {
		t.Fatalf("Skip at the wrong position: %v, want ErrNotFailed", err)
	}
	if err := m.Skip(ctx, "p", 2); err != nil {
		t.Fatal(err)
	}
	wait(t, m, "p", "head", func(s projection.Status) bool { return s.Live && s.Position == 4 })
	if got := h.rec.seen(); !slices.Equal(got, []uint64{1, 3, 4}) {
		t.Fatalf("applied %v, want [1 3 4]", got)
	}
	if err := m.Skip(ctx, "p", 2); !errors.Is(err, projection.ErrNotFailed) {
		t.Fatalf("Skip of a running projection: %v, want ErrNotFailed", err)
	}
}

func TestManager_Rebuild_ReplaysFromZero(t *testing.T) {
	j, reg := newJournal(t), newRegistry(t)
	for i := 1; i <= 5; i++ {
		appendOne(t, j, reg, stream("account", i), Deposited{Amount: i}, epoch)
	}
	m := newManager(t, projection.Config{Journal: j, Registry: reg, Checkpoints: projection.NewMemCheckpoints()})
	rec := &recorder{}
	noReset := &recorder{}
	ctx := context.Background()
	if err := m.Add(ctx, projection.Projection{Name: "p", Handler: rec, Reset: rec.reset, BatchSize: 2}); err != nil {
		t.Fatal(err)
	}
	if err := m.Add(ctx, projection.Projection{Name: "no-reset", Handler: noReset}); err != nil {
		t.Fatal(err)
	}
	wait(t, m, "p", "head", func(s projection.Status) bool { return s.Live && s.Position == 5 })
	if err := m.Rebuild(ctx, "p"); err != nil {
		t.Fatal(err)
	}
	wait(t, m, "p", "head again", func(s projection.Status) bool { return s.Live && s.Position == 5 })
	if got := rec.seen(); !slices.Equal(got, []uint64{1, 2, 3, 4, 5}) {
		t.Fatalf("after rebuild the model holds %v, want 1..5 once", got)
	}
	if err := m.Rebuild(ctx, "no-reset"); !errors.Is(err, projection.ErrNoReset) {
		t.Fatalf("Rebuild without Reset: %v, want ErrNoReset", err)
	}

	failing := &recorder{}
	if err := m.Add(ctx, projection.Projection{Name: "bad-reset", Handler: failing,
		Reset: func(context.Context) error { return errBoom }}); err != nil {
		t.Fatal(err)
	}
	wait(t, m, "bad-reset", "head", func(s projection.Status) bool { return s.Live && s.Position == 5 })
	if err := m.Rebuild(ctx, "bad-reset"); !errors.Is(err, errBoom) {
		t.Fatalf("Rebuild with a failing Reset: %v, want errBoom", err)
	}
	if st, err := m.Status(ctx, "bad-reset"); err != nil || st.State != projection.StateStopped || st.Position != 5 {
		t.Fatalf("after a failed rebuild: %+v, %v; want stopped at 5", st, err)
	}
}

func TestManager_Add_UntilPositionCompletes(t *testing.T) {
	j, reg := newJournal(t), newRegistry(t)
	for i := 1; i <= 3; i++ {
		appendOne(t, j, reg, stream("account", i), Deposited{Amount: i}, epoch)
	}
	m := newManager(t, projection.Config{Journal: j, Registry: reg, Checkpoints: projection.NewMemCheckpoints()})
	early, late := &recorder{}, &recorder{}
	ctx := context.Background()
	if err := m.Add(ctx, projection.Projection{Name: "asof2", Handler: early, UntilPosition: 2}); err != nil {
		t.Fatal(err)
	}
	// An as-of position beyond the head waits for it, then completes.
	if err := m.Add(ctx, projection.Projection{Name: "asof5", Handler: late, UntilPosition: 5, Reset: late.reset}); err != nil {
		t.Fatal(err)
	}
	st := wait(t, m, "asof2", "completion", inState(projection.StateCompleted))
	if st.Position != 2 || !slices.Equal(early.seen(), []uint64{1, 2}) {
		t.Fatalf("completed at %d having handled %v, want 2 and [1 2]", st.Position, early.seen())
	}
	wait(t, m, "asof5", "head", func(s projection.Status) bool { return s.Live && s.Position == 3 })
	for i := 4; i <= 6; i++ {
		appendOne(t, j, reg, stream("account", i), Deposited{Amount: i}, epoch)
	}
	st = wait(t, m, "asof5", "completion", inState(projection.StateCompleted))
	if st.Position != 5 || !slices.Equal(late.seen(), []uint64{1, 2, 3, 4, 5}) {
		t.Fatalf("completed at %d having handled %v, want 5 and 1..5", st.Position, late.seen())
	}
	// A rebuild of an as-of projection stops at the same place.
	if err := m.Rebuild(ctx, "asof5"); err != nil {
		t.Fatal(err)
	}
	wait(t, m, "asof5", "completion", func(s projection.Status) bool { return s.State == projection.StateCompleted && s.Position == 5 })
	if got := late.seen(); !slices.Equal(got, []uint64{1, 2, 3, 4, 5}) {
		t.Fatalf("rebuilt as-of model %v, want 1..5", got)
	}
}

func TestManager_Add_UntilTimeCompletes(t *testing.T) {
	j, reg := newJournal(t), newRegistry(t)
	for i := 0; i < 5; i++ {
		appendOne(t, j, reg, stream("account", i), Deposited{Amount: i}, epoch.Add(time.Duration(i)*time.Hour))
	}
	m := newManager(t, projection.Config{Journal: j, Registry: reg, Checkpoints: projection.NewMemCheckpoints()})
	rec := &recorder{}
	// As of 02:30: the events at 00:00, 01:00 and 02:00.
	if err := m.Add(context.Background(), projection.Projection{Name: "p", Handler: rec,
		UntilTime: epoch.Add(2*time.Hour + 30*time.Minute)}); err != nil {
		t.Fatal(err)
	}
	st := wait(t, m, "p", "completion", inState(projection.StateCompleted))
	if st.Position != 3 || !slices.Equal(rec.seen(), []uint64{1, 2, 3}) {
		t.Fatalf("completed at %d having handled %v, want 3 and [1 2 3]", st.Position, rec.seen())
	}
}

func TestManager_Status_ReportsLag(t *testing.T) {
	j, reg := newJournal(t), newRegistry(t)
	for i := 1; i <= 2; i++ {
		appendOne(t, j, reg, stream("account", i), Deposited{Amount: i}, epoch)
	}
	m := newManager(t, projection.Config{Journal: j, Registry: reg, Checkpoints: projection.NewMemCheckpoints()})
	ctx := context.Background()
	if err := m.Add(ctx, projection.Projection{Name: "p", Handler: &recorder{}}); err != nil {
		t.Fatal(err)
	}
	wait(t, m, "p", "head", func(s projection.Status) bool { return s.Live && s.Position == 2 })
	if err := m.Stop(ctx, "p"); err != nil {
		t.Fatal(err)
	}
	for i := 3; i <= 5; i++ {
		appendOne(t, j, reg, stream("account", i), Deposited{Amount: i}, epoch)
	}
	st, err := m.Status(ctx, "p")
	if err != nil {
		t.Fatal(err)
	}
	if st.State != projection.StateStopped || st.Position != 2 || st.Head != 5 || st.Lag != 3 {
		t.Fatalf("status %+v, want stopped at 2 with head 5 and lag 3", st)
	}
	if err := m.Start(ctx, "p"); err != nil {
		t.Fatal(err)
	}
	wait(t, m, "p", "head", func(s projection.Status) bool { return s.Live && s.Position == 5 })
	all, err := m.Statuses(ctx)
	if err != nil || len(all) != 1 || all[0].Lag != 0 || all[0].Name != "p" {
		t.Fatalf("Statuses = %+v, %v; want one with lag 0", all, err)
	}
}

func TestManager_Stop_CancelsHandlerContext(t *testing.T) {
	j, reg := newJournal(t), newRegistry(t)
	appendOne(t, j, reg, stream("account", 1), Deposited{Amount: 1}, epoch)
	m := newManager(t, projection.Config{Journal: j, Registry: reg, Checkpoints: projection.NewMemCheckpoints()})
	entered := make(chan struct{})
	var once sync.Once
	h := projection.HandlerFunc(func(ctx context.Context, _ []projection.Event) error {
		once.Do(func() { close(entered) })
		<-ctx.Done()
		return ctx.Err()
	})
	ctx := context.Background()
	if err := m.Add(ctx, projection.Projection{Name: "p", Handler: h}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-entered:
	case <-time.After(testTimeout):
		t.Fatal("handler never called")
	}
	if err := m.Stop(ctx, "p"); err != nil {
		t.Fatal(err)
	}
	st, err := m.Status(ctx, "p")
	if err != nil {
		t.Fatal(err)
	}
	if st.State != projection.StateStopped || st.Position != 0 || st.LastError != nil {
		t.Fatalf("status %+v, want stopped at 0 without error", st)
	}
}

func TestManager_Wait_HonoursContext(t *testing.T) {
	j, reg := newJournal(t), newRegistry(t)
	m := newManager(t, projection.Config{Journal: j, Registry: reg, Checkpoints: projection.NewMemCheckpoints()})
	ctx := context.Background()
	if err := m.Add(ctx, projection.Projection{Name: "p", Handler: &recorder{}}); err != nil {
		t.Fatal(err)
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := m.Wait(cancelled, "p", func(projection.Status) bool { return false }); !errors.Is(err, context.Canceled) {
		t.Fatalf("Wait: %v, want context.Canceled", err)
	}
	if _, err := m.Status(cancelled, "p"); !errors.Is(err, context.Canceled) {
		t.Fatalf("Status: %v, want context.Canceled", err)
	}
	if err := m.Add(cancelled, projection.Projection{Name: "q", Handler: &recorder{}}); !errors.Is(err, context.Canceled) {
		t.Fatalf("Add: %v, want context.Canceled", err)
	}
	if err := m.Stop(cancelled, "p"); !errors.Is(err, context.Canceled) {
		t.Fatalf("Stop: %v, want context.Canceled", err)
	}
}

func TestManager_Add_ClosedJournalFails(t *testing.T) {
	j, reg := newJournal(t), newRegistry(t)
	appendOne(t, j, reg, stream("account", 1), Deposited{Amount: 1}, epoch)
	m := newManager(t, projection.Config{Journal: j, Registry: reg, Checkpoints: projection.NewMemCheckpoints()})
	if err := m.Add(context.Background(), projection.Projection{Name: "p", Handler: &recorder{}}); err != nil {
		t.Fatal(err)
	}
	wait(t, m, "p", "live", func(s projection.Status) bool { return s.Live && s.Position == 1 })
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	st := wait(t, m, "p", "failure", inState(projection.StateFailed))
	if !errors.Is(st.LastError, orchestrix.ErrClosed) || st.Position != 1 {
		t.Fatalf("status %+v, want failed with ErrClosed at checkpoint 1", st)
	}
	// The status stays readable with the journal gone.
	if st, err := m.Status(context.Background(), "p"); err != nil || st.State != projection.StateFailed || st.Head != 1 {
		t.Fatalf("Status after the journal closed = %+v, %v", st, err)
	}
}

func TestManager_Add_RejectsBadDefinitions(t *testing.T) {
	j, reg := newJournal(t), newRegistry(t)
	ctx := context.Background()
	if _, err := projection.NewManager(projection.Config{Registry: reg}); !errors.Is(err, projection.ErrInvalidProjection) {
		t.Fatalf("NewManager without journal: %v", err)
	}
	if _, err := projection.NewManager(projection.Config{Journal: j}); !errors.Is(err, projection.ErrInvalidProjection) {
		t.Fatalf("NewManager without registry: %v", err)
	}
	m := newManager(t, projection.Config{Journal: j, Registry: reg})
	for _, p := range []projection.Projection{
		{Name: " ", Handler: &recorder{}, Checkpoints: projection.NewMemCheckpoints()},
		{Name: "p", Checkpoints: projection.NewMemCheckpoints()},
		{Name: "p", Handler: &recorder{}},
		{Name: "p", Handler: &recorder{}, Checkpoints: projection.NewMemCheckpoints(), BatchSize: -1},
		{Name: "p", Handler: &recorder{}, Checkpoints: projection.NewMemCheckpoints(), Retry: projection.Retry{Multiplier: 0.5}},
	} {
		if err := m.Add(ctx, p); !errors.Is(err, projection.ErrInvalidProjection) {
			t.Errorf("Add(%+v) = %v, want ErrInvalidProjection", p, err)
		}
	}
	ok := projection.Projection{Name: "p", Handler: &recorder{}, Checkpoints: projection.NewMemCheckpoints()}
	if err := m.Add(ctx, ok); err != nil {
		t.Fatal(err)
	}
	if err := m.Add(ctx, ok); !errors.Is(err, projection.ErrDuplicateProjection) {
		t.Fatalf("second Add: %v, want ErrDuplicateProjection", err)
	}
	if _, err := m.Status(ctx, "nope"); !errors.Is(err, orchestrix.ErrNotFound) {
		t.Fatalf("Status of unknown: %v, want ErrNotFound", err)
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if err := m.Start(ctx, "p"); !errors.Is(err, orchestrix.ErrClosed) {
		t.Fatalf("Start after Close: %v, want ErrClosed", err)
	}
}

func TestRetry_Backoff_DoublesUpToMax(t *testing.T) {
	r := projection.Retry{InitialBackoff: time.Second, MaxBackoff: 5 * time.Second}
	var got []time.Duration
	for i := 1; i <= 5; i++ {
		got = append(got, r.Backoff(i))
	}
	want := []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 5 * time.Second, 5 * time.Second}
	if !slices.Equal(got, want) {
		t.Fatalf("backoffs %v, want %v", got, want)
	}
}
