package bolt_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/orchestrix/orchestrix/internal/damagetest"
	"github.com/orchestrix/orchestrix/pii/bolt"
)

// FuzzOpenGet mutates a small key-store file (seeds in testdata/fuzz),
// opens it and reads and creates keys: nil or an error matching
// orchestrix.ErrCorrupt, never a panic.
func FuzzOpenGet(f *testing.F) {
	damagetest.Fuzz(f, "keys.db", smallKeyFile(f), openGet)
}

func TestOpen_SingleByteDamage_ErrCorruptNeverPanic(t *testing.T) {
	damagetest.Sweep(t, "keys.db", smallKeyFile(t), 7, []byte{0xff}, openGet)
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
	return damagetest.File(tb, "keys.db", func(path string) error {
		s, err := bolt.Open(path, bolt.Config{NoSync: true})
		if err != nil {
			return err
		}
		for i := range 3 {
			if _, err := s.GetOrCreate(context.Background(), fmt.Sprintf("subject-%d", i)); err != nil {
				return err
			}
		}
		return s.Close()
	})
}
