package cluster

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	proto "github.com/asynkron/protoactor-go/actor"

	"github.com/orchestrix/orchestrix"
	"github.com/orchestrix/orchestrix/cluster/internal/wire"
)

// A request's reply slot hands the request loop its reply, tells a dead
// letter (nothing was executed: not delivered) from a reply, ends in an
// unknown outcome when no reply comes in time, and is unregistered once
// the request ended, so a late reply reaches no one.
func TestRequest_ReplySlot(t *testing.T) {
	m, hole := pendingMember(t, func(string) bool { return true })
	type out struct {
		v   any
		a   attempt
		err error
	}
	send := func(ctx context.Context) (<-chan out, *proto.MessageEnvelope) {
		ch := make(chan out, 1)
		go func() {
			v, a, err := m.request(ctx, peerAddr, &wire.StateRequest{Kind: "k", AggregateId: "x"})
			ch <- out{v, a, err}
		}()
		return ch, <-hole.got
	}
	ctx := context.Background()

	ch, env := send(ctx)
	m.root().Send(env.Sender, &wire.StateReply{Version: 7})
	r := <-ch
	if sr, ok := r.v.(*wire.StateReply); r.err != nil || r.a != delivered || !ok || sr.GetVersion() != 7 {
		t.Fatalf("a reply: got %#v, %v, %v; want the reply, delivered", r.v, r.a, r.err)
	}
	if _, ok := m.proto.ProcessRegistry.Get(env.Sender); ok {
		t.Fatalf("the reply slot %v is still registered after its request ended", env.Sender)
	}
	m.root().Send(env.Sender, &wire.StateReply{Version: 8}) // late: goes to dead letters, harmlessly

	ch, env = send(ctx)
	m.root().Send(env.Sender, &proto.DeadLetterResponse{Target: env.Sender})
	if r := <-ch; r.a != notDelivered || r.err == nil || errors.Is(r.err, orchestrix.ErrOutcomeUnknown) {
		t.Fatalf("a dead letter: got %v, %v; want not delivered, not an unknown outcome", r.a, r.err)
	}

	// The caller's context ends once the request was sent (a short
	// deadline instead could pass before it is sent on a loaded machine,
	// and then nothing is sent at all).
	tctx, cancel := context.WithCancel(ctx)
	ch, env = send(tctx)
	cancel()
	if r := <-ch; r.a != unknown || !errors.Is(r.err, orchestrix.ErrOutcomeUnknown) {
		t.Fatalf("no reply in time: got %v, %v; want an unknown outcome", r.a, r.err)
	}
	if _, ok := m.proto.ProcessRegistry.Get(env.Sender); ok {
		t.Fatalf("the reply slot %v is still registered after its request timed out", env.Sender)
	}
}

// The workers pool runs every task, concurrently: a task that blocks
// does not hold up the next one, however many block, and a worker that
// went idle takes new tasks.
func TestWorkers_RunConcurrentlyAndReuse(t *testing.T) {
	done := make(chan struct{})
	defer close(done)
	w := newWorkers(time.Minute, done)
	const n = 50
	release := make(chan struct{})
	var started, finished sync.WaitGroup
	started.Add(n)
	finished.Add(n)
	for range n {
		w.run(func() {
			started.Done()
			<-release
			finished.Done()
		})
	}
	started.Wait() // all n run at once: none waits for another to end
	close(release)
	finished.Wait()
	ran := make(chan struct{})
	w.run(func() { close(ran) })
	<-ran
}
