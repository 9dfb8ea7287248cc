package projection

import "github.com/orchestrix/orchestrix"

// Clock is the source of time for retry backoff: orchestrix.Clock, the
// interface every component shares. Tests inject a manual clock
// (actortest.ManualClock) so that a retry happens when the test advances
// time, never by sleeping.
type Clock = orchestrix.Clock

// SystemClock is the wall clock, the default Clock.
type SystemClock = orchestrix.SystemClock
