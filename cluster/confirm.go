package cluster

import (
	"context"
	"fmt"
	"slices"
	"sync/atomic"
	"time"

	"github.com/orchestrix/orchestrix/cluster/internal/wire"
)

// This file is the peer confirmation: a serving member asks the other
// members of its view, every Config.ConfirmInterval, "do you still count
// me as a member?", and holds a lease that lasts Config.ConfirmLease from
// the moment it SENT the last round a majority confirmed. It serves (its
// admission check admits commands and state reads) only while that lease
// holds, and fences itself ("unconfirmed") once it has expired.
//
// Why from the send time: a peer that confirms answers at some moment
// after the round was sent; at that moment it counted this member. Had it
// dropped this member before the round was sent, it would have refused
// (automanaged blocks a member it dropped for good, so it never counts it
// again). So once a majority has stopped counting this member, every
// round sent afterwards fails, and the last confirmed round was sent
// before that moment: the lease, measured from that send time on this
// member's monotonic clock, ends at most ConfirmLease after the majority
// dropped it, however late the answers came. Measured from the answers'
// arrival it would not be bounded: a slow answer to an old round would
// extend it.
//
// The probe travels as a wire.HandoffRequest with epoch 0 and no members
// (a real handoff's epoch starts at 1): the receiver only says whether it
// counts the sender (HandoffReply.known), and releases nothing. A member
// of an older build, which does not know the convention, answers it as an
// empty handoff (known the same way; the empty claim it records moves no
// id), so members of both builds can run side by side during a
// rolling upgrade; a new message type would crash them (protoactor-go
// stops a member that receives a protobuf type it does not know).

// lease is the peer confirmation's state. Its clock is injected
// (monotonic time since some origin), so that its logic is tested without
// sleeping.
type lease struct {
	now    func() time.Duration
	length time.Duration
	// confirmed is 1 + now() at which the last round a majority
	// confirmed was sent; 0 before the first.
	confirmed atomic.Int64
	// since is now() when this member last began to serve (Start, or its
	// fence lifted): without a confirmation it fences only once length
	// has passed since then, so that a member is not fenced before its
	// first round could have been answered.
	since atomic.Int64
}

func newLease(now func() time.Duration, length time.Duration) *lease {
	l := &lease{now: now, length: length}
	l.since.Store(int64(now()))
	return l
}

// confirm records that a round sent at sent was confirmed by a majority.
// A round that ends after a later one keeps the later send time.
func (l *lease) confirm(sent time.Duration) {
	for {
		old := l.confirmed.Load()
		if old >= int64(sent)+1 || l.confirmed.CompareAndSwap(old, int64(sent)+1) {
			return
		}
	}
}

// restart starts the grace before a first confirmation again (the member
// begins to serve again).
func (l *lease) restart() { l.since.Store(int64(l.now())) }

// holds reports whether the last confirmed round was sent at most length
// ago, and how long ago it was sent (-1: never).
func (l *lease) holds() (time.Duration, bool) {
	c := l.confirmed.Load()
	if c == 0 {
		return -1, false
	}
	age := l.now() - time.Duration(c-1)
	return age, age <= l.length
}

// expired reports whether the member must fence: no round sent in the
// last length was confirmed, and length has passed since it began to
// serve.
func (l *lease) expired() bool {
	if _, ok := l.holds(); ok {
		return false
	}
	return l.now()-time.Duration(l.since.Load()) > l.length
}

// round asks every peer (ask reports whether that peer counts this
// member) and records the round's send time once need of them said yes;
// it reports whether they did. It returns as soon as the outcome is
// known, after the remaining asks have ended (ctx is cancelled for them).
func (l *lease) round(ctx context.Context, peers []string, need int, ask func(ctx context.Context, addr string) bool) bool {
	sent := l.now()
	if need <= 0 {
		l.confirm(sent)
		return true
	}
	if len(peers) < need {
		return false
	}
	ctx, cancel := context.WithCancel(ctx)
	answers := make(chan bool, len(peers))
	for _, p := range peers {
		go func() { answers <- ask(ctx, p) }()
	}
	yes, no, got := 0, 0, 0
	for ; got < len(peers) && yes < need && no <= len(peers)-need; got++ {
		if <-answers {
			yes++
		} else {
			no++
		}
	}
	ok := yes >= need
	if ok {
		l.confirm(sent)
	}
	cancel()
	for ; got < len(peers); got++ {
		<-answers
	}
	return ok
}

// needed is how many other members must confirm this member for v: a
// majority of Config.ExpectedMembers (of v's size when that is 0), this
// member included.
func (m *Member) needed(v *view) int {
	n := m.cfg.ExpectedMembers
	if n <= 0 {
		n = v.size()
	}
	return majority(n) - 1
}

// leaseHolds reports whether this member may serve under v: it needs no
// confirmation, or its lease holds. A Member without a lease (built by
// tests) needs none.
func (m *Member) leaseHolds(v *view) bool {
	if m.lease == nil || m.needed(v) <= 0 {
		return true
	}
	_, ok := m.lease.holds()
	return ok
}

// checkLease fences this member when it serves and its lease has expired.
func (m *Member) checkLease() {
	if m.lease == nil || m.isOut() {
		return
	}
	v := m.cur.Load()
	if v == nil || m.needed(v) <= 0 || !m.lease.expired() {
		return
	}
	if gap, paused := m.f.stale(); paused {
		// A pause explains the expired lease: say so (the ticker that
		// would see it may run after this one).
		m.selfFence("paused", fmt.Sprintf("paused: no tick for %v (PauseThreshold %v)", gap.Round(time.Millisecond), m.cfg.PauseThreshold))
		return
	}
	age, _ := m.lease.holds()
	last := "never"
	if age >= 0 {
		last = age.Round(time.Millisecond).String() + " ago"
	}
	m.selfFence("unconfirmed", fmt.Sprintf("unconfirmed: no majority of the members confirmed this member within ConfirmLease %v (last confirmed round sent %s)",
		m.cfg.ConfirmLease, last))
}

// confirmLoop runs a confirmation round every ConfirmInterval while this
// member serves, each bounded by ConfirmLease (an answer later than that
// cannot extend the lease), with at most maxRounds in flight, and fences
// the member when its lease expires.
func (m *Member) confirmLoop() {
	defer m.wg.Done()
	maxRounds := int32(m.cfg.ConfirmLease/m.cfg.ConfirmInterval) + 1
	var inFlight atomic.Int32
	t := time.NewTicker(m.cfg.ConfirmInterval)
	defer t.Stop()
	for {
		m.checkLease()
		if v := m.cur.Load(); v != nil && !m.isOut() && inFlight.Load() < maxRounds {
			inFlight.Add(1)
			m.wg.Add(1)
			go func() {
				defer m.wg.Done()
				defer inFlight.Add(-1)
				ctx, cancel := context.WithTimeout(m.bg, m.cfg.ConfirmLease)
				defer cancel()
				var addrs []string
				for _, p := range v.others() {
					addrs = append(addrs, p.addr)
				}
				m.lease.round(ctx, addrs, m.needed(v), m.askConfirm)
				m.checkLease()
			}()
		}
		select {
		case <-m.bg.Done():
			return
		case <-t.C:
		}
	}
}

// askConfirm asks the member at addr whether it counts this member.
func (m *Member) askConfirm(ctx context.Context, addr string) bool {
	req := &wire.HandoffRequest{MemberId: m.memberID(m.cur.Load()), Address: m.addr()} // epoch 0, no members: a probe
	asked := m.asking(addr)
	v, _, err := m.request(ctx, addr, req)
	if err != nil {
		return false
	}
	r, ok := v.(*wire.HandoffReply)
	if ok {
		m.noteFeatures(addr, asked, r)
	}
	return ok && r.GetKnown()
}

// memberID returns the id under which this member appears in v (found by
// its address): the peers know it by that id. It is protoactor-go's
// system id with automanaged, but etcd's provider names members
// "<cluster>@<system id>". Without v, or when v does not list it, the
// system id.
func (m *Member) memberID(v *view) string {
	if v != nil {
		for _, p := range v.pl {
			if p.addr == v.self {
				return p.id
			}
		}
	}
	return m.proto.ID
}

// isProbe reports whether req is a confirmation probe, not a handoff.
func isProbe(req *wire.HandoffRequest) bool {
	return req.GetEpoch() == 0 && len(req.GetMembers()) == 0
}

// serveConfirm answers a probe: known when the sender is a member of this
// member's current view (and has not announced a leave). It changes
// nothing.
func (m *Member) serveConfirm(req *wire.HandoffRequest) *wire.HandoffReply {
	v := m.cur.Load()
	id := req.GetMemberId()
	known := v != nil && v.pl.hasID(id) && !slices.Contains(v.left, id)
	return &wire.HandoffReply{Known: known, Features: m.features()}
}
