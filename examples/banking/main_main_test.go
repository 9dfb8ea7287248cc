package main

import (
	"testing"

	"github.com/orchestrix/orchestrix/examples/internal/maintest"
)

// The program as a user runs it: -data naming a directory that does not
// exist yet works, and an unopenable file ends in a clear error, not a
// panic.
func TestMain_FreshDataDir_CreatedAndUsed(t *testing.T) {
	maintest.FreshDataDir(t, []string{"bank.db"}, []string{"transfer t1: 300 from alice to bob\n  steps done [debit credit], undone []\n  => completed"})
}

func TestMain_UnopenableJournal_ClearErrorNoPanic(t *testing.T) {
	maintest.UnopenableFile(t, "banking", "bank.db")
}
