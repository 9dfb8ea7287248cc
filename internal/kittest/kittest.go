// Package kittest checks that the project's test kits fail a test when
// they should: it runs a piece of test code against a testing.TB that
// records failures instead of reporting them.
package kittest

import (
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"
)

// recorder is a testing.TB whose failures are recorded; Fatal ends the
// goroutine like the real one. Everything else (Cleanup, TempDir, Log, …)
// goes to the real test.
type recorder struct {
	testing.TB
	mu   sync.Mutex
	msgs []string
}

func (r *recorder) Helper() {}

func (r *recorder) Errorf(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.msgs = append(r.msgs, fmt.Sprintf(format, args...))
}

func (r *recorder) Error(args ...any) { r.Errorf("%s", fmt.Sprint(args...)) }

func (r *recorder) Fatalf(format string, args ...any) {
	r.Errorf(format, args...)
	runtime.Goexit()
}

func (r *recorder) Fatal(args ...any) { r.Fatalf("%s", fmt.Sprint(args...)) }

func (r *recorder) Failed() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.msgs) > 0
}

// Run runs fn on its own goroutine with a testing.TB that records what fn
// reports (Fatal ends that goroutine, as it does a test's), waits for it,
// and returns the failures joined by newlines, "" when fn passed.
func Run(t testing.TB, fn func(tb testing.TB)) string {
	r := &recorder{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn(r)
	}()
	<-done
	r.mu.Lock()
	defer r.mu.Unlock()
	return strings.Join(r.msgs, "\n")
}

// ExpectFatal fails t unless fn, run as Run runs it, failed with a
// message containing want.
func ExpectFatal(t testing.TB, want string, fn func(tb testing.TB)) {
	t.Helper()
	msg := Run(t, fn)
	if msg == "" {
		t.Fatalf("the kit did not fail the test; want a failure containing %q", want)
	}
	if !strings.Contains(msg, want) {
		t.Fatalf("failure %q does not contain %q", msg, want)
	}
}
