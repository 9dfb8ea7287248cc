package aggexec_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/orchestrix/orchestrix/aggregate"
	"github.com/orchestrix/orchestrix/internal/aggexec"
	"github.com/orchestrix/orchestrix/internal/banktest"
)

func TestDef_Execute_Accepted_ReturnsEventsAndState(t *testing.T) {
	def := aggexec.Of(banktest.Accounts())
	s := banktest.Account{ID: "a", Open: true, Balance: 10}
	next, events, err := def.Execute(s, banktest.Deposit{Amount: 5})
	require.NoError(t, err)
	assert.Equal(t, []banktest.Event{banktest.Deposited{Amount: 5}}, events)
	assert.Equal(t, int64(15), next.Balance)
	assert.Equal(t, int64(10), s.Balance, "input state untouched")
}

func TestDef_Execute_Rejected_WrapsDomainError(t *testing.T) {
	def := aggexec.Of(banktest.Accounts())
	s := banktest.Account{ID: "a", Open: true, Balance: 10}
	next, events, err := def.Execute(s, banktest.Withdraw{Amount: 50})
	require.ErrorIs(t, err, aggregate.ErrRejected)
	require.ErrorIs(t, err, banktest.ErrInsufficientFunds)
	var rej *aggregate.RejectedError
	require.ErrorAs(t, err, &rej)
	assert.Nil(t, events)
	assert.Equal(t, s, next)
}

func TestDef_Execute_PanicInDecide_ReturnsPanicError(t *testing.T) {
	def := aggexec.Of(banktest.Accounts())
	s := banktest.Account{ID: "a", Open: true}
	next, events, err := def.Execute(s, banktest.Explode{})
	require.ErrorIs(t, err, aggregate.ErrPanicked)
	var pe *aggregate.PanicError
	require.ErrorAs(t, err, &pe)
	assert.Equal(t, "Decide", pe.Func)
	assert.Equal(t, "boom", pe.Value)
	assert.NotEmpty(t, pe.Stack)
	assert.Nil(t, events)
	assert.Equal(t, s, next)
}

func TestDef_Fold_PanicInEvolve_ReturnsStateUnchanged(t *testing.T) {
	def := aggexec.Of(banktest.Accounts())
	s := banktest.Account{ID: "a", Open: true, Balance: 3}
	next, err := def.Fold(s, banktest.Deposited{Amount: 1}, banktest.Poisoned{})
	require.ErrorIs(t, err, aggregate.ErrPanicked)
	assert.Equal(t, s, next)
}

func TestDef_Fold_Events_AppliesInOrder(t *testing.T) {
	def := aggexec.Of(banktest.Accounts())
	next, err := def.Fold(banktest.Account{ID: "a"}, banktest.Opened{Owner: "ada"}, banktest.Deposited{Amount: 7}, banktest.Withdrawn{Amount: 2})
	require.NoError(t, err)
	assert.Equal(t, banktest.Account{ID: "a", Owner: "ada", Open: true, Balance: 5}, next)
}

func TestDef_SnapshotCodec_JSONDefault_RoundTrips(t *testing.T) {
	def := aggexec.Of(banktest.Accounts())
	s := banktest.Account{ID: "a", Owner: "ada", Open: true, Balance: 42}
	data, err := def.EncodeSnapshot(s)
	require.NoError(t, err)
	got, err := def.DecodeSnapshot(data)
	require.NoError(t, err)
	assert.Equal(t, s, got)
	_, err = def.DecodeSnapshot([]byte("{not json"))
	assert.Error(t, err)
}

func TestDef_SnapshotCodec_Custom_Used(t *testing.T) {
	def := aggexec.Of(banktest.Accounts())
	def.EncodeState = func(s banktest.Account) ([]byte, error) { return []byte(s.Owner), nil }
	def.DecodeState = func(b []byte) (banktest.Account, error) { return banktest.Account{Owner: string(b)}, nil }
	data, err := def.EncodeSnapshot(banktest.Account{Owner: "bob"})
	require.NoError(t, err)
	assert.Equal(t, "bob", string(data))
	got, err := def.DecodeSnapshot(data)
	require.NoError(t, err)
	assert.Equal(t, "bob", got.Owner)
}

func TestDef_SnapshotInterval_Defaults(t *testing.T) {
	def := aggexec.Of(banktest.Accounts())
	assert.Equal(t, aggregate.DefaultSnapshotEvery, def.SnapshotInterval())
	def.SnapshotEvery = -1
	assert.Equal(t, 0, def.SnapshotInterval())
	def.SnapshotEvery = 7
	assert.Equal(t, 7, def.SnapshotInterval())
	assert.Equal(t, 1, def.SchemaVersion())
}
