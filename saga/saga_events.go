package saga

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/orchestrix/orchestrix/journal"
)

// StreamKindPrefix starts the kind of every saga stream: the progress of
// saga id of orchestration name is recorded in the stream
// "saga." + name + "-" + id.
const StreamKindPrefix = "saga."

// Stream returns the journal stream recording the progress of saga id of
// the orchestration named name.
func Stream(name, id string) string { return journal.StreamName(StreamKindPrefix+name, id) }

// The events a saga records in its own stream. They are registered in the
// runner's orchestrix.Registry under the names in eventTypes.
type (
	// Started records that a saga began, with its data and, when the
	// orchestration has a Deadline, its overall deadline.
	Started struct {
		Data     json.RawMessage `json:"data"`
		Deadline time.Time       `json:"deadline,omitzero"`
		// Trigger is the global position of the event that started the
		// saga (0 when it began through Saga.Begin).
		Trigger uint64 `json:"trigger,omitempty"`
	}
	// StepStarted records the deadline of a step that has one.
	StepStarted struct {
		Step     int       `json:"step"`
		Name     string    `json:"name"`
		Deadline time.Time `json:"deadline"`
	}
	// StepCompleted records that a step took effect, with the saga's data
	// when the step changed it.
	StepCompleted struct {
		Step int             `json:"step"`
		Name string          `json:"name"`
		Data json.RawMessage `json:"data,omitempty"`
	}
	// StepFailed records that a step was rejected, timed out or gave up;
	// compensation starts.
	StepFailed struct {
		Step     int    `json:"step"`
		Name     string `json:"name"`
		Reason   string `json:"reason"`
		TimedOut bool   `json:"timedOut,omitempty"`
	}
	// StepCompensated records that a step's compensation took effect.
	StepCompensated struct {
		Step int    `json:"step"`
		Name string `json:"name"`
	}
	// Completed records that every step succeeded.
	Completed struct{}
	// Compensated records that every compensation succeeded after a step
	// failed.
	Compensated struct{}
	// Failed records that a compensation was rejected or gave up: the
	// saga stops, and what it did may need attention.
	Failed struct {
		Step   int    `json:"step"`
		Name   string `json:"name"`
		Reason string `json:"reason"`
	}
)

// Type names of the saga events.
const (
	TypeStarted         = "orchestrix.saga.started"
	TypeStepStarted     = "orchestrix.saga.step.started"
	TypeStepCompleted   = "orchestrix.saga.step.completed"
	TypeStepFailed      = "orchestrix.saga.step.failed"
	TypeStepCompensated = "orchestrix.saga.step.compensated"
	TypeCompleted       = "orchestrix.saga.completed"
	TypeCompensated     = "orchestrix.saga.compensated"
	TypeFailed          = "orchestrix.saga.failed"
)

// State is where a saga is in its life.
type State int

const (
	// StateUnknown: no saga with that id has begun.
	StateUnknown State = iota
	// StateRunning: steps are being executed.
	StateRunning
	// StateCompensating: a step failed; compensations are running.
	StateCompensating
	// StateCompleted: every step succeeded (terminal).
	StateCompleted
	// StateCompensated: a step failed and every compensation succeeded
	// (terminal).
	StateCompensated
	// StateFailed: a compensation failed (terminal); Status says which
	// and why.
	StateFailed
)

// String returns the lower-case name of s.
func (s State) String() string {
	switch s {
	case StateRunning:
		return "running"
	case StateCompensating:
		return "compensating"
	case StateCompleted:
		return "completed"
	case StateCompensated:
		return "compensated"
	case StateFailed:
		return "failed"
	}
	return "unknown"
}

// Terminal reports whether s is a final state.
func (s State) Terminal() bool {
	return s == StateCompleted || s == StateCompensated || s == StateFailed
}

// StepFailure says which step failed and why.
type StepFailure struct {
	// Step is the step's name and Index its position (from 0).
	Step  string
	Index int
	// Reason is the error's text.
	Reason string
	// TimedOut is true when the step's deadline passed.
	TimedOut bool
}

// Status is what is known about one saga: its durable record (read from
// its stream) plus, while this process executes it, the attempts at its
// current step.
type Status[D any] struct {
	// Saga is the orchestration's name, ID the saga's id and Stream the
	// stream recording it.
	Saga, ID, Stream string
	// State is where the saga is.
	State State
	// Data is the saga's data as of its last completed step.
	Data D
	// Step is the index of the step being executed (while running) or
	// compensated (while compensating), and StepName its name; both are
	// meaningless in a terminal state.
	Step     int
	StepName string
	// Deadline is the durable deadline of the step being executed (zero
	// when it has none).
	Deadline time.Time
	// Done lists the steps that took effect, in order; Undone lists the
	// steps whose compensation took effect, in the order they ran.
	Done, Undone []string
	// Failure is the step failure that made the saga compensate (nil when
	// none did).
	Failure *StepFailure
	// CompensationFailure is the compensation that failed, making the saga
	// StateFailed (nil otherwise).
	CompensationFailure *StepFailure
	// Version is the saga stream's version: the number of events it has
	// recorded.
	Version uint64
	// Attempt is the number of the attempt in progress at the current
	// step or compensation in this process (0 when none is in progress,
	// or another process executes the saga), and LastError the error of
	// the previous attempt (empty when none failed).
	Attempt   int
	LastError string
	// Executing is true while this process's runner executes the saga
	// (it turns false once the runner is done with it, after its
	// terminal state is recorded and counted in the metrics).
	Executing bool
}

// record is the folded state of a saga stream.
type record struct {
	state          State
	data           json.RawMessage
	sagaDeadline   time.Time
	trigger        uint64
	next           int       // next step to execute while running
	stepStarted    int       // step with a recorded StepStarted, or -1
	stepDeadline   time.Time // its deadline
	compensateNext int       // next step to consider for compensation
	done, undone   []int
	failure        *StepFailure
	compFailure    *StepFailure
	version        uint64
}

func newRecord() record { return record{stepStarted: -1} }

// apply folds one saga event into r.
func (r *record) apply(ev any) error {
	switch e := ev.(type) {
	case Started:
		r.state, r.data, r.sagaDeadline, r.trigger = StateRunning, e.Data, e.Deadline, e.Trigger
	case StepStarted:
		r.stepStarted, r.stepDeadline = e.Step, e.Deadline
	case StepCompleted:
		r.next = e.Step + 1
		r.done = append(r.done, e.Step)
		if len(e.Data) > 0 {
			r.data = e.Data
		}
	case StepFailed:
		r.state = StateCompensating
		r.failure = &StepFailure{Step: e.Name, Index: e.Step, Reason: e.Reason, TimedOut: e.TimedOut}
		r.compensateNext = e.Step - 1
	case StepCompensated:
		r.undone = append(r.undone, e.Step)
		r.compensateNext = e.Step - 1
	case Completed:
		r.state = StateCompleted
	case Compensated:
		r.state = StateCompensated
	case Failed:
		r.state = StateFailed
		r.compFailure = &StepFailure{Step: e.Name, Index: e.Step, Reason: e.Reason}
	default:
		return fmt.Errorf("saga: unexpected event %T in a saga stream", ev)
	}
	r.version++
	return nil
}

// deadline returns the effective deadline of step i: the earlier of its
// recorded step deadline and the saga's deadline (zero when neither).
func (r *record) deadline(i int) time.Time {
	d := r.sagaDeadline
	if r.stepStarted == i && !r.stepDeadline.IsZero() && (d.IsZero() || r.stepDeadline.Before(d)) {
		d = r.stepDeadline
	}
	return d
}
