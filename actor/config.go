package actor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/orchestrix/orchestrix"
	"github.com/orchestrix/orchestrix/journal"
	"github.com/orchestrix/orchestrix/snapshot"
	"github.com/orchestrix/orchestrix/telemetry"
)

// Defaults applied to zero Config fields.
const (
	DefaultSource          = "/orchestrix"
	DefaultIdleTimeout     = 10 * time.Minute
	DefaultDedupWindow     = 5 * time.Minute
	DefaultDedupMaxEntries = 10_000
	DefaultMaxBatchEvents  = 1000
	DefaultMaxIDLength     = 256
)

// Config configures a System. Journal is required; the zero value of every
// other field is a sensible default (documented per field).
type Config struct {
	// Journal stores the events. Required. The system does not close it.
	Journal journal.Journal

	// Snapshots stores aggregate snapshots. Optional: without it recovery
	// replays whole streams. The system does not close it.
	Snapshots snapshot.Store

	// Registry maps event types to stable names; every registered
	// definition adds its event types to it. Add upcasters here. Nil means
	// a new, empty registry.
	Registry *orchestrix.Registry

	// Clock supplies time for event timestamps, snapshots and
	// passivation. Nil means the wall clock (orchestrix.SystemClock).
	Clock orchestrix.Clock

	// Logger receives the runtime's logs (snapshot failures, restarts).
	// Nil discards them. protoactor-go's own logs go to the same logger at
	// level Warn and above.
	Logger *slog.Logger

	// Source is the CloudEvents source of the events the system writes.
	// Empty means DefaultSource.
	Source string

	// IdleTimeout is how long an aggregate may go without commands or
	// state requests before it is passivated (snapshotted when a store is
	// configured, then stopped); the time counts from the arrival of the
	// last one, and never while an append is in flight. Zero means
	// DefaultIdleTimeout; negative disables idle passivation. The clock
	// is checked every IdleTimeout/2, so an idle aggregate is passivated
	// between IdleTimeout and 1.5×IdleTimeout after its last message.
	IdleTimeout time.Duration

	// MaxActive caps the number of active aggregates of each kind; when a
	// new activation exceeds it, one of the least recently used idle
	// aggregates of that kind is passivated. The cap is soft: aggregates
	// with commands in flight are never passivated. Zero means no cap.
	MaxActive int

	// MaxConcurrentRecoveries bounds how many aggregates recover (load a
	// snapshot and replay events) at the same time. Zero means
	// 4×GOMAXPROCS.
	MaxConcurrentRecoveries int

	// DedupWindow is how long an aggregate recognises a retried command:
	// a command whose id was committed by the aggregate less than
	// DedupWindow ago (measured on Clock, from the time of the original's
	// events) is not executed again, and its original Result is returned
	// with Duplicate set. The window survives passivation, restarts and
	// failover: recovery reads the command ids of the window's events back
	// from the journal (see DedupMaxEntries for the bound). A retry sent
	// after the window has passed executes again, so callers (and a
	// cluster's failover) must retry within it. Zero means
	// DefaultDedupWindow (5 minutes); negative disables deduplication.
	DedupWindow time.Duration

	// DedupMaxEntries caps how many command results each active aggregate
	// remembers for DedupWindow. When the cap is reached before the window
	// has passed (an aggregate taking more than DedupMaxEntries commands
	// per DedupWindow: about 33 per second at the defaults), the oldest
	// entries are forgotten first, and a retry of a command older than the
	// newest DedupMaxEntries is not recognised: the window is then
	// effectively shorter on that aggregate.
	//
	// An entry costs 56 bytes in the aggregate's chunks of entries
	// (allocated as the cache grows, up to 64 entries each, and released
	// whole once their entries expired), plus 16 to 32 in the hash index
	// an aggregate keeps past 16 entries (8-byte slots, a quarter to a
	// half of them in use; up to 64 while a cache shrinks); a command id is kept inside the
	// entry when it is a canonical UUID or at most 16 bytes, beside it
	// otherwise. Entries hold no pointers (nothing for the GC to scan) and
	// not the command's events: a duplicate reads them back from the
	// journal, as recovery would (unless Definition.DeleteEventsOnSnapshot
	// is set: then the events are kept, since they may be deleted within
	// the window). At the cap about 750 KiB per aggregate. Expired
	// entries are dropped when the aggregate next takes a command (a cache
	// that emptied out is released), and all of them when it is
	// passivated. Recovery from a snapshot reads back at most
	// DedupMaxEntries events from before the snapshot (fewer commands are
	// restored when commands there have several events). Zero means
	// DefaultDedupMaxEntries (10,000); negative or more than 2^30 is
	// invalid.
	DedupMaxEntries int

	// MaxBatchEvents caps the events of one journal append (a command
	// producing more is appended alone). Zero means
	// DefaultMaxBatchEvents.
	MaxBatchEvents int

	// AppendTimeout bounds one journal append or snapshot save; an append
	// that times out has an unknown outcome. Zero means no bound beyond
	// the journal's own (Shutdown still cancels appends when its context
	// ends).
	AppendTimeout time.Duration

	// MaxIDLength caps the length of aggregate and command ids in bytes,
	// at most journal.MaxIDLen (so that every stream name fits the
	// journal's limit). Zero means DefaultMaxIDLength.
	MaxIDLength int

	// Observer is told about activations, recoveries, commits,
	// passivations and restarts (telemetry hooks). Nil means none.
	Observer telemetry.Observer

	// Metrics records the runtime's Prometheus metrics
	// (orchestrix_commands_total, command_duration_seconds,
	// events_appended_total, aggregates_active, passivations_total,
	// recoveries_total, recovery_seconds; see package telemetry). It
	// receives the same Observations as Observer, so do not also set it
	// as the Observer. Nil means no metrics, at no cost on the command
	// path.
	Metrics *telemetry.Metrics

	// TracerProvider creates the runtime's spans: one
	// telemetry.SpanCommand span per Send/Dispatch, a child of the span
	// in the caller's context. Nil means otel.GetTracerProvider(), whose
	// spans are non-recording until an OpenTelemetry SDK is installed.
	TracerProvider trace.TracerProvider
}

// Validate reports whether c can be used, with an error matching
// ErrInvalidConfig that says what is wrong.
func (c Config) Validate() error {
	var errs []error
	if c.Journal == nil {
		errs = append(errs, errors.New("Config.Journal is nil"))
	}
	if c.MaxActive < 0 {
		errs = append(errs, fmt.Errorf("MaxActive %d is negative", c.MaxActive))
	}
	if c.MaxConcurrentRecoveries < 0 {
		errs = append(errs, fmt.Errorf("MaxConcurrentRecoveries %d is negative", c.MaxConcurrentRecoveries))
	}
	if c.DedupMaxEntries < 0 || c.DedupMaxEntries > dedupMaxLive {
		errs = append(errs, fmt.Errorf("DedupMaxEntries %d is outside 0..%d", c.DedupMaxEntries, dedupMaxLive))
	}
	if c.MaxBatchEvents < 0 {
		errs = append(errs, fmt.Errorf("MaxBatchEvents %d is negative", c.MaxBatchEvents))
	}
	if c.AppendTimeout < 0 {
		errs = append(errs, fmt.Errorf("AppendTimeout %v is negative", c.AppendTimeout))
	}
	if c.MaxIDLength < 0 || c.MaxIDLength > journal.MaxIDLen {
		errs = append(errs, fmt.Errorf("MaxIDLength %d is outside 0..%d (journal.MaxIDLen)", c.MaxIDLength, journal.MaxIDLen))
	}
	if len(errs) > 0 {
		return fmt.Errorf("%w: %w", ErrInvalidConfig, errors.Join(errs...))
	}
	return nil
}

// withDefaults returns c with zero fields replaced by their defaults.
func (c Config) withDefaults() Config {
	if c.Registry == nil {
		c.Registry = orchestrix.NewRegistry()
	}
	if c.Clock == nil {
		c.Clock = orchestrix.SystemClock{}
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Source == "" {
		c.Source = DefaultSource
	}
	if c.IdleTimeout == 0 {
		c.IdleTimeout = DefaultIdleTimeout
	}
	if c.MaxConcurrentRecoveries == 0 {
		c.MaxConcurrentRecoveries = 4 * runtime.GOMAXPROCS(0)
	}
	if c.DedupWindow == 0 {
		c.DedupWindow = DefaultDedupWindow
	}
	if c.DedupWindow < 0 {
		c.DedupWindow = 0
	}
	if c.DedupMaxEntries == 0 {
		c.DedupMaxEntries = DefaultDedupMaxEntries
	}
	if c.MaxBatchEvents == 0 {
		c.MaxBatchEvents = DefaultMaxBatchEvents
	}
	if c.MaxIDLength == 0 {
		c.MaxIDLength = DefaultMaxIDLength
	}
	return c
}

// levelFloor is a slog.Handler that drops records below a level; it keeps
// protoactor-go's informational chatter out of the user's logs.
type levelFloor struct {
	h     slog.Handler
	floor slog.Level
}

func (l levelFloor) Enabled(ctx context.Context, lv slog.Level) bool {
	return lv >= l.floor && l.h.Enabled(ctx, lv)
}
func (l levelFloor) Handle(ctx context.Context, r slog.Record) error { return l.h.Handle(ctx, r) }
func (l levelFloor) WithAttrs(a []slog.Attr) slog.Handler {
	return levelFloor{h: l.h.WithAttrs(a), floor: l.floor}
}
func (l levelFloor) WithGroup(name string) slog.Handler {
	return levelFloor{h: l.h.WithGroup(name), floor: l.floor}
}
