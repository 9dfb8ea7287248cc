package bolt_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/orchestrix/orchestrix"
	"github.com/orchestrix/orchestrix/snapshot"
	"github.com/orchestrix/orchestrix/snapshot/bolt"
)

// FuzzOpenLoad mutates a small snapshot file (seeds in testdata/fuzz) and
// opens it, loads every stream and saves one more snapshot: nil or an
// error matching orchestrix.ErrCorrupt, never a panic.
func FuzzOpenLoad(f *testing.F) {
	f.Add(smallSnapshotFile(f))
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(t.TempDir(), "snapshots.db")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := openLoadSave(path); err != nil && !errors.Is(err, orchestrix.ErrCorrupt) {
			t.Fatalf("damaged file: %v (want nil or ErrCorrupt)", err)
		}
	})
}

func TestOpen_SingleByteDamage_ErrCorruptNeverPanic(t *testing.T) {
	seed := smallSnapshotFile(t)
	path := filepath.Join(t.TempDir(), "snapshots.db")
	for i := 0; i < len(seed); i += 7 {
		b := append([]byte(nil), seed...)
		b[i] ^= 0xff
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := openLoadSave(path); err != nil && !errors.Is(err, orchestrix.ErrCorrupt) {
			t.Fatalf("byte %d ^ 0xff: %v", i, err)
		}
	}
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
	dir, err := os.MkdirTemp("", "fuzzseed")
	if err != nil {
		tb.Fatal(err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "snapshots.db")
	s, err := bolt.Open(path, bolt.Config{NoSync: true})
	if err != nil {
		tb.Fatal(err)
	}
	for i := range 3 {
		for v := uint64(1); v <= 3; v++ {
			snap := snapshot.Snapshot{Stream: fmt.Sprintf("order-%d", i), Version: v * 10, Type: "order", Time: time.Unix(1700000000, 0), Data: []byte(`{"total":42}`)}
			if err := s.Save(context.Background(), snap); err != nil {
				tb.Fatal(err)
			}
		}
	}
	if err := s.Close(); err != nil {
		tb.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}
