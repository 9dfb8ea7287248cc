package main

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/orchestrix/orchestrix/actor/actortest"
	"github.com/orchestrix/orchestrix/saga"
	"github.com/orchestrix/orchestrix/saga/sagatest"
)

// The transfer saga on the saga kit with the real account aggregate: a
// credit the suspended account refuses reverses the debit, and the
// accounts' events show it.
func TestTransferSaga_RefusedCredit_ReversesTheDebit(t *testing.T) {
	k := sagatest.New(t)
	accounts := sagatest.Real(k, Accounts)
	ctx := context.Background()
	for _, c := range []struct {
		id  string
		cmd AccountCommand
	}{{"alice", OpenAccount{Owner: "alice"}}, {"alice", Deposit{Amount: 100}}, {"bob", OpenAccount{Owner: "bob"}}, {"bob", Suspend{Reason: "audit"}}} {
		_, err := accounts.Send(ctx, c.id, c.cmd)
		require.NoError(t, err)
	}
	transfers := sagatest.Register(k, transferSaga(accounts))
	probe := k.Env.EventProbe(t, actortest.ProbeKind(Accounts.Kind))

	sagatest.Begin(k, transfers, "t1", Transfer{From: "alice", To: "bob", Amount: 30})
	_, debit := sagatest.ExpectSent[Withdraw](k, "account", "alice")
	_, credit := sagatest.ExpectSent[Deposit](k, "account", "bob")
	_, undo := sagatest.ExpectSent[Deposit](k, "account", "alice")
	st := sagatest.ExpectFinished(k, transfers, "t1", saga.StateCompensated)
	k.ExpectNothingSent()

	require.Equal(t, []sagatest.Answer{sagatest.Passed, sagatest.Passed, sagatest.Passed}, []sagatest.Answer{debit.Answer, credit.Answer, undo.Answer})
	require.True(t, undo.Compensating)
	require.Equal(t, "credit", st.Failure.Step)
	require.Contains(t, st.Failure.Reason, ErrNotActive.Error())
	w, _ := actortest.ExpectPersisted[MoneyWithdrawn](probe, "alice")
	d, _ := actortest.ExpectPersisted[MoneyDeposited](probe, "alice")
	require.Equal(t, w.Amount, d.Amount)
	probe.ExpectNothingPersisted(0) // bob got nothing
}
