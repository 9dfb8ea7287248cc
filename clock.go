package orchestrix

import "time"

// Clock is the source of time of every Orchestrix component: event and
// snapshot timestamps, passivation, projection retry backoff, saga
// deadlines, attempt timeouts and process timeouts all read it. Give the
// actor system, the projection manager and the saga runner the same
// Clock; tests inject a manual one (actortest.ManualClock) so that timed
// behaviour happens when the test advances time, never by sleeping.
//
// Implementations must be safe for concurrent use.
type Clock interface {
	// Now returns the current time.
	Now() time.Time
	// AfterFunc calls f in its own goroutine (or, for a manual clock,
	// synchronously while time is advanced) once d has elapsed, unless
	// the returned Timer is stopped first.
	AfterFunc(d time.Duration, f func()) Timer
}

// Timer is a pending Clock.AfterFunc call.
type Timer interface {
	// Stop prevents the call if it has not happened yet and reports
	// whether it did so.
	Stop() bool
}

// SystemClock is the wall clock, every component's default Clock.
type SystemClock struct{}

// Now returns time.Now().
func (SystemClock) Now() time.Time { return time.Now() }

// AfterFunc wraps time.AfterFunc.
func (SystemClock) AfterFunc(d time.Duration, f func()) Timer { return time.AfterFunc(d, f) }
