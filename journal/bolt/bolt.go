package bolt

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	bbolt "go.etcd.io/bbolt"
	bberrors "go.etcd.io/bbolt/errors"
	"go.opentelemetry.io/otel/trace"

	"github.com/orchestrix/orchestrix"
	"github.com/orchestrix/orchestrix/internal/boltsafe"
	"github.com/orchestrix/orchestrix/internal/telemetryhooks"
	"github.com/orchestrix/orchestrix/journal"
	"github.com/orchestrix/orchestrix/telemetry"
)

// Errors of this package. Errors shared by all backends are the sentinels
// of packages orchestrix and journal (journal.ErrInvalidStream,
// journal.ErrNoEvents).
var (
	// ErrLocked is returned by Open when another process (or another Open
	// in this process) holds the file and Config.Timeout passes.
	ErrLocked = errors.New("journal/bolt: database file is locked by another user")
	// ErrReadOnly is returned by Append, AppendAsync and DeleteTo of a
	// journal opened with OpenReadOnly. It wraps journal.ErrRejected:
	// nothing is stored, a definite refusal.
	ErrReadOnly = fmt.Errorf("journal/bolt: journal is opened read-only: %w", journal.ErrRejected)
)

// Defaults used for zero Config fields.
const (
	DefaultMaxEventSize      = 1 << 20
	DefaultMaxBatchEvents    = 4096
	DefaultMaxBatchBytes     = 16 << 20
	DefaultIndexEvery        = 1 << 16
	DefaultIdempotencyWindow = 16
	DefaultFileMode          = 0o600
	DefaultTimeout           = 5 * time.Second
	DefaultPageSize          = 16 << 10
	DefaultCachedHeads       = 1 << 18
)

// Config configures a Journal. The zero value is a durable journal with
// the defaults above.
type Config struct {
	// NoSync skips fsync on commit. FOR TESTS ONLY: a machine crash or
	// power loss then loses acknowledged events or corrupts the file.
	NoSync bool

	// MaxEventSize is the largest encoded event (Envelope.MarshalBinary
	// output) accepted, in bytes; a larger one fails its append with an
	// error matching orchestrix.ErrTooLarge. Zero means
	// DefaultMaxEventSize.
	MaxEventSize int

	// MaxBatchEvents and MaxBatchBytes cap one group commit. An append
	// of more events than MaxBatchEvents still commits, alone; an append
	// whose encoded events exceed MaxBatchBytes (at most 1 GiB) fails
	// with orchestrix.ErrTooLarge. Zero means the default.
	MaxBatchEvents int
	MaxBatchBytes  int

	// IndexEvery is the number of log positions after the index
	// checkpoint at which a checkpoint round begins: the commits of the
	// next IndexEvery/2 events then write the stream index and heads, a
	// slice of the streams each (see "Deferred index"). It bounds the log
	// tail Open scans (about 1.5×IndexEvery). Zero means
	// DefaultIndexEvery.
	IndexEvery int

	// IdempotencyWindow is the number of most recent events of each
	// stream whose ids are compared with a retry appended with Any or
	// StreamExists. Zero means DefaultIdempotencyWindow; at most 1<<16.
	IdempotencyWindow int

	// CachedHeads is how many streams' states (head, deletion point) are
	// kept in memory. Streams with records not yet in journal.index
	// count towards it but are never evicted (at most about
	// 1.5×IndexEvery of them), so the cache exceeds CachedHeads only when
	// there are more of those. The others are read from journal.streams
	// when an append, a deletion or a read needs them, and cached again
	// by an append or deletion; the least recently appended-to are
	// evicted first (a clock over the cached streams). One cached stream
	// costs about 250 bytes plus twice its name. Zero means
	// DefaultCachedHeads.
	CachedHeads int

	// PageSize is the bbolt page size of a newly created file, a power of
	// two from 4 KiB to 64 KiB; a file that exists keeps the page size it
	// was created with. Zero means DefaultPageSize (16 KiB). A commit
	// writes one system call per dirty page, and the log is stored in
	// blocks of half a page, so pages larger than the usual 4 KiB make a
	// large group commit cheaper (measured: about 15 % more events/s
	// with 1024 appenders) at the cost of rewriting a larger partly
	// filled page when commits are small.
	PageSize int

	// FileMode is the mode of a newly created file. Zero means 0600.
	FileMode os.FileMode

	// Timeout is how long Open waits for the file lock before failing
	// with ErrLocked. Zero means DefaultTimeout.
	Timeout time.Duration

	// Logger receives warnings (a corrupt record met while opening, a
	// failed commit). Nil discards them.
	Logger *slog.Logger

	// Metrics receives journal_batch_events and journal_commit_seconds for
	// every commit. Nil records nothing.
	Metrics *telemetry.Metrics

	// TracerProvider makes one orchestrix.journal.commit span per commit,
	// linked to the trace of each append in it (the traceparent of its
	// first event). Nil means the global provider (otel.GetTracerProvider),
	// which records nothing unless an OpenTelemetry SDK is installed, as
	// in every other package.
	TracerProvider trace.TracerProvider
}

// Validate reports a Config value that cannot be used.
func (c Config) Validate() error {
	switch {
	case c.MaxEventSize < 0:
		return errors.New("journal/bolt: negative MaxEventSize")
	case c.MaxEventSize > bbolt.MaxValueSize-journal.MaxStreamLen-64:
		return errors.New("journal/bolt: MaxEventSize above bbolt's value size limit")
	case c.MaxBatchEvents < 0:
		return errors.New("journal/bolt: negative MaxBatchEvents")
	case c.MaxBatchBytes < 0 || c.MaxBatchBytes > 1<<30:
		return errors.New("journal/bolt: MaxBatchBytes out of range 0..1 GiB")
	case c.IndexEvery < 0:
		return errors.New("journal/bolt: negative IndexEvery")
	case c.CachedHeads < 0:
		return errors.New("journal/bolt: negative CachedHeads")
	case c.IdempotencyWindow < 0 || c.IdempotencyWindow > 1<<16:
		return errors.New("journal/bolt: IdempotencyWindow out of range 0..65536")
	case c.Timeout < 0:
		return errors.New("journal/bolt: negative Timeout")
	case c.PageSize != 0 && (c.PageSize < 4<<10 || c.PageSize > 64<<10 || c.PageSize&(c.PageSize-1) != 0):
		return errors.New("journal/bolt: PageSize must be 0 or a power of two from 4 KiB to 64 KiB")
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
	if c.MaxBatchBytes == 0 {
		c.MaxBatchBytes = DefaultMaxBatchBytes
	}
	if c.IndexEvery == 0 {
		c.IndexEvery = DefaultIndexEvery
	}
	if c.IdempotencyWindow == 0 {
		c.IdempotencyWindow = DefaultIdempotencyWindow
	}
	if c.PageSize == 0 {
		c.PageSize = DefaultPageSize
	}
	if c.CachedHeads == 0 {
		c.CachedHeads = DefaultCachedHeads
	}
	if c.FileMode == 0 {
		c.FileMode = DefaultFileMode
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// Journal is a journal.Journal stored in a bbolt file. It also implements
// journal.Deleter and journal.Watcher. All methods are safe for concurrent
// use.
type Journal struct {
	db     *bbolt.DB
	opts   Config
	log    *slog.Logger
	tracer trace.Tracer
	seed   maphash.Seed

	// The queue of appends and deletions waiting for the writer.
	qmu        sync.Mutex
	queue      []*request
	qclosed    bool
	wake       chan struct{}
	writerDone chan struct{}
	closed     atomic.Bool
	done       chan struct{} // closed when Close has finished
	closeOnce  sync.Once
	closeErr   error
	readOnly   bool // opened by OpenReadOnly: no writer, enqueue refuses

	// Published state, guarded by mu. The writer changes it only after a
	// commit, so readers never see uncommitted heads or positions.
	mu      sync.RWMutex
	streams map[string]*streamState
	lastPos uint64
	notify  chan struct{} // closed and replaced on every commit

	w writerState // owned by the writer goroutine (and Open)

	// format is the file's layout version (formatVersion, or
	// formatVersion1 until a writable Open upgrades it).
	format uint64

	// blockSize is the largest journal.log value the writer builds from
	// several records: half a page, less bbolt's per-element overhead.
	blockSize int

	commits, committedEvents, checkpoints atomic.Uint64
	// Nanoseconds the writer spent per phase (Stats).
	buildNs, commitNs, answerNs, settleNs atomic.Int64

	hooks hooks
}

// hooks lets tests inject faults; the zero value injects nothing.
type hooks struct {
	// beforeCommit, when set, is called just before a commit; an error
	// makes the writer roll back and treat the commit as failed.
	beforeCommit atomic.Pointer[func() error]
	// beforePublish, when set, is called after a successful commit and
	// before the batch becomes visible to readers.
	beforePublish atomic.Pointer[func()]
}

// streamState is the in-memory state of one stream.
type streamState struct {
	name   string
	prefix []byte // journal.index key prefix

	// Published, guarded by Journal.mu.
	head, deletedTo uint64
	// pending are the committed runs not yet in journal.index. The slice
	// is only ever appended to or replaced, never changed below its
	// length, so a reader may keep a copy of the slice header.
	pending []run

	// Writer-only.
	wHead   uint64 // head including the current batch
	staged  []run  // runs of the current batch
	touched bool   // in writerState.touched
	// recent holds idKeys of the stream's newest events, versions
	// recentLast-recentLen+1 … recentLast, version v at v % len(recent).
	// nil until an Any or StreamExists append needs it (loaded from the
	// log then, and kept up to date afterwards).
	recent     []uint64
	recentLast uint64
	recentLen  int
	dirty      bool // in writerState.dirty
	inRound    bool // in writerState.round, not yet flushed
	flushed    bool // in writerState.flushed
	ref        bool // appended to or deleted since the clock hand passed
	slot       int  // index in writerState.clock
}

// noFreelistSync is false: Open persists the free list. Benchmarks set it
// to compare with the older setting (export_test.go).
var noFreelistSync = false

// Open opens (creating it if needed) the journal file at path. It fails
// with ErrLocked when the file stays locked for cfg.Timeout, and with an
// error matching orchestrix.ErrCorrupt when the file's journal buckets
// cannot be read.
func Open(path string, cfg Config) (*Journal, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	// boltsafe.Open walks every page before bbolt reads any, so a
	// damaged file fails here with ErrCorrupt instead of crashing the
	// process.
	db, err := boltsafe.Open(path, cfg.FileMode, &bbolt.Options{
		Timeout:      cfg.Timeout,
		NoSync:       cfg.NoSync,
		FreelistType: bbolt.FreelistMapType,
		// The free list is written with every commit (one more page),
		// so that Open reads it instead of scanning every page of the
		// file to rebuild it: that scan made Open grow with the file
		// (0.4-0.9 s at 10 M events). A file written without it (by an
		// older version) is scanned once, on its first Open.
		NoFreelistSync: noFreelistSync,
		PageSize:       cfg.PageSize,
	})
	if err != nil {
		if errors.Is(err, bberrors.ErrTimeout) {
			return nil, fmt.Errorf("%w: %s (waited %v)", ErrLocked, path, cfg.Timeout)
		}
		return nil, boltsafe.OpenError("journal/bolt", path, err)
	}
	j := &Journal{
		db:         db,
		opts:       cfg,
		log:        cfg.Logger,
		tracer:     telemetryhooks.Tracer(cfg.TracerProvider),
		seed:       maphash.MakeSeed(),
		wake:       make(chan struct{}, 1),
		writerDone: make(chan struct{}),
		done:       make(chan struct{}),
		notify:     make(chan struct{}),
	}
	j.blockSize = max(db.Info().PageSize/2-64, 256)
	if err := update(db, initBuckets); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("journal/bolt: open %s: %w", path, err)
	}
	if err := j.load(); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("journal/bolt: open %s: %w", path, err)
	}
	if j.format == formatVersion1 {
		if err := j.upgradeFormat1(); err != nil {
			_ = db.Close()
			return nil, fmt.Errorf("journal/bolt: open %s: %w", path, err)
		}
	}
	go j.writer()
	return j, nil
}

// OpenReadOnly opens the existing journal file at path for reading only:
// the file is opened with a shared lock and bbolt's read-only mode, so
// nothing in it is changed (no buckets created, no checkpoint written on
// Close) and several read-only opens may share it, but not with a Journal
// opened by Open. Reads, Streams, Check and WaitFor work as usual (WaitFor
// never sees a new record); Append, AppendAsync and DeleteTo fail with
// ErrReadOnly. Of opts, only Timeout and Logger are used. It fails like
// Open, and when the file does not exist or holds no journal.
func OpenReadOnly(path string, opts Config) (*Journal, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	opts = opts.withDefaults()
	db, err := openReadOnly(path, opts.Timeout)
	if err != nil {
		return nil, err
	}
	j := &Journal{
		db:         db,
		opts:       opts,
		log:        opts.Logger,
		tracer:     telemetryhooks.Tracer(opts.TracerProvider),
		seed:       maphash.MakeSeed(),
		wake:       make(chan struct{}, 1),
		writerDone: make(chan struct{}),
		done:       make(chan struct{}),
		notify:     make(chan struct{}),
		readOnly:   true,
		qclosed:    true,
	}
	close(j.writerDone) // there is no writer
	j.blockSize = max(db.Info().PageSize/2-64, 256)
	if err := view(db, checkBuckets); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("journal/bolt: open %s read-only: %w", path, err)
	}
	if err := j.load(); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("journal/bolt: open %s read-only: %w", path, err)
	}
	return j, nil
}

// checkBuckets reports whether tx holds a journal of a known format,
// without creating anything.
func checkBuckets(tx *bbolt.Tx) error {
	for _, name := range [][]byte{bucketLog, bucketIndex, bucketStreams, bucketMeta} {
		if tx.Bucket(name) == nil {
			return fmt.Errorf("%w: no bucket %s (not a journal file)", orchestrix.ErrCorrupt, name)
		}
	}
	_, err := fileFormat(tx.Bucket(bucketMeta))
	return err
}

// fileFormat returns the layout version stored in meta: formatVersion, or
// formatVersion1 for a file written before it (or one that has no format
// yet).
func fileFormat(meta *bbolt.Bucket) (uint64, error) {
	v := meta.Get(metaFormat)
	if v == nil {
		return formatVersion1, nil
	}
	if len(v) == 8 {
		if f := binary.BigEndian.Uint64(v); f == formatVersion || f == formatVersion1 {
			return f, nil
		}
	}
	return 0, fmt.Errorf("%w: unknown journal format %x", orchestrix.ErrCorrupt, v)
}

func initBuckets(tx *bbolt.Tx) error {
	for _, name := range [][]byte{bucketLog, bucketIndex, bucketStreams, bucketMeta} {
		if _, err := tx.CreateBucketIfNotExists(name); err != nil {
			return err
		}
	}
	meta := tx.Bucket(bucketMeta)
	if meta.Get(metaFormat) != nil {
		_, err := fileFormat(meta) // a version 1 file is upgraded after load
		return err
	}
	if k, _ := tx.Bucket(bucketLog).Cursor().First(); k != nil {
		// Buckets with records but no format: written by a version
		// before formats were recorded, which had version 1's layout.
		return meta.Put(metaFormat, binary.BigEndian.AppendUint64(nil, formatVersion1))
	}
	return meta.Put(metaFormat, binary.BigEndian.AppendUint64(nil, formatVersion))
}

// upgradeFormat1 turns a version 1 file, just loaded, into version 2: one
// transaction indexes every stream's unindexed runs, writes its head,
// moves the checkpoint to the last position and records the new format.
// Version 1 could leave a head in journal.streams ahead of journal.index
// (a deletion wrote the head without indexing the stream's newer records),
// which version 2's Open would take as indexed; after the upgrade every
// head is covered.
func (j *Journal) upgradeFormat1() error {
	err := update(j.db, func(tx *bbolt.Tx) error {
		if err := j.flushAll(tx); err != nil {
			return err
		}
		return tx.Bucket(bucketMeta).Put(metaFormat, binary.BigEndian.AppendUint64(nil, formatVersion))
	})
	if err != nil {
		return fmt.Errorf("upgrade to format %d: %w", formatVersion, err)
	}
	return j.load()
}

// load (re)builds all in-memory state from the file: heads from
// journal.streams, runs from the log after the checkpoint.
// It is called by Open and by the writer after a failed commit.
func (j *Journal) load() error {
	var streams map[string]*streamState
	w := writerState{}
	var lastPos, format uint64
	err := view(j.db, func(tx *bbolt.Tx) error {
		// Only the streams the log tail names are loaded (with their
		// stored heads); every other head stays on disk until an append,
		// a deletion or a read asks for it (heads.go).
		sb := tx.Bucket(bucketStreams)
		streams = make(map[string]*streamState)
		var err error
		meta := tx.Bucket(bucketMeta)
		if format, err = fileFormat(meta); err != nil {
			return err
		}
		var checkpoint uint64
		if v := meta.Get(metaCheckpoint); len(v) == 8 {
			checkpoint = binary.BigEndian.Uint64(v)
		}
		if v := meta.Get(metaLastPos); len(v) == 8 {
			lastPos = binary.BigEndian.Uint64(v)
		}
		lastPos = max(lastPos, checkpoint)
		w.checkpoint = checkpoint
		c := tx.Bucket(bucketLog).Cursor()
		first, block, ok := findBlock(c, checkpoint+1)
		for ok {
			n, err := blockCount(block)
			if err != nil {
				return &journal.CorruptionError{Position: first, Err: err}
			}
			for i := range n {
				pos := first + uint64(i)
				if pos <= checkpoint {
					continue
				}
				v, err := blockFrame(block, n, i)
				if err != nil {
					return &journal.CorruptionError{Position: pos, Err: err}
				}
				if len(v) == 0 {
					continue // deleted
				}
				f, err := parseFrame(v)
				if err != nil {
					if !errors.Is(err, errChecksum) {
						return &journal.CorruptionError{Position: pos, Err: err}
					}
					j.log.Warn("journal/bolt: record fails its checksum; reads of it will fail",
						"position", pos, "stream", string(f.stream), "version", f.version)
				}
				st := streams[string(f.stream)]
				if st == nil {
					st = newStreamState(string(f.stream))
					if st.head, st.deletedTo, _, err = storedHead(sb, st.name); err != nil {
						return err
					}
					st.wHead = st.head
					streams[st.name] = st
				}
				if format != formatVersion1 && f.version <= st.head {
					// Indexed already: a checkpoint slice wrote the
					// stream's entries and head after this record.
					// (A stream's records follow each other in
					// version order, so st.head is the stored head
					// until the first record above it.)
					continue
				}
				st.pending = appendRun(st.pending, run{version: f.version, pos: pos, n: 1})
				st.head = max(st.head, f.version)
				st.wHead = st.head
				if !st.dirty {
					st.dirty = true
					w.dirty = append(w.dirty, st)
				}
			}
			lastPos = max(lastPos, first+uint64(n)-1)
			k, v := c.Next()
			if k == nil {
				break
			}
			first, block = binary.BigEndian.Uint64(k), v
		}
		if k, v := c.Last(); k != nil {
			lastPos = max(lastPos, binary.BigEndian.Uint64(k)+blockSpan(v)-1)
		}
		return nil
	})
	if err != nil {
		return err
	}
	w.nextPos = lastPos + 1
	w.clock = make([]*streamState, 0, len(streams))
	for _, st := range streams {
		st.slot = len(w.clock)
		w.clock = append(w.clock, st)
	}
	j.format = format
	j.mu.Lock()
	j.streams = streams
	j.lastPos = lastPos
	j.mu.Unlock()
	j.w = w
	return nil
}

func newStreamState(name string) *streamState {
	return &streamState{name: name, prefix: streamPrefix(name)}
}

// idKey is the hash of an event id kept in a stream's recent-id ring.
func (j *Journal) idKey(id string) uint64 { return maphash.String(j.seed, id) }

// DB returns the underlying bbolt database, so that other stores (such as
// snapshot/bolt) can keep their own buckets in the same file. Callers must
// not touch the buckets whose names start with "journal.", and must not
// close the database: Close does.
func (j *Journal) DB() *bbolt.DB { return j.db }

// Path returns the file the journal is stored in.
func (j *Journal) Path() string { return j.db.Path() }

// Close stops accepting appends, waits for the queued ones to commit (each
// reports its own outcome), writes a checkpoint of the index, and closes
// the file. Every later call returns orchestrix.ErrClosed. Close is
// idempotent and returns the same error every time.
func (j *Journal) Close() error {
	j.closeOnce.Do(func() {
		j.qmu.Lock()
		j.qclosed = true
		j.qmu.Unlock()
		j.signal()
		<-j.writerDone
		j.closed.Store(true)
		j.mu.Lock()
		close(j.notify)
		j.mu.Unlock()
		close(j.done)
		if err := j.db.Close(); err != nil {
			j.closeErr = fmt.Errorf("journal/bolt: close: %w", err)
		}
	})
	return j.closeErr
}

func (j *Journal) checkOpen(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if j.closed.Load() {
		return orchestrix.ErrClosed
	}
	return nil
}

// Head returns the highest version ever stored in stream, 0 for a stream
// never written. It reads memory, or journal.streams when the stream's head
// is not cached (Config.CachedHeads).
func (j *Journal) Head(ctx context.Context, stream string) (uint64, error) {
	if err := j.checkOpen(ctx); err != nil {
		return 0, err
	}
	s, ok, err := j.snapshot(stream)
	if err != nil || !ok {
		return 0, readErr(err)
	}
	return s.head, nil
}

// LastPosition returns the position of the newest committed record, 0 for
// an empty journal.
func (j *Journal) LastPosition(ctx context.Context) (uint64, error) {
	if err := j.checkOpen(ctx); err != nil {
		return 0, err
	}
	return j.published(), nil
}

// published returns the position of the newest record visible to
// readers.
func (j *Journal) published() uint64 {
	j.mu.RLock()
	defer j.mu.RUnlock()
	return j.lastPos
}

// WaitFor blocks until a record above after is committed and returns the
// newest committed position. It does not poll: every commit wakes the
// waiters.
func (j *Journal) WaitFor(ctx context.Context, after uint64) (uint64, error) {
	for {
		if err := j.checkOpen(ctx); err != nil {
			return 0, err
		}
		j.mu.RLock()
		last, ch := j.lastPos, j.notify
		j.mu.RUnlock()
		if last > after {
			return last, nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-j.done:
			return 0, orchestrix.ErrClosed
		}
	}
}

// Stats are counters since Open, for metrics and benchmarks.
type Stats struct {
	// Commits is the number of group commits that stored events.
	Commits uint64
	// Events is the number of events those commits stored.
	Events uint64
	// Checkpoints is the number of checkpoint rounds completed (each moved
	// the checkpoint position; a round spreads over several commits).
	Checkpoints uint64
	// CachedStreams is the number of stream states in memory now: the
	// streams with records not yet in journal.index and up to
	// Config.CachedHeads others.
	CachedStreams int

	// Where the writer's time went, summed over every batch of appends:
	// building the transaction (the checks, the commit blocks and the
	// checkpoint's slice), bbolt's Commit (writing and syncing the
	// pages), answering the appends (making the batch visible and calling
	// the completion functions, the actor runtime's code included) and
	// settling (yielding until the callers just answered queue again).
	// Divided by Commits they show where a commit cycle goes.
	BuildTime, CommitTime, AnswerTime, SettleTime time.Duration
}

// Stats returns the journal's counters. Events/Commits is the mean batch
// size.
func (j *Journal) Stats() Stats {
	j.mu.RLock()
	cached := len(j.streams)
	j.mu.RUnlock()
	return Stats{
		Commits: j.commits.Load(), Events: j.committedEvents.Load(), Checkpoints: j.checkpoints.Load(), CachedStreams: cached,
		BuildTime: time.Duration(j.buildNs.Load()), CommitTime: time.Duration(j.commitNs.Load()),
		AnswerTime: time.Duration(j.answerNs.Load()), SettleTime: time.Duration(j.settleNs.Load()),
	}
}

// Interface checks.
var (
	_ journal.Journal       = (*Journal)(nil)
	_ journal.AsyncAppender = (*Journal)(nil)
	_ journal.Deleter       = (*Journal)(nil)
	_ journal.Watcher       = (*Journal)(nil)
)
