package aggregate_test

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/orchestrix/orchestrix"
	"github.com/orchestrix/orchestrix/aggregate"
)

func TestDefinition_Validate_Complete_OK(t *testing.T) {
	def := accounts()
	require.NoError(t, def.Validate())
}

func TestDefinition_Validate_Incomplete_ListsProblems(t *testing.T) {
	def := aggregate.Definition[Account, Command, Event]{Kind: "bad-kind", Events: []aggregate.EventType{{}}}
	err := def.Validate()
	require.ErrorIs(t, err, aggregate.ErrInvalidDefinition)
	for _, want := range []string{"Initial is nil", "Decide is nil", "Evolve is nil", "bad-kind", "Events[0]"} {
		assert.Contains(t, err.Error(), want)
	}
}

func TestDefinition_Validate_HalfACodec_Fails(t *testing.T) {
	def := accounts()
	def.EncodeState = func(Account) ([]byte, error) { return nil, nil }
	require.ErrorIs(t, def.Validate(), aggregate.ErrInvalidDefinition)
}

func TestDefinition_Validate_DuplicateEventName_Fails(t *testing.T) {
	def := accounts()
	def.Events = append(def.Events, aggregate.Event[Opened]("test.account.opened"))
	require.ErrorIs(t, def.Validate(), aggregate.ErrInvalidDefinition)
}

func TestValidateKind_Names(t *testing.T) {
	for _, ok := range []string{"account", "bank.Account_2"} {
		assert.NoError(t, aggregate.ValidateKind(ok), ok)
	}
	for _, bad := range []string{"", "has-dash", "has space", "ünï", string(make([]byte, 65))} {
		assert.Error(t, aggregate.ValidateKind(bad), bad)
	}
}

func TestDefinition_Execute_Accepted_ReturnsEventsAndState(t *testing.T) {
	def := accounts()
	s := Account{ID: "a", Open: true, Balance: 10}
	next, events, err := def.Execute(s, Deposit{Amount: 5})
	require.NoError(t, err)
	assert.Equal(t, []Event{Deposited{Amount: 5}}, events)
	assert.Equal(t, int64(15), next.Balance)
	assert.Equal(t, int64(10), s.Balance, "input state untouched")
}

func TestDefinition_Execute_Rejected_WrapsDomainError(t *testing.T) {
	def := accounts()
	s := Account{ID: "a", Open: true, Balance: 10}
	next, events, err := def.Execute(s, Withdraw{Amount: 50})
	require.ErrorIs(t, err, aggregate.ErrRejected)
	require.ErrorIs(t, err, ErrInsufficientFunds)
	var rej *aggregate.RejectedError
	require.ErrorAs(t, err, &rej)
	assert.Nil(t, events)
	assert.Equal(t, s, next)
}

func TestDefinition_Execute_PanicInDecide_ReturnsPanicError(t *testing.T) {
	def := accounts()
	s := Account{ID: "a", Open: true}
	next, events, err := def.Execute(s, Explode{})
	require.ErrorIs(t, err, aggregate.ErrPanicked)
	var pe *aggregate.PanicError
	require.ErrorAs(t, err, &pe)
	assert.Equal(t, "Decide", pe.Func)
	assert.Equal(t, "boom", pe.Value)
	assert.NotEmpty(t, pe.Stack)
	assert.Nil(t, events)
	assert.Equal(t, s, next)
}

func TestDefinition_Fold_PanicInEvolve_ReturnsStateUnchanged(t *testing.T) {
	def := accounts()
	s := Account{ID: "a", Open: true, Balance: 3}
	next, err := def.Fold(s, Deposited{Amount: 1}, Poisoned{})
	require.ErrorIs(t, err, aggregate.ErrPanicked)
	assert.Equal(t, s, next)
}

func TestDefinition_Fold_Events_AppliesInOrder(t *testing.T) {
	def := accounts()
	next, err := def.Fold(Account{ID: "a"}, Opened{Owner: "ada"}, Deposited{Amount: 7}, Withdrawn{Amount: 2})
	require.NoError(t, err)
	assert.Equal(t, Account{ID: "a", Owner: "ada", Open: true, Balance: 5}, next)
}

func TestDefinition_SnapshotCodec_JSONDefault_RoundTrips(t *testing.T) {
	def := accounts()
	s := Account{ID: "a", Owner: "ada", Open: true, Balance: 42}
	data, err := def.EncodeSnapshot(s)
	require.NoError(t, err)
	got, err := def.DecodeSnapshot(data)
	require.NoError(t, err)
	assert.Equal(t, s, got)
	_, err = def.DecodeSnapshot([]byte("{not json"))
	assert.Error(t, err)
}

func TestDefinition_SnapshotCodec_Custom_Used(t *testing.T) {
	def := accounts()
	def.EncodeState = func(s Account) ([]byte, error) { return []byte(s.Owner), nil }
	def.DecodeState = func(b []byte) (Account, error) { return Account{Owner: string(b)}, nil }
	data, err := def.EncodeSnapshot(Account{Owner: "bob"})
	require.NoError(t, err)
	assert.Equal(t, "bob", string(data))
	got, err := def.DecodeSnapshot(data)
	require.NoError(t, err)
	assert.Equal(t, "bob", got.Owner)
}

func TestDefinition_SnapshotInterval_Defaults(t *testing.T) {
	def := accounts()
	assert.Equal(t, aggregate.DefaultSnapshotEvery, def.SnapshotInterval())
	def.SnapshotEvery = -1
	assert.Equal(t, 0, def.SnapshotInterval())
	def.SnapshotEvery = 7
	assert.Equal(t, 7, def.SnapshotInterval())
	assert.Equal(t, 1, def.SchemaVersion())
}

func TestDefinition_RegisterEvents_Twice_IsIdempotent(t *testing.T) {
	def := accounts()
	r := orchestrix.NewRegistry()
	require.NoError(t, def.RegisterEvents(r))
	require.NoError(t, def.RegisterEvents(r))
	name, err := r.TypeName(Deposited{})
	require.NoError(t, err)
	assert.Equal(t, "test.account.deposited", name)
}

func TestDefinition_RegisterEvents_NameTakenByOtherType_Fails(t *testing.T) {
	def := accounts()
	r := orchestrix.NewRegistry()
	require.NoError(t, orchestrix.Register[struct{ X int }](r, "test.account.opened"))
	err := def.RegisterEvents(r)
	require.Error(t, err)
	var re *orchestrix.RegistrationError
	assert.True(t, errors.As(err, &re))
}

func TestEvent_NameAndType(t *testing.T) {
	et := aggregate.Event[Deposited]("x.deposited")
	assert.Equal(t, "x.deposited", et.Name())
	assert.Equal(t, "Deposited", et.GoType().Name())
}

func TestNewCommand_GeneratesID(t *testing.T) {
	c1 := aggregate.NewCommand[Command]("acc-1", Deposit{Amount: 1})
	c2 := aggregate.NewCommand[Command]("acc-1", Deposit{Amount: 1})
	assert.Len(t, c1.ID, 36)
	assert.NotEqual(t, c1.ID, c2.ID)
	assert.Equal(t, "acc-1", c1.AggregateID)
}
