package projection

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/orchestrix/orchestrix"
	"github.com/orchestrix/orchestrix/journal"
)

// DefaultBatchSize is the number of records a projection reads from the
// journal at a time when Projection.BatchSize is zero.
const DefaultBatchSize = 256

// Errors returned by the package. Match them with errors.Is.
var (
	// ErrUnknownProjection is returned for a name no projection was added
	// under. It matches orchestrix.ErrNotFound.
	ErrUnknownProjection = fmt.Errorf("projection: unknown projection: %w", orchestrix.ErrNotFound)
	// ErrDuplicateProjection is returned by Manager.Add for a name already
	// in use.
	ErrDuplicateProjection = errors.New("projection: a projection with this name already exists")
	// ErrInvalidProjection is returned by Manager.Add (and NewManager for
	// a bad Config) when a definition cannot be used.
	ErrInvalidProjection = errors.New("projection: invalid definition")
	// ErrNotFailed is returned by Manager.Skip when the projection is not
	// stopped on a failure at the given position.
	ErrNotFailed = errors.New("projection: not failed at that position")
	// ErrNoReset is returned by Manager.Rebuild for a projection without a
	// Reset hook: rebuilding a read model that is not cleared first would
	// apply every event to it twice.
	ErrNoReset = errors.New("projection: no Reset hook to clear the read model")
	// ErrNoRoute is returned by a Router for an event whose payload type
	// has no handler registered with On.
	ErrNoRoute = errors.New("projection: no handler for event type")
)

// Event is one journal record delivered to a handler: the record as
// stored (position, stream, version, envelope) and its payload decoded by
// the manager's orchestrix.Registry, upcasters applied. Data holds a value
// of the registered type (T, not *T).
//
// Delivery is at least once: after a crash a handler may see events again
// that it handled before the checkpoint was saved. Handlers that are not
// exactly-once by construction (see projection/boltstore) should use
// Position, which is unique and increasing, to ignore repeats.
type Event struct {
	journal.Record
	// Data is the decoded payload.
	Data any
}

// Kind returns the aggregate kind of the event's stream: the part of the
// stream name before the first '-' (streams are named Kind + "-" + id),
// or the whole name when it has no '-'.
func (e Event) Kind() string { return journal.StreamKind(e.Stream) }

// Filter selects the records a projection handles. Records it excludes
// still advance the projection's checkpoint, and are never decoded, so an
// excluded event type need not be registered. The zero Filter selects
// everything.
type Filter struct {
	// Kinds lists the aggregate kinds (see StreamKind) to include; empty
	// means every kind.
	Kinds []string
	// Types lists the event type names (Envelope.Type) to include; empty
	// means every type.
	Types []string
}

// compiledFilter is a Filter turned into sets.
type compiledFilter struct {
	kinds, types map[string]struct{}
}

func compileFilter(f Filter) compiledFilter {
	set := func(names []string) map[string]struct{} {
		if len(names) == 0 {
			return nil
		}
		m := make(map[string]struct{}, len(names))
		for _, n := range names {
			m[n] = struct{}{}
		}
		return m
	}
	return compiledFilter{kinds: set(f.Kinds), types: set(f.Types)}
}

func (f compiledFilter) match(r *journal.Record) bool {
	if f.kinds != nil {
		if _, ok := f.kinds[journal.StreamKind(r.Stream)]; !ok {
			return false
		}
	}
	if f.types != nil {
		if _, ok := f.types[r.Envelope.Type]; !ok {
			return false
		}
	}
	return true
}

// Handler applies events to a read model.
//
// Handle is called with one batch at a time, never concurrently for one
// projection, with events in commit (position) order. A nil error means
// every event of the batch is applied; the manager then saves the
// checkpoint past the batch. An error means the batch is not (or not
// wholly) applied: the manager retries the events one by one with the
// projection's Retry policy, so a handler that fails half-way must
// tolerate seeing the first half again. Return Permanent(err) to fail
// without retrying.
//
// ctx ends when the projection is stopped; a handler should return
// promptly then, and its result is discarded.
type Handler interface {
	Handle(ctx context.Context, batch []Event) error
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(ctx context.Context, batch []Event) error

// Handle calls f.
func (f HandlerFunc) Handle(ctx context.Context, batch []Event) error { return f(ctx, batch) }

// EachEvent adapts a per-event function to Handler: it calls fn for every
// event of a batch in order and stops at the first error.
func EachEvent(fn func(ctx context.Context, ev Event) error) Handler {
	return HandlerFunc(func(ctx context.Context, batch []Event) error {
		for _, ev := range batch {
			if err := fn(ctx, ev); err != nil {
				return err
			}
		}
		return nil
	})
}

// permanentError marks an error that retrying cannot fix.
type permanentError struct{ err error }

func (e permanentError) Error() string { return e.err.Error() }
func (e permanentError) Unwrap() error { return e.err }

// Permanent wraps err so that the manager does not retry the event that
// caused it: the projection fails at once. errors.Is and errors.As see
// through the wrapper. Permanent(nil) is nil.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return permanentError{err: err}
}

func isPermanent(err error) bool {
	var p permanentError
	return errors.As(err, &p) || errors.Is(err, orchestrix.ErrClosed)
}

// Projection defines one projection: what it reads, how it handles it and
// where it keeps its checkpoint.
type Projection struct {
	// Name identifies the projection and its checkpoint. It must be a
	// non-blank UTF-8 string, unique within a Manager.
	Name string
	// Handler applies events to the read model. Required.
	Handler Handler
	// Filter selects the records to handle; the zero value selects all.
	Filter Filter
	// BatchSize is the most records read from the journal, and so the
	// most events handed to Handler, at a time. Zero means
	// DefaultBatchSize.
	BatchSize int
	// Retry overrides the manager's retry policy when non-zero.
	Retry Retry
	// Checkpoints overrides the manager's checkpoint store when non-nil;
	// an exactly-once read model (projection/boltstore) keeps its
	// checkpoint in its own store.
	Checkpoints CheckpointStore
	// Reset clears the read model; Manager.Rebuild calls it before
	// replaying from position 0. Optional, but Rebuild fails without it.
	Reset func(ctx context.Context) error
	// UntilPosition, when non-zero, makes this an as-of projection: it
	// handles records up to and including this position, then completes
	// (State Completed) instead of following the journal.
	UntilPosition uint64
	// UntilTime, when non-zero, makes this an as-of projection in time: it
	// completes at the first record (selected by Filter or not) whose
	// Envelope.Time is after UntilTime, without handling it. Records
	// without a Time never stop it.
	UntilTime time.Time
}

// validate checks p and reports the first problem.
func (p Projection) validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrInvalidProjection, fmt.Sprintf(format, args...))
	}
	switch {
	case strings.TrimSpace(p.Name) == "" || !utf8.ValidString(p.Name):
		return bad("name %q must be a non-blank UTF-8 string", p.Name)
	case p.Handler == nil:
		return bad("projection %q has no Handler", p.Name)
	case p.BatchSize < 0:
		return bad("projection %q: BatchSize %d is negative", p.Name, p.BatchSize)
	}
	if err := p.Retry.Validate(); err != nil {
		return fmt.Errorf("%w: projection %q: %w", ErrInvalidProjection, p.Name, err)
	}
	return nil
}

// EventError reports an event a projection could not handle: its handler
// kept failing, or its payload could not be decoded (an unregistered type
// matches orchestrix.ErrUnknownEventType). It unwraps to the cause.
type EventError struct {
	// Projection is the projection's name.
	Projection string
	// Position, Stream and Type identify the event.
	Position uint64
	Stream   string
	Type     string
	// Attempts is how many times the event was tried (0 for a decoding
	// failure, which is not retried).
	Attempts int
	// Err is the cause.
	Err error
}

// Error implements error.
func (e *EventError) Error() string {
	if e.Attempts == 0 {
		return fmt.Sprintf("projection %q: event at position %d (stream %q, type %q): %v", e.Projection, e.Position, e.Stream, e.Type, e.Err)
	}
	return fmt.Sprintf("projection %q: event at position %d (stream %q, type %q) failed %d attempt(s): %v",
		e.Projection, e.Position, e.Stream, e.Type, e.Attempts, e.Err)
}

// Unwrap returns the cause.
func (e *EventError) Unwrap() error { return e.Err }
