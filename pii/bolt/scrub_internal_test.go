package bolt

import (
	"bytes"
	"context"
	"crypto/rand"
	"os"
	"path/filepath"
	"testing"

	"go.etcd.io/bbolt"

	"github.com/orchestrix/orchestrix/pii"
)

func randomMaterials(n int) [][]byte {
	out := make([][]byte, n)
	for i := range out {
		out[i] = make([]byte, pii.KeySize)
		rand.Read(out[i])
	}
	return out
}

// Both matchers find every copy, including one straddling the boundary
// between two chunks of scrubFile.
func TestScrubFile_FewAndMany_EveryCopyZeroed(t *testing.T) {
	for _, n := range []int{1, 8, 9, 40} {
		materials := randomMaterials(n)
		keep := randomMaterials(1)[0]
		data := make([]byte, 2*scrubChunk+1000)
		rand.Read(data)
		places := []int{0, 64, scrubChunk - 5, scrubChunk + 100, 2*scrubChunk + 1000 - pii.KeySize}
		for i, at := range places {
			copy(data[at:], materials[i%n])
		}
		copy(data[100:], keep)
		path := filepath.Join(t.TempDir(), "f")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		f, err := os.OpenFile(path, os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		err = scrubFile(f, materials)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range materials[:min(n, len(places))] {
			if bytes.Contains(got, m) {
				t.Fatalf("%d materials: a copy survived", n)
			}
		}
		for _, at := range places {
			if !bytes.Equal(got[at:at+pii.KeySize], make([]byte, pii.KeySize)) {
				t.Fatalf("%d materials: copy at %d not zeroed", n, at)
			}
		}
		if !bytes.Contains(got, keep) {
			t.Fatalf("%d materials: an unrelated value was zeroed", n)
		}
	}
}

// A crash after the tombstones committed but before the key bytes were
// removed: Open finds the mark and compacts, so the bytes are gone.
func TestOpen_InterruptedScrub_Compacts(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "keys.db")
	s, err := Open(path, Config{})
	if err != nil {
		t.Fatal(err)
	}
	alice, err := s.GetOrCreate(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	bob, err := s.GetOrCreate(ctx, "bob")
	if err != nil {
		t.Fatal(err)
	}
	// What DeleteMany's first transaction does, without the rest.
	err = s.db.Update(func(tx *bbolt.Tx) error {
		if err := tx.Bucket([]byte(KeysBucket)).Put([]byte(alice.ID), tombstone); err != nil {
			return err
		}
		if err := tx.Bucket([]byte(SubjectsBucket)).Put([]byte("alice"), tombstone); err != nil {
			return err
		}
		return tx.Bucket([]byte(MetaBucket)).Put([]byte(scrubPendingKey), tombstone)
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	raw, _ := os.ReadFile(path)
	if !bytes.Contains(raw, alice.Material) {
		t.Fatal("test set-up: the key bytes should still be in a free page")
	}

	s, err = Open(path, Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	raw, _ = os.ReadFile(path)
	if bytes.Contains(raw, alice.Material) {
		t.Fatal("Open left an interrupted erasure's key bytes in the file")
	}
	if !bytes.Contains(raw, bob.Material) {
		t.Fatal("bob's key lost")
	}
	err = s.db.View(func(tx *bbolt.Tx) error {
		if tx.Bucket([]byte(MetaBucket)).Get([]byte(scrubPendingKey)) != nil {
			t.Error("the pending mark survived the compaction")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
