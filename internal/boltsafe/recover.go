package boltsafe

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"
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
	return fn()
}

// bboltFrame reports whether the panic being handled was raised by code
// of go.etcd.io/bbolt: the innermost frame of the panicking goroutine
// that is not in package runtime must be bbolt's. It is called from the
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
		case inPanic && !strings.HasPrefix(f.Function, "runtime."):
			return f.Function, strings.HasPrefix(f.Function, "go.etcd.io/bbolt.") ||
				strings.HasPrefix(f.Function, "go.etcd.io/bbolt/")
		}
		if !more {
			return "", false
		}
	}
}
