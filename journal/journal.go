// Package journal defines the event journal: the durable, append-only log of
// every stream's events, and the global, commit-ordered feed that projections
// and sagas follow.
//
// # Contract
//
// Every backend (journal/mem, journal/bolt, journal/postgres) implements this
// contract and passes the conformance suite in journal/journaltest.
//
//   - Per stream, versions are 1, 2, 3, … without gaps. An append of n events
//     is atomic: all n are stored with consecutive versions, or none is.
//   - An append states the version it expects the stream to be at (Any,
//     NoStream, StreamExists or Exact(n)). When the stream is elsewhere the
//     append is rejected with a *VersionConflictError (matching
//     orchestrix.ErrVersionConflict) carrying the expected and actual
//     versions, and nothing is stored.
//   - Retries are idempotent by event id, following KurrentDB's rules: an
//     append whose event ids are exactly the ids already stored at the
//     versions the append would have taken (for NoStream, Any, StreamExists,
//     or an Exact version below the head) returns the original result with
//     Duplicate set and stores nothing. An append that overlaps stored ids
//     only partly is a version conflict.
//   - Every committed record has a global position. Positions strictly
//     increase in commit order and are never reused; they may have holes
//     (deleted events). ReadAll returns records in commit order and never
//     skips a record, even when writers commit concurrently: a record that
//     becomes visible later never has a position below one already
//     returned.
//   - Reads agree with each other: a record that ReadAll returns is
//     already visible to Read of its stream, to Head and to LastPosition
//     (and Watcher.WaitFor). A follower of the global log may act on a
//     record by reading its stream.
//   - Deleting a stream's events up to a version never lowers the stream's
//     highest version: later appends continue after it.
//   - Records carry a checksum. A record that fails it, or cannot be
//     decoded, is returned as an error matching orchestrix.ErrCorrupt (a
//     *CorruptionError naming stream and position where known), never
//     skipped.
//   - A rejection (conflict, invalid event) affects only the append it
//     belongs to, even when a backend commits several appends together. A
//     failed commit (I/O error, lost connection) is reported as an error
//     matching orchestrix.ErrOutcomeUnknown, never as success.
//   - Every call honours its context: a cancelled context returns an error
//     matching the context's error. After Close every call returns an error
//     matching orchestrix.ErrClosed.
//   - All methods are safe for concurrent use by any number of goroutines.
package journal

import (
	"context"
	"fmt"
	"iter"

	"github.com/orchestrix/orchestrix"
)

// Journal is the storage contract of the event log. See the package
// documentation for the guarantees every implementation gives.
type Journal interface {
	// Append stores events at the end of stream, provided the stream is at
	// the expected version, and returns once they are durable (or the
	// backend's configured durability level is reached). The journal sets
	// each stored envelope's Sequence to its version; every other attribute
	// is stored as given, and events must carry a non-empty ID, Type and
	// Source. An empty events slice is an error. On error nothing is known
	// to be stored; see the package documentation for what each error means.
	// Append does not keep events, nor the bytes they refer to, after it
	// returns: the caller may reuse them (package actor recycles its
	// batches).
	Append(ctx context.Context, stream string, expected ExpectedVersion, events []orchestrix.Envelope) (AppendResult, error)

	// Read returns the events of stream with from <= version <= to, in
	// version order, at most max of them (max <= 0 returns nothing; use
	// math.MaxInt for no limit; to = math.MaxUint64 for no upper bound).
	// An unknown stream, or from > to, yields nothing and no error.
	// Deleted events are not returned. Errors are yielded as the last
	// element. Records and their byte slices belong to the caller.
	Read(ctx context.Context, stream string, from, to uint64, max int) iter.Seq2[Record, error]

	// ReadAll returns committed records of all streams with position >=
	// from, in commit order, at most max of them (max <= 0 returns nothing).
	// It returns what is committed when the iteration reaches it and does
	// not wait for more; use Watcher to wait for new commits.
	ReadAll(ctx context.Context, from uint64, max int) iter.Seq2[Record, error]

	// Head returns the highest version ever stored in stream (0 for a
	// stream that has never been written), without replaying it. Deletion
	// does not lower it.
	Head(ctx context.Context, stream string) (uint64, error)

	// Close waits for in-flight appends to finish (each reports its own
	// outcome), releases resources and makes every later call return
	// orchestrix.ErrClosed. Close is idempotent.
	Close() error
}

// AsyncAppender is an optional interface of a Journal that can queue an
// append and report its outcome through a function instead of blocking the
// caller. The aggregate runtime (package actor) uses it when the journal
// has it (and actor.Config.AppendTimeout is zero): it hands each batch to
// AppendAsync and applies the result in done, which spares a goroutine
// and a mailbox trip per append. Without it the runtime calls Append on a
// goroutine of its own; the outcome is the same, only slower. Backends
// that implement it assert so at compile time
// (var _ journal.AsyncAppender = (*Journal)(nil)).
type AsyncAppender interface {
	Journal

	// AppendAsync checks and queues the append as Append would, and
	// returns without waiting for the commit. When it returns an error
	// nothing was queued and done is never called. Otherwise done is
	// called exactly once, with what Append would have returned, after
	// the commit (or its failure). done may run on a goroutine of the
	// journal that serves every append: it must be quick, must not panic
	// and must not block, and may queue further appends with AppendAsync
	// but must not wait for them. A ctx that ends while the append is
	// still queued fails it with ctx's error; once taken into a commit it
	// runs to completion. Close calls done for every queued append before
	// it returns. As with Append, events are not kept once done has been
	// called.
	AppendAsync(ctx context.Context, stream string, expected ExpectedVersion, events []orchestrix.Envelope,
		done func(AppendResult, error)) error
}

// BorrowedReader is an optional interface of a Journal that can read a
// stream without copying each record out of its own buffer. The aggregate
// runtime (package actor) replays streams through it when the journal has
// it: it keeps only the decoded event, so the copy Read makes of every
// record is wasted there. Backends that implement it assert so at compile
// time (var _ journal.BorrowedReader = (*Journal)(nil)).
type BorrowedReader interface {
	Journal

	// ReadBorrowed returns what Read returns, with the same bounds,
	// order and errors, except that a yielded record is borrowed: the
	// strings of its Envelope (all but Record.Stream) and Envelope.Data
	// may point into the journal's read buffer, valid only until the
	// loop body returns — the next iteration, or the end of the loop,
	// reuses that memory. The caller must copy whatever it keeps
	// (strings.Clone, bytes.Clone) and must not write to Data. The
	// journal may hold a connection or a read transaction for the
	// duration of the loop, so the body should be quick and must not
	// wait on anything that needs the journal to make progress.
	ReadBorrowed(ctx context.Context, stream string, from, to uint64, max int) iter.Seq2[Record, error]
}

// Deleter is implemented by journals that can delete a stream's events.
type Deleter interface {
	// DeleteTo deletes the events of stream with version <= to (to above
	// the head deletes up to the head). The stream's head is unchanged:
	// the next append still continues after it, and Head still reports
	// it. Deleting events that are already gone is not an error.
	DeleteTo(ctx context.Context, stream string, to uint64) error
}

// Watcher is implemented by journals that can tell readers about new
// commits without polling.
type Watcher interface {
	// LastPosition returns the position of the newest committed record (0
	// when the journal is empty).
	LastPosition(ctx context.Context) (uint64, error)

	// WaitFor blocks until a record with a position above after is
	// committed (and visible to ReadAll), then returns the newest
	// committed position. It returns at once when one already is. It
	// returns the context's error when ctx ends first, and
	// orchestrix.ErrClosed when the journal is closed while waiting.
	WaitFor(ctx context.Context, after uint64) (uint64, error)
}

// Record is one stored event.
type Record struct {
	// Position is the record's place in the global, commit-ordered log.
	Position uint64
	// Stream is the stream the event was appended to.
	Stream string
	// Version is the event's version in its stream; Envelope.Sequence
	// holds the same number.
	Version uint64
	// Envelope is the event as appended.
	Envelope orchestrix.Envelope
}

// AppendResult describes a successful append.
type AppendResult struct {
	// FirstVersion and LastVersion are the versions the appended events
	// took (for a duplicate, the versions the original append took).
	FirstVersion, LastVersion uint64
	// FirstPosition and LastPosition are the global positions of the
	// first and last appended event.
	FirstPosition, LastPosition uint64
	// Duplicate is true when the append was recognised as a retry of an
	// earlier one by its event ids and nothing new was stored.
	Duplicate bool
}

// expectKind says how an ExpectedVersion constrains an append.
type expectKind uint8

const (
	expectAny expectKind = iota
	expectNoStream
	expectStreamExists
	expectExact
)

// ExpectedVersion states what version an append expects its stream to be at.
// The zero value is Any.
type ExpectedVersion struct {
	kind    expectKind
	version uint64
}

var (
	// Any accepts the append whatever the stream's version.
	Any = ExpectedVersion{kind: expectAny}
	// NoStream accepts the append only if the stream has never been
	// written (its head is 0).
	NoStream = ExpectedVersion{kind: expectNoStream}
	// StreamExists accepts the append only if the stream has been written.
	StreamExists = ExpectedVersion{kind: expectStreamExists}
)

// Exact accepts the append only if the stream's head is exactly version.
// Exact(0) is the same as NoStream.
func Exact(version uint64) ExpectedVersion {
	if version == 0 {
		return NoStream
	}
	return ExpectedVersion{kind: expectExact, version: version}
}

// IsAny reports whether e is Any.
func (e ExpectedVersion) IsAny() bool { return e.kind == expectAny }

// IsNoStream reports whether e is NoStream (or Exact(0)).
func (e ExpectedVersion) IsNoStream() bool { return e.kind == expectNoStream }

// IsStreamExists reports whether e is StreamExists.
func (e ExpectedVersion) IsStreamExists() bool { return e.kind == expectStreamExists }

// Exact returns the exact version expected and true, or 0 and false when e
// is not an exact expectation. NoStream reports (0, true).
func (e ExpectedVersion) Exact() (uint64, bool) {
	switch e.kind {
	case expectExact:
		return e.version, true
	case expectNoStream:
		return 0, true
	}
	return 0, false
}

// Allows reports whether a stream whose head is head satisfies e.
func (e ExpectedVersion) Allows(head uint64) bool {
	switch e.kind {
	case expectNoStream:
		return head == 0
	case expectStreamExists:
		return head > 0
	case expectExact:
		return head == e.version
	}
	return true
}

func (e ExpectedVersion) String() string {
	switch e.kind {
	case expectNoStream:
		return "no-stream"
	case expectStreamExists:
		return "stream-exists"
	case expectExact:
		return fmt.Sprintf("exact(%d)", e.version)
	}
	return "any"
}

// VersionConflictError is returned when an append's expected version does not
// hold, or when its event ids only partly match events already stored. It
// matches orchestrix.ErrVersionConflict.
type VersionConflictError struct {
	Stream   string
	Expected ExpectedVersion
	// Actual is the stream's head when the append was checked.
	Actual uint64
	// Reason is set when the conflict is not a plain version mismatch
	// (for example "event ids partly match stored events").
	Reason string
}

func (e *VersionConflictError) Error() string {
	msg := fmt.Sprintf("journal: version conflict on stream %q: expected %s, actual %d", e.Stream, e.Expected, e.Actual)
	if e.Reason != "" {
		msg += ": " + e.Reason
	}
	return msg
}

// Is makes errors.Is(err, orchestrix.ErrVersionConflict) true.
func (e *VersionConflictError) Is(target error) bool { return target == orchestrix.ErrVersionConflict }

// CorruptionError reports a record that failed its checksum or could not be
// decoded. It matches orchestrix.ErrCorrupt.
type CorruptionError struct {
	// Stream and Version identify the record where known.
	Stream  string
	Version uint64
	// Position is the record's global position where known.
	Position uint64
	// Err describes what is wrong.
	Err error
}

func (e *CorruptionError) Error() string {
	return fmt.Sprintf("journal: corrupt record (stream %q, version %d, position %d): %v", e.Stream, e.Version, e.Position, e.Err)
}

// Is makes errors.Is(err, orchestrix.ErrCorrupt) true.
func (e *CorruptionError) Is(target error) bool { return target == orchestrix.ErrCorrupt }

// Unwrap returns the underlying cause.
func (e *CorruptionError) Unwrap() error { return e.Err }

// Shared is an optional interface of a Journal that several processes can
// use at once, each appending under the expected-version check, such as
// PostgreSQL (journal/postgres). Package cluster refuses a journal that
// does not implement it or reports false: a bbolt file (journal/bolt) is
// locked by one process, and an in-memory journal (journal/mem) is private
// to one.
type Shared interface {
	Journal

	// Shared reports whether several processes can append to the journal
	// at once, fenced by the expected-version check.
	Shared() bool
}
