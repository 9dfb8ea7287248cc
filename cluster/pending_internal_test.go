package cluster

import (
	"context"
	"errors"
	"log/slog"
	"strconv"
	"testing"
	"time"

	proto "github.com/asynkron/protoactor-go/actor"

	"github.com/orchestrix/orchestrix"
	"github.com/orchestrix/orchestrix/cluster/internal/wire"
	"github.com/orchestrix/orchestrix/internal/clusterseam"
)

// blackHole stands for another member's request actor: it keeps every
// request it gets (no network) and answers only when the test says so.
type blackHole struct{ got chan *proto.MessageEnvelope }

func (b blackHole) SendUserMessage(_ *proto.PID, msg any) {
	if env, ok := msg.(*proto.MessageEnvelope); ok {
		b.got <- env
	}
}
func (blackHole) SendSystemMessage(*proto.PID, any) {}
func (blackHole) Stop(*proto.PID)                   {}

// pendingMember is a member with a view of itself and one other member
// at peerAddr, both hosting kind "k", whose requests to peerAddr go to a
// blackHole; no network is involved. probe answers whether peerAddr still
// accepts connections.
func pendingMember(t *testing.T, probe func(string) bool) (*Member, blackHole) {
	t.Helper()
	sys := proto.NewActorSystem()
	t.Cleanup(sys.Shutdown)
	hole := blackHole{got: make(chan *proto.MessageEnvelope, 16)}
	sys.ProcessRegistry.RegisterAddressResolver(func(pid *proto.PID) (proto.Process, bool) {
		return hole, pid.GetAddress() == peerAddr
	})
	// RequestTimeout is long: a request that ends before it ended for
	// another reason than its timeout (the test checks which).
	cfg := Config{RequestTimeout: 30 * time.Second, RefreshTTL: time.Millisecond, Logger: slog.Default()}.withDefaults()
	c := &manualClock{}
	m := &Member{cfg: cfg, proto: sys, kinds: map[string]clusterseam.Kind{}, probe: probe,
		f: newFence(c.now, cfg.PauseThreshold, cfg.SettlePeriod)}
	m.bg, m.stopBG = context.WithCancel(context.Background())
	t.Cleanup(func() { m.stopBG(); m.wg.Wait() })
	ep := newEpoch(1)
	ep.ok.Store(true)
	close(ep.settled)
	m.cur.Store(&view{self: m.addr(), ep: ep, pl: newPlacement([]peer{
		{id: "self", addr: m.addr(), kinds: []string{"k"}}, {id: "peer", addr: peerAddr, kinds: []string{"k"}}})})
	return m, hole
}

const peerAddr = "10.255.0.9:7000"

// peerOwned returns an id the member at peerAddr owns in m's view.
func peerOwned(t *testing.T, m *Member) string {
	t.Helper()
	for i := range 1000 {
		if id := "id-" + strconv.Itoa(i); m.cur.Load().owner("k", id) == peerAddr {
			return id
		}
	}
	t.Fatal("the peer owns none of 1000 ids")
	return ""
}

// dropPeer publishes a view without the member at peerAddr, as a
// topology change in which it died does.
func dropPeer(m *Member) {
	m.changeView(func(old *view, n uint64) *view {
		return old.next(n, newPlacement([]peer{{id: "self", addr: m.addr(), kinds: []string{"k"}}}))
	})
}

type commandResult struct {
	ranLocally bool
	err        error
}

func sendCommand(m *Member, id, commandID string, local func(context.Context) error) chan commandResult {
	out := make(chan commandResult, 1)
	go func() {
		_, ran, err := m.Command(context.Background(), "k", id, commandID, []byte("cmd"), local)
		out <- commandResult{ran, err}
	}()
	return out
}

// A request pending to a member that the view drops, and whose endpoint
// refuses connections (it died), ends at once with an unknown outcome: not
// a success, not retried, and not after its RequestTimeout. The same
// command sent again then runs on the new owner (here, this member).
func TestPending_EndsWithOutcomeUnknownWhenTheViewDropsItsMember(t *testing.T) {
	m, hole := pendingMember(t, func(string) bool { return false })
	id := peerOwned(t, m)
	ranHere := 0
	local := func(context.Context) error { ranHere++; return nil }

	res := sendCommand(m, id, "cmd-1", local)
	<-hole.got // the request is pending at the peer, which never answers
	dropPeer(m)
	r := <-res
	if !errors.Is(r.err, orchestrix.ErrOutcomeUnknown) || !errors.Is(r.err, errMemberGone) {
		t.Fatalf("pending request after its member left the view: %v; want ErrOutcomeUnknown because the member is gone (not its %v timeout)",
			r.err, m.cfg.RequestTimeout)
	}
	if r.ranLocally || ranHere != 0 {
		t.Fatal("a request with an unknown outcome was retried on another member")
	}
	select {
	case env := <-hole.got:
		t.Fatalf("the request was sent again to the member that left: %v", env.Message)
	default:
	}

	// Placed again by its caller (same command id): the new owner runs it.
	r = <-sendCommand(m, id, "cmd-1", local)
	if r.err != nil || !r.ranLocally || ranHere != 1 {
		t.Fatalf("the command sent again after the failover: ran locally %v (%d), err %v; want it run by the new owner",
			r.ranLocally, ranHere, r.err)
	}
}

// A member dropped from the view whose endpoint still accepts connections
// (it is leaving gracefully, and answers what it received) keeps its
// pending requests: they get its reply, and a success stays a success.
func TestPending_LeaverThatStillAcceptsIsAnswered(t *testing.T) {
	probed := make(chan struct{}, 100)
	m, hole := pendingMember(t, func(string) bool { probed <- struct{}{}; return true })
	id := peerOwned(t, m)
	res := sendCommand(m, id, "cmd-1", func(context.Context) error { return errors.New("ran locally") })
	env := <-hole.got
	dropPeer(m)
	for range 2 { // probed again: the request was not ended after the first
		select {
		case <-probed:
		case r := <-res:
			t.Fatalf("the request to a member that still accepts connections ended before it answered: %v", r.err)
		}
	}
	m.proto.Root.Send(env.Sender, &wire.CommandReply{Version: 7})
	r := <-res
	if r.err != nil || r.ranLocally {
		t.Fatalf("the leaver's reply: ran locally %v, err %v; want its success", r.ranLocally, r.err)
	}
}

// A state read pending to a member that died is placed again, on the new
// owner: a read changes nothing.
func TestPending_StateReadIsPlacedAgain(t *testing.T) {
	m, hole := pendingMember(t, func(string) bool { return false })
	id := peerOwned(t, m)
	out := make(chan commandResult, 1)
	go func() {
		_, ran, err := m.State(context.Background(), "k", id, false, 0, func(context.Context) error { return nil })
		out <- commandResult{ran, err}
	}()
	<-hole.got
	dropPeer(m)
	if r := <-out; r.err != nil || !r.ranLocally {
		t.Fatalf("state read after its member died: ran locally %v, err %v; want it read on the new owner", r.ranLocally, r.err)
	}
}

// The set keeps no target for an address out of the view, and hands over
// only the dropped targets that have requests pending.
func TestPendingSet_BeginAndDropped(t *testing.T) {
	var p pendingSet
	in := map[string]bool{"a": true, "b": true}
	inView := func(addr string) bool { return in[addr] }
	if _, ok := p.begin("c", inView); ok {
		t.Fatal("a request to an address out of the view was registered (it must not be sent)")
	}
	ta, _ := p.begin("a", inView)
	tb, _ := p.begin("b", inView)
	p.end(tb)
	in = map[string]bool{}
	got := p.dropped(inView)
	if len(got) != 1 || got["a"] != ta {
		t.Fatalf("dropped: %v; want only a (b has nothing pending)", got)
	}
	if len(p.byAddr) != 0 {
		t.Fatalf("targets kept after the drop: %v", p.byAddr)
	}
}

// A request refused as not delivered waits its backoff before it is placed
// again, but a new view ends the wait: the retry goes to the owner in the
// new view at once. Here the backoff (5 min at least) outlasts the
// caller's context (30 s): without the wake the command is not delivered.
func TestRequestLoop_NewViewEndsTheBackoff(t *testing.T) {
	m, hole := pendingMember(t, func(string) bool { return true })
	m.cfg.RetryBackoff, m.cfg.MaxRetryBackoff = 10*time.Minute, 10*time.Minute
	id := peerOwned(t, m)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out := make(chan commandResult, 1)
	go func() {
		_, ran, err := m.Command(ctx, "k", id, "cmd-1", []byte("cmd"), func(context.Context) error { return nil })
		out <- commandResult{ran, err}
	}()
	env := <-hole.got
	m.proto.Root.Send(env.Sender, &wire.CommandReply{Code: wire.Code_NOT_OWNER, Message: "not the owner"})
	dropPeer(m) // this member owns the id now
	if r := <-out; r.err != nil || !r.ranLocally {
		t.Fatalf("after a new view: ran locally %v, err %v; want the retry run at once by the new owner", r.ranLocally, r.err)
	}
}
