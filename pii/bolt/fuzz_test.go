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
	"github.com/orchestrix/orchestrix/pii/bolt"
)

// FuzzOpenGet mutates a small key-store file (seeds in testdata/fuzz),
// opens it and reads and creates keys: nil or an error matching
// orchestrix.ErrCorrupt, never a panic.
func FuzzOpenGet(f *testing.F) {
	f.Add(smallKeyFile(f))
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(t.TempDir(), "keys.db")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := openGet(path); err != nil && !errors.Is(err, orchestrix.ErrCorrupt) {
			t.Fatalf("damaged file: %v (want nil or ErrCorrupt)", err)
		}
	})
}

func TestOpen_SingleByteDamage_ErrCorruptNeverPanic(t *testing.T) {
	seed := smallKeyFile(t)
	path := filepath.Join(t.TempDir(), "keys.db")
	for i := 0; i < len(seed); i += 7 {
		b := append([]byte(nil), seed...)
		b[i] ^= 0xff
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := openGet(path); err != nil && !errors.Is(err, orchestrix.ErrCorrupt) {
			t.Fatalf("byte %d ^ 0xff: %v", i, err)
		}
	}
}

func openGet(path string) error {
	ctx := context.Background()
	s, err := bolt.Open(path, bolt.Config{NoSync: true, LockTimeout: time.Second})
	if err != nil {
		return err
	}
	defer s.Close()
	for i := range 4 {
		k, err := s.GetOrCreate(ctx, fmt.Sprintf("subject-%d", i))
		if err != nil {
			return err
		}
		if _, err := s.Get(ctx, k.ID); err != nil {
			return err
		}
	}
	return nil
}

func smallKeyFile(tb testing.TB) []byte {
	dir, err := os.MkdirTemp("", "fuzzseed")
	if err != nil {
		tb.Fatal(err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "keys.db")
	s, err := bolt.Open(path, bolt.Config{NoSync: true})
	if err != nil {
		tb.Fatal(err)
	}
	for i := range 3 {
		if _, err := s.GetOrCreate(context.Background(), fmt.Sprintf("subject-%d", i)); err != nil {
			tb.Fatal(err)
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
