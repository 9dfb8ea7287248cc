package actor

import "github.com/orchestrix/orchestrix"

// Clock is the runtime's source of time: event and snapshot timestamps,
// idle tracking and the passivation timer all read it. It is
// orchestrix.Clock, the interface every component shares, so one manual
// clock (actortest.ManualClock) drives the runtime, projections and sagas
// in a test.
type Clock = orchestrix.Clock

// Timer is a pending Clock.AfterFunc call.
type Timer = orchestrix.Timer

// SystemClock is the wall clock, the default Clock.
type SystemClock = orchestrix.SystemClock
