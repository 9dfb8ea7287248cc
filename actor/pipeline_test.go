package actor_test

import (
	"context"
	"fmt"
	"github.com/orchestrix/orchestrix/internal/banktest"
	"github.com/orchestrix/orchestrix/telemetry"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/orchestrix/orchestrix"
	"github.com/orchestrix/orchestrix/actor"
	"github.com/orchestrix/orchestrix/actor/actortest"
	memjournal "github.com/orchestrix/orchestrix/journal/mem"
)

// gated starts a system whose journal is a gate over a mem journal.
func gated(t *testing.T, opts ...actortest.Option) (*actortest.Env, *gate, *accountHandle) {
	base, err := memjournal.New(memjournal.Config{})
	require.NoError(t, err)
	g := newGate(base)
	opts = append(opts, actortest.WithJournal(base), actortest.WithConfig(func(c *actor.Config) { c.Journal = g }))
	env := actortest.NewSystem(t, opts...)
	return env, g, register(t, env, banktest.Accounts())
}

func TestAggregate_Pipelining_CommandsDuringAppendFormOneBatch(t *testing.T) {
	env, g, h := gated(t)
	ctx := ctxT(t)
	_, err := h.Send(ctx, "a1", banktest.OpenAccount{Owner: "ada"})
	require.NoError(t, err)

	g.Hold()
	first := sendAsync(ctx, h, "a1", banktest.Deposit{Amount: 1}, actor.WithCommandID("d1"))
	g.waitEntered(t)
	var rest []chan sendResult
	for i := 2; i <= 5; i++ {
		rest = append(rest, sendAsync(ctx, h, "a1", banktest.Deposit{Amount: int64(i)}, actor.WithCommandID(fmt.Sprintf("d%d", i))))
	}
	env.Observed.WaitFor(t, wait, 4, actortest.Is(telemetry.Decided, "a1"))
	g.Open()
	g.release <- nil

	r := recv(t, first)
	require.NoError(t, r.err)
	assert.Equal(t, uint64(2), r.res.Version)
	versions := map[uint64]bool{}
	for _, ch := range rest {
		r := recv(t, ch)
		require.NoError(t, r.err)
		versions[r.res.Version] = true
	}
	assert.Equal(t, map[uint64]bool{3: true, 4: true, 5: true, 6: true}, versions)

	calls := g.Calls()
	require.Len(t, calls, 3, "open, the held deposit, then one batch for the four queued deposits")
	assert.Len(t, calls[2], 4)
	state, version, err := h.State(ctx, "a1")
	require.NoError(t, err)
	assert.Equal(t, uint64(6), version)
	assert.Equal(t, int64(15), state.Balance)
}

func TestAggregate_Pipelining_RepliesInOrder(t *testing.T) {
	env, g, h := gated(t)
	ctx := ctxT(t)
	_, err := h.Send(ctx, "a1", banktest.OpenAccount{Owner: "ada"})
	require.NoError(t, err)

	g.Hold()
	first := sendAsync(ctx, h, "a1", banktest.Deposit{Amount: 1})
	g.waitEntered(t)
	// A rejection decided against pending state must not overtake the
	// success queued before it.
	second := sendAsync(ctx, h, "a1", banktest.Deposit{Amount: 2})
	env.Observed.WaitFor(t, wait, 1, actortest.Is(telemetry.Decided, "a1"))
	third := sendAsync(ctx, h, "a1", banktest.Withdraw{Amount: 100})
	env.Observed.WaitFor(t, wait, 2, actortest.Is(telemetry.Decided, "a1"))
	g.Open()
	g.release <- nil
	require.NoError(t, recv(t, first).err)
	require.NoError(t, recv(t, second).err)
	require.ErrorIs(t, recv(t, third).err, banktest.ErrInsufficientFunds)

	var answered []string
	for _, o := range env.Observed.All() {
		if o.Kind == telemetry.CommandDone {
			answered = append(answered, fmt.Sprintf("v%d err=%v", o.Version, o.Err != nil))
		}
	}
	assert.Equal(t, []string{"v1 err=false", "v2 err=false", "v3 err=false", "v3 err=true"}, answered)
}

func TestAggregate_AppendFails_PendingCommandsFailAndActorRecovers(t *testing.T) {
	env, g, h := gated(t)
	ctx := ctxT(t)
	_, err := h.Send(ctx, "a1", banktest.OpenAccount{Owner: "ada"})
	require.NoError(t, err)

	g.Hold()
	first := sendAsync(ctx, h, "a1", banktest.Deposit{Amount: 1})
	g.waitEntered(t)
	second := sendAsync(ctx, h, "a1", banktest.Deposit{Amount: 2})
	third := sendAsync(ctx, h, "a1", banktest.Withdraw{Amount: 1000})
	env.Observed.WaitFor(t, wait, 2, actortest.Is(telemetry.Decided, "a1"))
	g.Open()
	g.release <- memjournal.ErrInjected

	r1 := recv(t, first)
	require.ErrorIs(t, r1.err, orchestrix.ErrOutcomeUnknown)
	require.NotErrorIs(t, r1.err, actor.ErrAborted)
	r2 := recv(t, second)
	require.ErrorIs(t, r2.err, orchestrix.ErrOutcomeUnknown)
	require.ErrorIs(t, r2.err, actor.ErrAborted)
	r3 := recv(t, third)
	require.ErrorIs(t, r3.err, actor.ErrAborted, "a rejection decided against speculative state is aborted too")
	env.Observed.WaitFor(t, wait, 1, actortest.Is(telemetry.Restarted, "a1"))

	res, err := h.Send(ctx, "a1", banktest.Deposit{Amount: 5})
	require.NoError(t, err)
	assert.Equal(t, uint64(2), res.Version)
	env.Observed.WaitFor(t, wait, 2, actortest.Is(telemetry.Recovered, "a1"))
	state, _, err := h.State(ctx, "a1")
	require.NoError(t, err)
	assert.Equal(t, int64(5), state.Balance)
}

func TestAggregate_AppendFailsWithInjectedFault_NextCommandReactivates(t *testing.T) {
	env := actortest.NewSystem(t)
	h := register(t, env, banktest.Accounts())
	ctx := ctxT(t)
	_, err := h.Send(ctx, "a1", banktest.OpenAccount{Owner: "ada"})
	require.NoError(t, err)
	env.Journal.FailNextAppend(nil)
	_, err = h.Send(ctx, "a1", banktest.Deposit{Amount: 1})
	require.ErrorIs(t, err, orchestrix.ErrOutcomeUnknown)
	res, err := h.Send(ctx, "a1", banktest.Deposit{Amount: 2})
	require.NoError(t, err)
	assert.Equal(t, uint64(2), res.Version)
}

func TestAggregate_LostAcknowledgement_RetryIsDeduplicated(t *testing.T) {
	env := actortest.NewSystem(t)
	h := register(t, env, banktest.Accounts())
	ctx := ctxT(t)
	_, err := h.Send(ctx, "a1", banktest.OpenAccount{Owner: "ada"})
	require.NoError(t, err)

	env.Journal.FailNextAppendAfterStore(nil)
	_, err = h.Send(ctx, "a1", banktest.Deposit{Amount: 7}, actor.WithCommandID("dep-7"))
	require.ErrorIs(t, err, orchestrix.ErrOutcomeUnknown)

	// The events were stored; the retry finds them on recovery.
	res, err := h.Send(ctx, "a1", banktest.Deposit{Amount: 7}, actor.WithCommandID("dep-7"))
	require.NoError(t, err)
	assert.True(t, res.Duplicate)
	assert.Equal(t, []banktest.Event{banktest.Deposited{Amount: 7}}, res.Events)
	assert.Equal(t, uint64(2), res.Version)
	assert.Len(t, readStream(t, env.Journal, "account-a1"), 2)
}

func TestAggregate_RecoveryReadFails_CommandFailsThenSucceeds(t *testing.T) {
	env := actortest.NewSystem(t)
	h := register(t, env, banktest.Accounts())
	ctx := ctxT(t)
	env.Journal.FailNextRead(nil)
	_, err := h.Send(ctx, "a1", banktest.OpenAccount{Owner: "ada"})
	require.ErrorIs(t, err, actor.ErrRecovery)
	_, err = h.Send(ctx, "a1", banktest.OpenAccount{Owner: "ada"})
	require.NoError(t, err)
}

func TestAggregate_CorruptEvent_RecoveryReportsCorruption(t *testing.T) {
	env := actortest.NewSystem(t, actortest.WithoutSnapshots())
	h := register(t, env, banktest.Accounts())
	ctx := ctxT(t)
	_, err := h.Send(ctx, "a1", banktest.OpenAccount{Owner: "ada"})
	require.NoError(t, err)
	require.NoError(t, env.System.Shutdown(ctx))
	require.NoError(t, env.Journal.CorruptRecord("account-a1", 1))

	env2 := actortest.NewSystem(t, actortest.WithJournal(env.Journal), actortest.WithoutSnapshots())
	h2 := register(t, env2, banktest.Accounts())
	_, err = h2.Send(ctx, "a1", banktest.Deposit{Amount: 1})
	require.ErrorIs(t, err, orchestrix.ErrCorrupt)
	require.ErrorIs(t, err, actor.ErrRecovery)
}

// A context that has already ended when Send is called sends nothing: the
// error matches the context's error and not ErrOutcomeUnknown, and the
// command never executes.
func TestHandle_Send_ContextAlreadyCancelled_NothingSent(t *testing.T) {
	env := actortest.NewSystem(t)
	h := register(t, env, banktest.Accounts())
	ctx, cancel := context.WithCancel(ctxT(t))
	cancel()
	_, err := h.Send(ctx, "a1", banktest.OpenAccount{Owner: "ada"}, actor.WithCommandID("open-1"))
	require.ErrorIs(t, err, context.Canceled)
	require.NotErrorIs(t, err, orchestrix.ErrOutcomeUnknown)
	assert.Empty(t, readStream(t, env.Journal, "account-a1"))

	// The same command id executes when sent again: it was never seen.
	res, err := h.Send(ctxT(t), "a1", banktest.OpenAccount{Owner: "ada"}, actor.WithCommandID("open-1"))
	require.NoError(t, err)
	assert.False(t, res.Duplicate)
	assert.Equal(t, uint64(1), res.Version)
}
