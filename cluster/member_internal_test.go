package cluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	proto "github.com/asynkron/protoactor-go/actor"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/orchestrix/orchestrix"
	"github.com/orchestrix/orchestrix/actor"
	"github.com/orchestrix/orchestrix/aggregate"
	"github.com/orchestrix/orchestrix/cluster/internal/wire"
	"github.com/orchestrix/orchestrix/internal/clusterseam"
	"github.com/orchestrix/orchestrix/internal/telemetryhooks"
	"github.com/orchestrix/orchestrix/journal/mem"
	"github.com/orchestrix/orchestrix/telemetry"
)

func TestConfigZeroValueIsValid(t *testing.T) {
	if err := (Config{}).Validate(); err != nil {
		t.Fatalf("zero Config: %v", err)
	}
	c := Config{}.withDefaults()
	if c.Name == "" || c.Host == "" || len(c.Seeds) != 1 || c.RequestTimeout <= 0 || c.RetryBackoff <= 0 {
		t.Fatalf("defaults not applied: %+v", c)
	}
	if c.ExpectedMembers != 1 || c.PauseThreshold <= 0 || c.SettlePeriod < time.Second || c.HandoffTimeout <= 0 {
		t.Fatalf("fence and handoff defaults not applied: %+v", c)
	}
	if c := (Config{Seeds: []string{"a:1", "b:1", "c:1"}}).withDefaults(); c.ExpectedMembers != 3 {
		t.Fatalf("ExpectedMembers defaults to len(Seeds) with automanaged: %d", c.ExpectedMembers)
	}
}

func TestConfigValidateRejects(t *testing.T) {
	for name, c := range map[string]Config{
		"port":     {Port: 70000},
		"seed":     {Seeds: []string{"no-port"}},
		"negative": {RequestTimeout: -1},
		"backoff":  {RetryBackoff: 2e9, MaxRetryBackoff: 1e9},
		"expected": {ExpectedMembers: -1},
		"pause":    {PauseThreshold: -1},
		"settle":   {SettlePeriod: -1},
		"handoff":  {HandoffTimeout: -1},
	} {
		if err := c.Validate(); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("%s: got %v, want ErrInvalidConfig", name, err)
		}
	}
}

func TestStartRefusesUnsharedJournal(t *testing.T) {
	j, err := mem.New(mem.Config{})
	if err != nil {
		t.Fatal(err)
	}
	sys, err := actor.NewSystem(actor.Config{Journal: j})
	if err != nil {
		t.Fatal(err)
	}
	defer sys.Close()
	_, err = Start(context.Background(), sys, Config{})
	if !errors.Is(err, ErrJournalNotShared) {
		t.Fatalf("Start over the in-memory journal: got %v, want ErrJournalNotShared", err)
	}
}

func TestErrorCodesRoundTrip(t *testing.T) {
	for _, c := range codes {
		err := &remoteError{member: "m", code: codeOf(c.err), msg: "x"}
		if !errors.Is(err, c.err) {
			t.Errorf("code %v: remote error does not match %v", c.code, c.err)
		}
	}
	if codeOf(fmt.Errorf("x: %w", clusterseam.ErrReleased)) != wire.Code_NOT_OWNER {
		t.Error("a command released while queued should cross as NOT_OWNER (not executed, retried)")
	}
	if codeOf(errors.New("other")) != wire.Code_FAILED {
		t.Error("an unclassified error should be FAILED")
	}
	// A rejection keeps matching aggregate.ErrRejected, an unknown outcome
	// its sentinel, across the wire.
	rej := &remoteError{code: codeOf(&actor.CommandError{Err: aggregate.ErrRejected}), msg: "no"}
	if !errors.Is(rej, aggregate.ErrRejected) || errors.Is(rej, orchestrix.ErrOutcomeUnknown) {
		t.Errorf("rejection code: %v", rej.code)
	}
}

// manualClock is a monotonic clock the test advances by hand.
type manualClock struct{ t atomic.Int64 }

func (c *manualClock) now() time.Duration      { return time.Duration(c.t.Load()) }
func (c *manualClock) advance(d time.Duration) { c.t.Add(int64(d)) }

func TestFence_PauseSeenByTickAndByServingPath(t *testing.T) {
	c := &manualClock{}
	f := newFence(c.now, time.Second, 3*time.Second)
	c.advance(250 * time.Millisecond)
	if _, paused := f.tick(); paused {
		t.Fatal("a tick 250ms after the last is no pause")
	}
	c.advance(900 * time.Millisecond)
	if _, paused := f.stale(); paused {
		t.Fatal("900ms since the last tick is below the 1s threshold")
	}
	c.advance(10 * time.Second) // stopped: no tick ran
	gap, paused := f.stale()
	if !paused || gap != 10900*time.Millisecond {
		t.Fatalf("serving path after a 10s stop: gap %v paused %v; want 10.9s, true", gap, paused)
	}
	if gap, paused := f.tick(); !paused || gap != 10900*time.Millisecond {
		t.Fatalf("first tick after the stop: gap %v paused %v", gap, paused)
	}
	if _, paused := f.stale(); paused {
		t.Fatal("right after a tick the serving path sees no pause")
	}
}

func TestFence_LiftsOnlyAfterSettleWithoutNewCause(t *testing.T) {
	c := &manualClock{}
	f := newFence(c.now, time.Second, 3*time.Second)
	if f.active() {
		t.Fatal("a new fence is not active")
	}
	if !f.trigger("paused") || f.trigger("paused again") {
		t.Fatal("trigger reports only the transition into the fence")
	}
	if !f.active() || f.why() != "paused" {
		t.Fatalf("active %v why %q", f.active(), f.why())
	}
	c.advance(2 * time.Second)
	f.tick()
	if _, ok := f.liftable(); ok {
		t.Fatal("liftable before the settle period")
	}
	c.advance(time.Second + time.Millisecond)
	f.tick()
	causes, ok := f.liftable()
	if !ok {
		t.Fatal("not liftable after the settle period")
	}
	f.trigger("below majority") // a cause while the lift was being tried
	if f.lift(causes) || !f.active() {
		t.Fatal("a lift must fail when a cause came meanwhile")
	}
	if _, ok := f.liftable(); ok {
		t.Fatal("the new cause restarts the settle period")
	}
	c.advance(3 * time.Second)
	f.tick()
	causes, ok = f.liftable()
	if !ok || !f.lift(causes) || f.active() {
		t.Fatal("the fence should lift after a quiet settle period")
	}
	// A stale tick (paused, ticker not run yet) blocks a lift too.
	f.trigger("paused")
	c.advance(5 * time.Second)
	if _, ok := f.liftable(); ok {
		t.Fatal("liftable while the last tick is stale")
	}
	f.tick()
	c.advance(3 * time.Second)
	f.retry() // an attempt failed
	f.tick()
	if _, ok := f.liftable(); ok {
		t.Fatal("retry restarts the settle period")
	}
}

func TestMajority(t *testing.T) {
	for _, c := range []struct {
		members, expected int
		below             bool
	}{
		{1, 3, true}, {2, 3, false}, {3, 3, false}, {2, 4, true}, {3, 4, false}, {1, 1, false}, {1, 0, false}, {0, 0, false},
	} {
		if _, below := belowMajority(c.members, c.expected); below != c.below {
			t.Errorf("%d of %d expected: below %v, want %v", c.members, c.expected, below, c.below)
		}
	}
}

// The serving path itself refuses after a pause, before any tick: Admit
// finds the last tick stale, fences the member (a view in which it owns
// nothing) and refuses with ErrReleased.
func TestMember_AdmitRefusesRightAfterAPause(t *testing.T) {
	c := &manualClock{}
	cfg := Config{}.withDefaults()
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	m := &Member{cfg: cfg, kinds: map[string]clusterseam.Kind{}, f: newFence(c.now, cfg.PauseThreshold, cfg.SettlePeriod)}
	m.bg, m.stopBG = context.WithCancel(context.Background())
	defer m.stopBG()
	self := peer{id: "a", addr: "127.0.0.1:1", kinds: []string{"counter"}}
	ep := newEpoch(1)
	ep.ok.Store(true)
	close(ep.settled)
	m.cur.Store(&view{self: self.addr, pl: newPlacement([]peer{self}), ep: ep})
	if err := m.Admit("counter", "x"); err != nil {
		t.Fatalf("the only member should admit: %v", err)
	}
	c.advance(cfg.PauseThreshold + time.Millisecond)
	if err := m.Admit("counter", "x"); !errors.Is(err, clusterseam.ErrReleased) {
		t.Fatalf("Admit right after a pause: %v, want ErrReleased", err)
	}
	if !m.f.active() || !m.cur.Load().out {
		t.Fatal("the member should be fenced, owning nothing in its view")
	}
	if owner, err := m.Owner("counter", "x"); err == nil {
		t.Fatalf("a fenced member alone has no owner for its callers, got %q", owner)
	}
	m.f.tick() // the ticker runs again: still fenced until the settle period and a fresh view
	if err := m.Admit("counter", "x"); !errors.Is(err, clusterseam.ErrReleased) {
		t.Fatalf("Admit while fenced: %v", err)
	}
	m.wg.Wait()
}

// The request loop counts where each command ran and every request it
// placed again.
func TestMember_CallCountsRoutesAndRetries(t *testing.T) {
	reg := prometheus.NewRegistry()
	metrics, err := telemetry.NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	c := &manualClock{}
	cfg := Config{RetryBackoff: time.Millisecond, MaxRetryBackoff: time.Millisecond}.withDefaults()
	m := &Member{cfg: cfg, proto: proto.NewActorSystem(), metrics: telemetryhooks.MetricsOf(metrics),
		f: newFence(c.now, cfg.PauseThreshold, cfg.SettlePeriod)}
	self := peer{id: "a", addr: m.addr(), kinds: []string{"counter"}}
	other := peer{id: "b", addr: "other:1", kinds: []string{"counter"}}
	ep := newEpoch(1)
	ep.ok.Store(true)
	close(ep.settled)
	v := &view{self: self.addr, pl: newPlacement([]peer{self, other}), ep: ep}
	m.cur.Store(v)
	var mine, theirs string
	for i := 0; mine == "" || theirs == ""; i++ {
		id := fmt.Sprint("id-", i)
		if v.owns("counter", id) {
			mine = id
		} else {
			theirs = id
		}
	}
	ctx := context.Background()
	sends := 0
	send := func(ctx context.Context, addr string) (attempt, error) {
		if sends++; sends == 1 {
			return notDelivered, ErrNotOwner
		}
		return delivered, nil
	}
	local := func(context.Context) error { return nil }
	if ranLocally, err := m.call(ctx, "counter", theirs, true, local, send); ranLocally || err != nil || sends != 2 {
		t.Fatalf("remote call: ranLocally %v, err %v, %d sends; want one retry then a reply", ranLocally, err, sends)
	}
	if ranLocally, err := m.call(ctx, "counter", mine, true, local, send); !ranLocally || err != nil {
		t.Fatalf("local call: ranLocally %v, err %v", ranLocally, err)
	}
	want := `
# HELP orchestrix_cluster_commands_total Commands sent through this cluster member, by aggregate kind and where they ran (local or remote).
# TYPE orchestrix_cluster_commands_total counter
orchestrix_cluster_commands_total{kind="counter",route="local"} 1
orchestrix_cluster_commands_total{kind="counter",route="remote"} 1
# HELP orchestrix_cluster_not_owner_retries_total Requests placed again because they were not delivered (not the owner, no owner, dead letter, released), by aggregate kind.
# TYPE orchestrix_cluster_not_owner_retries_total counter
orchestrix_cluster_not_owner_retries_total{kind="counter"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want),
		"orchestrix_cluster_commands_total", "orchestrix_cluster_not_owner_retries_total"); err != nil {
		t.Fatal(err)
	}
}

// A handoff claim redirects the ids its requester owns in its own view;
// a newer claim of the same member replaces the older one, an older one is
// ignored, and a view change drops them all.
func TestView_Claims(t *testing.T) {
	a := peer{id: "a", addr: "a:1", kinds: []string{"k"}}
	b := peer{id: "b", addr: "b:1", kinds: []string{"k"}}
	v := &view{self: a.addr, pl: newPlacement([]peer{a, b}), ep: newEpoch(1)}
	var mine string
	for i := 0; mine == ""; i++ {
		if id := fmt.Sprint("id-", i); v.owns("k", id) {
			mine = id
		}
	}
	// b, seeing only itself, owns everything in its view: it claims mine.
	wide := v.withClaim(claim{id: b.id, addr: b.addr, epoch: 5, pl: newPlacement([]peer{b})})
	if wide.owns("k", mine) || wide.owner("k", mine) != b.addr {
		t.Fatalf("a claim of b should send %s to b, owner %q", mine, wide.owner("k", mine))
	}
	// b's newer view has both members: its claim no longer covers mine.
	narrow := wide.withClaim(claim{id: b.id, addr: b.addr, epoch: 6, pl: newPlacement([]peer{a, b})})
	if !narrow.owns("k", mine) || len(narrow.claims) != 1 {
		t.Fatalf("b's newer claim should replace the older: owns %v, %d claims", narrow.owns("k", mine), len(narrow.claims))
	}
	if stale := narrow.withClaim(claim{id: b.id, addr: b.addr, epoch: 5, pl: newPlacement([]peer{b})}); stale != narrow {
		t.Fatal("an older claim of the same member must be ignored")
	}
	if next := wide.next(2, wide.pl); !next.owns("k", mine) || len(next.claims) != 0 {
		t.Fatal("a view change drops the claims")
	}
	// The previous view keeps its claims: an id claimed away before the
	// change is not served before the new epoch's round ends.
	if next := wide.next(2, wide.pl); next.prev.owns("k", mine) || next.ready("k", mine) {
		t.Fatal("an id claimed away in the previous view must wait for the new round")
	}
}
