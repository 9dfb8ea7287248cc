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
	maintest.FreshDataDir(t, []string{JournalFile, ReadModelsFile}, []string{"channel: 8 notifications delivered, 0 more than once"})
}

func TestMain_UnopenableJournal_ClearErrorNoPanic(t *testing.T) {
	maintest.UnopenableFile(t, "notifications", JournalFile)
}

// The read models fail after the journal opened: Open's clean-up path runs.
func TestMain_UnopenableReadModels_ClearErrorNoPanic(t *testing.T) {
	maintest.UnopenableFile(t, "notifications", ReadModelsFile)
}

func TestMain(m *testing.M) {
	maintest.Child(main)
	os.Exit(m.Run())
}
