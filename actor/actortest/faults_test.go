package actortest_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/orchestrix/orchestrix"
	"github.com/orchestrix/orchestrix/actor"
	"github.com/orchestrix/orchestrix/actor/actortest"
	"github.com/orchestrix/orchestrix/internal/banktest"
	"github.com/orchestrix/orchestrix/internal/kittest"
	"github.com/orchestrix/orchestrix/journal"
	memjournal "github.com/orchestrix/orchestrix/journal/mem"
)

func TestEnv_FailAndRejectAppends_PerStream(t *testing.T) {
	h := actortest.NewHarness(t, banktest.Accounts())
	env := h.Env()
	env.FailAppends(1, actortest.StreamAppends(h.Handle().Stream("a1")))
	env.RejectAppends(1, actortest.KindAppends("account"), nil)

	out := h.Run("a2", banktest.OpenAccount{Owner: "bo"})
	require.ErrorIs(t, out.Err, memjournal.ErrInjectedRejection, "the first account append is rejected")
	require.ErrorIs(t, out.Err, journal.ErrRejected)
	require.NotErrorIs(t, out.Err, orchestrix.ErrOutcomeUnknown, "a definite refusal is not an unknown outcome")
	assert.Equal(t, uint64(0), out.Version)

	out = h.Run("a1", banktest.OpenAccount{Owner: "ada"})
	require.ErrorIs(t, out.Err, orchestrix.ErrOutcomeUnknown, "a1's append fails")
	out = h.Run("a1", banktest.OpenAccount{Owner: "ada"})
	require.NoError(t, out.Err)
	assert.Equal(t, uint64(1), out.Version)
}

func TestEnv_StoreButReportUnknown_RetryIsNotDuplicated(t *testing.T) {
	h := actortest.NewHarness(t, banktest.Accounts())
	h.Run("a1", banktest.OpenAccount{Owner: "ada"})
	h.Env().StoreButReportUnknown(1, actortest.KindAppends("account"))
	p := h.EventProbe()
	out := h.Run("a1", banktest.Deposit{Amount: 5}, actor.WithCommandID("dep-1"))
	require.ErrorIs(t, out.Err, orchestrix.ErrOutcomeUnknown)
	out = h.Run("a1", banktest.Deposit{Amount: 5}, actor.WithCommandID("dep-1"))
	require.NoError(t, out.Err)
	assert.Equal(t, int64(5), out.State.Balance)
	actortest.ExpectPersisted[banktest.Deposited](p, "a1")
	p.ExpectNothingPersisted(0)
}

func TestEnv_DelayAppends_HeldUntilTheManualClockMoves(t *testing.T) {
	h := actortest.NewHarness(t, banktest.Accounts())
	env := h.Env()
	env.DelayAppends(1, actortest.AllAppends, time.Second)
	p := h.EventProbe()
	base := env.Clock.Timers() // the runtime's own timers (idle sweep)
	done := make(chan error, 1)
	go func() {
		_, err := h.Handle().Send(context.Background(), "a1", banktest.OpenAccount{Owner: "ada"})
		done <- err
	}()
	require.Eventually(t, func() bool { return env.Clock.Timers() > base }, 5*time.Second, time.Millisecond)
	env.Clock.Advance(500 * time.Millisecond)
	p.ExpectNothingPersisted(0)
	env.Clock.Advance(500 * time.Millisecond)
	require.NoError(t, <-done)
	actortest.ExpectPersisted[banktest.Opened](p, "a1")
}

func TestEnv_Faults_NeedTheMemJournal(t *testing.T) {
	msg := kittest.Run(t, func(ft testing.TB) {
		j, err := memjournal.New(memjournal.Config{})
		require.NoError(t, err)
		env := actortest.NewSystem(ft, actortest.WithBackend(j))
		env.FailAppends(1, actortest.AllAppends)
	})
	assert.Contains(t, msg, "need the in-memory journal")
}

// A rejection with the test's own error stays definite: the caller sees
// that error, journal.ErrRejected, and not an unknown outcome.
func TestEnv_RejectAppends_OwnErrorIsDefinite(t *testing.T) {
	errQuota := errors.New("quota exceeded")
	h := actortest.NewHarness(t, banktest.Accounts())
	h.Env().RejectAppends(1, actortest.AllAppends, errQuota)
	p := h.EventProbe()
	out := h.Run("a1", banktest.OpenAccount{Owner: "ada"})
	require.ErrorIs(t, out.Err, errQuota)
	require.ErrorIs(t, out.Err, journal.ErrRejected)
	require.NotErrorIs(t, out.Err, orchestrix.ErrOutcomeUnknown)
	require.Contains(t, out.Err.Error(), "quota exceeded")
	p.ExpectNothingPersisted(0)
}
