// Package damagetest checks that code reading a bbolt file the project
// wrote survives any damage to it: a fuzz target body and a single-byte
// sweep, shared by the journal, snapshot store and key store tests. The
// code under test must return nil or an error matching
// orchestrix.ErrCorrupt; a panic or any other error fails the test.
package damagetest

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/orchestrix/orchestrix"
)

// Use opens the file at path and exercises it (open, read, write, …),
// returning the first error.
type Use func(path string) error

// Fuzz adds seed to f's corpus and fuzzes use with mutations of it, each
// written to a fresh file named name.
func Fuzz(f *testing.F, name string, seed []byte, use Use) {
	f.Add(seed)
	f.Fuzz(func(t *testing.T, data []byte) {
		if err := try(t, name, data, use); err != nil {
			t.Fatalf("damaged file: %v (want nil or ErrCorrupt)", err)
		}
	})
}

// Sweep flips one byte of seed at a time (every step-th byte, XORed with
// each of flips) and runs use on each result.
func Sweep(t *testing.T, name string, seed []byte, step int, flips []byte, use Use) {
	t.Helper()
	for i := 0; i < len(seed); i += step {
		for _, x := range flips {
			b := append([]byte(nil), seed...)
			b[i] ^= x
			if err := try(t, name, b, use); err != nil {
				t.Fatalf("byte %d (4 KiB page %d +%d) ^ %#x: %v (want nil or ErrCorrupt)", i, i/4096, i%4096, x, err)
			}
		}
	}
}

// File builds a file with build in a fresh directory (build must close
// it) and returns its bytes: a seed for Fuzz and Sweep.
func File(tb testing.TB, name string, build func(path string) error) []byte {
	tb.Helper()
	dir, err := os.MkdirTemp("", "damageseed")
	if err != nil {
		tb.Fatal(err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, name)
	if err := build(path); err != nil {
		tb.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// try writes data to a file named name and runs use on it; it returns
// use's error unless that matches orchestrix.ErrCorrupt.
func try(t *testing.T, name string, data []byte, use Use) error {
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := use(path); err != nil && !errors.Is(err, orchestrix.ErrCorrupt) {
		return err
	}
	return nil
}
