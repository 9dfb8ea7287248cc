package actor_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/orchestrix/orchestrix"
	"github.com/orchestrix/orchestrix/actor"
	"github.com/orchestrix/orchestrix/actor/actortest"
	"github.com/orchestrix/orchestrix/aggregate"
	"github.com/orchestrix/orchestrix/internal/banktest"
)

// accountsWithCommands is the test account with its command types listed.
func accountsWithCommands(cmds ...aggregate.CommandType) aggregate.Definition[banktest.Account, banktest.Command, banktest.Event] {
	def := banktest.Accounts()
	def.Commands = cmds
	return def
}

func allAccountCommands() []aggregate.CommandType {
	return []aggregate.CommandType{
		aggregate.CommandOf[banktest.OpenAccount]("test.account.open"),
		aggregate.CommandOf[banktest.Deposit]("test.account.deposit"),
		aggregate.CommandOf[banktest.Withdraw]("test.account.withdraw"),
	}
}

// A command encoded by one system decodes to the same typed command in
// another system (its own registry), as it would at a receiving member,
// and can be executed there.
func TestHandle_EncodeDecodeCommand_RoundTripAcrossSystems(t *testing.T) {
	ctx := ctxT(t)
	sender := register(t, actortest.NewSystem(t), accountsWithCommands(allAccountCommands()...))
	envB := actortest.NewSystem(t)
	receiver := register(t, envB, accountsWithCommands(allAccountCommands()...))

	for _, body := range []banktest.Command{banktest.OpenAccount{Owner: "ada"}, banktest.Deposit{Amount: 42}, banktest.Withdraw{Amount: 7}} {
		in := aggregate.Command[banktest.Command]{ID: "cmd-" + orchestrix.NewID(), AggregateID: "a1", Body: body,
			CorrelationID: "corr-1", TraceParent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}
		data, err := sender.EncodeCommand(ctx, in)
		require.NoError(t, err)
		out, err := receiver.DecodeCommand(ctx, data)
		require.NoError(t, err)
		assert.Equal(t, in, out)
	}

	open, err := sender.EncodeCommand(ctx, aggregate.Command[banktest.Command]{ID: "c-open", AggregateID: "a2", Body: banktest.OpenAccount{Owner: "bob"}})
	require.NoError(t, err)
	cmd, err := receiver.DecodeCommand(ctx, open)
	require.NoError(t, err)
	res, err := receiver.Dispatch(ctx, cmd)
	require.NoError(t, err)
	assert.Equal(t, "c-open", res.CommandID)
	recs := readStream(t, envB.Journal, "account-a2")
	require.Len(t, recs, 1)
	assert.Equal(t, "c-open", recs[0].Envelope.CausationID)
}

// DecodeCommand's command owns its memory: the caller may reuse the bytes
// it decoded from (only the cluster's wire path, whose buffers are its
// own, lets the command borrow them).
func TestHandle_DecodeCommand_DoesNotKeepTheInput(t *testing.T) {
	ctx := ctxT(t)
	h := register(t, actortest.NewSystem(t), accountsWithCommands(allAccountCommands()...))
	in := aggregate.Command[banktest.Command]{ID: "cmd-keep", AggregateID: "acc-keep", Body: banktest.OpenAccount{Owner: "ada"},
		CorrelationID: "corr-keep", TraceParent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}
	data, err := h.EncodeCommand(ctx, in)
	require.NoError(t, err)
	out, err := h.DecodeCommand(ctx, data)
	require.NoError(t, err)
	for i := range data {
		data[i] = 'x'
	}
	assert.Equal(t, in, out)
}

func TestHandle_EncodeCommand_TypeNotListed_ErrUnknownCommandType(t *testing.T) {
	ctx := ctxT(t)
	h := register(t, actortest.NewSystem(t), accountsWithCommands(aggregate.CommandOf[banktest.OpenAccount]("test.account.open")))
	_, err := h.EncodeCommand(ctx, aggregate.Command[banktest.Command]{ID: "c1", AggregateID: "a1", Body: banktest.Deposit{Amount: 1}})
	require.ErrorIs(t, err, actor.ErrUnknownCommandType)
	assert.Contains(t, err.Error(), "banktest.Deposit")
}

// Without command types a definition works in one process; encoding says
// why it cannot.
func TestHandle_EncodeCommand_NoCommandTypes_SendStillWorks(t *testing.T) {
	ctx := ctxT(t)
	h := register(t, actortest.NewSystem(t), banktest.Accounts())
	_, err := h.Send(ctx, "a1", banktest.OpenAccount{Owner: "ada"})
	require.NoError(t, err)
	_, err = h.EncodeCommand(ctx, aggregate.Command[banktest.Command]{ID: "c1", AggregateID: "a1", Body: banktest.Deposit{Amount: 1}})
	require.ErrorIs(t, err, actor.ErrUnknownCommandType)
	assert.Contains(t, err.Error(), "lists no command types")
}

func TestHandle_EncodeCommand_MissingIDs_ErrInvalidID(t *testing.T) {
	ctx := ctxT(t)
	h := register(t, actortest.NewSystem(t), accountsWithCommands(allAccountCommands()...))
	_, err := h.EncodeCommand(ctx, aggregate.Command[banktest.Command]{AggregateID: "a1", Body: banktest.Deposit{Amount: 1}})
	require.ErrorIs(t, err, actor.ErrInvalidID)
	_, err = h.EncodeCommand(ctx, aggregate.Command[banktest.Command]{ID: "c1", Body: banktest.Deposit{Amount: 1}})
	require.ErrorIs(t, err, actor.ErrInvalidID)
}

// A receiver that does not know a command type (an older member, another
// kind's command, an event envelope) refuses it with the sentinel.
func TestHandle_DecodeCommand_UnknownTypeName_ErrUnknownCommandType(t *testing.T) {
	ctx := ctxT(t)
	sender := register(t, actortest.NewSystem(t), accountsWithCommands(allAccountCommands()...))
	receiver := register(t, actortest.NewSystem(t), accountsWithCommands(
		aggregate.CommandOf[banktest.OpenAccount]("test.account.open"),
		aggregate.CommandOf[banktest.Deposit]("test.account.deposit")))

	data, err := sender.EncodeCommand(ctx, aggregate.Command[banktest.Command]{ID: "c1", AggregateID: "a1", Body: banktest.Withdraw{Amount: 1}})
	require.NoError(t, err)
	_, err = receiver.DecodeCommand(ctx, data)
	require.ErrorIs(t, err, actor.ErrUnknownCommandType)
	assert.Contains(t, err.Error(), "test.account.withdraw")

	// An event's envelope is not a command, though its type is registered.
	env := orchestrix.Envelope{ID: "e1", Source: "/test", Type: "test.account.deposited", Subject: "a1",
		DataContentType: "application/json", Data: []byte(`{"Amount":1}`)}
	evData, err := env.MarshalBinary()
	require.NoError(t, err)
	_, err = receiver.DecodeCommand(ctx, evData)
	require.ErrorIs(t, err, actor.ErrUnknownCommandType)
}

func TestHandle_DecodeCommand_Malformed_ErrCorruptOrInvalidEnvelope(t *testing.T) {
	ctx := ctxT(t)
	h := register(t, actortest.NewSystem(t), accountsWithCommands(allAccountCommands()...))
	_, err := h.DecodeCommand(ctx, []byte("not an envelope"))
	require.ErrorIs(t, err, orchestrix.ErrCorrupt)

	env := orchestrix.Envelope{ID: "c1", Source: "/test", Type: "test.account.deposit", Subject: "a1",
		DataContentType: "application/json", Data: []byte(`{"Amount":"many"}`)}
	data, err := env.MarshalBinary()
	require.NoError(t, err)
	_, err = h.DecodeCommand(ctx, data)
	require.ErrorIs(t, err, orchestrix.ErrInvalidEnvelope)
}
