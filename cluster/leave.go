package cluster

import (
	"context"
	"errors"
	"fmt"
	"time"

	proto "github.com/asynkron/protoactor-go/actor"

	"github.com/orchestrix/orchestrix/cluster/internal/wire"
)

// flushLinger is how long Shutdown lets the remote endpoint send the last
// replies before it stops (protoactor-go's endpoint writers send in
// batches; a graceful stop of the endpoint manager does not flush them).
const flushLinger = 200 * time.Millisecond

// Shutdown leaves the cluster gracefully, so that callers on other members
// see no failed command:
//
//  1. it leaves itself out of its own placement (its own callers go to
//     the other members) and answers "not the owner" to new work, which
//     callers elsewhere place again;
//  2. it releases every activation: in-flight appends finish (and the
//     final snapshot is saved), commands queued behind them are refused
//     as not delivered;
//  3. it tells every other member it left (wire.LeaveRequest): each drops
//     it from its placement at once, without waiting for the provider, and
//     acknowledges;
//  4. it deregisters from the membership provider;
//  5. it answers the requests it had already received, then stops gossip
//     and the remote endpoint and detaches from the system, like Close.
//
// It deregisters after the others have dropped it, not first: a member
// that deregisters first is dropped by its peers' providers while it may
// still be draining (they would serve its ids with only the journal's
// version check between the two writers), and protoactor-go's peers then
// tear down their connections to it and block it, so their
// acknowledgements may not reach it.
//
// ctx bounds steps 2 and 3; when it ends first, Shutdown still leaves
// and returns an error matching ctx's. Call it on SIGTERM, then shut the
// actor.System down; commands sent through this system after Shutdown
// has returned run locally, as after Close. Calling Shutdown again, or
// after Close, only closes.
func (m *Member) Shutdown(ctx context.Context) error {
	if !m.leaving.CompareAndSwap(false, true) {
		return m.Close()
	}
	m.cfg.Logger.Info("cluster: leaving", "address", m.addr())
	var errs []error
	m.changeView(func(old *view, n uint64) *view {
		if old == nil {
			return &view{self: m.addr(), out: true, ep: newEpoch(n)}
		}
		nv := old.next(n, old.pl)
		nv.out = true
		return nv
	})
	m.singles.close() // stop and release them while still a member, so the next owner starts at once
	if _, err := m.releaseUnowned(ctx, "leaving"); err != nil {
		errs = append(errs, err)
	}
	if err := m.announceLeave(ctx); err != nil {
		errs = append(errs, err)
	}
	if err := m.c.Config.ClusterProvider.Shutdown(true); err != nil {
		errs = append(errs, fmt.Errorf("cluster: deregistering: %w", err))
	}
	m.drainServer()
	time.Sleep(flushLinger)
	_ = m.Close()
	m.cfg.Logger.Info("cluster: left", "address", m.addr())
	return errors.Join(errs...)
}

// announceLeave tells every other member of the view that this member
// left, and waits for their acknowledgements.
func (m *Member) announceLeave(ctx context.Context) error {
	v := m.cur.Load()
	if v == nil {
		return nil
	}
	req := &wire.LeaveRequest{MemberId: m.memberID(m.cur.Load()), Address: m.addr()}
	others := v.others()
	errc := make(chan error, len(others))
	for _, p := range others {
		go func() {
			_, _, err := m.request(ctx, p.addr, req)
			if err != nil {
				err = fmt.Errorf("cluster: telling %s this member left: %w", p.addr, err)
			}
			errc <- err
		}()
	}
	var errs []error
	for range others {
		if err := <-errc; err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// serveLeave drops a member that announced its graceful leave from this
// member's placement.
func (m *Member) serveLeave(req *wire.LeaveRequest) *wire.LeaveReply {
	if v := m.cur.Load(); v == nil || !v.pl.hasID(req.GetMemberId()) {
		return &wire.LeaveReply{}
	}
	m.cfg.Logger.Info("cluster: member left", "member", req.GetAddress())
	m.changeView(func(old *view, n uint64) *view {
		nv := old.next(n, old.pl)
		nv.left = append(nv.left, req.GetMemberId())
		nv.out = m.isOut()
		return nv
	})
	return &wire.LeaveReply{}
}

// drainMsg asks the request actor to answer everything from now on
// inline (refusing work), so that no request is handed to a goroutine
// after it; the reply says every earlier request has been handed over.
type drainMsg struct{}

// drainServer waits until every request received so far is answered.
func (m *Member) drainServer() {
	f := m.proto.Root.RequestFuture(proto.NewPID(m.proto.Address(), serverName), drainMsg{}, m.cfg.RequestTimeout)
	_, _ = f.Result()
	m.serving.Wait()
}
