package cluster

import (
	"context"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	proto "github.com/asynkron/protoactor-go/actor"

	"github.com/orchestrix/orchestrix/actor/actortest"
	"github.com/orchestrix/orchestrix/cluster/internal/wire"
	"github.com/orchestrix/orchestrix/internal/clusterseam"
)

// heldKind serves commands asynchronously: "now" is answered at once (as
// a command run inline), any other command is handed to the test on held
// and answered when the test calls its done.
type heldKind struct {
	clusterseam.Kind
	held chan heldCommand
}

type heldCommand struct {
	data string
	done func(clusterseam.Outcome)
}

func (k heldKind) ServeCommandAsync(data []byte, done func(clusterseam.Outcome)) {
	if string(data) == "now" {
		done(versionOutcome(100))
		return
	}
	k.held <- heldCommand{data: string(data), done: done}
}

func versionOutcome(v uint64) clusterseam.Outcome {
	return func() (clusterseam.CommandReply, error) { return clusterseam.CommandReply{Version: v}, nil }
}

// asyncServer is a solo member serving kind "k" with a heldKind, its
// request actor, a capture for its replies, and the manual clock that
// times the hold of batch replies.
func asyncServer(t *testing.T) (*Member, heldKind, *proto.PID, *proto.PID, capture, *actortest.ManualClock) {
	sys := proto.NewActorSystem()
	t.Cleanup(sys.Shutdown)
	k := heldKind{held: make(chan heldCommand, 16)}
	m := soloMember(t, sys, "k", k)
	clock := actortest.NewManualClock(time.Unix(0, 0))
	m.replyClock = clock
	srv := sys.Root.Spawn(proto.PropsFromProducer(func() proto.Actor { return &server{m: m} }))
	cp := capture{got: make(chan any, 16)}
	from, _ := sys.ProcessRegistry.Add(cp, "capture")
	return m, k, srv, from, cp, clock
}

// held waits for n commands handed to the test, by data.
func held(t *testing.T, k heldKind, n int) map[string]heldCommand {
	t.Helper()
	out := map[string]heldCommand{}
	for len(out) < n {
		select {
		case c := <-k.held:
			out[c.data] = c
		case <-time.After(time.Minute):
			t.Fatalf("%d of %d commands reached the kind", len(out), n)
		}
	}
	return out
}

func nextBatchReply(t *testing.T, cp capture) *wire.CommandBatchReply {
	t.Helper()
	select {
	case v := <-cp.got:
		r, ok := v.(*wire.CommandBatchReply)
		if !ok {
			t.Fatalf("answered %T", v)
		}
		return r
	case <-time.After(time.Minute):
		t.Fatal("no reply")
		return nil
	}
}

// seqs returns the seqs of r's replies, sorted.
func seqs(r *wire.CommandBatchReply) []uint32 {
	var s []uint32
	for _, rep := range r.GetReplies() {
		s = append(s, rep.GetSeq())
	}
	slices.Sort(s)
	return s
}

// A batch whose commands all finish within the hold is answered by one
// CommandBatchReply carrying every command's reply once, under its seq:
// commands answered later from other goroutines, one answered at once,
// one refused by the ownership check (a kind not hosted here).
func TestServer_BatchAnsweredInOneMessage(t *testing.T) {
	m, k, srv, from, cp, _ := asyncServer(t)
	m.root().RequestWithCustomSender(srv, &wire.CommandBatch{Commands: []*wire.CommandRequest{
		{Kind: "k", AggregateId: "a", Command: []byte("1"), Seq: 1},
		{Kind: "k", AggregateId: "b", Command: []byte("now"), Seq: 2},
		{Kind: "k", AggregateId: "c", Command: []byte("3"), Seq: 3},
		{Kind: "other", AggregateId: "d", Command: []byte("4"), Seq: 4},
		{Kind: "k", AggregateId: "e", Command: []byte("5"), Seq: 5},
	}}, from)
	h := held(t, k, 3)
	for _, d := range []string{"5", "1", "3"} {
		go h[d].done(versionOutcome(uint64(d[0] - '0')))
	}
	r := nextBatchReply(t, cp)
	if got := seqs(r); !slices.Equal(got, []uint32{1, 2, 3, 4, 5}) {
		t.Fatalf("the batch's reply carries seqs %v; want each of 1-5 once", got)
	}
	for _, rep := range r.GetReplies() {
		want := fmt.Sprint(rep.GetSeq())
		switch rep.GetSeq() {
		case 2:
			want = "100"
		case 4:
			if rep.GetCode() != wire.Code_UNKNOWN_KIND {
				t.Fatalf("reply to a command of a kind not hosted here: %v", rep)
			}
			continue
		}
		if rep.GetCode() != wire.Code_OK || fmt.Sprint(rep.GetVersion()) != want {
			t.Fatalf("reply %v; want OK, version %s", rep, want)
		}
	}
	m.serving.Wait()
	if n := len(cp.got); n != 0 {
		t.Fatalf("%d more messages after the batch's reply", n)
	}
}

// A slow command does not hold the others' replies past the hold: once it
// has passed, what is ready goes; the slow one follows alone. Serving
// ends (what a graceful leave waits for) only once the slow command is
// answered.
func TestServer_SlowCommandHoldsTheOthersAtMostTheBound(t *testing.T) {
	m, k, srv, from, cp, clock := asyncServer(t)
	m.root().RequestWithCustomSender(srv, &wire.CommandBatch{Commands: []*wire.CommandRequest{
		{Kind: "k", AggregateId: "a", Command: []byte("fast1"), Seq: 1},
		{Kind: "k", AggregateId: "b", Command: []byte("slow"), Seq: 2},
		{Kind: "k", AggregateId: "c", Command: []byte("fast3"), Seq: 3},
	}}, from)
	h := held(t, k, 3)
	h["fast1"].done(versionOutcome(1))
	h["fast3"].done(versionOutcome(3))
	if n := len(cp.got); n != 0 {
		t.Fatalf("%d messages sent before the hold passed", n)
	}
	clock.Advance(maxReplyHold)
	if got := seqs(nextBatchReply(t, cp)); !slices.Equal(got, []uint32{1, 3}) {
		t.Fatalf("once the hold passed: replies %v; want the two fast ones (1, 3) together", got)
	}

	served := servingEnds(m)
	stillServing(t, served, "a command still in flight")
	h["slow"].done(versionOutcome(2))
	if got := seqs(nextBatchReply(t, cp)); !slices.Equal(got, []uint32{2}) {
		t.Fatalf("then: replies %v; want the slow one (2)", got)
	}
	servingEnded(t, served, "every command was answered")
}

// servingEnds returns a channel closed once m serves no request.
func servingEnds(m *Member) <-chan struct{} {
	served := make(chan struct{})
	go func() {
		m.serving.Wait()
		close(served)
	}()
	return served
}

// stillServing fails the test if served is closed already (with what
// still due).
func stillServing(t *testing.T, served <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-served:
		t.Fatalf("serving ended with %s", what)
	default:
	}
}

// servingEnded waits for served (at most a minute) once what happened.
func servingEnded(t *testing.T, served <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-served:
	case <-time.After(time.Minute):
		t.Fatalf("serving did not end once %s", what)
	}
}

// A graceful leave with commands in flight: the request actor is drained
// (later batches are refused), and serving ends only once every command
// received before is answered, whichever goroutine answers it.
func TestServer_DrainWaitsForCommandsInFlight(t *testing.T) {
	m, k, srv, from, cp, _ := asyncServer(t)
	m.root().RequestWithCustomSender(srv, &wire.CommandBatch{Commands: []*wire.CommandRequest{
		{Kind: "k", AggregateId: "a", Command: []byte("1"), Seq: 1},
		{Kind: "k", AggregateId: "b", Command: []byte("2"), Seq: 2},
	}}, from)
	h := held(t, k, 2)
	if _, err := m.root().RequestFuture(srv, drainMsg{}, time.Minute).Result(); err != nil {
		t.Fatal(err)
	}
	served := servingEnds(m)
	m.root().RequestWithCustomSender(srv, &wire.CommandBatch{Commands: []*wire.CommandRequest{
		{Kind: "k", AggregateId: "c", Command: []byte("3"), Seq: 1}}}, from)
	if r := nextBatchReply(t, cp); len(r.GetReplies()) != 1 || r.GetReplies()[0].GetCode() != wire.Code_NOT_OWNER {
		t.Fatalf("a batch after the drain: %v; want NOT_OWNER", r)
	}
	stillServing(t, served, "commands still in flight")
	go h["1"].done(versionOutcome(1))
	go h["2"].done(versionOutcome(2))
	if got := seqs(nextBatchReply(t, cp)); !slices.Equal(got, []uint32{1, 2}) {
		t.Fatalf("replies %v; want 1 and 2", got)
	}
	servingEnded(t, served, "every command in flight was answered")
}

// The hold is half the time the batch's first reply took, within its
// bounds.
func TestReplyHold(t *testing.T) {
	for _, c := range []struct{ first, want time.Duration }{
		{0, minReplyHold}, {time.Millisecond, 500 * time.Microsecond}, {4 * time.Millisecond, 2 * time.Millisecond}, {time.Second, maxReplyHold},
	} {
		if got := replyHold(c.first); got != c.want {
			t.Errorf("replyHold(%v) = %v; want %v", c.first, got, c.want)
		}
	}
}

// ServeCommand serves the commands that take the per-command path (their
// ownership check waits for a handoff round).
func (k heldKind) ServeCommand(context.Context, []byte) (clusterseam.CommandReply, error) {
	return clusterseam.CommandReply{Version: 7}, nil
}

// Commands of ids this member gained in a handoff round still running wait
// for it, each on a worker of its own (the batch's task does not wait),
// and are answered under their seqs once the round ends.
func TestServer_BatchCommandsAwaitTheHandoff(t *testing.T) {
	m, k, srv, from, cp, _ := asyncServer(t)
	ep := newEpoch(2)
	ep.ok.Store(true) // not settled: a handoff round is running
	m.cur.Store(&view{self: m.addr(), pl: m.cur.Load().pl, ep: ep})
	m.root().RequestWithCustomSender(srv, &wire.CommandBatch{Commands: []*wire.CommandRequest{
		{Kind: "k", AggregateId: "a", Command: []byte("now"), Seq: 1},
		{Kind: "k", AggregateId: "b", Command: []byte("now"), Seq: 2},
	}}, from)
	// A later batch is not held up behind the waiting ones: the request
	// actor and the batch task go on (it refuses a kind not hosted here).
	m.root().RequestWithCustomSender(srv, &wire.CommandBatch{Commands: []*wire.CommandRequest{
		{Kind: "other", AggregateId: "c", Seq: 1}}}, from)
	if r := nextBatchReply(t, cp); len(r.GetReplies()) != 1 || r.GetReplies()[0].GetCode() != wire.Code_UNKNOWN_KIND {
		t.Fatalf("the later batch: %v; want its refusal while the first waits", r)
	}
	if len(k.held) != 0 {
		t.Fatal("a command reached the kind before the handoff round ended")
	}
	// The batch's task runs on a worker of its own: the later batch's
	// reply does not say it has checked its commands yet. Close the round
	// only once both wait in it (a check after the close would see the
	// round over and rightly take the asynchronous path).
	waitGoroutines(t, "cluster.(*Member).await(", 2)
	close(ep.settled)
	r := nextBatchReply(t, cp)
	if got := seqs(r); !slices.Equal(got, []uint32{1, 2}) {
		t.Fatalf("after the round: replies %v; want 1 and 2 together", got)
	}
	for _, rep := range r.GetReplies() {
		if rep.GetCode() != wire.Code_OK || rep.GetVersion() != 7 {
			t.Fatalf("reply %v; want OK from the per-command path (version 7)", rep)
		}
	}
}

// waitGoroutines waits until n goroutines have frame in their stacks.
func waitGoroutines(t *testing.T, frame string, n int) {
	t.Helper()
	buf := make([]byte, 1<<20)
	deadline := time.Now().Add(10 * time.Second)
	for {
		stacks := string(buf[:runtime.Stack(buf, true)])
		if strings.Count(stacks, frame) >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines in %s after 10 s, want %d", strings.Count(stacks, frame), frame, n)
		}
		time.Sleep(time.Millisecond)
	}
}
