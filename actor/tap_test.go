package actor_test

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/orchestrix/orchestrix/actor"
	"github.com/orchestrix/orchestrix/actor/actortest"
	"github.com/orchestrix/orchestrix/aggregate"
	"github.com/orchestrix/orchestrix/internal/banktest"
	"github.com/orchestrix/orchestrix/internal/commandtap"
)

// tap answers the commands to aggregate "fake" with err and lets the
// others through, recording what it saw.
type tap struct {
	mu   sync.Mutex
	seen []commandtap.Command
	err  error
}

func (p *tap) Command(_ context.Context, c commandtap.Command) (bool, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.seen = append(p.seen, c)
	if c.AggregateID != "fake" {
		return true, nil
	}
	return false, p.err
}

// The seam the saga test kit uses: an attached tap sees every command
// first; a command it answers never reaches the aggregate.
func TestCommandTap_AnsweredCommandsDoNotReachTheAggregate(t *testing.T) {
	env := actortest.NewSystem(t)
	sys, j := env.System, env.Log
	h := register(t, env, banktest.Accounts())
	ctx := ctxT(t)
	p := &tap{}
	require.NoError(t, commandtap.Attach(sys, p))
	require.Error(t, commandtap.Attach(sys, &tap{}), "one tap at a time")

	_, err := h.Send(ctx, "real", banktest.OpenAccount{Owner: "ada"}, actor.WithCommandID("c-1"), actor.WithCorrelationID("corr"))
	require.NoError(t, err)
	res, err := h.Send(ctx, "fake", banktest.OpenAccount{Owner: "bo"}, actor.WithCommandID("c-2"), actor.WithCorrelationID("corr"))
	require.NoError(t, err)
	require.Equal(t, "c-2", res.CommandID)
	require.Empty(t, res.Events)
	p.err = &aggregate.RejectedError{Err: errors.New("no")}
	_, err = h.Send(ctx, "fake", banktest.Deposit{Amount: 1})
	require.ErrorIs(t, err, aggregate.ErrRejected)
	require.NoError(t, h.Tell("fake", banktest.Deposit{Amount: 2}))

	require.Len(t, p.seen, 4)
	require.Equal(t, commandtap.Command{Kind: "account", AggregateID: "real", ID: "c-1", CorrelationID: "corr", Body: banktest.OpenAccount{Owner: "ada"}}, p.seen[0])
	require.True(t, p.seen[3].Told)
	require.Len(t, readStream(t, j, h.Stream("real")), 1)
	require.Empty(t, readStream(t, j, h.Stream("fake")))

	// Detached: commands reach the aggregate again.
	require.NoError(t, commandtap.Attach(sys, nil))
	_, err = h.Send(ctx, "fake", banktest.OpenAccount{Owner: "bo"})
	require.NoError(t, err)
	require.Len(t, readStream(t, j, h.Stream("fake")), 1)
}
