package saga

import (
	"encoding/json"
	"time"

	"github.com/orchestrix/orchestrix/journal"
)

// ProcessKindPrefix starts the kind of every process stream: the record of
// process id of the process manager named name is the stream
// "process." + name + "-" + id.
const ProcessKindPrefix = "process."

// ProcessStream returns the journal stream recording process id of the
// process manager named name.
func ProcessStream(name, id string) string { return journal.StreamName(ProcessKindPrefix+name, id) }

// Handled is the one event a process records: after every event (or
// timeout) it handles, the process's whole state, its pending timers and
// whether it is done. Reading a process means reading its newest Handled
// event, however long the process has lived.
type Handled struct {
	// Position is the global position of the event handled; 0 for a
	// timeout.
	Position uint64 `json:"position,omitempty"`
	// EventID and Type identify the event handled; Timeout names the
	// timeout handled instead.
	EventID string `json:"eventId,omitempty"`
	Type    string `json:"type,omitempty"`
	Timeout string `json:"timeout,omitempty"`
	// Through is the highest global position of any event the process
	// has handled: an event at or below it is a redelivery.
	Through uint64 `json:"through,omitempty"`
	// State is the process state after the handler ran.
	State json.RawMessage `json:"state"`
	// Timers are the pending timeouts, by name.
	Timers map[string]time.Time `json:"timers,omitempty"`
	// Done is set once the process completed: later events are ignored.
	Done bool `json:"done,omitempty"`
	// Failure, when set, says why this handler call failed for good (a
	// rejection, or Retry.MaxAttempts reached); the state and timers are
	// then the ones from before it. Failures counts the failures so far
	// and LastFailure repeats the newest one.
	Failure     *ProcessFailure `json:"failure,omitempty"`
	Failures    uint64          `json:"failures,omitempty"`
	LastFailure *ProcessFailure `json:"lastFailure,omitempty"`
}

// ProcessFailure describes a handler call that failed for good.
type ProcessFailure struct {
	// Position and Type are the event's (0 and "" for a timeout);
	// Timeout names the timeout.
	Position uint64 `json:"position,omitempty"`
	Type     string `json:"type,omitempty"`
	Timeout  string `json:"timeout,omitempty"`
	Reason   string `json:"reason"`
}

// TypeHandled is the type name of Handled.
const TypeHandled = "orchestrix.process.handled"

// ProcessStatus is what the journal records of one process.
type ProcessStatus[S any] struct {
	Process, ID, Stream string
	// Begun is false for a process that has not handled any input.
	Begun bool
	// Done is true once a handler completed the process.
	Done bool
	// State is the process's state (Initial's for one not begun).
	State S
	// Version counts the inputs the process recorded.
	Version uint64
	// Through is the global position of the newest event handled.
	Through uint64
	// Timers are the pending timeouts.
	Timers map[string]time.Time
	// Failures counts the inputs whose handler failed for good, and
	// LastFailure is the newest of them.
	Failures    uint64
	LastFailure *ProcessFailure
}
