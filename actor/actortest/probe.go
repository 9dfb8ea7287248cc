package actortest

import (
	"fmt"
	"sync"
	"testing"
	"time"

	proto "github.com/asynkron/protoactor-go/actor"
)

// Probe is an actor that records the user messages it receives so a test
// can assert on them. Send messages to PID from any protoactor-go actor or
// context of the same actor system. Lifecycle messages (Started, Stopping,
// …) are not recorded.
type Probe struct {
	t    testing.TB
	sys  *proto.ActorSystem
	pid  *proto.PID
	mu   sync.Mutex
	q    []any
	wake chan struct{}
}

// NewProbe spawns a probe in sys; it is stopped when the test ends.
func NewProbe(t testing.TB, sys *proto.ActorSystem) *Probe {
	t.Helper()
	p := &Probe{t: t, sys: sys, wake: make(chan struct{}, 1)}
	p.pid = sys.Root.Spawn(proto.PropsFromFunc(p.receive))
	t.Cleanup(func() { sys.Root.Stop(p.pid) })
	return p
}

func (p *Probe) receive(c proto.Context) {
	switch c.Message().(type) {
	case *proto.Started, *proto.Stopping, *proto.Stopped, *proto.Restarting, proto.AutoReceiveMessage, proto.SystemMessage:
		return
	}
	p.mu.Lock()
	p.q = append(p.q, c.Message())
	p.mu.Unlock()
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// PID returns the probe's PID.
func (p *Probe) PID() *proto.PID { return p.pid }

// Receive returns the next message, waiting up to timeout; ok is false
// when none arrived.
func (p *Probe) Receive(timeout time.Duration) (msg any, ok bool) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		p.mu.Lock()
		if len(p.q) > 0 {
			msg = p.q[0]
			p.q[0] = nil
			p.q = p.q[1:]
			p.mu.Unlock()
			return msg, true
		}
		p.mu.Unlock()
		select {
		case <-p.wake:
		case <-deadline.C:
			return nil, false
		}
	}
}

// ExpectMsg waits up to timeout for the next message and fails the test
// unless it is a T, which it returns.
func ExpectMsg[T any](p *Probe, timeout time.Duration) T {
	p.t.Helper()
	var zero T
	msg, ok := p.Receive(timeout)
	if !ok {
		p.t.Fatalf("actortest: no message within %v, want %T", timeout, zero)
		return zero
	}
	v, ok := msg.(T)
	if !ok {
		p.t.Fatalf("actortest: got message %T (%+v), want %T", msg, msg, zero)
	}
	return v
}

// ExpectNoMsg fails the test if a message arrives within d.
func (p *Probe) ExpectNoMsg(d time.Duration) {
	p.t.Helper()
	if msg, ok := p.Receive(d); ok {
		p.t.Fatalf("actortest: got unexpected message %T (%+v) within %v", msg, msg, d)
	}
}

// FishForMsg discards messages until match reports true for one, which it
// returns; it fails the test when none matches within timeout.
func (p *Probe) FishForMsg(timeout time.Duration, match func(msg any) bool) any {
	p.t.Helper()
	deadline := time.Now().Add(timeout)
	var skipped []string
	for {
		left := time.Until(deadline)
		if left <= 0 {
			break
		}
		msg, ok := p.Receive(left)
		if !ok {
			break
		}
		if match(msg) {
			return msg
		}
		if len(skipped) < 10 {
			skipped = append(skipped, fmt.Sprintf("%T", msg))
		}
	}
	p.t.Fatalf("actortest: no matching message within %v (skipped %v)", timeout, skipped)
	return nil
}
