// Package aggregate is how an event-sourced aggregate is defined: typed
// state, a pure decision function from a command to events, and a pure
// evolution function that folds events into state.
//
// A Definition is plain data and functions; it does no I/O and knows nothing
// of actors or journals. The runtime in package actor runs definitions (one
// actor per aggregate id, events persisted to a journal), and package
// aggregatetest tests them with given / when / then scenarios.
//
//	type Account struct{ ID string; Open bool; Balance int64 }
//
//	type AccountCommand interface{ isAccountCommand() }
//	type AccountEvent interface{ isAccountEvent() }
//
//	var Accounts = aggregate.Definition[Account, AccountCommand, AccountEvent]{
//		Kind:    "account",
//		Initial: func(id string) Account { return Account{ID: id} },
//		Decide:  decide, // func(Account, AccountCommand) ([]AccountEvent, error)
//		Evolve:  evolve, // func(Account, AccountEvent) Account
//		Events: []aggregate.EventType{
//			aggregate.Event[Opened]("bank.account.opened"),
//			aggregate.Event[Deposited]("bank.account.deposited"),
//		},
//	}
//
// C and E may be any types. Giving each aggregate a marker interface for its
// commands and for its events (as above) lets the compiler check that Decide
// only returns this aggregate's events; Decide and Evolve then use a type
// switch, and no caller ever casts from interface{}.
//
// # Purity
//
// Decide and Evolve must be pure: no I/O, no clock, no randomness, and they
// must not modify the state they are given (return a changed copy; copy maps
// and slices before writing to them). The runtime decides commands against
// speculative state while earlier events are still being written, and
// relies on the old state value staying valid when a later step fails.
package aggregate

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"runtime/debug"
	"strings"

	"github.com/orchestrix/orchestrix"
	"github.com/orchestrix/orchestrix/journal"
)

// Errors reported by this package. Match them with errors.Is.
var (
	// ErrRejected means Decide refused a command. The *RejectedError that
	// carries it also unwraps to the error Decide returned, so
	// errors.Is(err, myDomainErr) works as well.
	ErrRejected = errors.New("aggregate: command rejected")

	// ErrPanicked means user code (Initial, Decide, Evolve or a state
	// codec) panicked. The *PanicError that carries it holds the panic
	// value and stack.
	ErrPanicked = errors.New("aggregate: user code panicked")

	// ErrInvalidDefinition means a Definition is incomplete or malformed.
	ErrInvalidDefinition = errors.New("aggregate: invalid definition")
)

// DefaultSnapshotEvery is the snapshot interval used when
// Definition.SnapshotEvery is zero.
const DefaultSnapshotEvery = 100

// Definition describes one kind of aggregate over state S, commands C and
// events E. Kind, Initial, Decide and Evolve are required; the zero value of
// every other field is a sensible default.
type Definition[S, C, E any] struct {
	// Kind names the aggregate type, e.g. "account". The runtime stores
	// the events of aggregate id in the stream Kind + "-" + id
	// (journal.StreamName), so Kind must be 1 to journal.MaxKindLen ASCII
	// letters, digits, '_' or '.', and must not contain '-'.
	Kind string

	// Initial returns the state of an aggregate that has no events yet.
	Initial func(id string) S

	// Decide returns the events that executing cmd against state produces
	// (none is fine), or an error that rejects the command. It must be
	// pure; see the package documentation.
	Decide func(state S, cmd C) ([]E, error)

	// Evolve returns the state after event. It must be pure and must not
	// modify state in place.
	Evolve func(state S, event E) S

	// Events lists the event types Decide may return, with their stable
	// type names; see Event. The runtime registers them in its
	// orchestrix.Registry (add upcasters there).
	Events []EventType

	// Creates, when set, makes aggregates exist only once they have
	// events: a command addressed to an id without events is refused with
	// an error matching orchestrix.ErrNotFound unless Creates reports
	// true for it, and reading the state of such an id reports
	// orchestrix.ErrNotFound. When nil, every id exists and starts from
	// Initial(id).
	Creates func(cmd C) bool

	// SnapshotEvery is how many events may accumulate after the last
	// snapshot before the runtime saves a new one (when it has a snapshot
	// store). Zero means DefaultSnapshotEvery; a negative value disables
	// snapshots by count (snapshots on passivation still happen).
	SnapshotEvery int

	// DeleteEventsOnSnapshot lets the runtime delete a stream's events up
	// to the snapshot before the newest one, each time it saves a
	// snapshot, when the journal implements journal.Deleter. One older
	// snapshot and the events after it always remain. Deleted events are
	// gone for time travel and for command deduplication after restarts.
	DeleteEventsOnSnapshot bool

	// StateVersion is the schema version of the encoded state (1 when
	// zero). Snapshots written with another version are ignored, so bump
	// it whenever S changes incompatibly.
	StateVersion int

	// EncodeState and DecodeState convert state to and from snapshot
	// bytes. Both nil means encoding/json (S must then round-trip through
	// JSON: exported fields only). Set both or neither.
	EncodeState func(state S) ([]byte, error)
	DecodeState func(data []byte) (S, error)
}

// EventType is an event type with its stable name, as listed in
// Definition.Events. Create one with Event.
type EventType struct {
	name     string
	goType   reflect.Type
	register func(r *orchestrix.Registry) error
}

// Event declares event type T under the stable type name name (for example
// "bank.account.opened"). opts are passed to orchestrix.Register, e.g.
// orchestrix.WithSchemaVersion(2).
func Event[T any](name string, opts ...orchestrix.RegisterOption) EventType {
	return EventType{
		name:   name,
		goType: reflect.TypeFor[T](),
		register: func(r *orchestrix.Registry) error {
			return orchestrix.Register[T](r, name, opts...)
		},
	}
}

// Name returns the stable type name.
func (t EventType) Name() string { return t.name }

// GoType returns the Go type of the event.
func (t EventType) GoType() reflect.Type { return t.goType }

// Validate reports whether d is usable, with an error matching
// ErrInvalidDefinition that says what is wrong.
func (d *Definition[S, C, E]) Validate() error {
	var problems []string
	if err := ValidateKind(d.Kind); err != nil {
		problems = append(problems, err.Error())
	}
	if d.Initial == nil {
		problems = append(problems, "Initial is nil")
	}
	if d.Decide == nil {
		problems = append(problems, "Decide is nil")
	}
	if d.Evolve == nil {
		problems = append(problems, "Evolve is nil")
	}
	if (d.EncodeState == nil) != (d.DecodeState == nil) {
		problems = append(problems, "set both EncodeState and DecodeState, or neither")
	}
	if d.StateVersion < 0 {
		problems = append(problems, "StateVersion is negative")
	}
	seen := make(map[string]bool, len(d.Events))
	for i, et := range d.Events {
		switch {
		case et.register == nil || et.name == "":
			problems = append(problems, fmt.Sprintf("Events[%d] was not created with aggregate.Event", i))
		case seen[et.name]:
			problems = append(problems, fmt.Sprintf("event type name %q listed twice", et.name))
		}
		seen[et.name] = true
	}
	if len(problems) > 0 {
		return fmt.Errorf("%w %q: %s", ErrInvalidDefinition, d.Kind, strings.Join(problems, "; "))
	}
	return nil
}

// ValidateKind reports whether kind is a usable aggregate kind name: 1 to
// journal.MaxKindLen ASCII letters, digits, '_' or '.' (journal.ValidateKind).
func ValidateKind(kind string) error { return journal.ValidateKind(kind) }

// RegisterEvents registers the definition's event types in r. A type name
// already registered for the same Go type is accepted, so several systems
// may share one registry.
func (d *Definition[S, C, E]) RegisterEvents(r *orchestrix.Registry) error {
	for _, et := range d.Events {
		if et.register == nil {
			return fmt.Errorf("%w %q: event type not created with aggregate.Event", ErrInvalidDefinition, d.Kind)
		}
		if registeredAs(r, et) == et.name {
			continue
		}
		if err := et.register(r); err != nil {
			return fmt.Errorf("aggregate %q: register event type %q: %w", d.Kind, et.name, err)
		}
	}
	return nil
}

// registeredAs returns the name r has for et's Go type, or "".
func registeredAs(r *orchestrix.Registry, et EventType) string {
	name, err := r.TypeName(reflect.New(et.goType).Elem().Interface())
	if err != nil {
		return ""
	}
	return name
}

// Execute decides cmd against state and folds the resulting events into it,
// returning the new state and the events. A rejection is returned as a
// *RejectedError; a panic in Decide or Evolve as a *PanicError. On error,
// state is returned unchanged and events is nil.
func (d *Definition[S, C, E]) Execute(state S, cmd C) (next S, events []E, err error) {
	events, err = d.decide(state, cmd)
	if err != nil {
		return state, nil, err
	}
	next, err = d.Fold(state, events...)
	if err != nil {
		return state, nil, err
	}
	return next, events, nil
}

func (d *Definition[S, C, E]) decide(state S, cmd C) (events []E, err error) {
	defer func() {
		if r := recover(); r != nil {
			events, err = nil, newPanicError("Decide", r)
		}
	}()
	events, err = d.Decide(state, cmd)
	if err != nil {
		return nil, &RejectedError{Err: err}
	}
	return events, nil
}

// Fold applies events to state with Evolve, in order. A panic in Evolve is
// returned as a *PanicError together with the unchanged state.
func (d *Definition[S, C, E]) Fold(state S, events ...E) (next S, err error) {
	defer func() {
		if r := recover(); r != nil {
			next, err = state, newPanicError("Evolve", r)
		}
	}()
	next = state
	for _, e := range events {
		next = d.Evolve(next, e)
	}
	return next, nil
}

// InitialState returns Initial(id), turning a panic into a *PanicError.
func (d *Definition[S, C, E]) InitialState(id string) (s S, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = newPanicError("Initial", r)
		}
	}()
	return d.Initial(id), nil
}

// EncodeSnapshot encodes state with EncodeState, or JSON when unset.
func (d *Definition[S, C, E]) EncodeSnapshot(state S) (data []byte, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = newPanicError("EncodeState", r)
		}
	}()
	if d.EncodeState != nil {
		return d.EncodeState(state)
	}
	return json.Marshal(state)
}

// DecodeSnapshot decodes state with DecodeState, or JSON when unset.
func (d *Definition[S, C, E]) DecodeSnapshot(data []byte) (state S, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = newPanicError("DecodeState", r)
		}
	}()
	if d.DecodeState != nil {
		return d.DecodeState(data)
	}
	err = json.Unmarshal(data, &state)
	return state, err
}

// SnapshotInterval returns the effective snapshot interval: SnapshotEvery,
// DefaultSnapshotEvery when it is zero, or 0 when snapshots by count are
// disabled.
func (d *Definition[S, C, E]) SnapshotInterval() int {
	switch {
	case d.SnapshotEvery == 0:
		return DefaultSnapshotEvery
	case d.SnapshotEvery < 0:
		return 0
	}
	return d.SnapshotEvery
}

// SchemaVersion returns the effective StateVersion (1 when zero).
func (d *Definition[S, C, E]) SchemaVersion() int {
	if d.StateVersion <= 0 {
		return 1
	}
	return d.StateVersion
}

// RejectedError is returned when Decide rejects a command. It matches
// ErrRejected and unwraps to the domain error Decide returned.
type RejectedError struct {
	// Err is the error Decide returned.
	Err error
}

func (e *RejectedError) Error() string { return "command rejected: " + e.Err.Error() }

// Is makes errors.Is(err, ErrRejected) true.
func (e *RejectedError) Is(target error) bool { return target == ErrRejected }

// Unwrap returns the domain error.
func (e *RejectedError) Unwrap() error { return e.Err }

// PanicError reports a panic in user code. It matches ErrPanicked.
type PanicError struct {
	// Func names the user function that panicked ("Decide", "Evolve", …).
	Func string
	// Value is the value passed to panic.
	Value any
	// Stack is the goroutine's stack at the panic.
	Stack []byte
}

func newPanicError(fn string, v any) *PanicError {
	return &PanicError{Func: fn, Value: v, Stack: debug.Stack()}
}

func (e *PanicError) Error() string { return fmt.Sprintf("%s panicked: %v", e.Func, e.Value) }

// Is makes errors.Is(err, ErrPanicked) true.
func (e *PanicError) Is(target error) bool { return target == ErrPanicked }

// Unwrap returns the panic value when it is an error.
func (e *PanicError) Unwrap() error {
	if err, ok := e.Value.(error); ok {
		return err
	}
	return nil
}
