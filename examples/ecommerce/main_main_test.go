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
	maintest.FreshDataDir(t, []string{"shop.db"}, []string{"orders by status (projection):\n  confirmed o1\n  cancelled o2, o3\n"})
}

func TestMain_UnopenableJournal_ClearErrorNoPanic(t *testing.T) {
	maintest.UnopenableFile(t, "ecommerce", "shop.db")
}

func TestMain(m *testing.M) {
	maintest.Child(main)
	os.Exit(m.Run())
}
