package cluster

import (
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// This file ends the requests pending to a member that died, at once,
// instead of letting each wait its RequestTimeout.
//
// protoactor-go's remote endpoint at the pinned version gives a request
// to a dead member no answer: the writer for that address tries to
// connect remote.Config.MaxRetryCount (5) times, sleeping 2 s inside the
// actor after each failure, while the requests queued behind it wait (they
// become dead letters only after the last attempt, ~10 s). So this member
// tracks its pending requests per target address, and when its view drops
// an address (the membership provider no longer lists that member) whose
// remote endpoint no longer accepts connections, it ends every request
// pending there with orchestrix.ErrOutcomeUnknown: the request may have
// been delivered and executed before the member died, so it is never a
// success and never retried automatically. Requests placed afterwards find
// the address out of the view: they are not sent (not delivered) and are
// placed again, on the new owner.
//
// A member that leaves gracefully (Shutdown) deregisters first, so its
// peers can drop it from their views while it still finishes and answers
// the requests it received; its endpoint accepts connections until it has
// answered them, so those requests are not ended: they get their replies.
// While an address out of the view still accepts connections and requests
// remain pending there, it is probed again every RefreshTTL.

// errMemberGone is wrapped by the error of a request ended because its
// target left this member's view and stopped accepting connections.
var errMemberGone = errors.New("cluster: the member left the view and its endpoint refuses connections")

// target holds the requests pending at one member address while that
// address is in this member's view.
type target struct {
	gone    chan struct{} // closed: every request pending here ends
	pending atomic.Int64
}

// pendingSet tracks the requests pending per target address.
type pendingSet struct {
	mu     sync.Mutex
	byAddr map[string]*target
}

// begin registers a request to addr, unless addr is not in inView (the
// view current under the lock): then nothing may be sent there.
func (p *pendingSet) begin(addr string, inView func(addr string) bool) (*target, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !inView(addr) {
		return nil, false
	}
	if p.byAddr == nil {
		p.byAddr = map[string]*target{}
	}
	t := p.byAddr[addr]
	if t == nil {
		t = &target{gone: make(chan struct{})}
		p.byAddr[addr] = t
	}
	t.pending.Add(1)
	return t, true
}

// end unregisters a request begun on t.
func (p *pendingSet) end(t *target) { t.pending.Add(-1) }

// dropped removes and returns the targets whose address is no longer in
// inView (the view just published) and that have requests pending. It
// must run after the view is published, so that a request begun after it
// sees the new view; targets with nothing pending are just forgotten.
func (p *pendingSet) dropped(inView func(addr string) bool) map[string]*target {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out map[string]*target
	for addr, t := range p.byAddr {
		if inView(addr) {
			continue
		}
		delete(p.byAddr, addr)
		if t.pending.Load() > 0 {
			if out == nil {
				out = map[string]*target{}
			}
			out[addr] = t
		}
	}
	return out
}

// inView reports whether addr is a member of this member's current view
// (leavers included: a member that announced its leave still answers what
// it received).
func (m *Member) inView(addr string) bool {
	v := m.cur.Load()
	return v != nil && v.pl.hasAddr(addr)
}

// endDropped runs after a view change: the requests pending to each
// member the new view dropped are ended as soon as that member's endpoint
// refuses connections. It must be called under vmu, after the new view
// is published, and while the member is not closing.
func (m *Member) endDropped() {
	for addr, t := range m.pending.dropped(m.inView) {
		m.wg.Add(1)
		go func() {
			defer m.wg.Done()
			m.awaitGone(addr, t)
		}()
	}
}

// awaitGone ends the requests pending on t once the member at addr no
// longer accepts connections, probing it every RefreshTTL while requests
// are still pending there; it stops when none are left, when addr is back
// in the view (a member restarted at the same address: the requests to
// the old one then wait for their timeout), or when this member closes.
func (m *Member) awaitGone(addr string, t *target) {
	for t.pending.Load() > 0 && !m.inView(addr) {
		if !m.accepts(addr) {
			m.cfg.Logger.Info("cluster: ending the requests pending to a member that left the view and refuses connections",
				"member", addr, "pending", t.pending.Load())
			close(t.gone)
			return
		}
		tm := time.NewTimer(m.cfg.RefreshTTL)
		select {
		case <-m.bg.Done():
			tm.Stop()
			return
		case <-tm.C:
		}
	}
}

// accepts reports whether the remote endpoint at addr accepts a TCP
// connection within a second (or RequestTimeout, when shorter). A member
// killed on a host that is up refuses at once; an unreachable host does
// not answer in time.
func (m *Member) accepts(addr string) bool {
	if m.probe != nil {
		return m.probe(addr)
	}
	c, err := net.DialTimeout("tcp", addr, min(time.Second, m.cfg.RequestTimeout))
	if err != nil {
		return false
	}
	_ = c.Close()
	return true
}

// viewChanges lets the request loop wait for the next view this member
// publishes: a request that was not delivered (not the owner, a handoff
// under way, its owner just left) is placed again as soon as the view
// changes, instead of sleeping out its backoff. A handoff granted to
// another member counts: that member's view changed, and this member now
// sends it the ids it claimed.
type viewChanges struct {
	mu sync.Mutex
	ch chan struct{}
}

// next returns a channel closed when the next view is published; take it
// before the attempt whose failure it should cut short.
func (n *viewChanges) next() <-chan struct{} {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.ch == nil {
		n.ch = make(chan struct{})
	}
	return n.ch
}

func (n *viewChanges) notify() {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.ch != nil {
		close(n.ch)
		n.ch = nil
	}
}
