package main

import (
	"testing"

	"github.com/orchestrix/orchestrix/examples/internal/maintest"
	"github.com/orchestrix/orchestrix/internal/pgtest"
)

// The program as a user runs it: -data naming a directory that does not
// exist yet works, and an unopenable file ends in a clear error, not a
// panic.
func TestMain_FreshDataDir_CreatedAndUsed(t *testing.T) {
	maintest.FreshDataDir(t, []string{JournalFile, KeysFile}, []string{"keys.db contains alice's key: false", `customer bob   name="Bob Marley"`})
}

func TestMain_UnopenableJournal_ClearErrorNoPanic(t *testing.T) {
	maintest.UnopenableFile(t, "gdpr", JournalFile)
}

// The key store fails after the journal opened: start's clean-up path
// runs (it used to call stop on a nil runtime and panic).
func TestMain_UnopenableKeyStore_ClearErrorNoPanic(t *testing.T) {
	maintest.UnopenableFile(t, "gdpr", KeysFile)
}

func TestMain(m *testing.M) {
	maintest.Child(main)
	pgtest.Main(m)
}
