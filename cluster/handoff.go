package cluster

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	protocluster "github.com/asynkron/protoactor-go/cluster"

	"github.com/orchestrix/orchestrix/cluster/internal/wire"
	"github.com/orchestrix/orchestrix/internal/clusterseam"
)

// This file keeps one activation per id across view changes:
//
//   - On every view change a member publishes its new view at once (its
//     admission check refuses what it no longer owns from then on) and
//     releases, in the background, the activations it no longer owns:
//     their in-flight appends finish, queued commands are refused
//     (clusterseam.ErrReleased, re-placed by the caller).
//   - It then runs a handoff round: it asks every other member of its new
//     view to release the ids it owns in that view (wire.HandoffRequest
//     carrying the view) and waits, up to Config.HandoffTimeout, for each
//     acknowledgement, sent once that member's released activations have
//     stopped. A member that grants a handoff refuses those ids, and sends
//     its own callers for them to the requester, until its own view
//     changes.
//   - Until the round ends it serves only the ids it already owned in the
//     previous view (when that view's round succeeded); commands for the
//     ids it gained wait for the round. If the round does not complete in
//     time (a member did not answer), it serves them anyway: the journal's
//     expected-version check is then the only fence.
//
// The admission check (Admit, run by package actor under the routing lock
// under which Release sends its stops) makes this exact on the member
// itself: a command admitted under the old view is in the mailbox before
// the release's stop, and so is drained by it; one routed after is checked
// against the new view.

// errNotServing is what Admit refuses with: nothing was executed.
var errNotServing = fmt.Errorf("cluster: this member does not serve the id now: %w", clusterseam.ErrReleased)

// Admit implements clusterseam.Admitter: this member routes a command or
// state read to an activation of kind/id only when it owns the id in its
// current view and may serve it (the view's handoff round has ended, or it
// already owned the id before).
func (m *Member) Admit(kind, id string) error {
	if m.isOut() {
		return errNotServing
	}
	if gap, paused := m.f.stale(); paused {
		// Checked here, on the serving path itself: a request read right
		// after the process resumes is refused before the ticker runs.
		m.selfFence("paused", fmt.Sprintf("paused: no tick for %v (PauseThreshold %v)", gap.Round(time.Millisecond), m.cfg.PauseThreshold))
		return errNotServing
	}
	v := m.cur.Load()
	if v == nil || !v.owns(kind, id) || !v.ready(kind, id) {
		return errNotServing
	}
	if !m.leaseHolds(v) {
		// No majority confirmed this member within ConfirmLease: its
		// peers may serve its ids now (confirm.go).
		m.checkLease()
		return errNotServing
	}
	return nil
}

var _ clusterseam.Admitter = (*Member)(nil)

// await waits until this member may serve kind/id, which it owns, or ctx
// ends: the current view's handoff round must have ended unless the member
// already owned the id before.
func (m *Member) await(ctx context.Context, kind, id string) error {
	v := m.cur.Load()
	if v == nil || !v.owns(kind, id) || v.ready(kind, id) {
		return nil // Admit decides
	}
	select {
	case <-v.ep.settled:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// onTopology publishes the view of a new topology and starts its release
// and handoff round. It runs on protoactor-go's event stream.
func (m *Member) onTopology(t *protocluster.ClusterTopology) {
	m.cfg.Logger.Info("cluster: topology changed", "members", len(t.Members),
		"joined", len(t.Joined), "left", len(t.Left))
	m.metrics.ClusterTopology(len(t.Members))
	if reason, below := belowMajority(len(t.Members), m.cfg.ExpectedMembers); below && m.f.trigger(reason) {
		m.metrics.ClusterSelfFence("majority")
		m.cfg.Logger.Warn("cluster: self-fenced: this member serves nothing until it has a fresh view", "reason", reason)
	}
	m.changeView(func(old *view, n uint64) *view {
		pl := newPlacement(peersOf(t.Members))
		var nv *view
		if old == nil {
			nv = &view{self: m.proto.Address(), pl: pl, ep: newEpoch(n)}
		} else {
			nv = old.next(n, pl)
		}
		nv.out = m.isOut()
		return nv
	})
}

func newEpoch(n uint64) *epoch { return &epoch{n: n, settled: make(chan struct{})} }

// changeView publishes the view change returns (given the current view,
// nil before the first, and the new epoch's number) and starts, in the
// background, the release of the ids this member no longer owns and the
// new epoch's handoff round.
func (m *Member) changeView(change func(old *view, n uint64) *view) *view {
	m.vmu.Lock()
	if m.closing {
		m.vmu.Unlock()
		return nil
	}
	m.epochs++
	nv := change(m.cur.Load(), m.epochs)
	m.cur.Store(nv)
	m.endDropped() // after the store: a request begun from now on sees nv
	m.views.notify()
	m.wg.Add(2)
	m.vmu.Unlock()
	if m.singles != nil {
		m.singles.pokeAll() // a fence, its lift or a leave moves singletons too
	}
	go func() {
		defer m.wg.Done()
		ctx, cancel := context.WithTimeout(m.bg, m.cfg.RequestTimeout)
		defer cancel()
		_, _ = m.releaseUnowned(ctx, "view change")
	}()
	go func() {
		defer m.wg.Done()
		ok := false
		if !nv.out {
			ok = m.handoffRound(nv)
		}
		nv.ep.ok.Store(ok)
		close(nv.ep.settled)
	}()
	return nv
}

// releaseUnowned stops the activations of the ids this member does not
// own in its current view, and waits until their in-flight appends have
// finished or ctx ends. It returns how many it stopped.
func (m *Member) releaseUnowned(ctx context.Context, why string) (int, error) {
	total := 0
	var errs []error
	for name, k := range m.kinds {
		n, err := k.Release(ctx, func(id string) bool {
			v := m.cur.Load()
			return v != nil && v.owns(name, id)
		})
		total += n
		if err != nil {
			errs = append(errs, err)
			m.cfg.Logger.Warn("cluster: releasing activations did not finish", "kind", name, "why", why, "error", err)
		}
	}
	if total > 0 {
		m.cfg.Logger.Info("cluster: released activations", "count", total, "why", why)
	}
	return total, errors.Join(errs...)
}

// handoffRound asks every other member of v to release the ids this member
// owns in v, and reports whether each acknowledged it (knowing this member)
// within HandoffTimeout.
func (m *Member) handoffRound(v *view) bool {
	req := &wire.HandoffRequest{MemberId: m.memberID(v), Address: v.self, Members: v.ownPlacement().wire(), Epoch: v.ep.n}
	ctx, cancel := context.WithTimeout(m.bg, m.cfg.HandoffTimeout)
	defer cancel()
	var wg sync.WaitGroup
	var failed atomic.Bool
	for _, p := range v.others() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := m.handoff(ctx, p.addr, req); err != nil {
				failed.Store(true)
				m.cfg.Logger.Warn("cluster: handoff not acknowledged; the journal's version check fences the ids gained from it",
					"member", p.addr, "epoch", v.ep.n, "error", err)
			}
		}()
	}
	wg.Wait()
	return !failed.Load()
}

// handoff sends req to the member at addr until it acknowledges it as a
// member of its view, or ctx ends.
func (m *Member) handoff(ctx context.Context, addr string, req *wire.HandoffRequest) error {
	backoff := m.cfg.RetryBackoff
	for {
		asked := m.asking(addr)
		v, _, err := m.request(ctx, addr, req)
		if err == nil {
			r, ok := v.(*wire.HandoffReply)
			if ok {
				m.noteFeatures(addr, asked, r)
			}
			switch {
			case !ok:
				err = fmt.Errorf("cluster: member %s answered %T", addr, v)
			case r.GetKnown():
				return nil
			default:
				err = fmt.Errorf("cluster: member %s does not count this member yet", addr)
			}
		}
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return err
		case <-t.C:
		}
		backoff = min(2*backoff, m.cfg.MaxRetryBackoff)
	}
}

// serveHandoff grants a handoff to a member of this member's view: it
// releases the ids that member owns in its own view, refuses them until
// this member's view changes, and answers once the released activations
// have stopped. A request from a member outside this member's view is
// refused (known false): a member its peers do not count must not take
// ids from them.
func (m *Member) serveHandoff(req *wire.HandoffRequest) *wire.HandoffReply {
	if isProbe(req) {
		return m.serveConfirm(req) // confirm.go
	}
	m.vmu.Lock()
	v := m.cur.Load()
	addr := ""
	if v != nil {
		for _, p := range v.pl {
			if p.id == req.GetMemberId() {
				addr = p.addr
			}
		}
	}
	if addr == "" || m.closing {
		m.vmu.Unlock()
		return &wire.HandoffReply{Known: false, Features: m.features()}
	}
	m.cur.Store(v.withClaim(claim{id: req.GetMemberId(), addr: addr, epoch: req.GetEpoch(), pl: placementOf(req.GetMembers())}))
	m.views.notify() // callers waiting to place an id again may find it placed there now
	m.vmu.Unlock()
	ctx, cancel := context.WithTimeout(m.bg, m.cfg.RequestTimeout)
	defer cancel()
	n, _ := m.releaseUnowned(ctx, "handoff to "+addr)
	return &wire.HandoffReply{Known: true, Released: int32(n), Features: m.features()}
}

// ownPlacement is the placement v places ids by, as sent in a handoff:
// without the leavers, and with this member (a handoff round runs only
// while it takes ids).
func (v *view) ownPlacement() placement {
	pl := make(placement, 0, len(v.pl))
	for _, p := range v.pl {
		if p.addr == v.self || !slices.Contains(v.left, p.id) {
			pl = append(pl, p)
		}
	}
	return pl
}
