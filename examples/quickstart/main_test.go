package main

import (
	"bytes"
	"context"
	"math"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/orchestrix/orchestrix"

	boltjournal "github.com/orchestrix/orchestrix/journal/bolt"
)

func TestRun_TellsTheStoryAndLeavesADurableJournal(t *testing.T) {
	dir := t.TempDir()
	var out bytes.Buffer
	require.NoError(t, run(context.Background(), &out, dir, nil))
	text := out.String()
	for _, want := range []string{
		"OpenAccount -> AccountOpened, version 1",
		"Withdraw    -> MoneyWithdrawn, version 3",
		"matches ErrInsufficientFunds: true",
		"retried command deposit-42: duplicate=true, version stays 4 (was 4)",
		"after 101 more deposits: balance 8101 at version 105",
		"recovered: owner Alice, balance 8101 at version 105",
		"version 2: open=true balance 10000",
		`"type":"bank.account.opened"`,
		"stream account-alice: head 105, 105 events stored",
	} {
		require.Contains(t, text, want)
	}

	// The journal it leaves behind holds exactly the acknowledged events:
	// folding them from scratch gives the balance the demo reported.
	j, err := boltjournal.Open(filepath.Join(dir, "orchestrix.db"), boltjournal.Config{})
	require.NoError(t, err)
	defer j.Close()
	reg := orchestrix.NewRegistry()
	require.NoError(t, Accounts.RegisterEvents(reg))
	state := Account{}
	versions := 0
	for rec, err := range j.Read(context.Background(), "account-alice", 1, math.MaxUint64, math.MaxInt) {
		require.NoError(t, err)
		versions++
		require.Equal(t, uint64(versions), rec.Version)
		ev, err := reg.Unmarshal(rec.Envelope)
		require.NoError(t, err)
		state = Accounts.Evolve(state, ev.(AccountEvent))
	}
	require.Equal(t, 105, versions)
	require.Equal(t, Account{Open: true, Owner: "Alice", Balance: 8101}, state)
}
