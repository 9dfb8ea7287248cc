package aggregate_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/orchestrix/orchestrix"
	"github.com/orchestrix/orchestrix/aggregate"
	"github.com/orchestrix/orchestrix/internal/banktest"
)

func TestDefinition_Validate_CommandTypes(t *testing.T) {
	for name, tc := range map[string]struct {
		cmds []aggregate.CommandType
		want string
	}{
		"duplicate name": {[]aggregate.CommandType{
			aggregate.CommandOf[banktest.OpenAccount]("test.account.open"),
			aggregate.CommandOf[banktest.Deposit]("test.account.open"),
		}, `command type name "test.account.open" listed twice`},
		"name of an event": {[]aggregate.CommandType{
			aggregate.CommandOf[banktest.Deposit]("test.account.deposited"),
		}, "also an event type name"},
		"not a command of the aggregate": {[]aggregate.CommandType{
			aggregate.CommandOf[banktest.Deposited]("test.account.deposit"),
		}, "is not a command of this aggregate"},
		"zero value": {[]aggregate.CommandType{{}}, "Commands[0] was not created with aggregate.CommandOf"},
	} {
		t.Run(name, func(t *testing.T) {
			def := banktest.Accounts()
			def.Commands = tc.cmds
			err := def.Validate()
			require.ErrorIs(t, err, aggregate.ErrInvalidDefinition)
			assert.Contains(t, err.Error(), tc.want)
		})
	}
}

func TestDefinition_RegisterCommands_RegistersNamesIdempotently(t *testing.T) {
	def := banktest.Accounts()
	def.Commands = []aggregate.CommandType{aggregate.CommandOf[banktest.Deposit]("test.account.deposit")}
	require.NoError(t, def.Validate())
	r := orchestrix.NewRegistry()
	require.NoError(t, def.RegisterCommands(r))
	require.NoError(t, def.RegisterCommands(r), "a second system sharing the registry")
	name, err := r.TypeName(banktest.Deposit{})
	require.NoError(t, err)
	assert.Equal(t, "test.account.deposit", name)

	got, ok := def.CommandTypeName(banktest.Deposit{Amount: 3})
	assert.True(t, ok)
	assert.Equal(t, "test.account.deposit", got)
	_, ok = def.CommandTypeName(banktest.Withdraw{})
	assert.False(t, ok)
	assert.True(t, def.HasCommandType("test.account.deposit"))
	assert.False(t, def.HasCommandType("test.account.deposited"))
}
