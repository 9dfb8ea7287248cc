package telemetry

import (
	"context"
	"errors"
	"time"

	"github.com/orchestrix/orchestrix"
)

// Observer receives the runtime's Observations. Observe is called
// synchronously on aggregate actor goroutines, so it must be fast, must not
// block and must be safe for concurrent use.
//
// actor.Config.Observer takes one; *Metrics is an Observer.
type Observer interface {
	Observe(Observation)
}

// ObserverFunc adapts a function to Observer.
type ObserverFunc func(Observation)

// Observe calls f.
func (f ObserverFunc) Observe(o Observation) { f(o) }

// Observers returns an Observer that passes every Observation to each of
// obs in turn. Nil entries are skipped.
func Observers(obs ...Observer) Observer {
	list := make(multiObserver, 0, len(obs))
	for _, o := range obs {
		if o != nil {
			list = append(list, o)
		}
	}
	return list
}

type multiObserver []Observer

func (m multiObserver) Observe(o Observation) {
	for _, obs := range m {
		obs.Observe(o)
	}
}

// ObservationKind says what an Observation reports.
type ObservationKind uint8

// Observation kinds.
const (
	// Activated: an actor was spawned for an aggregate.
	Activated ObservationKind = iota + 1
	// Recovered: an aggregate finished recovery (Err set when it failed).
	// SnapshotVersion is the snapshot it started from (0 for none),
	// Events the number of events replayed on top of it, Version the
	// version reached, Duration how long it took.
	Recovered
	// Decided: a command was decided and queued behind the append in
	// flight; Events is how many events it produced. (Commands answered
	// at once report only CommandDone.)
	Decided
	// Committed: a batch of Events events from Commands commands was
	// appended; Err set when the append failed.
	Committed
	// CommandDone: a command was answered; Err holds its error, Outcome
	// its classification, Duration the time from Send to the answer
	// (zero when unknown).
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
	// Outcome classifies a CommandDone. Zero (OutcomeUnset) means the
	// observer derives it from Err with OutcomeOf.
	Outcome Outcome
}

// Outcome is the bounded classification of how a command ended; it is the
// outcome label of orchestrix_commands_total and the
// orchestrix.command.outcome span attribute.
type Outcome uint8

// Outcomes. The set is fixed, so the label's cardinality is bounded.
const (
	// OutcomeUnset means "not classified"; observers derive the outcome
	// from the error. It is never used as a label value.
	OutcomeUnset Outcome = iota
	// OutcomeOK: the command succeeded (its events, if any, are durable).
	OutcomeOK
	// OutcomeDuplicate: a retried command id; the original result was
	// returned without executing it again.
	OutcomeDuplicate
	// OutcomeRejected: the domain refused the command (a decision
	// error, or the aggregate does not exist).
	OutcomeRejected
	// OutcomeConflict: another writer appended first
	// (orchestrix.ErrVersionConflict).
	OutcomeConflict
	// OutcomeTimeout: a deadline passed (context.DeadlineExceeded).
	OutcomeTimeout
	// OutcomeCanceled: a context was cancelled (context.Canceled).
	OutcomeCanceled
	// OutcomeUnknown: the events may or may not be stored
	// (orchestrix.ErrOutcomeUnknown).
	OutcomeUnknown
	// OutcomePanic: user code panicked.
	OutcomePanic
	// OutcomeInvalid: the command was malformed (bad id, bad envelope).
	OutcomeInvalid
	// OutcomeClosed: the system, journal or store was closed.
	OutcomeClosed
	// OutcomeError: any other failure.
	OutcomeError

	numOutcomes = iota
)

var outcomeNames = [numOutcomes]string{"", "ok", "duplicate", "rejected", "conflict", "timeout", "canceled", "unknown", "panic", "invalid", "closed", "error"}

// String returns the label value: "ok", "duplicate", "rejected",
// "conflict", "timeout", "canceled", "unknown", "panic", "invalid",
// "closed" or "error" ("" for OutcomeUnset).
func (o Outcome) String() string {
	if int(o) < len(outcomeNames) {
		return outcomeNames[o]
	}
	return outcomeNames[OutcomeError]
}

// Failed reports whether o is a failure (anything but OK and Duplicate;
// OutcomeUnset counts as no failure).
func (o Outcome) Failed() bool {
	return o != OutcomeUnset && o != OutcomeOK && o != OutcomeDuplicate
}

// OutcomeOf classifies err using the sentinels shared by every package
// (package orchestrix and package context): nil is OutcomeOK; deadlines
// are OutcomeTimeout before they are OutcomeUnknown. Errors it does not
// know are OutcomeError. Package actor refines this with its own errors
// (rejections, panics, invalid ids).
func OutcomeOf(err error) Outcome {
	switch {
	case err == nil:
		return OutcomeOK
	case errors.Is(err, context.DeadlineExceeded):
		return OutcomeTimeout
	case errors.Is(err, context.Canceled):
		return OutcomeCanceled
	case errors.Is(err, orchestrix.ErrVersionConflict):
		return OutcomeConflict
	case errors.Is(err, orchestrix.ErrOutcomeUnknown):
		return OutcomeUnknown
	case errors.Is(err, orchestrix.ErrClosed):
		return OutcomeClosed
	case errors.Is(err, orchestrix.ErrNotFound):
		return OutcomeRejected
	case errors.Is(err, orchestrix.ErrInvalidEnvelope), errors.Is(err, orchestrix.ErrTooLarge):
		return OutcomeInvalid
	}
	return OutcomeError
}
