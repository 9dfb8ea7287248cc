package boltsafe_test

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	bbolt "go.etcd.io/bbolt"

	"github.com/orchestrix/orchestrix"
	"github.com/orchestrix/orchestrix/internal/boltsafe"
)

// bigFile writes a bbolt file (4 KiB pages) with one bucket of keys in
// several levels of branch pages, so that the walk hands subtrees to
// helper goroutines, and returns its path, bytes and the types of its
// pages as bbolt sees them ("leaf", "branch", "free", ...).
func bigFile(t *testing.T) (string, []byte, map[uint64]string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "big.db")
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{PageSize: 4096})
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bbolt.Tx) error {
		b, err := tx.CreateBucket([]byte("data"))
		if err != nil {
			return err
		}
		val := make([]byte, 100)
		for i := range 20000 {
			if err := b.Put(binary.BigEndian.AppendUint64(nil, uint64(i)), val); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	types := make(map[uint64]string)
	err = db.View(func(tx *bbolt.Tx) error {
		for id := 2; ; id++ {
			info, err := tx.Page(id)
			if err != nil || info == nil {
				return err
			}
			types[uint64(id)] = info.Type
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return path, b, types
}

// Leaf pages all over a large tree (every 41st), damaged in turn (the
// value of the first element running past the page), are found and
// named, whichever goroutine of the walk reads them and whether they
// come from a read-ahead window or not.
func TestVerify_DamagedLeafAnywhereInALargeTree_NamesThePage(t *testing.T) {
	path, clean, types := bigFile(t)
	m, err := boltsafe.Verify(path)
	if err != nil {
		t.Fatalf("clean file: %v", err)
	}
	le := binary.LittleEndian
	leaves, branches, tested := 0, 0, 0
	for id := uint64(2); id < m.HighMark; id++ {
		off := int(id) * m.PageSize
		switch types[id] {
		case "branch":
			branches++
			continue
		case "leaf":
			leaves++
			if leaves%41 != 0 {
				continue
			}
		default:
			continue
		}
		b := append([]byte(nil), clean...)
		le.PutUint32(b[off+16+12:], 1<<20) // element 0's value size
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := boltsafe.Verify(path)
		var ce *boltsafe.CorruptError
		if !errors.As(err, &ce) || !errors.Is(err, orchestrix.ErrCorrupt) {
			t.Fatalf("leaf page %d damaged: Verify returned %v", id, err)
		}
		if ce.Page != int64(id) {
			t.Fatalf("leaf page %d damaged: the error names page %d: %v", id, ce.Page, err)
		}
		tested++
	}
	if tested < 25 || branches < 5 {
		t.Fatalf("the tree is too small to test the walk: %d leaves, %d branch pages", leaves, branches)
	}
}

// A page that two branch elements point at is reported, wherever the
// second reference is.
func TestVerify_PageReferencedTwice_IsReported(t *testing.T) {
	path, b, types := bigFile(t)
	m, err := boltsafe.Verify(path)
	if err != nil {
		t.Fatal(err)
	}
	le := binary.LittleEndian
	// The last branch page whose children are leaves: point its last
	// element at its first element's child.
	for id := m.HighMark - 1; id >= 2; id-- {
		off := int(id) * m.PageSize
		if types[id] != "branch" {
			continue
		}
		count := int(le.Uint16(b[off+10:]))
		first := le.Uint64(b[off+16+8:])
		if types[first] != "leaf" || count < 2 {
			continue
		}
		le.PutUint64(b[off+16+(count-1)*16+8:], first)
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := boltsafe.Verify(path)
		if !errors.Is(err, orchestrix.ErrCorrupt) {
			t.Fatalf("Verify returned %v", err)
		}
		if want := fmt.Sprintf("page %d: page referenced twice", first); !strings.Contains(err.Error(), want) {
			t.Fatalf("got %v, want %q", err, want)
		}
		return
	}
	t.Fatal("no branch page over leaves found")
}
