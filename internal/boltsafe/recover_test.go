package boltsafe_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	bbolt "go.etcd.io/bbolt"

	"github.com/orchestrix/orchestrix"
	"github.com/orchestrix/orchestrix/internal/boltsafe"
)

func mustPanic(t *testing.T, fn func()) {
	t.Helper()
	defer func() {
		if recover() == nil {
			t.Fatal("the panic was swallowed")
		}
	}()
	fn()
}

// A bug of ours, even one running inside a bbolt transaction, is not
// corruption: Do re-raises it.
func TestDo_PanicOutsideBbolt_IsRaisedAgain(t *testing.T) {
	db, err := bbolt.Open(filepath.Join(t.TempDir(), "x.db"), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var nilMap map[string]int
	mustPanic(t, func() {
		_ = boltsafe.Do("x.db", func() error { nilMap["a"] = 1; return nil })
	})
	mustPanic(t, func() {
		_ = boltsafe.View(db, func(tx *bbolt.Tx) error {
			var s []byte
			_ = s[tx.Size()] // our bug, called back from bbolt's View
			return nil
		})
	})
}

// bbolt's "incompatible value" (a bucket where a value is, or the
// reverse) is what a flipped element flag looks like: ErrCorrupt.
func TestDo_BboltIncompatibleValue_MatchesErrCorrupt(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.db")
	db, err := bbolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	err = boltsafe.Update(db, func(tx *bbolt.Tx) error {
		b, err := tx.CreateBucket([]byte("b"))
		if err != nil {
			return err
		}
		if err := b.Put([]byte("k"), []byte("v")); err != nil {
			return err
		}
		_, err = b.CreateBucket([]byte("k"))
		return err
	})
	if !errors.Is(err, orchestrix.ErrCorrupt) {
		t.Fatalf("err = %v, want ErrCorrupt", err)
	}
	var ce *boltsafe.CorruptError
	if !errors.As(err, &ce) || ce.Path != path {
		t.Fatalf("err = %#v, want a *CorruptError naming %s", err, path)
	}
}

func TestOpenError_PathNamedOnce(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "no", "such.db")
	_, err := bbolt.Open(missing, 0o600, nil)
	if err == nil {
		t.Fatal("bbolt opened a file in a missing directory")
	}
	got := boltsafe.OpenError("x/bolt", missing, err)
	if n := strings.Count(got.Error(), missing); n != 1 || !strings.HasPrefix(got.Error(), "x/bolt: open ") || !errors.Is(got, os.ErrNotExist) {
		t.Fatalf("OpenError = %q: want the path once, prefixed, matching os.ErrNotExist", got)
	}
	other := boltsafe.OpenError("x/bolt", missing, errors.New("timeout"))
	if other.Error() != "x/bolt: open "+missing+": timeout" {
		t.Fatalf("OpenError = %q", other)
	}
}
