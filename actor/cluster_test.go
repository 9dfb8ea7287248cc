package actor_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/orchestrix/orchestrix"
	"github.com/orchestrix/orchestrix/actor"
	"github.com/orchestrix/orchestrix/aggregate"
	"github.com/orchestrix/orchestrix/internal/banktest"
	"github.com/orchestrix/orchestrix/internal/clusterseam"
	"github.com/orchestrix/orchestrix/journal/mem"
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

func twoSystems(t *testing.T) (*actor.System, *actor.System, *accountHandle, *accountHandle) {
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
