package actor_test

import (
	"context"
	"github.com/orchestrix/orchestrix/telemetry"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/orchestrix/orchestrix"
	"github.com/orchestrix/orchestrix/actor"
	"github.com/orchestrix/orchestrix/actor/actortest"
	"github.com/orchestrix/orchestrix/aggregate"
	"github.com/orchestrix/orchestrix/internal/banktest"
	"github.com/orchestrix/orchestrix/journal"
	memjournal "github.com/orchestrix/orchestrix/journal/mem"
	"github.com/orchestrix/orchestrix/snapshot"
)

func TestConfig_Validate_NilJournal_Fails(t *testing.T) {
	err := actor.Config{}.Validate()
	require.ErrorIs(t, err, actor.ErrInvalidConfig)
	_, err = actor.NewSystem(actor.Config{})
	require.ErrorIs(t, err, actor.ErrInvalidConfig)
}

func TestConfig_Validate_Negative_Fails(t *testing.T) {
	j, _ := memjournal.New(memjournal.Config{})
	require.NoError(t, actor.Config{Journal: j}.Validate())
	require.ErrorIs(t, actor.Config{Journal: j, MaxActive: -1}.Validate(), actor.ErrInvalidConfig)
	require.ErrorIs(t, actor.Config{Journal: j, MaxBatchEvents: -1}.Validate(), actor.ErrInvalidConfig)
}

func TestConfig_Validate_MaxIDLengthAboveJournalLimit_Fails(t *testing.T) {
	j, _ := memjournal.New(memjournal.Config{})
	require.NoError(t, actor.Config{Journal: j, MaxIDLength: journal.MaxIDLen}.Validate())
	require.ErrorIs(t, actor.Config{Journal: j, MaxIDLength: journal.MaxIDLen + 1}.Validate(), actor.ErrInvalidConfig)
}

func TestRegister_SameKindTwice_Fails(t *testing.T) {
	env := actortest.NewSystem(t)
	register(t, env, banktest.Accounts())
	_, err := actor.Register(env.System, banktest.Accounts())
	require.ErrorIs(t, err, actor.ErrAlreadyRegistered)
}

func TestRegister_InvalidDefinition_Fails(t *testing.T) {
	env := actortest.NewSystem(t)
	_, err := actor.Register(env.System, aggregate.Definition[banktest.Account, banktest.Command, banktest.Event]{Kind: "x"})
	require.ErrorIs(t, err, aggregate.ErrInvalidDefinition)
}

func TestHandle_Send_PersistsEventsDurably(t *testing.T) {
	env := actortest.NewSystem(t)
	h := register(t, env, banktest.Accounts())
	ctx := ctxT(t)

	res, err := h.Send(ctx, "a1", banktest.OpenAccount{Owner: "ada"}, actor.WithCommandID("cmd-1"), actor.WithCorrelationID("corr-1"))
	require.NoError(t, err)
	assert.Equal(t, actor.Result[banktest.Event]{CommandID: "cmd-1", Events: []banktest.Event{banktest.Opened{Owner: "ada"}}, Version: 1, Position: res.Position}, res)
	assert.NotZero(t, res.Position)

	res, err = h.Send(ctx, "a1", banktest.Deposit{Amount: 30})
	require.NoError(t, err)
	assert.Equal(t, uint64(2), res.Version)
	assert.Len(t, res.CommandID, 36, "generated UUIDv7")

	recs := readStream(t, env.Journal, "account-a1")
	require.Len(t, recs, 2)
	e := recs[0].Envelope
	assert.Equal(t, "test.account.opened", e.Type)
	assert.Equal(t, "a1", e.Subject)
	assert.Equal(t, actor.DefaultSource, e.Source)
	assert.Equal(t, "cmd-1", e.CausationID)
	assert.Equal(t, "corr-1", e.CorrelationID)
	assert.True(t, e.Time.Equal(actortest.Epoch))
	assert.Equal(t, res.CommandID, recs[1].Envelope.CausationID)
	assert.Equal(t, res.CommandID, recs[1].Envelope.CorrelationID, "correlation defaults to the command id")

	state, version, err := h.State(ctx, "a1")
	require.NoError(t, err)
	assert.Equal(t, banktest.Account{ID: "a1", Owner: "ada", Open: true, Balance: 30}, state)
	assert.Equal(t, uint64(2), version)
	assert.Equal(t, "account-a1", h.Stream("a1"))
}

func TestHandle_Send_Rejected_WrapsDomainError(t *testing.T) {
	env := actortest.NewSystem(t)
	h := register(t, env, banktest.Accounts())
	ctx := ctxT(t)
	_, err := h.Send(ctx, "a1", banktest.OpenAccount{Owner: "ada"})
	require.NoError(t, err)

	_, err = h.Send(ctx, "a1", banktest.Withdraw{Amount: 5}, actor.WithCommandID("w1"))
	require.ErrorIs(t, err, banktest.ErrInsufficientFunds)
	require.ErrorIs(t, err, aggregate.ErrRejected)
	var ce *actor.CommandError
	require.ErrorAs(t, err, &ce)
	assert.Equal(t, "w1", ce.CommandID)
	assert.Equal(t, "a1", ce.AggregateID)
	assert.Equal(t, "account", ce.Kind)
	assert.Len(t, readStream(t, env.Journal, "account-a1"), 1)
}

func TestHandle_Send_PanicInDecide_FailsOnlyThatCommand(t *testing.T) {
	env := actortest.NewSystem(t)
	h := register(t, env, banktest.Accounts())
	ctx := ctxT(t)
	_, err := h.Send(ctx, "a1", banktest.OpenAccount{Owner: "ada"})
	require.NoError(t, err)

	_, err = h.Send(ctx, "a1", banktest.Explode{})
	require.ErrorIs(t, err, aggregate.ErrPanicked)

	res, err := h.Send(ctx, "a1", banktest.Deposit{Amount: 3})
	require.NoError(t, err)
	assert.Equal(t, uint64(2), res.Version)
	state, _, err := h.State(ctx, "a1")
	require.NoError(t, err)
	assert.Equal(t, int64(3), state.Balance)
}

func TestHandle_Send_PanicInEvolve_StateUnchanged(t *testing.T) {
	env := actortest.NewSystem(t)
	def := banktest.Accounts()
	def.Decide = func(s banktest.Account, c banktest.Command) ([]banktest.Event, error) {
		if _, ok := c.(banktest.Explode); ok {
			return []banktest.Event{banktest.Poisoned{}}, nil
		}
		return banktest.Decide(s, c)
	}
	h := register(t, env, def)
	ctx := ctxT(t)
	_, err := h.Send(ctx, "a1", banktest.OpenAccount{Owner: "ada"})
	require.NoError(t, err)
	_, err = h.Send(ctx, "a1", banktest.Explode{})
	require.ErrorIs(t, err, aggregate.ErrPanicked)
	state, version, err := h.State(ctx, "a1")
	require.NoError(t, err)
	assert.True(t, state.Open)
	assert.Equal(t, uint64(1), version)
	assert.Len(t, readStream(t, env.Journal, "account-a1"), 1)
}

func TestHandle_Send_InvalidID_Fails(t *testing.T) {
	env := actortest.NewSystem(t)
	h := register(t, env, banktest.Accounts())
	ctx := ctxT(t)
	for _, id := range []string{"", "bad\x00id", string(make([]byte, 300)), "bad\x7fid", "bad\u0085id", "bad\xffid", "tab\tid"} {
		_, err := h.Send(ctx, id, banktest.OpenAccount{})
		assert.ErrorIs(t, err, actor.ErrInvalidID, "%q", id)
	}
	for _, id := range []string{"compte-é", "账户~1", " spaced id "} {
		_, err := h.Send(ctx, id, banktest.OpenAccount{})
		assert.NoError(t, err, "%q", id)
	}
	_, err := h.Send(ctx, "ok", banktest.OpenAccount{}, actor.WithCommandID("\n"))
	assert.ErrorIs(t, err, actor.ErrInvalidID)
	_, _, err = h.State(ctx, "")
	assert.ErrorIs(t, err, actor.ErrInvalidID)
	assert.ErrorIs(t, h.Tell("", banktest.OpenAccount{}), actor.ErrInvalidID)
}

func TestHandle_Send_CancelledContext_OutcomeUnknown(t *testing.T) {
	base := actortest.NewSystem(t)
	g := newGate(base.Journal)
	env2 := actortest.NewSystem(t, actortest.WithConfig(func(c *actor.Config) { c.Journal = g }))
	h := register(t, env2, banktest.Accounts())
	g.Hold()
	ctx, cancel := context.WithCancel(context.Background())
	ch := sendAsync(ctx, h, "a1", banktest.OpenAccount{Owner: "ada"})
	g.waitEntered(t)
	cancel()
	r := recv(t, ch)
	require.ErrorIs(t, r.err, context.Canceled)
	require.ErrorIs(t, r.err, orchestrix.ErrOutcomeUnknown)
	g.release <- nil
	// The command still executes.
	env2.Observed.WaitFor(t, wait, 1, actortest.Is(telemetry.Committed, "a1"))
	_, version, err := h.State(ctxT(t), "a1")
	require.NoError(t, err)
	assert.Equal(t, uint64(1), version)
}

func TestHandle_Tell_ExecutesWithoutReply(t *testing.T) {
	env := actortest.NewSystem(t)
	h := register(t, env, banktest.Accounts())
	require.NoError(t, h.Tell("a1", banktest.OpenAccount{Owner: "ada"}))
	require.NoError(t, h.Tell("a1", banktest.Deposit{Amount: 4}))
	state, version, err := h.State(ctxT(t), "a1")
	require.NoError(t, err)
	// State is answered after both commands are decided, but it reports
	// committed state, which may lag; wait for the commit.
	if version < 2 {
		env.Observed.WaitFor(t, wait, 2, actortest.Is(telemetry.Committed, "a1"))
		state, version, err = h.State(ctxT(t), "a1")
		require.NoError(t, err)
	}
	assert.Equal(t, uint64(2), version)
	assert.Equal(t, int64(4), state.Balance)
}

func TestHandle_Creates_UnknownIDNotFound(t *testing.T) {
	env := actortest.NewSystem(t)
	def := banktest.Accounts()
	def.Creates = func(c banktest.Command) bool { _, ok := c.(banktest.OpenAccount); return ok }
	h := register(t, env, def)
	ctx := ctxT(t)

	_, err := h.Send(ctx, "nobody", banktest.Deposit{Amount: 1})
	require.ErrorIs(t, err, orchestrix.ErrNotFound)
	_, _, err = h.State(ctx, "nobody")
	require.ErrorIs(t, err, orchestrix.ErrNotFound)
	_, _, err = h.StateAt(ctx, "nobody", 5)
	require.ErrorIs(t, err, orchestrix.ErrNotFound)

	_, err = h.Send(ctx, "a1", banktest.OpenAccount{Owner: "ada"})
	require.NoError(t, err)
	_, err = h.Send(ctx, "a1", banktest.Deposit{Amount: 1})
	require.NoError(t, err)
}

func TestSystem_Shutdown_SendAfterwards_ErrClosed(t *testing.T) {
	env := actortest.NewSystem(t)
	h := register(t, env, banktest.Accounts())
	ctx := ctxT(t)
	_, err := h.Send(ctx, "a1", banktest.OpenAccount{Owner: "ada"})
	require.NoError(t, err)
	require.NoError(t, env.System.Shutdown(ctx))
	_, err = h.Send(ctx, "a1", banktest.Deposit{Amount: 1})
	require.ErrorIs(t, err, orchestrix.ErrClosed)
	require.ErrorIs(t, h.Tell("a1", banktest.Deposit{Amount: 1}), orchestrix.ErrClosed)
	_, _, err = h.State(ctx, "a1")
	require.ErrorIs(t, err, orchestrix.ErrClosed)
	_, err = actor.Register(env.System, banktest.Accounts())
	require.ErrorIs(t, err, orchestrix.ErrClosed)
	require.NoError(t, env.System.Shutdown(ctx), "idempotent")
}

func TestSystem_Shutdown_WaitsForAppendInFlight(t *testing.T) {
	base := actortest.NewSystem(t)
	g := newGate(base.Journal)
	env := actortest.NewSystem(t, actortest.WithJournal(base.Journal), actortest.WithConfig(func(c *actor.Config) { c.Journal = g }))
	h := register(t, env, banktest.Accounts())
	g.Hold()
	ch := sendAsync(ctxT(t), h, "a1", banktest.OpenAccount{Owner: "ada"})
	g.waitEntered(t)
	done := make(chan error, 1)
	go func() { done <- env.System.Shutdown(context.Background()) }()
	select {
	case <-done:
		t.Fatal("Shutdown returned while an append was in flight")
	case <-time.After(20 * time.Millisecond):
	}
	g.release <- nil
	r := recv(t, ch)
	require.NoError(t, r.err)
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(wait):
		t.Fatal("Shutdown did not return")
	}
	// Shutdown snapshots active aggregates.
	snap, ok, err := env.Snapshots.Load(context.Background(), "account-a1", snapshot.Latest)
	require.NoError(t, err)
	require.True(t, ok)
	assert.Equal(t, uint64(1), snap.Version)
}

func TestHandle_Active_CountsActivations(t *testing.T) {
	env := actortest.NewSystem(t)
	h := register(t, env, banktest.Accounts())
	ctx := ctxT(t)
	for _, id := range []string{"a", "b", "c"} {
		_, err := h.Send(ctx, id, banktest.OpenAccount{Owner: id})
		require.NoError(t, err)
	}
	assert.Equal(t, 3, h.Active())
	assert.Equal(t, "account", h.Kind())
}
