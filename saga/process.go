package saga

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"time"

	"github.com/orchestrix/orchestrix/actor"
	"github.com/orchestrix/orchestrix/aggregate"
	"github.com/orchestrix/orchestrix/projection"
)

// Process describes an event-driven process manager: handlers for the
// event types it reacts to, each correlating an event with one process
// instance by id, and a state per instance that the handlers read and
// change while they send commands and set timeouts. Build one with
// NewProcess, On and the chained methods, then RegisterProcess it.
//
// Where an Orchestration drives fixed steps, a Process waits for what
// happens: an order process that reacts to the payment, the stock
// reservation and the shipment in whatever order they arrive, and acts
// when a payment does not come in time.
type Process[S any] struct {
	name      string
	initial   func(id string) S
	handlers  []*processHandler[S]
	onTimeout ProcessHandler[S, string]
	starters  bool
	errs      []error
}

// NewProcess starts the description of a process manager named name. The
// name must be 1-55 ASCII letters, digits, '_' or '.' (no '-': a process's
// stream is "process." + name + "-" + id).
func NewProcess[S any](name string) *Process[S] {
	p := &Process[S]{name: name}
	if err := aggregate.ValidateKind(ProcessKindPrefix + name); err != nil || name == "" {
		p.errs = append(p.errs, fmt.Errorf("name %q: must be 1-55 ASCII letters, digits, '_' or '.'", name))
	}
	return p
}

// Name returns the process manager's name.
func (p *Process[S]) Name() string { return p.name }

// Initial sets the state of a process before its first event (the zero S
// when not set).
func (p *Process[S]) Initial(initial func(id string) S) *Process[S] {
	if initial == nil {
		p.errs = append(p.errs, errors.New("Initial: nil function"))
	}
	p.initial = initial
	return p
}

// OnTimeout sets the handler of the process's timeouts (see
// ProcessContext.Schedule); input is the timeout's name.
func (p *Process[S]) OnTimeout(handle ProcessHandler[S, string]) *Process[S] {
	if handle == nil {
		p.errs = append(p.errs, errors.New("OnTimeout: nil handler"))
	}
	p.onTimeout = handle
	return p
}

// On makes process p react to events whose payload is an E (a type
// registered in the runner's Registry): correlate picks the id of the
// process an event belongs to (ok false: the event concerns no process),
// and handle handles it. One handler per event type.
func On[S, E any](p *Process[S], correlate func(ev projection.Event, payload E) (id string, ok bool), handle ProcessHandler[S, E], opts ...HandlerOption) *Process[S] {
	goType := reflect.TypeFor[E]()
	var o handlerOptions
	for _, opt := range opts {
		if opt != nil {
			opt(&o)
		}
	}
	switch {
	case correlate == nil || handle == nil:
		p.errs = append(p.errs, fmt.Errorf("saga.On[%v]: nil correlate or handle function", goType))
		return p
	}
	for _, h := range p.handlers {
		if h.goType == goType {
			p.errs = append(p.errs, fmt.Errorf("saga.On[%v]: a handler for that type is already set", goType))
			return p
		}
	}
	p.starters = p.starters || o.starts
	p.handlers = append(p.handlers, &processHandler[S]{
		goType: goType,
		starts: o.starts,
		correlate: func(ev projection.Event) (string, bool) {
			return correlate(ev, ev.Data.(E))
		},
		handle: func(ctx context.Context, pc *ProcessContext[S], ev projection.Event) error {
			return handle(ctx, pc, ev.Data.(E))
		},
	})
	return p
}

// ProcessHandler handles one input of a process: an event payload of type
// E, or for OnTimeout the name of the timeout. It reads and changes
// pc.State, may send commands (with pc.SendOptions, so that a redelivery
// is deduplicated by the aggregate), set or cancel timeouts, and complete
// the process. Its changes are recorded only when it returns nil.
//
// An error that is a rejection (Reject, or a command the aggregate
// refused) is recorded as the process's failure for that input, with its
// state unchanged, and the process goes on with the next input. Any other
// error is transient: the handler is called again, with the same command
// ids and a fresh copy of the state, after the runner's Retry backoff,
// up to Retry.MaxAttempts calls (projection.DefaultMaxAttempts when zero); then
// it is recorded as a failure.
type ProcessHandler[S, E any] func(ctx context.Context, pc *ProcessContext[S], input E) error

type processHandler[S any] struct {
	goType    reflect.Type
	typeName  string // resolved by RegisterProcess
	starts    bool
	correlate func(ev projection.Event) (string, bool)
	handle    func(ctx context.Context, pc *ProcessContext[S], ev projection.Event) error
}

// HandlerOption configures one handler of a process.
type HandlerOption func(*handlerOptions)

type handlerOptions struct{ starts bool }

// Starts marks the handler's events as ones that may begin a process.
// When a process has handlers marked Starts, an event of any other
// handler whose process has not begun is ignored; when none is marked,
// any handled event begins its process.
func Starts() HandlerOption { return func(o *handlerOptions) { o.starts = true } }

// BySubject is a correlate function for On: the process of an event is
// the one named by the event's subject (for an aggregate's event, the
// aggregate id). Events without a subject concern no process.
func BySubject[E any](ev projection.Event, _ E) (string, bool) {
	return ev.Envelope.Subject, ev.Envelope.Subject != ""
}

// ByCorrelationID is a correlate function for On: the process of an event
// is the one named by the event's correlation id (the id a command was
// sent with, actor.WithCorrelationID). Events without one concern no
// process.
func ByCorrelationID[E any](ev projection.Event, _ E) (string, bool) {
	return ev.Envelope.CorrelationID, ev.Envelope.CorrelationID != ""
}

func (p *Process[S]) validate() error {
	errs := p.errs
	if len(p.handlers) == 0 {
		errs = append(errs, errors.New("no event handlers"))
	}
	if len(errs) > 0 {
		return fmt.Errorf("%w %q: %w", ErrInvalidSaga, p.name, errors.Join(errs...))
	}
	return nil
}

// ProcessContext is what a process handler is given: which process and
// input it handles, the process's state, and its timers.
type ProcessContext[S any] struct {
	// Process is the process manager's name and ID the process's id.
	Process, ID string
	// State is the process's state, freshly decoded for each call. The
	// handler may change it; the change is recorded when the handler
	// returns nil.
	State S
	// Event is the event being handled; its Data is the payload. It is
	// zero for a timeout.
	Event projection.Event
	// Timeout is the name of the timeout being handled ("" for an event).
	Timeout string
	// Attempt counts the calls for this input in this process, from 1.
	Attempt int
	// TraceParent is the traceparent of this call's orchestrix.saga.step
	// span, the one ctx carries (see Context.TraceParent).
	TraceParent string

	now    time.Time
	timers map[string]time.Time
	done   bool
	stream string
	key    string // what command ids derive from: the input's identity
}

// Now returns the runner's clock reading when the call began.
func (pc *ProcessContext[S]) Now() time.Time { return pc.now }

// Schedule sets timeout name to fire d from Now, replacing a pending one
// of the same name. The deadline is recorded with the process and fires
// through the runner's Clock, also after a restart.
func (pc *ProcessContext[S]) Schedule(name string, d time.Duration) {
	pc.ScheduleAt(name, pc.now.Add(d))
}

// ScheduleAt sets timeout name to fire at t.
func (pc *ProcessContext[S]) ScheduleAt(name string, t time.Time) {
	if pc.timers == nil {
		pc.timers = make(map[string]time.Time)
	}
	pc.timers[name] = t.UTC()
}

// Cancel removes timeout name if it is pending.
func (pc *ProcessContext[S]) Cancel(name string) { delete(pc.timers, name) }

// Timers returns a copy of the pending timeouts.
func (pc *ProcessContext[S]) Timers() map[string]time.Time { return maps.Clone(pc.timers) }

// Complete ends the process once this call is recorded: its pending
// timeouts are dropped and later events are ignored.
func (pc *ProcessContext[S]) Complete() { pc.done = true }

// CommandID returns a deterministic id for the command named name that
// this call sends: the same for every attempt and every redelivery of the
// input, in every process, different for every input.
func (pc *ProcessContext[S]) CommandID(name string) string {
	return commandID(pc.stream, pc.key, "process", name)
}

// SendOptions returns the options to pass to actor.Handle.Send for the
// command named name: its CommandID and the process id as correlation id.
// Send with the handler's ctx so that the command's span is a child of
// the handler's.
func (pc *ProcessContext[S]) SendOptions(name string) []actor.SendOption {
	return []actor.SendOption{actor.WithCommandID(pc.CommandID(name)), actor.WithCorrelationID(pc.ID)}
}
