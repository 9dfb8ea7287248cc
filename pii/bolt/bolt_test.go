package bolt_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/orchestrix/orchestrix/pii"
	"github.com/orchestrix/orchestrix/pii/bolt"
	"github.com/orchestrix/orchestrix/pii/piitest"
)

func openStore(t *testing.T, dir string) pii.KeyStore {
	s, err := bolt.Open(filepath.Join(dir, "keys.db"), bolt.Config{})
	require.NoError(t, err)
	return s
}

func TestStore_Conformance(t *testing.T) {
	piitest.RunKeyStore(t, piitest.Features{Durable: true}, openStore)
}

func TestStore_Delete_KeyBytesGoneFromFile(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(dir, "keys.db")
	s, err := bolt.Open(path, bolt.Config{})
	require.NoError(t, err)
	defer s.Close()
	var erased, kept []pii.Key
	for _, subject := range []string{"alice", "bob", "carol", "dave"} {
		k, err := s.GetOrCreate(ctx, subject)
		require.NoError(t, err)
		if subject == "alice" || subject == "carol" {
			erased = append(erased, k)
		} else {
			kept = append(kept, k)
		}
	}
	raw, err := os.ReadFile(path)
	require.NoError(t, err)
	for _, k := range erased {
		require.True(t, bytes.Contains(raw, k.Material), "the key must be in the file before erasure")
	}

	require.NoError(t, s.Delete(ctx, "alice"))
	require.NoError(t, s.Delete(ctx, "carol"))

	raw, err = os.ReadFile(path)
	require.NoError(t, err)
	for _, k := range erased {
		require.False(t, bytes.Contains(raw, k.Material), "erased key %q still in the file", k.ID)
	}
	for _, k := range kept {
		require.True(t, bytes.Contains(raw, k.Material), "kept key %q lost", k.ID)
		got, err := s.Get(ctx, k.ID)
		require.NoError(t, err)
		require.Equal(t, k.Material, got.Material)
	}
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	require.Len(t, entries, 1, "compaction left temporary files behind")
}

func TestOpen_InterruptedCompaction_Finished(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(dir, "keys.db")
	s, err := bolt.Open(path, bolt.Config{})
	require.NoError(t, err)
	k, err := s.GetOrCreate(ctx, "alice")
	require.NoError(t, err)
	require.NoError(t, s.Close())

	// A crash after the compacted copy was complete and the old file was
	// being zeroed: the old file is garbage, the compacted one is whole.
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(path+".compacted", data, 0o600))
	require.NoError(t, os.WriteFile(path, make([]byte, len(data)), 0o600))
	// And a stale half-written compaction from an earlier crash.
	require.NoError(t, os.WriteFile(path+".compacting", []byte("partial"), 0o600))

	s, err = bolt.Open(path, bolt.Config{})
	require.NoError(t, err)
	defer s.Close()
	got, err := s.Get(ctx, k.ID)
	require.NoError(t, err)
	require.Equal(t, k.Material, got.Material)
	_, err = os.Stat(path + ".compacting")
	require.ErrorIs(t, err, os.ErrNotExist)
	_, err = os.Stat(path + ".compacted")
	require.ErrorIs(t, err, os.ErrNotExist)
}

// DeleteMany erases many subjects with one pass over the file; every
// erased key's bytes are gone from it, every other key stays usable.
func TestStore_DeleteMany_KeyBytesGoneFromFile(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "keys.db")
	s, err := bolt.Open(path, bolt.Config{})
	require.NoError(t, err)
	defer s.Close()
	var erase []string
	var erased, kept []pii.Key
	for i := range 300 {
		subject := fmt.Sprintf("subject-%03d", i)
		k, err := s.GetOrCreate(ctx, subject)
		require.NoError(t, err)
		if i%3 == 0 {
			erase = append(erase, subject)
			erased = append(erased, k)
		} else {
			kept = append(kept, k)
		}
	}
	require.NoError(t, s.DeleteMany(ctx, append(erase, "never-seen")))
	raw, err := os.ReadFile(path)
	require.NoError(t, err)
	for _, k := range erased {
		require.False(t, bytes.Contains(raw, k.Material), "erased key %q still in the file", k.ID)
		_, err := s.Get(ctx, k.ID)
		require.ErrorIs(t, err, pii.ErrErased)
	}
	for _, k := range kept {
		got, err := s.Get(ctx, k.ID)
		require.NoError(t, err)
		require.Equal(t, k.Material, got.Material)
	}
	_, err = s.GetOrCreate(ctx, "never-seen")
	require.ErrorIs(t, err, pii.ErrErased)
	require.ErrorIs(t, s.DeleteMany(ctx, []string{"ok", ""}), pii.ErrNoSubject)
	_, err = s.GetOrCreate(ctx, "ok")
	require.NoError(t, err, "a rejected batch must erase nothing")
}
