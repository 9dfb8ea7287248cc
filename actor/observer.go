package actor

import "time"

// Observer is the runtime's telemetry hook. Observe is called synchronously
// on aggregate actor goroutines, so it must be fast, must not block and must
// be safe for concurrent use.
type Observer interface {
	Observe(Observation)
}

// ObserverFunc adapts a function to Observer.
type ObserverFunc func(Observation)

// Observe calls f.
func (f ObserverFunc) Observe(o Observation) { f(o) }

// ObservationKind says what an Observation reports.
type ObservationKind uint8

// Observation kinds.
const (
	// Activated: an actor was spawned for an aggregate.
	Activated ObservationKind = iota + 1
	// Recovered: an aggregate finished recovery (Err set when it failed).
	// SnapshotVersion is the snapshot it started from (0 for none),
	// Events the number of events replayed on top of it, Version the
	// version reached.
	Recovered
	// Decided: a command was decided and queued behind the append in
	// flight; Events is how many events it produced. (Commands answered
	// at once report only CommandDone.)
	Decided
	// Committed: a batch of Events events from Commands commands was
	// appended; Err set when the append failed.
	Committed
	// CommandDone: a command was answered; Err holds its error.
	CommandDone
	// SnapshotSaved: a snapshot at Version was saved (Err set on failure).
	SnapshotSaved
	// Passivated: an aggregate stopped because it was idle, evicted by
	// the MaxActive cap, or the system shut down.
	Passivated
	// Restarted: an aggregate dropped its state after a journal failure
	// and will recover from the journal before its next command.
	Restarted
)

var observationNames = [...]string{"", "activated", "recovered", "decided", "committed", "command-done", "snapshot-saved", "passivated", "restarted"}

func (k ObservationKind) String() string {
	if int(k) < len(observationNames) {
		return observationNames[k]
	}
	return "unknown"
}

// Observation is one thing that happened in the runtime. Fields that do not
// apply to its Kind are zero.
type Observation struct {
	Kind            ObservationKind
	AggregateKind   string
	AggregateID     string
	Version         uint64
	SnapshotVersion uint64
	Events          int
	Commands        int
	Duration        time.Duration
	Err             error
}
