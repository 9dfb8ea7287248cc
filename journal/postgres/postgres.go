package postgres

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"hash/fnv"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/orchestrix/orchestrix"
	"github.com/orchestrix/orchestrix/internal/pgmigrate"
	"github.com/orchestrix/orchestrix/internal/telemetryhooks"
	"github.com/orchestrix/orchestrix/journal"
	"github.com/orchestrix/orchestrix/telemetry"
	"go.opentelemetry.io/otel/trace"
)

// Defaults for the zero values of Config.
const (
	DefaultMaxEventSize   = 1 << 20
	DefaultMaxBatchEvents = 4096
	DefaultWriteTimeout   = 30 * time.Second
	DefaultPollInterval   = 5 * time.Second
)

// Config configures a Journal. The zero value works.
type Config struct {
	// Schema is the PostgreSQL schema holding the journal's tables; it is
	// created if missing. Empty means the connection's current schema
	// (the first existing schema of search_path, usually "public").
	Schema string

	// MaxEventSize is the largest encoded event (Envelope.MarshalBinary
	// output) accepted, in bytes; a larger one fails its append with an
	// error matching orchestrix.ErrTooLarge. Zero means
	// DefaultMaxEventSize.
	MaxEventSize int

	// MaxBatchEvents caps the events of one group commit. A single append
	// larger than the cap still commits, alone. Zero means
	// DefaultMaxBatchEvents.
	MaxBatchEvents int

	// WriteTimeout bounds one batch's round trips to the database; when it
	// passes during the commit the batch's appends report
	// orchestrix.ErrOutcomeUnknown. Zero means DefaultWriteTimeout.
	WriteTimeout time.Duration

	// PollInterval is how often WaitFor rereads the last position in case
	// a notification was lost. Zero means DefaultPollInterval.
	PollInterval time.Duration

	// MaxInFlight is how many batches may be committing at once. Zero
	// means adaptive: two while this Journal's commits are the only ones
	// in the schema, one while other writers' commits (other cluster
	// members, other processes) interleave with them, since every commit
	// holds the schema's position lock and a second batch would then only
	// split this writer's appends into smaller commits (see the package
	// doc, "Group commit").
	MaxInFlight int

	// MaxConns is the size of the connection pool Open creates (ignored
	// by New). Zero means pgxpool's default.
	MaxConns int32

	// Logger receives the listener's connection problems. Nil discards.
	Logger *slog.Logger

	// Metrics receives journal_batch_events and journal_commit_seconds for
	// every committed batch. Nil records nothing.
	Metrics *telemetry.Metrics

	// TracerProvider makes one orchestrix.journal.commit span per batch,
	// linked to the traces of the batch's appends. Nil means the global
	// provider (a no-op unless an OpenTelemetry SDK is installed).
	TracerProvider trace.TracerProvider
}

// Validate reports whether o is usable.
func (c Config) Validate() error {
	switch {
	case c.MaxEventSize < 0:
		return errors.New("journal/postgres: Config.MaxEventSize is negative")
	case c.MaxBatchEvents < 0:
		return errors.New("journal/postgres: Config.MaxBatchEvents is negative")
	case c.WriteTimeout < 0:
		return errors.New("journal/postgres: Config.WriteTimeout is negative")
	case c.PollInterval < 0:
		return errors.New("journal/postgres: Config.PollInterval is negative")
	case c.MaxInFlight < 0:
		return errors.New("journal/postgres: Config.MaxInFlight is negative")
	case c.MaxConns < 0:
		return errors.New("journal/postgres: Config.MaxConns is negative")
	}
	return nil
}

func (c Config) withDefaults() Config {
	if c.MaxEventSize == 0 {
		c.MaxEventSize = DefaultMaxEventSize
	}
	if c.MaxBatchEvents == 0 {
		c.MaxBatchEvents = DefaultMaxBatchEvents
	}
	if c.WriteTimeout == 0 {
		c.WriteTimeout = DefaultWriteTimeout
	}
	if c.PollInterval == 0 {
		c.PollInterval = DefaultPollInterval
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// Journal is a journal.Journal stored in PostgreSQL. It is safe for
// concurrent use, and several Journals (in one or many processes) may
// share one schema.
type Journal struct {
	pool    *pgxpool.Pool
	ownPool bool
	opts    Config
	schema  string
	channel string
	sql     queries
	tracer  trace.Tracer

	// The queue of appends waiting for the writer, and the batches being
	// committed, guarded by mu.
	mu        sync.Mutex
	cond      *sync.Cond
	queue     []*pending
	carry     []*pending                    // queued appends the last batch could not take
	watches   map[<-chan struct{}]*ctxWatch // AppendAsync contexts of queued appends (ctxwatch.go)
	closing   bool
	inFlight  map[string]struct{} // streams of the batches being committed
	running   int                 // batches being committed
	completed uint64              // batches finished since Open

	inFlightMax *inFlightGauge // how many batches may be committing at once

	params chan *appendParams // insert's buffers, kept between batches (writer.go)

	// heads caches stream heads as of the last batch that touched them.
	headsMu sync.Mutex
	heads   map[string]uint64

	closed     atomic.Bool
	closeOnce  sync.Once
	closedCh   chan struct{}
	runCtx     context.Context
	cancelRun  context.CancelFunc
	writerDone chan struct{}
	deliveries sync.WaitGroup // runBatch calls delivering AppendAsync outcomes
	listenDone chan struct{}

	// commits and events count successful batches and their events.
	commits, events atomic.Uint64

	// lastKnown is the highest committed position this Journal has seen;
	// changed is closed (and replaced) whenever it grows.
	lastKnown atomic.Uint64
	watchMu   sync.Mutex
	changed   chan struct{}

	// epochsDone is set once the epochs table exists (see epochs.go).
	epochsMu   sync.Mutex
	epochsDone bool
}

var (
	_ journal.Journal = (*Journal)(nil)
	_ journal.Deleter = (*Journal)(nil)
	_ journal.Watcher = (*Journal)(nil)
)

// queries are the package's SQL statements with the schema filled in.
type queries struct {
	append, heads, head, versionRange, byIDs, read, readAll, del, lastPosition, lock string
}

// Open connects to the database at dsn (a libpq connection string or URL),
// creates or migrates the journal's schema and returns the journal. Close
// closes the connection pool it creates.
func Open(ctx context.Context, dsn string, cfg Config) (*Journal, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	// journal_append relies on READ COMMITTED (see the package docs).
	pool, err := pgmigrate.Connect(ctx, dsn, cfg.MaxConns, map[string]string{"default_transaction_isolation": "read committed"})
	if err != nil {
		return nil, fmt.Errorf("journal/postgres: %w", err)
	}
	j, err := newJournal(ctx, pool, cfg, true)
	if err != nil {
		pool.Close()
		return nil, err
	}
	return j, nil
}

// New returns a journal over an existing pool, creating or migrating its
// schema. Close does not close the pool. The listener for live
// notifications opens one extra connection with the pool's connection
// settings.
func New(ctx context.Context, pool *pgxpool.Pool, cfg Config) (*Journal, error) {
	if pool == nil {
		return nil, errors.New("journal/postgres: nil pool")
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return newJournal(ctx, pool, cfg, false)
}

func newJournal(ctx context.Context, pool *pgxpool.Pool, cfg Config, ownPool bool) (*Journal, error) {
	cfg = cfg.withDefaults()
	schema, err := pgmigrate.Prepare(ctx, pool, cfg.Schema, component, migrations)
	if err != nil {
		return nil, fmt.Errorf("journal/postgres: %w", err)
	}
	x := func(s string) string { return pgmigrate.Expand(s, schema) }
	runCtx, cancel := context.WithCancel(context.Background())
	j := &Journal{
		pool:    pool,
		ownPool: ownPool,
		opts:    cfg,
		schema:  schema,
		tracer:  telemetryhooks.Tracer(cfg.TracerProvider),
		channel: channelName(schema),
		sql: queries{
			append: x(sqlAppend), heads: x(sqlHeads), head: x(sqlHead),
			versionRange: x(sqlVersionRange), byIDs: x(sqlByIDs), read: x(sqlRead),
			readAll: x(sqlReadAll), del: x(sqlDelete), lastPosition: x(sqlLastPosition), lock: x(sqlLock),
		},
		heads:       make(map[string]uint64),
		inFlight:    make(map[string]struct{}),
		watches:     make(map[<-chan struct{}]*ctxWatch),
		inFlightMax: newInFlightGauge(cfg.MaxInFlight),
		closedCh:    make(chan struct{}),
		runCtx:      runCtx,
		cancelRun:   cancel,
		writerDone:  make(chan struct{}),
		listenDone:  make(chan struct{}),
		changed:     make(chan struct{}),
		params:      make(chan *appendParams, keptParams(cfg.MaxInFlight)),
	}
	j.cond = sync.NewCond(&j.mu)
	if last, err := j.LastPosition(ctx); err == nil {
		j.lastKnown.Store(last)
	} else {
		cancel()
		return nil, err
	}
	go j.runWriter()
	go j.runListener()
	return j, nil
}

// channelName is the NOTIFY channel of the journal in schema: at most 63
// bytes, PostgreSQL's identifier limit.
func channelName(schema string) string {
	name := "orchestrix_journal." + schema
	if len(name) <= 63 {
		return name
	}
	h := fnv.New64a()
	_, _ = h.Write([]byte(schema))
	return fmt.Sprintf("orchestrix_journal.%016x", h.Sum64())
}

// Stats are counters of a Journal's group commits since Open.
type Stats struct {
	// Commits is the number of committed batches; Events the number of
	// events they stored. Events/Commits is the mean batch size.
	Commits, Events uint64
	// InFlight is how many batches may be committing at once now:
	// Config.MaxInFlight, or the adaptive limit's current value.
	InFlight int
}

// Stats returns the journal's commit counters.
func (j *Journal) Stats() Stats {
	return Stats{Commits: j.commits.Load(), Events: j.events.Load(), InFlight: j.inFlightMax.max()}
}

// Schema returns the schema holding the journal's tables.
func (j *Journal) Schema() string { return j.schema }

// Close waits for queued and in-flight appends to finish (each reports its
// own outcome), stops the listener, closes the pool if Open created it,
// and makes every later call return orchestrix.ErrClosed. It is
// idempotent.
func (j *Journal) Close() error {
	j.closeOnce.Do(func() {
		j.closed.Store(true)
		close(j.closedCh)
		j.mu.Lock()
		j.closing = true
		j.cond.Broadcast()
		j.mu.Unlock()
		<-j.writerDone
		j.deliveries.Wait()
		j.cancelRun()
		<-j.listenDone
		if j.ownPool {
			j.pool.Close()
		}
	})
	return nil
}

// check returns the error a call must fail with before doing anything.
func (j *Journal) check(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if j.closed.Load() {
		return orchestrix.ErrClosed
	}
	return nil
}

// wrapDB wraps a database error of a read or a write known not to have
// been applied. A context error of ctx is returned as is (wrapped), so
// that errors.Is(err, context.Canceled) holds; a closed journal reports
// ErrClosed.
func (j *Journal) wrapDB(ctx context.Context, op string, err error) error {
	if cerr := ctx.Err(); cerr != nil {
		return fmt.Errorf("journal/postgres: %s: %w", op, cerr)
	}
	if j.closed.Load() {
		return fmt.Errorf("journal/postgres: %s: %w", op, orchestrix.ErrClosed)
	}
	return fmt.Errorf("journal/postgres: %s: %w", op, err)
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// checksum is the CRC-32C of stream, the big-endian version and record.
func checksum(stream string, version uint64, record []byte) int64 {
	var s crcScratch
	return s.checksum(stream, version, record)
}

// crcScratch computes checksums without allocating per call: crc32.Update
// keeps its argument alive (it calls through a function value), so a
// converted stream name or a version array of its own would each be a
// heap allocation per record; the scratch buffer is one per reader or
// encoder, grown once.
type crcScratch struct{ buf []byte }

// checksum is the CRC-32C of stream, the big-endian version and record.
func (s *crcScratch) checksum(stream string, version uint64, record []byte) int64 {
	s.buf = binary.BigEndian.AppendUint64(append(s.buf[:0], stream...), version)
	c := crc32.Update(0, castagnoli, s.buf)
	return int64(crc32.Update(c, castagnoli, record))
}

// validText reports whether s can be stored in a PostgreSQL text column.
func validText(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] == 0 {
			return false
		}
	}
	return true
}

var _ journal.Shared = (*Journal)(nil)

// Shared reports true: several processes may append to one schema at
// once, fenced by the unique (stream, version) constraint.
func (j *Journal) Shared() bool { return true }
