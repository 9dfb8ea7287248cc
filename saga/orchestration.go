package saga

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/orchestrix/orchestrix/actor"
	"github.com/orchestrix/orchestrix/aggregate"
	"github.com/orchestrix/orchestrix/projection"
)

// Orchestration describes a saga that runs ordered steps, each an action
// with an optional compensation. Build one with New and its chained
// methods, then Register it with a Runner.
//
// When every step succeeds the saga ends Completed. When a step is
// rejected, times out or gives up after Config.Retry.MaxAttempts
// transient failures, the compensations of the steps completed before it
// run in reverse order (the failed step's own compensation does not run)
// and the saga ends Compensated; if a compensation is rejected (or gives
// up), the saga ends Failed, with the reason in its Status.
type Orchestration[D any] struct {
	name     string
	steps    []step[D]
	filter   projection.Filter
	start    StartFunc[D]
	deadline time.Duration
	errs     []error
}

// New starts the description of an orchestration named name. The name
// must be 1-58 ASCII letters, digits, '_' or '.' (no '-': the saga's
// stream is "saga." + name + "-" + id).
func New[D any](name string) *Orchestration[D] {
	o := &Orchestration[D]{name: name}
	if err := aggregate.ValidateKind(StreamKindPrefix + name); err != nil || name == "" {
		o.errs = append(o.errs, fmt.Errorf("name %q: must be 1-58 ASCII letters, digits, '_' or '.'", name))
	}
	return o
}

// Name returns the orchestration's name.
func (o *Orchestration[D]) Name() string { return o.name }

// Step appends a step named name: action does it, compensate (nil when
// there is nothing to undo) undoes it when a later step fails. Step names
// must be unique within the orchestration; they are part of the command
// ids, so renaming a step of running sagas re-sends its command.
func (o *Orchestration[D]) Step(name string, action, compensate Action[D], opts ...StepOption) *Orchestration[D] {
	var s stepOptions
	for _, opt := range opts {
		if opt != nil {
			opt(&s)
		}
	}
	switch {
	case strings.TrimSpace(name) == "" || !utf8.ValidString(name):
		o.errs = append(o.errs, fmt.Errorf("step %d: name %q must be a non-blank UTF-8 string", len(o.steps), name))
	case action == nil:
		o.errs = append(o.errs, fmt.Errorf("step %q has no action", name))
	case s.timeout < 0:
		o.errs = append(o.errs, fmt.Errorf("step %q: negative timeout %v", name, s.timeout))
	}
	for _, prev := range o.steps {
		if prev.name == name {
			o.errs = append(o.errs, fmt.Errorf("step name %q used twice", name))
		}
	}
	o.steps = append(o.steps, step[D]{name: name, action: action, compensate: compensate, timeout: s.timeout})
	return o
}

// StartOn makes the saga react to events: the runner follows the journal's
// global log (a projection with a durable checkpoint) and, for each event
// that filter selects and start accepts, begins the saga with the id and
// data start returns. Delivery is at least once; a saga id that already
// began is not begun again. Without StartOn, sagas begin only through
// Saga.Begin.
func (o *Orchestration[D]) StartOn(filter projection.Filter, start StartFunc[D]) *Orchestration[D] {
	if start == nil {
		o.errs = append(o.errs, errors.New("StartOn: nil start function"))
	}
	o.filter, o.start = filter, start
	return o
}

// Deadline gives every saga a durable overall deadline, d after it began
// (on the runner's clock): a step still running then times out. It does
// not interrupt compensations.
func (o *Orchestration[D]) Deadline(d time.Duration) *Orchestration[D] {
	if d < 0 {
		o.errs = append(o.errs, fmt.Errorf("negative deadline %v", d))
	}
	o.deadline = d
	return o
}

// validate reports every problem found while building o.
func (o *Orchestration[D]) validate() error {
	errs := o.errs
	if len(o.steps) == 0 {
		errs = append(errs, errors.New("no steps"))
	}
	if len(errs) > 0 {
		return fmt.Errorf("%w %q: %w", ErrInvalidSaga, o.name, errors.Join(errs...))
	}
	return nil
}

// step is one step of an orchestration.
type step[D any] struct {
	name       string
	action     Action[D]
	compensate Action[D] // nil: nothing to undo
	timeout    time.Duration
}

// StepOption configures one step.
type StepOption func(*stepOptions)

type stepOptions struct{ timeout time.Duration }

// Timeout gives a step a durable deadline: when the step has not
// succeeded d after it started (measured on the runner's clock, and kept
// across restarts because the deadline is recorded in the saga's stream),
// its action is cancelled and the step fails as timed out, so the saga
// compensates the steps before it. A step that times out may still have
// taken effect (its last command's outcome is unknown); its own
// compensation is not run.
func Timeout(d time.Duration) StepOption {
	return func(s *stepOptions) { s.timeout = d }
}

// StartFunc decides whether an event starts a saga and, if it does,
// returns the saga's id (its correlation id: one saga per id) and data.
type StartFunc[D any] func(ev projection.Event) (id string, data D, ok bool)

// Action is what a step does (or undoes): typically one command sent to an
// aggregate through an actor.Handle, addressed by aggregate id, with the
// deterministic command id from sc (see Context.SendOptions and Command).
//
// The runner calls an action again with the same Context (same command
// ids) after a transient failure, so an action must be safe to repeat:
// commands with the same id are executed at most once by the aggregate.
//
// Return nil when the step took effect. An error matching ErrRejected or
// aggregate.ErrRejected (or orchestrix.ErrNotFound) is a rejection: the
// saga compensates (or, for a compensation, fails). Any other error is
// transient and retried with backoff. An action must return promptly once
// ctx ends (the step's deadline passed or the runner is closing).
type Action[D any] func(ctx context.Context, sc *Context[D]) error

// Command returns an Action that sends one command to an aggregate through
// h: target picks the aggregate id and the command from the saga's data.
// The command carries the step's deterministic command id and the saga id
// as correlation id, and is sent with the step's ctx, so that its span is
// a child of the step's span.
//
//	saga.Command(accounts, func(t Transfer) (string, AccountCommand) {
//		return t.From, Withdraw{Amount: t.Amount}
//	})
func Command[D, S, C, E any](h *actor.Handle[S, C, E], target func(data D) (aggregateID string, cmd C)) Action[D] {
	return func(ctx context.Context, sc *Context[D]) error {
		id, cmd := target(sc.Data)
		_, err := h.Send(ctx, id, cmd, sc.SendOptions()...)
		return err
	}
}

// Context is what an action is given: which saga and step it runs for, the
// saga's data, and the deterministic ids of the commands it sends.
type Context[D any] struct {
	// Saga is the saga's name and ID its correlation id.
	Saga, ID string
	// Step is the name of the step; Compensating is true when the action
	// is the step's compensation.
	Step         string
	Compensating bool
	// Attempt counts the calls for this step (or compensation) in this
	// process, from 1.
	Attempt int
	// Data is the saga's data, freshly decoded for each attempt. An
	// action may change it; the change is recorded with the step's
	// completion and later steps see it. Changes made by a failed attempt
	// or by a compensation are discarded.
	Data D
	// TraceParent is the W3C traceparent of this attempt's
	// orchestrix.saga.step span, the span that the action's ctx carries:
	// a child of the trace that began the saga (the triggering event's
	// traceparent, or the span in Saga.Begin's ctx). It is empty when
	// that trace is unknown and no OpenTelemetry SDK records the step.
	// Use it to propagate the trace over channels other than commands
	// sent with ctx (for example an HTTP call).
	TraceParent string
	// Failure is, for a compensation, the step failure that made the saga
	// compensate; nil for an action.
	Failure *StepFailure

	stream string
}

// CommandID returns the deterministic id of the step's command: the same
// for every attempt, in every process, so that retries are deduplicated by
// the aggregate. A compensation gets a different id than its action.
func (sc *Context[D]) CommandID() string { return sc.CommandIDFor("") }

// CommandIDFor returns a deterministic command id for a step that sends
// several commands: one id per distinct name.
func (sc *Context[D]) CommandIDFor(name string) string {
	phase := "do"
	if sc.Compensating {
		phase = "undo"
	}
	return commandID(sc.stream, sc.Step, phase, name)
}

// SendOptions returns the options an action passes to actor.Handle.Send:
// the command id (CommandID) and the saga id as correlation id.
//
// The trace travels in the action's ctx, not in the options: send with
// the ctx the action was given (or one derived from it), and the
// command's orchestrix.command span is a child of the step's
// orchestrix.saga.step span, and the command's events carry the command
// span's traceparent, as for any other command.
func (sc *Context[D]) SendOptions() []actor.SendOption { return sc.SendOptionsFor("") }

// SendOptionsFor is SendOptions with the command id CommandIDFor(name), for
// a step that sends several commands.
func (sc *Context[D]) SendOptionsFor(name string) []actor.SendOption {
	return []actor.SendOption{actor.WithCommandID(sc.CommandIDFor(name)), actor.WithCorrelationID(sc.ID)}
}
