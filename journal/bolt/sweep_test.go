package bolt_test

import (
	"testing"

	"github.com/orchestrix/orchestrix/internal/damagetest"
)

// TestOpen_SingleByteDamage_ErrCorruptNeverPanic flips bytes all over a
// small journal file (every 13th byte, two patterns) and runs CheckFile,
// Open and a full read on each result: nil or ErrCorrupt, never a panic.
func TestOpen_SingleByteDamage_ErrCorruptNeverPanic(t *testing.T) {
	damagetest.Sweep(t, "journal.db", smallJournal(t), 13, []byte{0xff, 0x80}, openCheckRead)
}
