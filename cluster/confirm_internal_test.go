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

	"github.com/orchestrix/orchestrix/cluster/internal/wire"
	"github.com/orchestrix/orchestrix/internal/clusterseam"
	"github.com/orchestrix/orchestrix/internal/telemetryhooks"
	"github.com/orchestrix/orchestrix/telemetry"
)

// The lease runs from when the confirmed round was SENT: answers that
// arrive late (here 1.5s after the round was sent) do not extend it.
func TestLease_MeasuredFromSendTime(t *testing.T) {
	c := &manualClock{}
	l := newLease(c.now, 2*time.Second)
	if _, ok := l.holds(); ok {
		t.Fatal("a new lease holds before any confirmation")
	}
	c.advance(time.Second) // the round is sent at 1s
	late := func(context.Context, string) bool {
		c.advance(750 * time.Millisecond) // each answer comes 750ms later
		return true
	}
	if !l.round(context.Background(), []string{"b"}, 1, late) {
		t.Fatal("one confirmation of the one needed: the round should succeed")
	}
	// Now 1.75s; the lease ends at 1s + 2s = 3s, not 1.75s + 2s.
	c.advance(1250 * time.Millisecond) // 3s
	if age, ok := l.holds(); !ok || age != 2*time.Second {
		t.Fatalf("at the lease's end: age %v holds %v; want 2s, true", age, ok)
	}
	c.advance(time.Millisecond)
	if age, ok := l.holds(); ok || age != 2*time.Second+time.Millisecond {
		t.Fatalf("1ms after the lease's end: age %v holds %v; want it expired", age, ok)
	}
	if !l.expired() {
		t.Fatal("expired once no round sent within the lease was confirmed")
	}
	// A round sent earlier that ends later does not move the lease back.
	l.confirm(5 * time.Second)
	l.confirm(4 * time.Second)
	if age, _ := l.holds(); age != c.now()-5*time.Second {
		t.Fatalf("an older round moved the lease back: age %v", age)
	}
}

// Before a first confirmation, a member refuses (the lease does not hold)
// but fences only once the lease's length has passed since it began to
// serve; restart starts that grace again.
func TestLease_GraceBeforeTheFirstConfirmation(t *testing.T) {
	c := &manualClock{}
	l := newLease(c.now, time.Second)
	c.advance(time.Second)
	if _, ok := l.holds(); ok || l.expired() {
		t.Fatal("within the grace: not held, not expired")
	}
	c.advance(time.Millisecond)
	if !l.expired() {
		t.Fatal("expired after the grace without a confirmation")
	}
	l.restart()
	if l.expired() {
		t.Fatal("restart begins a new grace")
	}
}

// A round succeeds once need peers said yes, fails as soon as too many
// said no, and records nothing when it fails.
func TestLease_RoundNeedsMajority(t *testing.T) {
	c := &manualClock{}
	answers := func(yes map[string]bool) func(context.Context, string) bool {
		return func(_ context.Context, addr string) bool { return yes[addr] }
	}
	for _, tc := range []struct {
		name  string
		peers []string
		yes   map[string]bool
		need  int
		ok    bool
	}{
		{"alone, none needed", nil, nil, 0, true},
		{"one of two", []string{"b", "c"}, map[string]bool{"c": true}, 1, true},
		{"none of two", []string{"b", "c"}, nil, 1, false},
		{"two of four, three needed", []string{"b", "c", "d", "e"}, map[string]bool{"b": true, "e": true}, 3, false},
		{"three of four", []string{"b", "c", "d", "e"}, map[string]bool{"b": true, "d": true, "e": true}, 3, true},
		{"fewer peers than needed", []string{"b"}, map[string]bool{"b": true}, 2, false},
	} {
		l := newLease(c.now, time.Second)
		if got := l.round(context.Background(), tc.peers, tc.need, answers(tc.yes)); got != tc.ok {
			t.Errorf("%s: round %v, want %v", tc.name, got, tc.ok)
		}
		if _, held := l.holds(); held != tc.ok {
			t.Errorf("%s: lease holds %v after the round, want %v", tc.name, held, tc.ok)
		}
	}
	// The round does not wait for a peer that does not answer once the
	// others decided it, and that peer's ask is cancelled.
	l := newLease(c.now, time.Second)
	var cancelled atomic.Bool
	ask := func(ctx context.Context, addr string) bool {
		if addr == "slow" {
			<-ctx.Done()
			cancelled.Store(true)
			return true
		}
		return true
	}
	if !l.round(context.Background(), []string{"slow", "b"}, 1, ask) || !cancelled.Load() {
		t.Fatal("the round should succeed on b's answer and cancel the slow ask")
	}
}

// A member whose lease expired refuses commands and state reads (both go
// through Admit) with ErrReleased, so that its callers place them again,
// and fences itself for "unconfirmed", counted in the self-fence metric.
func TestMember_AdmitRefusesWhenUnconfirmed(t *testing.T) {
	reg := prometheus.NewRegistry()
	metrics, err := telemetry.NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	c := &manualClock{}
	cfg := Config{Seeds: []string{"a:1", "b:1", "c:1"}}.withDefaults()
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	m := &Member{cfg: cfg, kinds: map[string]clusterseam.Kind{}, metrics: telemetryhooks.MetricsOf(metrics),
		f: newFence(c.now, cfg.PauseThreshold, cfg.SettlePeriod), lease: newLease(c.now, cfg.ConfirmLease)}
	m.bg, m.stopBG = context.WithCancel(context.Background())
	defer m.stopBG()
	self := peer{id: "a", addr: "a:1", kinds: []string{"counter"}}
	others := []peer{{id: "b", addr: "b:1", kinds: []string{"counter"}}, {id: "c", addr: "c:1", kinds: []string{"counter"}}}
	ep := newEpoch(1)
	ep.ok.Store(true)
	close(ep.settled)
	v := &view{self: self.addr, pl: newPlacement(append([]peer{self}, others...)), ep: ep}
	m.cur.Store(v)
	id := ""
	for i := 0; id == ""; i++ {
		if x := fmt.Sprint("id-", i); v.owns("counter", x) {
			id = x
		}
	}
	if m.needed(v) != 1 {
		t.Fatalf("3 expected members: %d other confirmations needed, want 1", m.needed(v))
	}
	if err := m.Admit("counter", id); !errors.Is(err, clusterseam.ErrReleased) {
		t.Fatalf("Admit before any confirmation: %v, want ErrReleased", err)
	}
	if m.f.active() {
		t.Fatal("no fence within the grace before a first confirmation")
	}
	m.lease.confirm(c.now())
	tick := func(d time.Duration) { // the member runs: its pause detector ticks
		for step := cfg.PauseThreshold / 4; d > 0; d -= step {
			c.advance(min(step, d))
			m.f.tick()
		}
	}
	tick(cfg.ConfirmLease)
	if err := m.Admit("counter", id); err != nil {
		t.Fatalf("Admit at the lease's end: %v", err)
	}
	tick(time.Millisecond)
	if err := m.Admit("counter", id); !errors.Is(err, clusterseam.ErrReleased) {
		t.Fatalf("Admit after the lease: %v, want ErrReleased", err)
	}
	if why, fenced := m.Fenced(); !fenced || !strings.HasPrefix(why, "unconfirmed") {
		t.Fatalf("after the lease: fenced %v (%q), want unconfirmed", fenced, why)
	}
	if owner, _ := m.Owner("counter", id); owner == self.addr {
		t.Fatal("a fenced member sends its own callers to the others")
	}
	want := `
# HELP orchestrix_cluster_self_fences_total Times this cluster member fenced itself, by reason (paused, majority, unconfirmed).
# TYPE orchestrix_cluster_self_fences_total counter
orchestrix_cluster_self_fences_total{reason="unconfirmed"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "orchestrix_cluster_self_fences_total"); err != nil {
		t.Fatal(err)
	}
	m.wg.Wait()
}

// A probe (a HandoffRequest with epoch 0 and no members) is answered with
// whether the sender is in this member's view, and releases nothing: it
// leaves no claim.
func TestServeConfirm(t *testing.T) {
	m := &Member{}
	a, b := peer{id: "a", addr: "a:1"}, peer{id: "b", addr: "b:1"}
	ep := newEpoch(1)
	close(ep.settled)
	v := &view{self: a.addr, pl: newPlacement([]peer{a, b}), ep: ep}
	m.cur.Store(v)
	probe := &wire.HandoffRequest{MemberId: "b", Address: b.addr}
	if !isProbe(probe) || isProbe(&wire.HandoffRequest{MemberId: "b", Epoch: 1}) {
		t.Fatal("isProbe: epoch 0 without members is a probe; a handoff's epoch starts at 1")
	}
	if r := m.serveHandoff(probe); !r.GetKnown() {
		t.Fatal("a member of the view is known")
	}
	if m.cur.Load() != v {
		t.Fatal("a probe must not change the view (no claim)")
	}
	if r := m.serveHandoff(&wire.HandoffRequest{MemberId: "z", Address: "z:1"}); r.GetKnown() {
		t.Fatal("a member outside the view is not known")
	}
	m.cur.Store(&view{self: a.addr, pl: v.pl, ep: ep, left: []string{"b"}})
	if r := m.serveHandoff(probe); r.GetKnown() {
		t.Fatal("a member that announced its leave is not known")
	}
}

func TestConfig_ConfirmDefaultsAndValidation(t *testing.T) {
	c := Config{RefreshTTL: 300 * time.Millisecond}.withDefaults()
	if c.ConfirmInterval != 150*time.Millisecond || c.ConfirmLease != 2*time.Second {
		t.Fatalf("defaults: interval %v lease %v; want 150ms, 2s", c.ConfirmInterval, c.ConfirmLease)
	}
	for name, c := range map[string]Config{
		"negative interval": {ConfirmInterval: -1},
		"negative lease":    {ConfirmLease: -1},
		"lease not above":   {ConfirmInterval: time.Second, ConfirmLease: time.Second},
		"lease below":       {ConfirmLease: time.Millisecond, PauseThreshold: time.Second},
	} {
		if err := c.Validate(); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("%s: got %v, want ErrInvalidConfig", name, err)
		}
	}
	if err := (Config{ConfirmInterval: 100 * time.Millisecond, ConfirmLease: 300 * time.Millisecond}).Validate(); err != nil {
		t.Fatalf("a lease above the interval is valid: %v", err)
	}
}

// A member whose lease expired because it was paused fences itself for
// the pause: the confirmation ticker may run before the pause detector's.
func TestMember_ExpiredLeaseAfterAPauseIsAPause(t *testing.T) {
	c := &manualClock{}
	cfg := Config{Seeds: []string{"a:1", "b:1", "c:1"}}.withDefaults()
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	m := &Member{cfg: cfg, kinds: map[string]clusterseam.Kind{},
		f: newFence(c.now, cfg.PauseThreshold, cfg.SettlePeriod), lease: newLease(c.now, cfg.ConfirmLease)}
	m.bg, m.stopBG = context.WithCancel(context.Background())
	defer m.stopBG()
	ep := newEpoch(1)
	close(ep.settled)
	m.cur.Store(&view{self: "a:1", pl: newPlacement([]peer{{id: "a", addr: "a:1"}, {id: "b", addr: "b:1"}, {id: "c", addr: "c:1"}}), ep: ep})
	m.lease.confirm(c.now())
	c.advance(10 * time.Second) // stopped: no tick, no round
	m.checkLease()
	if why, fenced := m.Fenced(); !fenced || !strings.HasPrefix(why, "paused") {
		t.Fatalf("fenced %v for %q, want paused", fenced, why)
	}
	m.wg.Wait()
}

// Peers know a member by the id of their views: etcd's provider names
// members "<cluster>@<system id>", so a probe (or handoff, or leave)
// carries the id this member has in its own view, not the bare system id.
func TestMember_MemberIDIsTheViewsID(t *testing.T) {
	m := &Member{proto: proto.NewActorSystem()}
	v := &view{self: "a:1", pl: newPlacement([]peer{{id: "orchestrix@" + m.proto.ID, addr: "a:1"}, {id: "orchestrix@b", addr: "b:1"}})}
	if got := m.memberID(v); got != "orchestrix@"+m.proto.ID {
		t.Fatalf("memberID %q, want the id of the view", got)
	}
	if got := m.memberID(nil); got != m.proto.ID {
		t.Fatalf("memberID without a view %q, want the system id", got)
	}
}
