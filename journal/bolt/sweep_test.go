package bolt_test

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/orchestrix/orchestrix"
)

// TestOpen_SingleByteDamage_ErrCorruptNeverPanic flips bytes all over a
// small journal file (every 13th byte, two patterns) and runs CheckFile,
// Open and a full read on each result: nil or ErrCorrupt, never a panic.
func TestOpen_SingleByteDamage_ErrCorruptNeverPanic(t *testing.T) {
	seed := smallJournal(t)
	path := filepath.Join(t.TempDir(), "journal.db")
	for i := 0; i < len(seed); i += 13 {
		for _, x := range []byte{0xff, 0x80} {
			b := append([]byte(nil), seed...)
			b[i] ^= x
			if err := os.WriteFile(path, b, 0o600); err != nil {
				t.Fatal(err)
			}
			if err := openCheckRead(path); err != nil && !errors.Is(err, orchestrix.ErrCorrupt) {
				t.Fatalf("byte %d (page %d +%d) ^ %#x: %v", i, i/4096, i%4096, x, err)
			}
		}
	}
}
