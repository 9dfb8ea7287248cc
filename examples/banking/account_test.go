package main

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/orchestrix/orchestrix/actor/actortest"
	"github.com/orchestrix/orchestrix/aggregate/aggregatetest"
)

func TestAccounts_Serialize(t *testing.T) { aggregatetest.CheckSerialization(t, Accounts) }

// The account's life on the real runtime: the harness checks serialization
// first, each step reports its events, state and error, the probe sees
// exactly the events the commands caused, and the account recovers to the
// same state after a restart.
func TestAccounts_OnTheRuntime(t *testing.T) {
	h := actortest.NewHarness(t, Accounts)
	p := h.EventProbe()

	require.NoError(t, h.Run("acc-1", OpenAccount{Owner: "ada"}).Err)
	out := h.Run("acc-1", Deposit{Amount: 500})
	require.NoError(t, out.Err)
	assert.Equal(t, Account{Status: Active, Owner: "ada", Balance: 500}, out.State)

	out = h.Run("acc-1", Withdraw{Amount: 900})
	assert.ErrorIs(t, out.Err, ErrInsufficientFunds)
	assert.Equal(t, uint64(2), out.Version)

	opened, _ := actortest.ExpectPersisted[AccountOpened](p, "acc-1")
	assert.Equal(t, "ada", opened.Owner)
	dep, rec := actortest.ExpectPersisted[MoneyDeposited](p, "acc-1")
	assert.Equal(t, int64(500), dep.Amount)
	assert.Equal(t, "bank.account.deposited", rec.Envelope.Type)
	p.ExpectNothingPersisted(0) // the refused withdrawal stored nothing

	h.ExpectRecovers("acc-1")
	h.ExpectStateAt("acc-1", 1, Account{Status: Active, Owner: "ada"})

	// An account exists only once opened.
	out = h.Run("acc-2", Deposit{Amount: 1})
	assert.Error(t, out.Err)
	assert.Equal(t, uint64(0), out.Version)
}
