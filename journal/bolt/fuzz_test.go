package bolt_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/orchestrix/orchestrix"
	"github.com/orchestrix/orchestrix/journal"
	"github.com/orchestrix/orchestrix/journal/bolt"
)

// FuzzOpenCheckRead mutates a small journal file (4 KiB pages; seeds in
// testdata/fuzz) and runs CheckFile, Open and a full read on it: a
// damaged file must give nil or an error matching orchestrix.ErrCorrupt,
// never a panic or a hang.
func FuzzOpenCheckRead(f *testing.F) {
	f.Add(smallJournal(f))
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(t.TempDir(), "journal.db")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := openCheckRead(path); err != nil && !errors.Is(err, orchestrix.ErrCorrupt) {
			t.Fatalf("damaged file: %v (want nil or ErrCorrupt)", err)
		}
	})
}

// smallJournal returns the bytes of a closed journal with a few streams,
// a deletion and a checkpoint.
func smallJournal(tb testing.TB) []byte {
	dir, err := os.MkdirTemp("", "fuzzseed")
	if err != nil {
		tb.Fatal(err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "journal.db")
	j, err := bolt.Open(path, bolt.Config{NoSync: true, PageSize: 4 << 10, IndexEvery: 4})
	if err != nil {
		tb.Fatal(err)
	}
	ctx := context.Background()
	for _, s := range []string{"order-1", "order-2", "customer-7"} {
		if _, err := j.Append(ctx, s, journal.Any, newEvents(3)); err != nil {
			tb.Fatal(err)
		}
	}
	if err := j.DeleteTo(ctx, "order-2", 1); err != nil {
		tb.Fatal(err)
	}
	if err := j.Close(); err != nil {
		tb.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}
