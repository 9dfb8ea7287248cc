package cluster

import (
	"context"
	"log/slog"
	"testing"
	"time"

	proto "github.com/asynkron/protoactor-go/actor"

	"github.com/orchestrix/orchestrix/cluster/internal/wire"
	"github.com/orchestrix/orchestrix/internal/clusterseam"
)

// gateKind is a kind whose command "block" runs until gate is closed and
// whose other commands return at once.
type gateKind struct {
	clusterseam.Kind
	gate    chan struct{}
	blocked chan struct{}
}

func (k gateKind) ServeCommand(ctx context.Context, data []byte) (clusterseam.CommandReply, error) {
	if string(data) == "block" {
		close(k.blocked)
		select {
		case <-k.gate:
		case <-ctx.Done():
			return clusterseam.CommandReply{}, ctx.Err()
		}
		return clusterseam.CommandReply{Version: 1}, nil
	}
	return clusterseam.CommandReply{Version: 2}, nil
}

// The request actor hands every request to a goroutine of its own: a
// command that takes long (a slow append, a recovery) must not hold up
// the requests behind it. This member owns every id (it is the only
// member in its view); no network is involved.
func TestServer_SlowCommand_DoesNotHoldUpOthers(t *testing.T) {
	sys := proto.NewActorSystem()
	defer sys.Shutdown()
	k := gateKind{gate: make(chan struct{}), blocked: make(chan struct{})}
	m := soloMember(t, sys, "k", k)
	pid := sys.Root.Spawn(proto.PropsFromProducer(func() proto.Actor { return &server{m: m} }))

	slow := sys.Root.RequestFuture(pid, &wire.CommandRequest{Kind: "k", AggregateId: "a", Command: []byte("block")}, time.Minute)
	<-k.blocked
	fast := sys.Root.RequestFuture(pid, &wire.CommandRequest{Kind: "k", AggregateId: "b", Command: []byte("go")}, 30*time.Second)
	v, err := fast.Result()
	if err != nil {
		close(k.gate)
		t.Fatalf("a second request got no reply while the first was still running (%v): the request actor serves one request at a time", err)
	}
	if r, ok := v.(*wire.CommandReply); !ok || r.GetCode() != wire.Code_OK || r.GetVersion() != 2 {
		t.Fatalf("reply to the second request: %#v", v)
	}
	close(k.gate)
	v, err = slow.Result()
	if r, ok := v.(*wire.CommandReply); err != nil || !ok || r.GetVersion() != 1 {
		t.Fatalf("reply to the slow request: %#v, %v", v, err)
	}
}

// soloMember is a member on sys that is the only member of its view and
// hosts kind, served by k: it owns every id of kind, and no network is
// involved. Its background work stops when the test ends.
func soloMember(t testing.TB, sys *proto.ActorSystem, kind string, k clusterseam.Kind) *Member {
	t.Helper()
	cfg := Config{RequestTimeout: time.Minute, Logger: slog.Default()}.withDefaults()
	c := &manualClock{}
	m := &Member{cfg: cfg, proto: sys, kinds: map[string]clusterseam.Kind{kind: k},
		f: newFence(c.now, cfg.PauseThreshold, cfg.SettlePeriod)}
	m.bg, m.stopBG = context.WithCancel(context.Background())
	t.Cleanup(m.stopBG)
	m.work = newWorkers(time.Minute, m.bg.Done())
	ep := newEpoch(1)
	ep.ok.Store(true)
	close(ep.settled)
	m.cur.Store(&view{self: m.addr(), pl: newPlacement([]peer{{id: "self", addr: m.addr(), kinds: []string{kind}}}), ep: ep})
	return m
}
