package actor_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/orchestrix/orchestrix"
	"github.com/orchestrix/orchestrix/actor"
	"github.com/orchestrix/orchestrix/actor/actortest"
	"github.com/orchestrix/orchestrix/aggregate"
	"github.com/orchestrix/orchestrix/internal/banktest"
	"github.com/orchestrix/orchestrix/internal/clusterseam"
	"github.com/orchestrix/orchestrix/journal/mem"
	"github.com/orchestrix/orchestrix/telemetry"
)

func encodableAccounts() aggregate.Definition[banktest.Account, banktest.Command, banktest.Event] {
	def := banktest.Accounts()
	def.Commands = []aggregate.CommandType{
		aggregate.CommandOf[banktest.OpenAccount]("test.account.open"),
		aggregate.CommandOf[banktest.Deposit]("test.account.deposit"),
	}
	return def
}

// localRouter says this member owns every id.
type localRouter struct{ commands int }

func (r *localRouter) Command(ctx context.Context, kind, id, commandID string, cmd []byte,
	local func(context.Context) error) (clusterseam.CommandReply, bool, error) {
	r.commands++
	return clusterseam.CommandReply{}, true, local(ctx)
}

func (r *localRouter) State(ctx context.Context, kind, id string, at bool, version uint64,
	local func(context.Context) error) (clusterseam.StateReply, bool, error) {
	return clusterseam.StateReply{}, true, local(ctx)
}

// forwardRouter says another system owns every id and serves the
// requests there, as the wire would.
type forwardRouter struct{ owner *actor.System }

func (r forwardRouter) Command(ctx context.Context, kind, id, commandID string, cmd []byte,
	_ func(context.Context) error) (clusterseam.CommandReply, bool, error) {
	reply, err := clusterseam.Kinds(r.owner)[kind].ServeCommand(ctx, cmd)
	return reply, false, err
}

func (r forwardRouter) State(ctx context.Context, kind, id string, at bool, version uint64,
	_ func(context.Context) error) (clusterseam.StateReply, bool, error) {
	reply, err := clusterseam.Kinds(r.owner)[kind].ServeState(ctx, id, at, version)
	return reply, false, err
}

// memAccounts is a system on a mem journal of its own with the encodable
// accounts registered.
func memAccounts(t *testing.T) (*actor.System, *mem.Journal, *accountHandle) {
	t.Helper()
	j, err := mem.New(mem.Config{})
	require.NoError(t, err)
	sys, err := actor.NewSystem(actor.Config{Journal: j})
	require.NoError(t, err)
	t.Cleanup(func() { _ = sys.Close() })
	h, err := actor.Register(sys, encodableAccounts())
	require.NoError(t, err)
	return sys, j, h
}

func twoSystems(t testing.TB) (*actor.System, *actor.System, *accountHandle, *accountHandle) {
	t.Helper()
	j, err := mem.New(mem.Config{})
	require.NoError(t, err)
	var syss [2]*actor.System
	var hs [2]*accountHandle
	for i := range syss {
		syss[i], err = actor.NewSystem(actor.Config{Journal: j})
		require.NoError(t, err)
		t.Cleanup(func() { _ = syss[i].Close() })
		hs[i], err = actor.Register(syss[i], encodableAccounts())
		require.NoError(t, err)
	}
	return syss[0], syss[1], hs[0], hs[1]
}

// In cluster mode a version conflict (another activation wrote) stops the
// stale activation and the command is retried once on fresh state; without
// a cluster the caller gets the conflict.
func TestClusterModeRetriesAVersionConflictOnce(t *testing.T) {
	ctx := ctxT(t)
	sysA, _, a, b := twoSystems(t)
	_, err := a.Send(ctx, "acc", banktest.OpenAccount{Owner: "ada"})
	require.NoError(t, err)
	_, err = b.Send(ctx, "acc", banktest.Deposit{Amount: 5})
	require.NoError(t, err)
	_, err = a.Send(ctx, "acc", banktest.Deposit{Amount: 1})
	require.ErrorIs(t, err, orchestrix.ErrVersionConflict, "without a cluster the stale activation reports the conflict")

	_, err = a.Send(ctx, "acc", banktest.Deposit{Amount: 1}) // recovers: v3
	require.NoError(t, err)
	_, err = b.Send(ctx, "acc", banktest.Deposit{Amount: 5}) // b is stale now
	require.ErrorIs(t, err, orchestrix.ErrVersionConflict)
	_, err = b.Send(ctx, "acc", banktest.Deposit{Amount: 5}) // b recovers, a is stale again: v4
	require.NoError(t, err)

	r := &localRouter{}
	require.NoError(t, clusterseam.Attach(sysA, r))
	t.Cleanup(func() { _ = clusterseam.Attach(sysA, nil) })
	res, err := a.Send(ctx, "acc", banktest.Deposit{Amount: 7}, actor.WithCommandID("late"))
	require.NoError(t, err)
	require.Equal(t, uint64(5), res.Version)
	require.Equal(t, 1, r.commands)
	st, v, err := a.State(ctx, "acc")
	require.NoError(t, err)
	require.Equal(t, uint64(5), v)
	require.Equal(t, int64(5+1+5+7), st.Balance)
}

// Through a router that forwards to another system, Send, State and
// StateAt return what the owner computed, decoded on the caller's side.
func TestClusterModeForwardsToTheOwner(t *testing.T) {
	ctx := ctxT(t)
	sysA, sysB, a, b := twoSystems(t)
	require.NoError(t, clusterseam.Attach(sysA, forwardRouter{owner: sysB}))
	t.Cleanup(func() { _ = clusterseam.Attach(sysA, nil) })
	require.Error(t, clusterseam.Attach(sysA, forwardRouter{owner: sysB}), "a second router is refused")

	res, err := a.Send(ctx, "acc", banktest.OpenAccount{Owner: "ada"}, actor.WithCommandID("open"))
	require.NoError(t, err)
	require.Equal(t, []banktest.Event{banktest.Opened{Owner: "ada"}}, res.Events)
	require.Equal(t, uint64(1), res.Version)
	require.Equal(t, "open", res.CommandID)
	res, err = a.Send(ctx, "acc", banktest.Deposit{Amount: 4})
	require.NoError(t, err)
	require.NotEmpty(t, res.CommandID, "a command id is generated in cluster mode")
	require.Equal(t, 1, b.Active(), "the owner ran the commands")
	require.Equal(t, 0, a.Active(), "the caller activated nothing")

	dup, err := a.Send(ctx, "acc", banktest.OpenAccount{Owner: "ada"}, actor.WithCommandID("open"))
	require.NoError(t, err)
	require.True(t, dup.Duplicate)

	st, v, err := a.State(ctx, "acc")
	require.NoError(t, err)
	require.Equal(t, uint64(2), v)
	require.Equal(t, int64(4), st.Balance)
	st, v, err = a.StateAt(ctx, "acc", 1)
	require.NoError(t, err)
	require.Equal(t, uint64(1), v)
	require.Equal(t, int64(0), st.Balance)

	// A command type the definition does not list cannot cross members.
	_, err = a.Send(ctx, "acc", banktest.Withdraw{Amount: 1})
	require.ErrorIs(t, err, actor.ErrUnknownCommandType)
	// A rejection on the owner is the caller's rejection.
	_, err = a.Send(ctx, "acc", banktest.OpenAccount{Owner: "bob"})
	require.ErrorIs(t, err, aggregate.ErrRejected)
}

// Release stops the activations a member no longer owns: an append in
// flight finishes and is acknowledged, a command queued behind the release
// is refused with ErrReleased (not executed), and the ids kept stay active.
func TestClusterRelease_DrainsInFlightAndRefusesQueued(t *testing.T) {
	ctx := ctxT(t)
	sys, j, h := memAccounts(t)
	for _, id := range []string{"moved", "kept"} {
		_, err := h.Send(ctx, id, banktest.OpenAccount{Owner: id})
		require.NoError(t, err)
	}

	clock := actortest.NewManualClock(time.Unix(0, 0))
	j.InjectAppendFault(mem.AppendFault{Stream: h.Stream("moved"), Effect: mem.FaultDelay, Delay: time.Minute, Clock: clock})
	inFlight := make(chan error, 1)
	go func() {
		_, err := h.Send(ctx, "moved", banktest.Deposit{Amount: 3}, actor.WithCommandID("in-flight"))
		inFlight <- err
	}()
	for clock.Timers() == 0 { // the append is held by the journal
		time.Sleep(time.Millisecond)
	}

	scanned := make(chan struct{})
	released := make(chan error, 1)
	go func() {
		n, err := clusterseam.Kinds(sys)["account"].Release(ctx, func(id string) bool {
			if id == "moved" {
				close(scanned)
			}
			return id == "kept"
		})
		if err == nil && n != 1 {
			err = fmt.Errorf("released %d activations, want 1", n)
		}
		released <- err
	}()
	<-scanned
	// Routed after the release's shutdown (the shard is locked until it is
	// sent), so it queues behind it.
	_, err := h.Send(ctx, "moved", banktest.Deposit{Amount: 5}, actor.WithCommandID("queued"))
	require.ErrorIs(t, err, clusterseam.ErrReleased)
	select {
	case err := <-released:
		t.Fatalf("Release returned (%v) while an append was in flight", err)
	default:
	}

	clock.Advance(time.Minute)
	require.NoError(t, <-inFlight, "the in-flight append is drained, not dropped")
	require.NoError(t, <-released)
	require.Equal(t, 1, h.Active(), "only the kept id is still active")

	st, v, err := h.State(ctx, "moved") // a fresh activation recovers from the journal
	require.NoError(t, err)
	require.Equal(t, uint64(2), v)
	require.Equal(t, int64(3), st.Balance, "the queued command did not run")
}

// admittingRouter runs everything locally but admits only the ids in ok.
type admittingRouter struct {
	localRouter
	ok map[string]bool
}

func (r *admittingRouter) Admit(kind, id string) error {
	if kind != "account" {
		return fmt.Errorf("unexpected kind %q: %w", kind, clusterseam.ErrReleased)
	}
	if !r.ok[id] {
		return fmt.Errorf("not admitted: %w", clusterseam.ErrReleased)
	}
	return nil
}

// A router that implements clusterseam.Admitter is asked before a command
// or state read reaches an activation, also when the activation exists:
// a refused id runs nothing and the caller's error matches ErrReleased.
func TestClusterModeAsksTheAdmitter(t *testing.T) {
	ctx := ctxT(t)
	sysA, _, a, _ := twoSystems(t)
	r := &admittingRouter{ok: map[string]bool{"in": true}}
	require.NoError(t, clusterseam.Attach(sysA, r))
	t.Cleanup(func() { _ = clusterseam.Attach(sysA, nil) })
	_, err := a.Send(ctx, "in", banktest.OpenAccount{Owner: "ada"})
	require.NoError(t, err)
	_, err = a.Send(ctx, "out", banktest.OpenAccount{Owner: "bob"})
	require.ErrorIs(t, err, clusterseam.ErrReleased)
	_, _, err = a.State(ctx, "out")
	require.ErrorIs(t, err, clusterseam.ErrReleased)

	r.ok["in"] = false // the activation of "in" exists: still refused
	_, err = a.Send(ctx, "in", banktest.Deposit{Amount: 1})
	require.ErrorIs(t, err, clusterseam.ErrReleased)
	_, err = clusterseam.Kinds(sysA)["account"].Release(ctx, nil)
	require.NoError(t, err)
	r.ok["in"] = true
	_, v, err := a.State(ctx, "in")
	require.NoError(t, err)
	require.Equal(t, uint64(1), v, "the refused deposit did not run")
}

// A version conflict retried on fresh state in cluster mode is counted in
// orchestrix_cluster_conflicts_retried_total.
func TestClusterModeCountsTheConflictRetried(t *testing.T) {
	ctx := ctxT(t)
	j, err := mem.New(mem.Config{})
	require.NoError(t, err)
	reg := prometheus.NewRegistry()
	metrics, err := telemetry.NewMetrics(reg)
	require.NoError(t, err)
	sysA, err := actor.NewSystem(actor.Config{Journal: j, Metrics: metrics})
	require.NoError(t, err)
	t.Cleanup(func() { _ = sysA.Close() })
	sysB, err := actor.NewSystem(actor.Config{Journal: j})
	require.NoError(t, err)
	t.Cleanup(func() { _ = sysB.Close() })
	a, err := actor.Register(sysA, encodableAccounts())
	require.NoError(t, err)
	b, err := actor.Register(sysB, encodableAccounts())
	require.NoError(t, err)
	_, err = a.Send(ctx, "acc", banktest.OpenAccount{Owner: "ada"})
	require.NoError(t, err)
	_, err = b.Send(ctx, "acc", banktest.Deposit{Amount: 5}) // a is stale now
	require.NoError(t, err)
	require.NoError(t, clusterseam.Attach(sysA, &localRouter{}))
	t.Cleanup(func() { _ = clusterseam.Attach(sysA, nil) })
	_, err = a.Send(ctx, "acc", banktest.Deposit{Amount: 1})
	require.NoError(t, err)
	require.Equal(t, 1.0, sample(t, reg, "orchestrix_cluster_conflicts_retried_total", "kind", "account"))
}

// Two releases of the same activation at once (a view change and a
// handoff, say) both return: the second stop request reaches an actor
// that the first already finished, and must not be lost with it.
func TestClusterRelease_ConcurrentReleasesBothReturn(t *testing.T) {
	ctx := ctxT(t)
	sysA, _, a, _ := twoSystems(t)
	k := clusterseam.Kinds(sysA)["account"]
	for i := range 50 {
		id := fmt.Sprint("acc-", i)
		_, err := a.Send(ctx, id, banktest.OpenAccount{Owner: "ada"})
		require.NoError(t, err)
		rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		errc := make(chan error, 2)
		for range 2 {
			go func() {
				_, err := k.Release(rctx, nil)
				errc <- err
			}()
		}
		for range 2 {
			require.NoError(t, <-errc, "release %d: a concurrent release never returned", i)
		}
		cancel()
	}
}
