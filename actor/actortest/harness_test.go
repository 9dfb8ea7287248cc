package actortest_test

import (
	"context"
	"encoding/json"
	"math"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/orchestrix/orchestrix/actor/actortest"
	"github.com/orchestrix/orchestrix/aggregate"
	"github.com/orchestrix/orchestrix/internal/banktest"
	"github.com/orchestrix/orchestrix/internal/kittest"
	"github.com/orchestrix/orchestrix/snapshot"
)

func TestHarness_Run_ReturnsEventsStateVersionAndError(t *testing.T) {
	h := actortest.NewHarness(t, banktest.Accounts())
	out := h.Run("a1", banktest.OpenAccount{Owner: "ada"})
	require.NoError(t, out.Err)
	assert.Equal(t, []banktest.Event{banktest.Opened{Owner: "ada"}}, out.Events)
	assert.Equal(t, banktest.Account{ID: "a1", Owner: "ada", Open: true}, out.State)
	assert.Equal(t, uint64(1), out.Version)

	out = h.Run("a1", banktest.Deposit{Amount: 30})
	require.NoError(t, out.Err)
	assert.Equal(t, int64(30), out.State.Balance)
	assert.Equal(t, uint64(2), out.Version)

	out = h.Run("a1", banktest.Withdraw{Amount: 100})
	assert.ErrorIs(t, out.Err, banktest.ErrInsufficientFunds)
	assert.ErrorIs(t, out.Err, aggregate.ErrRejected)
	assert.Empty(t, out.Events)
	assert.Equal(t, uint64(2), out.Version, "a rejected command changes nothing")
	assert.Equal(t, int64(30), out.State.Balance)
}

type leaky struct {
	Owner string
	memo  string
}

func leakyDef() aggregate.Definition[banktest.Account, banktest.Command, any] {
	return aggregate.Definition[banktest.Account, banktest.Command, any]{
		Kind:    "leaky",
		Initial: func(id string) banktest.Account { return banktest.Account{ID: id} },
		Decide: func(_ banktest.Account, c banktest.Command) ([]any, error) {
			return []any{leaky{Owner: c.(banktest.OpenAccount).Owner, memo: "m"}}, nil
		},
		Evolve: func(s banktest.Account, e any) banktest.Account { s.Owner = e.(leaky).Owner; return s },
		Events: []aggregate.EventType{aggregate.Event[leaky]("test.leaky")},
	}
}

func TestHarness_ChecksSerializationByDefault(t *testing.T) {
	msg := kittest.Run(t, func(ft testing.TB) { actortest.NewHarness(ft, leakyDef()) })
	assert.Contains(t, msg, `event "test.leaky"`)
	assert.Contains(t, msg, "field memo (unexported")

	msg = kittest.Run(t, func(ft testing.TB) { actortest.NewHarness(ft, leakyDef(), actortest.WithoutSerializationCheck()) })
	assert.Empty(t, msg)
}

func TestHarness_Restart_RecoversFromSnapshotAndEvents(t *testing.T) {
	def := banktest.Accounts()
	def.SnapshotEvery = 2
	h := actortest.NewHarness(t, def)
	h.Run("a1", banktest.OpenAccount{Owner: "ada"})
	for i := range 3 {
		require.NoError(t, h.Run("a1", banktest.Deposit{Amount: int64(i + 1)}).Err)
	}
	before := h.Handle()
	h.ExpectRecovers("a1")
	assert.NotSame(t, before, h.Handle(), "a restart registers the definition again")
	snap, ok, err := h.Env().Snapshots.Load(context.Background(), h.Handle().Stream("a1"), snapshot.Criteria{MaxVersion: math.MaxUint64})
	require.NoError(t, err)
	require.True(t, ok, "the runtime saved a snapshot")
	assert.GreaterOrEqual(t, snap.Version, uint64(2))
	s, v := h.State("a1")
	assert.Equal(t, int64(6), s.Balance)
	assert.Equal(t, uint64(4), v)
}

func TestHarness_ExpectRecovers_FailsWhenTheSnapshotLosesState(t *testing.T) {
	def := banktest.Accounts()
	def.SnapshotEvery = 1
	type lossy struct{ ID, Owner string } // no balance
	def.EncodeState = func(s banktest.Account) ([]byte, error) { return json.Marshal(lossy{s.ID, s.Owner}) }
	def.DecodeState = func(b []byte) (banktest.Account, error) {
		var l lossy
		err := json.Unmarshal(b, &l)
		return banktest.Account{ID: l.ID, Owner: l.Owner, Open: true}, err
	}
	msg := kittest.Run(t, func(ft testing.TB) {
		h := actortest.NewHarness(ft, def, actortest.WithoutSerializationCheck())
		h.Run("a1", banktest.OpenAccount{Owner: "ada"})
		h.Run("a1", banktest.Deposit{Amount: 5})
		h.ExpectRecovers("a1")
	})
	assert.Contains(t, msg, `account "a1" recovered to another state after a restart: field Balance: 5 became 0`)

	// The serialization check run by NewHarness catches it up front.
	msg = kittest.Run(t, func(ft testing.TB) { actortest.NewHarness(ft, def) })
	assert.Contains(t, msg, "state banktest.Account does not survive serialization: field Balance")
}

func TestHarness_ExpectRecovers_FailsWhenEvolveIsImpure(t *testing.T) {
	def := banktest.Accounts()
	drift := false // a hidden input: replays after it is set differ
	def.Evolve = func(s banktest.Account, e banktest.Event) banktest.Account {
		s = banktest.Evolve(s, e)
		if drift {
			s.Balance += 1000
		}
		return s
	}
	msg := kittest.Run(t, func(ft testing.TB) {
		h := actortest.NewHarness(ft, def, actortest.WithoutSnapshots())
		h.Run("a1", banktest.OpenAccount{Owner: "ada"})
		drift = true
		h.ExpectRecovers("a1")
	})
	assert.Contains(t, msg, "folding its events from Initial gives another state than the live one: field Balance: 0 became 1000")
}

func TestHarness_StateAt(t *testing.T) {
	h := actortest.NewHarness(t, banktest.Accounts())
	h.Run("a1", banktest.OpenAccount{Owner: "ada"})
	h.Run("a1", banktest.Deposit{Amount: 10})
	h.Run("a1", banktest.Withdraw{Amount: 4})
	h.ExpectStateAt("a1", 2, banktest.Account{ID: "a1", Owner: "ada", Open: true, Balance: 10})
	s, v := h.StateAt("a1", 99)
	assert.Equal(t, uint64(3), v)
	assert.Equal(t, int64(6), s.Balance)

	msg := kittest.Run(t, func(ft testing.TB) {
		g := actortest.NewHarness(ft, banktest.Accounts())
		g.Run("a1", banktest.OpenAccount{Owner: "ada"})
		g.ExpectStateAt("a1", 1, banktest.Account{ID: "a1", Owner: "bob", Open: true})
		g.ExpectStateAt("a1", 5, banktest.Account{ID: "a1", Owner: "ada", Open: true})
	})
	assert.Contains(t, msg, `field Owner: "bob" became "ada"`)
	assert.Contains(t, msg, "only version 1 exists")
}

func TestHarness_EventProbe_SeesThisKind(t *testing.T) {
	h := actortest.NewHarness(t, banktest.Accounts())
	p := h.EventProbe()
	h.Run("a1", banktest.OpenAccount{Owner: "ada"})
	e, _ := actortest.ExpectPersisted[banktest.Opened](p, "a1")
	assert.Equal(t, "ada", e.Owner)
	p.ExpectNothingPersisted(0)
}
