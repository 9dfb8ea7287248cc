package sagatest_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/orchestrix/orchestrix/actor/actortest"
	"github.com/orchestrix/orchestrix/internal/banktest"
	"github.com/orchestrix/orchestrix/projection"
	"github.com/orchestrix/orchestrix/projection/projectiontest"
	"github.com/orchestrix/orchestrix/saga"
	"github.com/orchestrix/orchestrix/saga/sagatest"
)

// One manual clock drives the runtime, the saga runner and a projection:
// a single Advance fires the saga's deadline, the compensation's event is
// stamped with the advanced time, and the projection and the probe see it.
func TestKit_WithEnv_OneClockForRuntimeSagasAndProjections(t *testing.T) {
	env := actortest.NewSystem(t)
	k := sagatest.New(t, sagatest.WithEnv(env))
	h := sagatest.Real(k, banktest.Accounts())
	p := projectiontest.New(t, env.System.Registry(), projectiontest.WithEnv(env))
	require.Same(t, env.Clock, k.Clock)
	require.Same(t, env.Clock, p.Clock)

	ctx := context.Background()
	_, err := h.Send(ctx, "alice", banktest.OpenAccount{Owner: "alice"})
	require.NoError(t, err)
	_, err = h.Send(ctx, "alice", banktest.Deposit{Amount: 10})
	require.NoError(t, err)
	var balance atomic.Int64
	router := projection.NewRouter()
	projection.On(router, func(context.Context, projection.Event, banktest.Opened) error { return nil })
	projection.On(router, func(_ context.Context, _ projection.Event, e banktest.Deposited) error {
		balance.Add(e.Amount)
		return nil
	})
	projection.On(router, func(_ context.Context, _ projection.Event, e banktest.Withdrawn) error {
		balance.Add(-e.Amount)
		return nil
	})
	p.Run(projection.Projection{Name: "balance", Handler: router, Filter: projection.Filter{Kinds: []string{"account"}}})
	require.Equal(t, int64(10), balance.Load())

	transfers := sagatest.Register(k, transferSaga(h, saga.Timeout(time.Hour)))
	k.Hang(sagatest.Step("credit"))
	probe := env.EventProbe(t, actortest.ProbeStream(h.Stream("alice")))
	sagatest.Begin(k, transfers, "t1", Transfer{From: "alice", To: "bob", Amount: 4})
	sagatest.ExpectSent[banktest.Withdraw](k, "account", "alice")
	sagatest.ExpectSent[banktest.Deposit](k, "account", "bob") // hangs; the deadline is armed
	_, debit := actortest.ExpectPersisted[banktest.Withdrawn](probe, "alice")
	require.Equal(t, actortest.Epoch, debit.Envelope.Time)
	p.ExpectCaughtUp("balance")
	require.Equal(t, int64(6), balance.Load())

	env.Clock.Advance(time.Hour)
	sagatest.ExpectSent[banktest.Deposit](k, "account", "alice")
	st := sagatest.ExpectFinished(k, transfers, "t1", saga.StateCompensated)
	require.True(t, st.Failure.TimedOut)
	_, refund := actortest.ExpectPersisted[banktest.Deposited](probe, "alice")
	require.Equal(t, actortest.Epoch.Add(time.Hour), refund.Envelope.Time)
	p.ExpectCaughtUp("balance")
	require.Equal(t, int64(10), balance.Load())
	k.ExpectNothingSent()
}
