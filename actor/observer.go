package actor

import "github.com/orchestrix/orchestrix/telemetry"

// The runtime's telemetry hook. These are aliases of package telemetry's
// types, which live below the runtime so that journals, projections and
// sagas can share them; *telemetry.Metrics is an Observer.

// Observer is told about activations, recoveries, commits, answered
// commands, snapshots, passivations and restarts. Observe is called
// synchronously on the runtime's goroutines (aggregate actors, and the
// journal's completion goroutine for commits applied there), so it must
// be fast, must not block and must be safe for concurrent use.
type Observer = telemetry.Observer

// ObserverFunc adapts a function to Observer.
type ObserverFunc = telemetry.ObserverFunc

// ObservationKind says what an Observation reports.
type ObservationKind = telemetry.ObservationKind

// Observation is one thing that happened in the runtime. Fields that do
// not apply to its Kind are zero. See telemetry.Observation.
type Observation = telemetry.Observation

// Observation kinds; see telemetry.Activated and the following constants
// for what each reports.
const (
	Activated     = telemetry.Activated
	Recovered     = telemetry.Recovered
	Decided       = telemetry.Decided
	Committed     = telemetry.Committed
	CommandDone   = telemetry.CommandDone
	SnapshotSaved = telemetry.SnapshotSaved
	Passivated    = telemetry.Passivated
	Restarted     = telemetry.Restarted
)
