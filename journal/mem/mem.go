// Package mem is the reference in-memory journal: a complete, simple
// implementation of journal.Journal, journal.Deleter and journal.Watcher
// that the conformance suite (journal/journaltest) is checked against, with
// fault injection for testing code that uses a journal.
//
// It is not for production: nothing survives the process, memory is never
// returned (deleted events keep a small tombstone), and every append takes
// one journal-wide lock.
//
// Records are stored the way a durable backend stores them: each envelope
// encoded with orchestrix.Envelope.MarshalBinary and followed by a CRC-32C
// of the encoding, so that CorruptRecord can damage one and reads report it
// as orchestrix.ErrCorrupt.
package mem

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"iter"
	"sync"

	"github.com/orchestrix/orchestrix"
	"github.com/orchestrix/orchestrix/journal"
)

// DefaultMaxEventSize is the limit on one event's encoded size used when
// Config.MaxEventSize is zero: 1 MiB.
const DefaultMaxEventSize = 1 << 20

// readChunk is how many records a read copies out under the lock at a
// time; the lock is never held while the caller's loop body runs.
const readChunk = 256

// Errors returned by the journal besides the orchestrix sentinels.
var (
	// ErrNoRecord is returned by CorruptRecord when the record does not
	// exist (never written, or deleted). It matches orchestrix.ErrNotFound.
	ErrNoRecord = fmt.Errorf("journal/mem: no such record: %w", orchestrix.ErrNotFound)
)

// Config configures a Journal. The zero value is ready to use.
type Config struct {
	// MaxEventSize is the largest accepted size, in bytes, of one event in
	// its stored (binary) form. Zero means DefaultMaxEventSize. An append
	// with a larger event fails with an error matching
	// orchestrix.ErrTooLarge and stores nothing.
	MaxEventSize int
}

// Validate reports whether c is usable.
func (c Config) Validate() error {
	if c.MaxEventSize < 0 {
		return fmt.Errorf("journal/mem: MaxEventSize %d is negative", c.MaxEventSize)
	}
	return nil
}

func (c Config) maxEventSize() int {
	if c.MaxEventSize == 0 {
		return DefaultMaxEventSize
	}
	return c.MaxEventSize
}

// record is one stored event. Its fields never change after the append
// that made it, except data (set to nil on deletion, or replaced by a
// damaged copy by CorruptRecord), which is only written under the write
// lock and never modified in place, so readers may keep a reference.
type record struct {
	stream   string
	version  uint64
	position uint64
	id       string
	data     []byte // encoded envelope followed by its CRC-32C; nil once deleted
}

// stream is the state of one stream.
type stream struct {
	// records holds every version ever appended; records[v-1] is version
	// v. Deleted records stay as tombstones so that retries of deleted
	// events are still recognised and versions index directly.
	records []*record
	// deletedTo is the highest deleted version.
	deletedTo uint64
	// firstVersion maps an event id to the first version that carries it.
	firstVersion map[string]uint64
}

func (s *stream) head() uint64 { return uint64(len(s.records)) }

// Journal is the in-memory journal. Create it with New; all methods are
// safe for concurrent use.
type Journal struct {
	maxEventSize int

	mu      sync.RWMutex
	closed  bool
	streams map[string]*stream
	log     []*record // log[p-1] has position p
	// commit is closed, and replaced, whenever a commit or Close happens,
	// waking WaitFor callers.
	commit chan struct{}

	faults faults
}

var (
	_ journal.Journal = (*Journal)(nil)
	_ journal.Deleter = (*Journal)(nil)
	_ journal.Watcher = (*Journal)(nil)
)

// New returns an empty journal configured by cfg.
func New(cfg Config) (*Journal, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Journal{
		maxEventSize: cfg.maxEventSize(),
		streams:      make(map[string]*stream),
		commit:       make(chan struct{}),
	}, nil
}

// castagnoli is the CRC-32C table used for record checksums.
var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Append implements journal.Journal. The whole append happens under the
// journal's lock, so it is atomic and its positions follow commit order.
func (j *Journal) Append(ctx context.Context, streamName string, expected journal.ExpectedVersion, events []orchestrix.Envelope) (journal.AppendResult, error) {
	if err := ctx.Err(); err != nil {
		return journal.AppendResult{}, fmt.Errorf("journal/mem: append: %w", err)
	}
	if err := journal.ValidateStream(streamName); err != nil {
		return journal.AppendResult{}, fmt.Errorf("journal/mem: %w", err)
	}
	if len(events) == 0 {
		return journal.AppendResult{}, fmt.Errorf("journal/mem: append to %q: %w", streamName, journal.ErrNoEvents)
	}
	for i := range events {
		if err := events[i].Validate(); err != nil {
			return journal.AppendResult{}, fmt.Errorf("journal/mem: append to %q: event %d: %w", streamName, i, err)
		}
	}

	if err := j.faults.hold(ctx, streamName); err != nil {
		return journal.AppendResult{}, err
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.closed {
		return journal.AppendResult{}, orchestrix.ErrClosed
	}
	if err := j.faults.beforeAppend(streamName); err != nil {
		return journal.AppendResult{}, err
	}
	s := j.streams[streamName]
	var head uint64
	if s != nil {
		head = s.head()
	}

	if res, dup, err := checkRetry(streamName, s, expected, events); err != nil || dup {
		return res, err
	}
	if !expected.Allows(head) {
		return journal.AppendResult{}, &journal.VersionConflictError{Stream: streamName, Expected: expected, Actual: head}
	}

	// Encode everything before changing any state, so a failure stores
	// nothing.
	encoded := make([][]byte, len(events))
	for i, ev := range events {
		ev.Sequence = head + 1 + uint64(i)
		b, err := ev.MarshalBinary()
		if err != nil {
			return journal.AppendResult{}, fmt.Errorf("journal/mem: append to %q: event %d: %w", streamName, i, err)
		}
		if len(b) > j.maxEventSize {
			return journal.AppendResult{}, fmt.Errorf("journal/mem: append to %q: event %d is %d bytes encoded, above the limit of %d: %w",
				streamName, i, len(b), j.maxEventSize, orchestrix.ErrTooLarge)
		}
		encoded[i] = binary.BigEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
	}

	if s == nil {
		s = &stream{firstVersion: make(map[string]uint64, len(events))}
		j.streams[streamName] = s
	}
	res := journal.AppendResult{FirstVersion: head + 1, FirstPosition: uint64(len(j.log)) + 1}
	for i, ev := range events {
		r := &record{
			stream:   streamName,
			version:  head + 1 + uint64(i),
			position: uint64(len(j.log)) + 1,
			id:       ev.ID,
			data:     encoded[i],
		}
		s.records = append(s.records, r)
		if _, ok := s.firstVersion[ev.ID]; !ok {
			s.firstVersion[ev.ID] = r.version
		}
		j.log = append(j.log, r)
	}
	res.LastVersion = s.head()
	res.LastPosition = uint64(len(j.log))
	j.notify()
	if err := j.faults.afterStore(streamName); err != nil {
		return journal.AppendResult{}, err
	}
	return res, nil
}

// checkRetry applies the idempotency rules: it reports dup when events are
// exactly the events stored where the append would have put them, and a
// conflict when they only partly match stored events. It returns neither
// when the append is new.
func checkRetry(name string, s *stream, expected journal.ExpectedVersion, events []orchestrix.Envelope) (journal.AppendResult, bool, error) {
	if s == nil {
		return journal.AppendResult{}, false, nil
	}
	head := s.head()
	var start uint64 // the version the first event would have taken
	if v, ok := expected.Exact(); ok {
		if v >= head {
			// At (or beyond) the head nothing can be a retry; the
			// version check decides.
			return journal.AppendResult{}, false, nil
		}
		start = v + 1
	} else {
		// Any and StreamExists: a retry is found by its first event id.
		v, ok := s.firstVersion[events[0].ID]
		if !ok {
			for _, ev := range events[1:] {
				if _, ok := s.firstVersion[ev.ID]; ok {
					return journal.AppendResult{}, false, &journal.VersionConflictError{Stream: name, Expected: expected, Actual: head,
						Reason: journal.ReasonPartialMatch}
				}
			}
			return journal.AppendResult{}, false, nil
		}
		start = v
	}
	switch journal.MatchIDs(len(events), func(i int) bool {
		v := start + uint64(i)
		return v <= head && s.records[v-1].id == events[i].ID
	}) {
	case journal.MatchNone:
		// A plain conflict: the stream moved on with other events.
		return journal.AppendResult{}, false, &journal.VersionConflictError{Stream: name, Expected: expected, Actual: head}
	case journal.MatchPartial:
		return journal.AppendResult{}, false, &journal.VersionConflictError{Stream: name, Expected: expected, Actual: head,
			Reason: journal.ReasonPartialMatch}
	}
	last := start + uint64(len(events)) - 1
	return journal.AppendResult{
		FirstVersion:  start,
		LastVersion:   last,
		FirstPosition: s.records[start-1].position,
		LastPosition:  s.records[last-1].position,
		Duplicate:     true,
	}, true, nil
}

// notify wakes WaitFor callers. The caller holds the write lock.
func (j *Journal) notify() {
	close(j.commit)
	j.commit = make(chan struct{})
}

// Read implements journal.Journal. Records are copied out under the lock
// a chunk at a time; the lock is not held while the loop body runs, so the
// body may call the journal.
func (j *Journal) Read(ctx context.Context, streamName string, from, to uint64, limit int) iter.Seq2[journal.Record, error] {
	return func(yield func(journal.Record, error) bool) {
		if err := j.check(ctx); err != nil {
			yield(journal.Record{}, err)
			return
		}
		fault := j.faults.beforeRead()
		next, remaining := max(from, 1), limit
		for remaining > 0 && next <= to {
			chunk, err := j.readStream(ctx, streamName, next, to, min(remaining, readChunk))
			if err != nil {
				yield(journal.Record{}, err)
				return
			}
			if len(chunk) == 0 {
				break
			}
			if !emit(chunk, &fault, yield) {
				return
			}
			remaining -= len(chunk)
			last := chunk[len(chunk)-1].version
			if last >= to {
				break
			}
			next = last + 1
		}
		fault.atEnd(yield)
	}
}

// emit decodes and yields chunk, applying an injected read fault. It
// reports whether the iteration goes on.
func emit(chunk []record, fault *readFault, yield func(journal.Record, error) bool) bool {
	for _, r := range chunk {
		if fault.due() {
			yield(journal.Record{}, fault.err)
			return false
		}
		rec, err := decode(r)
		if err != nil {
			yield(journal.Record{}, err)
			return false
		}
		if !yield(rec, nil) {
			return false
		}
	}
	return true
}

// readStream copies out, under the read lock, up to n live records of
// stream with from <= version <= to.
func (j *Journal) readStream(ctx context.Context, name string, from, to uint64, n int) ([]record, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("journal/mem: read %q: %w", name, err)
	}
	j.mu.RLock()
	defer j.mu.RUnlock()
	if j.closed {
		return nil, orchestrix.ErrClosed
	}
	s := j.streams[name]
	if s == nil {
		return nil, nil
	}
	from = max(from, s.deletedTo+1)
	to = min(to, s.head())
	var out []record
	for v := from; v <= to && len(out) < n; v++ {
		out = append(out, *s.records[v-1])
	}
	return out, nil
}

// ReadAll implements journal.Journal. Like Read, it holds the lock only
// while copying out a chunk; a commit is added to the log whole under the
// write lock, so a record never appears below one already returned.
func (j *Journal) ReadAll(ctx context.Context, from uint64, limit int) iter.Seq2[journal.Record, error] {
	return func(yield func(journal.Record, error) bool) {
		if err := j.check(ctx); err != nil {
			yield(journal.Record{}, err)
			return
		}
		fault := j.faults.beforeRead()
		next, remaining := max(from, 1), limit
		for remaining > 0 {
			chunk, scanned, err := j.readLog(ctx, next, min(remaining, readChunk))
			if err != nil {
				yield(journal.Record{}, err)
				return
			}
			if !emit(chunk, &fault, yield) {
				return
			}
			if scanned == next {
				break // the end of the log
			}
			remaining -= len(chunk)
			next = scanned
		}
		fault.atEnd(yield)
	}
}

// readLog copies out, under the read lock, up to n live records with
// position >= from, and returns the position to continue from.
func (j *Journal) readLog(ctx context.Context, from uint64, n int) ([]record, uint64, error) {
	if err := ctx.Err(); err != nil {
		return nil, from, fmt.Errorf("journal/mem: read all: %w", err)
	}
	j.mu.RLock()
	defer j.mu.RUnlock()
	if j.closed {
		return nil, from, orchestrix.ErrClosed
	}
	var out []record
	p := from
	for ; p <= uint64(len(j.log)) && len(out) < n; p++ {
		if r := j.log[p-1]; r.data != nil {
			out = append(out, *r)
		}
	}
	return out, p, nil
}

// check returns the error a call must report for ctx and the journal's
// state, or nil.
func (j *Journal) check(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("journal/mem: %w", err)
	}
	j.mu.RLock()
	defer j.mu.RUnlock()
	if j.closed {
		return orchestrix.ErrClosed
	}
	return nil
}

// decode verifies a record's checksum and decodes its envelope.
func decode(r record) (journal.Record, error) {
	corrupt := func(err error) (journal.Record, error) {
		return journal.Record{}, &journal.CorruptionError{Stream: r.stream, Version: r.version, Position: r.position, Err: err}
	}
	if len(r.data) < 4 {
		return corrupt(errors.New("record shorter than its checksum"))
	}
	body, sum := r.data[:len(r.data)-4], binary.BigEndian.Uint32(r.data[len(r.data)-4:])
	if got := crc32.Checksum(body, castagnoli); got != sum {
		return corrupt(fmt.Errorf("checksum mismatch: stored %08x, computed %08x", sum, got))
	}
	var env orchestrix.Envelope
	if err := env.UnmarshalBinary(body); err != nil {
		return corrupt(err)
	}
	if env.Sequence != r.version {
		return corrupt(fmt.Errorf("envelope sequence %d at version %d", env.Sequence, r.version))
	}
	return journal.Record{Position: r.position, Stream: r.stream, Version: r.version, Envelope: env}, nil
}

// Head implements journal.Journal.
func (j *Journal) Head(ctx context.Context, streamName string) (uint64, error) {
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("journal/mem: head %q: %w", streamName, err)
	}
	j.mu.RLock()
	defer j.mu.RUnlock()
	if j.closed {
		return 0, orchestrix.ErrClosed
	}
	if s := j.streams[streamName]; s != nil {
		return s.head(), nil
	}
	return 0, nil
}

// DeleteTo implements journal.Deleter. Deleted records leave a tombstone
// (stream, version, position and event id) so that versions are never
// reused and retries of deleted events are still recognised.
func (j *Journal) DeleteTo(ctx context.Context, streamName string, to uint64) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("journal/mem: delete %q: %w", streamName, err)
	}
	if err := journal.ValidateStream(streamName); err != nil {
		return fmt.Errorf("journal/mem: %w", err)
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.closed {
		return orchestrix.ErrClosed
	}
	s := j.streams[streamName]
	if s == nil {
		return nil
	}
	to = min(to, s.head())
	for v := s.deletedTo + 1; v <= to; v++ {
		s.records[v-1].data = nil
	}
	s.deletedTo = max(s.deletedTo, to)
	return nil
}

// LastPosition implements journal.Watcher.
func (j *Journal) LastPosition(ctx context.Context) (uint64, error) {
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("journal/mem: last position: %w", err)
	}
	j.mu.RLock()
	defer j.mu.RUnlock()
	if j.closed {
		return 0, orchestrix.ErrClosed
	}
	return uint64(len(j.log)), nil
}

// WaitFor implements journal.Watcher.
func (j *Journal) WaitFor(ctx context.Context, after uint64) (uint64, error) {
	for {
		if err := ctx.Err(); err != nil {
			return 0, fmt.Errorf("journal/mem: wait: %w", err)
		}
		j.mu.RLock()
		closed, last, commit := j.closed, uint64(len(j.log)), j.commit
		j.mu.RUnlock()
		if closed {
			return 0, orchestrix.ErrClosed
		}
		if last > after {
			return last, nil
		}
		select {
		case <-ctx.Done():
		case <-commit:
		}
	}
}

// Close implements journal.Journal. Appends run under the journal's lock,
// so Close returns after any append in progress. Close is idempotent.
func (j *Journal) Close() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if !j.closed {
		j.closed = true
		j.notify()
	}
	return nil
}

// CorruptRecord damages the stored bytes of stream's event at version, as
// a failing disk would, so that reading it fails with an error matching
// orchestrix.ErrCorrupt. It is meant for tests and returns an error
// matching orchestrix.ErrNotFound when there is no such live record, and
// orchestrix.ErrClosed after Close.
func (j *Journal) CorruptRecord(streamName string, version uint64) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.closed {
		return orchestrix.ErrClosed
	}
	s := j.streams[streamName]
	if s == nil || version == 0 || version > s.head() || s.records[version-1].data == nil {
		return fmt.Errorf("corrupt %q version %d: %w", streamName, version, ErrNoRecord)
	}
	r := s.records[version-1]
	// Replace rather than modify, so readers holding the old slice are
	// unaffected.
	damaged := append([]byte(nil), r.data...)
	damaged[len(damaged)/2] ^= 0xff
	r.data = damaged
	return nil
}
