package actor_test

import (
	"fmt"
	"github.com/orchestrix/orchestrix/internal/banktest"
	"github.com/orchestrix/orchestrix/telemetry"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/orchestrix/orchestrix/actor"
	"github.com/orchestrix/orchestrix/actor/actortest"
)

// Retries of commands still queued behind an append join the original,
// also when so many commands are queued that the runtime indexes them.
func TestAggregate_Dedup_RetriesOfManyQueuedCommands_JoinOriginals(t *testing.T) {
	env, g, h := gated(t)
	ctx := ctxT(t)
	_, err := h.Send(ctx, "a1", banktest.OpenAccount{Owner: "ada"})
	require.NoError(t, err)

	g.Hold()
	held := sendAsync(ctx, h, "a1", banktest.Deposit{Amount: 1}, actor.WithCommandID("held"))
	g.waitEntered(t)
	const queued = 40
	originals := make([]chan sendResult, queued)
	for i := range originals {
		originals[i] = sendAsync(ctx, h, "a1", banktest.Deposit{Amount: 1}, actor.WithCommandID(fmt.Sprintf("c%d", i)))
	}
	env.Observed.WaitFor(t, wait, queued, actortest.Is(telemetry.Decided, "a1"))
	retries := map[int]chan sendResult{}
	for _, i := range []int{0, 5, queued - 1} {
		retries[i] = sendAsync(ctx, h, "a1", banktest.Deposit{Amount: 1}, actor.WithCommandID(fmt.Sprintf("c%d", i)))
	}
	heldRetry := sendAsync(ctx, h, "a1", banktest.Deposit{Amount: 1}, actor.WithCommandID("held"))
	g.Open()
	g.release <- nil

	h0 := recv(t, held)
	require.NoError(t, h0.err)
	hr := recv(t, heldRetry)
	require.NoError(t, hr.err)
	assert.True(t, hr.res.Duplicate)
	assert.Equal(t, h0.res.Version, hr.res.Version)

	results := make([]sendResult, queued)
	for i, ch := range originals {
		results[i] = recv(t, ch)
		require.NoError(t, results[i].err)
		assert.False(t, results[i].res.Duplicate)
	}
	for i, ch := range retries {
		r := recv(t, ch)
		require.NoError(t, r.err)
		assert.True(t, r.res.Duplicate, "retry of c%d", i)
		assert.Equal(t, results[i].res.Version, r.res.Version, "retry of c%d", i)
		assert.Equal(t, results[i].res.CommandID, r.res.CommandID)
	}
	assert.Len(t, readStream(t, env.Journal, "account-a1"), 2+queued, "no retry was applied")

	// Once answered, the commands are remembered: a later retry is a
	// duplicate too.
	again, err := h.Send(ctx, "a1", banktest.Deposit{Amount: 1}, actor.WithCommandID("c7"))
	require.NoError(t, err)
	assert.True(t, again.Duplicate)
	assert.Equal(t, results[7].res.Version, again.Version)
}
