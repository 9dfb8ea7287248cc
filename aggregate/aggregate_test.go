package aggregate_test

import (
	"errors"
	"github.com/orchestrix/orchestrix/internal/banktest"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/orchestrix/orchestrix"
	"github.com/orchestrix/orchestrix/aggregate"
)

func TestDefinition_Validate_Complete_OK(t *testing.T) {
	def := banktest.Accounts()
	require.NoError(t, def.Validate())
}

func TestDefinition_Validate_Incomplete_ListsProblems(t *testing.T) {
	def := aggregate.Definition[banktest.Account, banktest.Command, banktest.Event]{Kind: "bad-kind", Events: []aggregate.EventType{{}}}
	err := def.Validate()
	require.ErrorIs(t, err, aggregate.ErrInvalidDefinition)
	for _, want := range []string{"Initial is nil", "Decide is nil", "Evolve is nil", "bad-kind", "Events[0]"} {
		assert.Contains(t, err.Error(), want)
	}
}

func TestDefinition_Validate_HalfACodec_Fails(t *testing.T) {
	def := banktest.Accounts()
	def.EncodeState = func(banktest.Account) ([]byte, error) { return nil, nil }
	require.ErrorIs(t, def.Validate(), aggregate.ErrInvalidDefinition)
}

func TestDefinition_Validate_DuplicateEventName_Fails(t *testing.T) {
	def := banktest.Accounts()
	def.Events = append(def.Events, aggregate.Event[banktest.Opened]("test.account.opened"))
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

func TestDefinition_RegisterEvents_Twice_IsIdempotent(t *testing.T) {
	def := banktest.Accounts()
	r := orchestrix.NewRegistry()
	require.NoError(t, def.RegisterEvents(r))
	require.NoError(t, def.RegisterEvents(r))
	name, err := r.TypeName(banktest.Deposited{})
	require.NoError(t, err)
	assert.Equal(t, "test.account.deposited", name)
}

func TestDefinition_RegisterEvents_NameTakenByOtherType_Fails(t *testing.T) {
	def := banktest.Accounts()
	r := orchestrix.NewRegistry()
	require.NoError(t, orchestrix.Register[struct{ X int }](r, "test.account.opened"))
	err := def.RegisterEvents(r)
	require.Error(t, err)
	var re *orchestrix.RegistrationError
	assert.True(t, errors.As(err, &re))
}

func TestEvent_NameAndType(t *testing.T) {
	et := aggregate.Event[banktest.Deposited]("x.deposited")
	assert.Equal(t, "x.deposited", et.Name())
	assert.Equal(t, "Deposited", et.GoType().Name())
}

func TestNewCommand_GeneratesID(t *testing.T) {
	c1 := aggregate.NewCommand[banktest.Command]("acc-1", banktest.Deposit{Amount: 1})
	c2 := aggregate.NewCommand[banktest.Command]("acc-1", banktest.Deposit{Amount: 1})
	assert.Len(t, c1.ID, 36)
	assert.NotEqual(t, c1.ID, c2.ID)
	assert.Equal(t, "acc-1", c1.AggregateID)
}
