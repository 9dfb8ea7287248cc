package bolt_test

import (
	"context"
	"testing"

	"github.com/orchestrix/orchestrix/internal/damagetest"
	"github.com/orchestrix/orchestrix/journal"
	"github.com/orchestrix/orchestrix/journal/bolt"
)

// FuzzOpenCheckRead mutates a small journal file (4 KiB pages; seeds in
// testdata/fuzz) and runs CheckFile, Open and a full read on it: a
// damaged file must give nil or an error matching orchestrix.ErrCorrupt,
// never a panic or a hang.
func FuzzOpenCheckRead(f *testing.F) {
	damagetest.Fuzz(f, "journal.db", smallJournal(f), openCheckRead)
}

// smallJournal returns the bytes of a closed journal with a few streams,
// a deletion and a checkpoint.
func smallJournal(tb testing.TB) []byte {
	return damagetest.File(tb, "journal.db", func(path string) error {
		j, err := bolt.Open(path, bolt.Config{NoSync: true, PageSize: 4 << 10, IndexEvery: 4})
		if err != nil {
			return err
		}
		ctx := context.Background()
		for _, s := range []string{"order-1", "order-2", "customer-7"} {
			if _, err := j.Append(ctx, s, journal.Any, newEvents(3)); err != nil {
				return err
			}
		}
		if err := j.DeleteTo(ctx, "order-2", 1); err != nil {
			return err
		}
		return j.Close()
	})
}
