package bolt_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/orchestrix/orchestrix/internal/damagetest"
	"github.com/orchestrix/orchestrix/snapshot"
	"github.com/orchestrix/orchestrix/snapshot/bolt"
)

// FuzzOpenLoad mutates a small snapshot file (seeds in testdata/fuzz) and
// opens it, loads every stream and saves one more snapshot: nil or an
// error matching orchestrix.ErrCorrupt, never a panic.
func FuzzOpenLoad(f *testing.F) {
	damagetest.Fuzz(f, "snapshots.db", smallSnapshotFile(f), openLoadSave)
}

func TestOpen_SingleByteDamage_ErrCorruptNeverPanic(t *testing.T) {
	damagetest.Sweep(t, "snapshots.db", smallSnapshotFile(t), 7, []byte{0xff}, openLoadSave)
}

func openLoadSave(path string) error {
	ctx := context.Background()
	s, err := bolt.Open(path, bolt.Config{NoSync: true, LockTimeout: time.Second})
	if err != nil {
		return err
	}
	defer s.Close()
	for i := range 4 {
		if _, _, err := s.Load(ctx, fmt.Sprintf("order-%d", i), snapshot.Criteria{MaxVersion: ^uint64(0)}); err != nil {
			return err
		}
	}
	return s.Save(ctx, snapshot.Snapshot{Stream: "order-9", Version: 1, Type: "t", Data: []byte("x")})
}

func smallSnapshotFile(tb testing.TB) []byte {
	return damagetest.File(tb, "snapshots.db", func(path string) error {
		s, err := bolt.Open(path, bolt.Config{NoSync: true})
		if err != nil {
			return err
		}
		for i := range 3 {
			for v := uint64(1); v <= 3; v++ {
				snap := snapshot.Snapshot{Stream: fmt.Sprintf("order-%d", i), Version: v * 10, Type: "order", Time: time.Unix(1700000000, 0), Data: []byte(`{"total":42}`)}
				if err := s.Save(context.Background(), snap); err != nil {
					return err
				}
			}
		}
		return s.Close()
	})
}
