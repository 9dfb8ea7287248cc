package boltsafe

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"runtime"
	"runtime/debug"
	"strings"

	bbolt "go.etcd.io/bbolt"
	bberrors "go.etcd.io/bbolt/errors"
)

// Do runs fn, which calls into bbolt on the caller's goroutine, and turns
// a panic raised inside bbolt into a *CorruptError naming path. bbolt
// panics on a damaged page (an index out of range, a failed page
// assertion, a fault reading its memory map); during fn a memory fault
// panics instead of killing the process (debug.SetPanicOnFault).
//
// Any other panic (one raised by our own code, even when called back
// from inside a bbolt transaction) is re-raised unchanged: Do hides
// corruption, not programming errors.
func Do(path string, fn func() error) (err error) {
	old := debug.SetPanicOnFault(true)
	defer func() {
		debug.SetPanicOnFault(old)
		r := recover()
		if r == nil {
			return
		}
		where, ok := bboltFrame()
		if !ok {
			panic(r)
		}
		err = &CorruptError{Path: path, Page: -1, Reason: fmt.Sprintf("bbolt failed reading it (%v in %s)", r, where)}
	}()
	err = fn()
	if isDamage(err) {
		err = &CorruptError{Path: path, Page: -1, Reason: err.Error()}
	}
	return err
}

// isDamage reports the errors bbolt returns for a file whose contents
// are not what bbolt wrote: a bucket stored as a plain value (or the
// reverse), an invalid or mismatching meta page.
func isDamage(err error) bool {
	return err != nil && (errors.Is(err, bberrors.ErrIncompatibleValue) ||
		errors.Is(err, bberrors.ErrInvalid) || errors.Is(err, bberrors.ErrVersionMismatch) ||
		errors.Is(err, bberrors.ErrChecksum))
}

// bboltFrame reports whether the panic being handled was raised by code
// of go.etcd.io/bbolt: the innermost frame of the panicking goroutine
// outside the standard library (bbolt's bytes.Compare or sort.Search
// calls fault inside them) must be bbolt's. It is called from the
// deferred function of Do, whose stack still holds the panicking frames.
func bboltFrame() (string, bool) {
	pcs := make([]uintptr, 64)
	n := runtime.Callers(2, pcs)
	frames := runtime.CallersFrames(pcs[:n])
	inPanic := false
	for {
		f, more := frames.Next()
		switch {
		case f.Function == "runtime.gopanic" || f.Function == "runtime.sigpanic":
			inPanic = true
		case inPanic && !stdlib(f.Function):
			return f.Function, strings.HasPrefix(f.Function, "go.etcd.io/bbolt.") ||
				strings.HasPrefix(f.Function, "go.etcd.io/bbolt/")
		}
		if !more {
			return "", false
		}
	}
}

// Open verifies every page of the file at path (Verify) and then
// opens it with bbolt.Open. A damaged file fails with a *CorruptError
// before bbolt reads it.
//
// The full walk is not optional, even for files with a persisted free
// list: a damaged element offset makes bbolt build a slice that points
// outside its page, and when the garbage collector or the race detector's
// pointer checks meet such a slice the process dies with a fatal error
// that no recover can catch. Do only guards what the walk cannot see
// (pages changed on disk after Open).
func Open(path string, mode os.FileMode, opts *bbolt.Options) (*bbolt.DB, error) {
	m, err := Verify(path)
	if err != nil {
		return nil, err
	}
	if m.PageSize == 0 && opts != nil && opts.ReadOnly {
		if _, err := os.Stat(path); err == nil {
			// bbolt would try to initialise it, through a read-only handle.
			return nil, &CorruptError{Path: path, Page: -1, Reason: "empty file, not a bbolt database"}
		}
	}
	var db *bbolt.DB
	err = Do(path, func() error {
		var err error
		db, err = bbolt.Open(path, mode, opts)
		return err
	})
	return db, err
}

// View runs db.View(fn) under Do.
func View(db *bbolt.DB, fn func(*bbolt.Tx) error) error {
	return Do(db.Path(), func() error { return db.View(fn) })
}

// Update runs db.Update(fn) under Do.
func Update(db *bbolt.DB, fn func(*bbolt.Tx) error) error {
	return Do(db.Path(), func() error { return db.Update(fn) })
}

// stdlib reports whether fn (a runtime.Frame.Function) is in the standard
// library: its import path has no dot in its first element.
func stdlib(fn string) bool {
	first, _, found := strings.Cut(fn, "/")
	if !found {
		first, _, _ = strings.Cut(fn, ".") // "bytes.Compare"
	}
	return !strings.Contains(first, ".")
}

// OpenError describes a failure to open the bbolt file at path for the
// package named pkg ("journal/bolt"): "pkg: open path: err", or "pkg: err"
// when err already names path (an *fs.PathError or a *CorruptError for
// it), so the path is not printed twice.
func OpenError(pkg, path string, err error) error {
	var pe *fs.PathError
	var ce *CorruptError
	if errors.As(err, &pe) && pe.Path == path || errors.As(err, &ce) && ce.Path == path {
		return fmt.Errorf("%s: %w", pkg, err)
	}
	return fmt.Errorf("%s: open %s: %w", pkg, path, err)
}
