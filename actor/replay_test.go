package actor_test

import (
	"context"
	"github.com/orchestrix/orchestrix/internal/banktest"
	"github.com/orchestrix/orchestrix/telemetry"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/orchestrix/orchestrix"
	"github.com/orchestrix/orchestrix/actor"
	"github.com/orchestrix/orchestrix/actor/actortest"
)

// longStreamEvents is past the number of records recovery decodes inline,
// and not a multiple of the parallel decoder's chunk size, so replay goes
// through the parallel decoder and ends on a partial chunk.
const longStreamEvents = 5000

// appendLongStream writes an opening and longStreamEvents-1 deposits of
// 1..longStreamEvents-1 to account-a1, in commits of 100 events, and
// returns the expected balance.
func appendLongStream(ctx context.Context, t *testing.T, env *actortest.Env) int64 {
	t.Helper()
	reg := env.System.Registry()
	var balance int64
	var envs []orchestrix.Envelope
	for i := range longStreamEvents {
		var ev any = banktest.Deposited{Amount: int64(i)}
		if i == 0 {
			ev = banktest.Opened{Owner: "ada"}
		}
		balance += int64(i)
		e, err := reg.Marshal(ev)
		require.NoError(t, err)
		e.Source, e.Subject, e.Time = "/test", "a1", actortest.Epoch
		envs = append(envs, e)
		if len(envs) == 100 {
			_, err := env.Journal.Append(ctx, "account-a1", orchestrixExact(uint64(i+1-len(envs))), envs)
			require.NoError(t, err)
			envs = envs[:0]
		}
	}
	return balance
}

func TestAggregate_Recovery_LongStream_ReplaysEveryEventInOrder(t *testing.T) {
	env := actortest.NewSystem(t, actortest.WithoutSnapshots())
	ctx := ctxT(t)
	h := register(t, env, banktest.Accounts()) // registers the events
	want := appendLongStream(ctx, t, env)

	state, version, err := h.State(ctx, "a1")
	require.NoError(t, err)
	assert.Equal(t, uint64(longStreamEvents), version)
	assert.Equal(t, want, state.Balance)
	rec := env.Observed.WaitFor(t, wait, 1, actortest.Is(telemetry.Recovered, "a1"))
	assert.Equal(t, longStreamEvents, rec.Events)
}

func TestAggregate_Recovery_LongStreamCorruptLate_ReportsCorruption(t *testing.T) {
	env := actortest.NewSystem(t, actortest.WithoutSnapshots())
	ctx := ctxT(t)
	h := register(t, env, banktest.Accounts())
	appendLongStream(ctx, t, env)
	require.NoError(t, env.Journal.CorruptRecord("account-a1", longStreamEvents-300))

	_, _, err := h.State(ctx, "a1")
	require.ErrorIs(t, err, orchestrix.ErrCorrupt)
	require.ErrorIs(t, err, actor.ErrRecovery)
}
