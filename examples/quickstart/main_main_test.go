package main

import (
	"os"
	"testing"

	"github.com/orchestrix/orchestrix/examples/internal/maintest"
)

// The program as a user runs it: -data naming a directory that does not
// exist yet works, and an unopenable file ends in a clear error, not a
// panic.
func TestMain_FreshDataDir_CreatedAndUsed(t *testing.T) {
	maintest.FreshDataDir(t, []string{"orchestrix.db"}, []string{"stream account-alice: head 105, 105 events stored"})
}

func TestMain_UnopenableJournal_ClearErrorNoPanic(t *testing.T) {
	maintest.UnopenableFile(t, "quickstart", "orchestrix.db")
}

func TestMain(m *testing.M) {
	maintest.Child(main)
	os.Exit(m.Run())
}
