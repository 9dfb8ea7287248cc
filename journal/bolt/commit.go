package bolt

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"slices"
	"time"

	bbolt "go.etcd.io/bbolt"
	"go.opentelemetry.io/otel/trace"

	"github.com/orchestrix/orchestrix"
	"github.com/orchestrix/orchestrix/internal/telemetryhooks"
	"github.com/orchestrix/orchestrix/journal"
	"github.com/orchestrix/orchestrix/telemetry"
)

// runBatch checks, writes and commits one batch of appends.
func (j *Journal) runBatch(batch []*request) {
	live := batch[:0:0]
	events := 0
	for _, r := range batch {
		if !claim(r) {
			continue
		}
		if err := r.ctx.Err(); err != nil {
			r.err = err
			complete(r)
			continue
		}
		if j.w.broken != nil {
			r.err = fmt.Errorf("journal/bolt: journal unusable after a failed commit: %w", j.w.broken)
			complete(r)
			continue
		}
		live = append(live, r)
		events += len(r.events)
	}
	if len(live) == 0 {
		return
	}
	finish := func(int, error) {}
	if j.tracer != nil || j.opts.Metrics != nil {
		finish = j.observeCommit(live, events, time.Now())
	}
	// The previous transaction has ended: its values may be overwritten.
	j.w.vals.reset()
	begin := time.Now()
	tx, err := j.db.Begin(true)
	if err != nil {
		finish(0, err)
		for _, r := range live {
			r.err = fmt.Errorf("journal/bolt: append to %q: begin transaction: %w", r.stream, err)
			complete(r)
		}
		return
	}
	logB := tx.Bucket(bucketLog)
	logB.FillPercent = 1.0
	w := &j.w
	w.batchStart = w.nextPos
	w.data, w.ends = w.data[:0], w.ends[:0]
	defer j.resetBlock()
	accepted, stored := 0, 0
	var fatal error
	for _, r := range live {
		n := j.apply(tx, logB, r)
		if r.ok {
			accepted++
			stored += n
		}
	}
	if stored > 0 {
		fatal = j.putBlocks(logB)
	}
	checkpointed := false
	if fatal == nil && stored > 0 {
		checkpointed, fatal = j.advanceCheckpoint(tx, stored)
	}
	if fatal == nil && accepted > 0 {
		fatal = j.hooks.check()
	}
	built := time.Now()
	j.buildNs.Add(int64(built.Sub(begin)))
	switch {
	case fatal != nil:
		_ = tx.Rollback()
		finish(0, fatal)
		j.commitFailed(live, fatal)
		return
	case stored == 0:
		// Only rejections and duplicates: nothing to make durable.
		_ = tx.Rollback()
	default:
		if err := tx.Commit(); err != nil {
			finish(0, err)
			j.commitFailed(live, err)
			return
		}
	}
	committed := time.Now()
	j.commitNs.Add(int64(committed.Sub(built)))
	finish(stored, nil)
	if fn := j.hooks.beforePublish.Load(); fn != nil {
		(*fn)()
	}
	j.publish()
	j.evict()
	if stored > 0 {
		j.commits.Add(1)
		j.committedEvents.Add(uint64(stored))
		if checkpointed {
			j.checkpoints.Add(1)
		}
	}
	completeAll(live)
	j.answerNs.Add(int64(time.Since(committed)))
}

// maxCommitLinks bounds the links of one commit span.
const maxCommitLinks = 128

// observeCommit starts the commit span of a batch of events events from
// live (reading the requests' traceparents now, while they are live) and
// returns the function that ends it and records the metrics of the stored
// events; call it before the requests are completed.
func (j *Journal) observeCommit(live []*request, events int, start time.Time) func(stored int, err error) {
	var span trace.Span
	if j.tracer != nil {
		links := make([]trace.Link, 0, min(len(live), maxCommitLinks))
		for _, r := range live {
			if len(links) == maxCommitLinks {
				break
			}
			if l, ok := telemetry.LinkFromTraceParent(r.tp); ok {
				links = append(links, l)
			}
		}
		_, span = telemetryhooks.StartCommitSpan(context.Background(), j.tracer, events, links...)
	}
	return func(stored int, err error) {
		if err == nil && stored > 0 {
			telemetryhooks.MetricsOf(j.opts.Metrics).ObserveCommit(stored, time.Since(start))
		}
		if span != nil {
			telemetryhooks.EndSpan(span, err)
		}
	}
}

// completeAll reports the outcome of a committed batch.
func completeAll(live []*request) {
	for _, r := range live {
		complete(r)
	}
}

// commitFailed reports every accepted request of a failed batch as
// outcome unknown, rejections as they were, and reloads the in-memory
// state from the file.
func (j *Journal) commitFailed(live []*request, cause error) {
	j.log.Error("journal/bolt: commit failed; reloading state from the file", "error", cause, "appends", len(live))
	for _, r := range live {
		if r.ok || r.err == nil {
			r.res = journal.AppendResult{}
			r.err = fmt.Errorf("journal/bolt: append to %q: commit failed: %w: %w", r.stream, orchestrix.ErrOutcomeUnknown, cause)
		}
	}
	j.reload()
	for _, r := range live {
		complete(r)
	}
}

// reload rebuilds the in-memory state after a failed commit.
func (j *Journal) reload() {
	if err := j.load(); err != nil {
		j.log.Error("journal/bolt: reloading state failed; refusing further appends", "error", err)
		j.w.broken = err
	}
}

// putBlocks writes the records of the batch into journal.log as blocks of
// at most j.blockSize bytes (a block holds at least one record). Blocks of
// half a page let bbolt fill each leaf page with two of them, so a commit
// rewrites at most one partly filled page besides its own.
func (j *Journal) putBlocks(logB *bbolt.Bucket) error {
	w := &j.w
	// Reserve enough for every block so that slices handed to Put stay
	// valid until the commit: data plus at most 8 header bytes per record.
	need := len(w.data) + 8*len(w.ends)
	if cap(w.block) < need {
		w.block = make([]byte, 0, need)
	}
	buf := w.block[:0]
	for i := 0; i < len(w.ends); {
		base := uint32(0)
		if i > 0 {
			base = w.ends[i-1]
		}
		k := i + 1
		for k < len(w.ends) && int(w.ends[k]-base)+blockHeader+4*(k-i+1) <= j.blockSize {
			k++
		}
		start := len(buf)
		buf = binary.BigEndian.AppendUint32(buf, uint32(k-i))
		for _, e := range w.ends[i:k] {
			buf = binary.BigEndian.AppendUint32(buf, e-base)
		}
		buf = append(buf, w.data[base:w.ends[k-1]]...)
		if err := logB.Put(posKey(w.batchStart+uint64(i)), buf[start:len(buf):len(buf)]); err != nil {
			return fmt.Errorf("put commit block: %w", err)
		}
		i = k
	}
	w.block = buf
	return nil
}

// resetBlock drops the commit block buffers when a large batch grew them.
func (j *Journal) resetBlock() {
	const keep = 4 << 20
	w := &j.w
	if cap(w.data) > keep || cap(w.block) > keep {
		w.data, w.block, w.ends = nil, nil, nil
	}
}

// writerFrame returns the frame at pos as the writer sees it: from the
// block being built for positions of the current batch, else from the log.
func (j *Journal) writerFrame(logB *bbolt.Bucket, pos uint64) ([]byte, error) {
	w := &j.w
	if pos >= w.batchStart && pos < w.nextPos {
		i := pos - w.batchStart
		start := uint32(0)
		if i > 0 {
			start = w.ends[i-1]
		}
		return w.data[start:w.ends[i]], nil
	}
	return frameAt(logB.Cursor(), pos)
}

// apply checks r against the writer's view and, when accepted, adds its
// records to the commit block. It returns the number of events added.
func (j *Journal) apply(tx *bbolt.Tx, logB *bbolt.Bucket, r *request) int {
	st, err := j.stream(tx, r.stream)
	if err != nil {
		r.err = fmt.Errorf("journal/bolt: append to %q: %w", r.stream, err)
		return 0
	}
	head := st.wHead
	n := uint64(len(r.events))
	e := r.expected
	switch {
	case e.IsAny() || e.IsStreamExists():
		if e.IsStreamExists() && head == 0 {
			r.err = &journal.VersionConflictError{Stream: r.stream, Expected: e, Actual: head}
			return 0
		}
		if version, ok := j.recentVersion(tx, logB, st, r.events[0].key); ok {
			switch j.compareStored(tx, logB, r, st, version) {
			case matchAll, matchPartial, matchError:
				return 0
			}
			// A hash collision: the first id is not there. Store as new.
		}
	default:
		x, _ := e.Exact()
		if x != head {
			if x > head || x < st.deletedTo {
				r.err = &journal.VersionConflictError{Stream: r.stream, Expected: e, Actual: head}
				return 0
			}
			if j.compareStored(tx, logB, r, st, x+1) == matchNone {
				r.err = &journal.VersionConflictError{Stream: r.stream, Expected: e, Actual: head}
			}
			return 0
		}
	}

	first := head + 1
	pos := j.w.nextPos
	w := &j.w
	for i := range r.events {
		ev := &r.events[i]
		w.data = appendFrame(w.data, first+uint64(i), r.stream, ev.body, ev.crc)
		w.ends = append(w.ends, uint32(len(w.data)))
	}
	j.w.nextPos += n
	st.wHead += n
	st.staged = appendRun(st.staged, run{version: first, pos: pos, n: n})
	if !st.touched {
		st.touched = true
		j.w.touched = append(j.w.touched, st)
	}
	if !st.dirty && !st.inRound {
		st.dirty = true
		j.w.dirty = append(j.w.dirty, st)
	}
	if st.recent != nil {
		for i := range r.events {
			st.remember(first+uint64(i), r.events[i].key)
		}
	}
	r.res = journal.AppendResult{FirstVersion: first, LastVersion: first + n - 1, FirstPosition: pos, LastPosition: pos + n - 1}
	r.ok = true
	return int(n)
}

// Checkpoint pacing: a round spreads its streams over the commits that
// store the next IndexEvery/checkpointSpreadDiv events, and flushes at
// least minFlushPerCommit of them per commit.
const (
	checkpointSpreadDiv = 2
	minFlushPerCommit   = 16
)

// advanceCheckpoint does this batch's share of the index checkpoint in tx
// (stored is the batch's event count) and reports whether it completed a
// round, moving the checkpoint position.
//
// A checkpoint used to be one commit writing the index entries and heads
// of every stream written since the last one (up to tens of thousands of
// B+tree puts), and every append of that batch waited for it: it set the
// p99 latency under load (BENCHMARKS.md, issue 12). Now, once the log
// holds IndexEvery positions past the checkpoint, a round begins: it
// takes the streams with unindexed records, sorts them in index key
// order (consecutive slices then touch neighbouring pages) and flushes a
// slice of them with each commit, paced so that the round ends within
// the next IndexEvery/2 stored events. Flushing a stream writes all its
// runs not yet indexed, the current batch's included, and its head, in
// the batch's transaction: journal.streams's head of a stream is how far
// journal.index covers it, so Open skips the records at or below it. The
// commit that flushes the round's last stream also moves the checkpoint
// to the last position of the commit that began the round: every record
// up to there belonged to a stream of the round (streams written only
// later have nothing unindexed before it), so every one is indexed.
func (j *Journal) advanceCheckpoint(tx *bbolt.Tx, stored int) (bool, error) {
	w := &j.w
	if !w.roundActive {
		if w.nextPos-1-w.checkpoint < uint64(j.opts.IndexEvery) {
			return false, nil
		}
		j.beginRound()
	} else {
		w.roundEvents += stored
	}
	span := max(j.opts.IndexEvery/checkpointSpreadDiv, 1)
	n := len(w.round)
	target := n
	if w.roundEvents < span {
		target = int((uint64(n)*uint64(w.roundEvents) + uint64(span) - 1) / uint64(span))
	}
	target = min(max(target, w.roundNext+minFlushPerCommit), n)
	idx, strB := tx.Bucket(bucketIndex), tx.Bucket(bucketStreams)
	for ; w.roundNext < target; w.roundNext++ {
		st := w.round[w.roundNext]
		st.inRound = false
		if err := j.flushStream(idx, strB, st); err != nil {
			return false, err
		}
	}
	if w.roundNext < n {
		return false, nil
	}
	if err := putCheckpoint(tx, w.roundEnd); err != nil {
		return false, err
	}
	w.checkpoint = w.roundEnd
	clear(w.round)
	w.round, w.roundNext, w.roundActive = w.round[:0], 0, false
	return true, nil
}

// beginRound starts a checkpoint round with the dirty streams; the
// current batch's positions are part of it.
func (j *Journal) beginRound() {
	w := &j.w
	w.round = append(w.round[:0], w.dirty...)
	for _, st := range w.round {
		st.dirty = false
		st.inRound = true
	}
	clear(w.dirty)
	w.dirty = w.dirty[:0]
	slices.SortFunc(w.round, func(a, b *streamState) int { return bytes.Compare(a.prefix, b.prefix) })
	w.roundNext, w.roundEnd, w.roundEvents, w.roundActive = 0, w.nextPos-1, 0, true
}

// flushStream writes st's runs not yet in journal.index (the published
// ones and the current batch's) as index entries, and its head, in the
// transaction of idx and strB. publish then drops its pending runs.
//
// Its keys and values cost no allocation: keys are built in a scratch
// buffer (bbolt copies a key on Put) and values are carved from
// j.w.vals, which is reset only before the next transaction begins
// (bbolt refers to a value until the transaction ends).
func (j *Journal) flushStream(idx, strB *bbolt.Bucket, st *streamState) error {
	runs := append(append(j.w.runs[:0], st.pending...), st.staged...)
	j.w.runs = runs[:0]
	a := &j.w.vals
	for len(runs) > 0 {
		chunk := runs[:min(len(runs), maxRunsPerEntry)]
		a.key = binary.BigEndian.AppendUint64(append(a.key[:0], st.prefix...), chunk[0].version)
		if err := idx.Put(a.key, a.entry(chunk)); err != nil {
			return fmt.Errorf("write index entry: %w", err)
		}
		runs = runs[len(chunk):]
	}
	v := a.take(16)
	binary.BigEndian.PutUint64(v[0:8], st.wHead)
	binary.BigEndian.PutUint64(v[8:16], st.deletedTo)
	a.key = append(a.key[:0], st.name...)
	if err := strB.Put(a.key, v); err != nil {
		return fmt.Errorf("write stream head: %w", err)
	}
	if !st.flushed {
		st.flushed = true
		j.w.flushed = append(j.w.flushed, st)
	}
	return nil
}

// flushAll flushes every stream with unindexed records and moves the
// checkpoint to the last position, in tx: the whole checkpoint in one
// commit, for Close and the format upgrade.
func (j *Journal) flushAll(tx *bbolt.Tx) error {
	w := &j.w
	w.vals.reset() // tx has just begun: no transaction refers to the arena
	idx, strB := tx.Bucket(bucketIndex), tx.Bucket(bucketStreams)
	for _, list := range [][]*streamState{w.round[w.roundNext:], w.dirty} {
		for _, st := range list {
			if err := j.flushStream(idx, strB, st); err != nil {
				return err
			}
		}
	}
	return putCheckpoint(tx, w.nextPos-1)
}

// valueArena holds the values a transaction puts into journal.index and
// journal.streams while flushing streams (flushStream). bbolt copies a
// key on Put but keeps referring to the value until the transaction
// ends, so values are carved from a chunk whose memory is reused only
// after reset, which the writer calls before it begins the next
// transaction that flushes. Chunks replaced while a transaction is open
// are left to the garbage collector. Writer-only.
type valueArena struct {
	chunk []byte
	key   []byte // scratch for keys
}

// arenaChunk is the size of a fresh chunk: a commit of a checkpoint
// round flushes a few hundred streams, some 30 bytes of values each.
const arenaChunk = 32 << 10

// room makes sure the current chunk has n bytes free.
func (a *valueArena) room(n int) {
	if cap(a.chunk)-len(a.chunk) < n {
		a.chunk = make([]byte, 0, max(n, arenaChunk))
	}
}

// take returns n bytes of the arena.
func (a *valueArena) take(n int) []byte {
	a.room(n)
	l := len(a.chunk)
	a.chunk = a.chunk[:l+n]
	return a.chunk[l : l+n : l+n]
}

// entry returns runs encoded as a journal.index value (encodeEntry's
// encoding) in the arena.
func (a *valueArena) entry(runs []run) []byte {
	a.room(2 * binary.MaxVarintLen64 * len(runs))
	l := len(a.chunk)
	b := a.chunk
	for _, r := range runs {
		b = binary.AppendUvarint(b, r.pos)
		b = binary.AppendUvarint(b, r.n)
	}
	a.chunk = b // within capacity: still the same chunk
	return b[l:len(b):len(b)]
}

// reset makes the arena's memory reusable; call it only when no open
// transaction has put values from it.
func (a *valueArena) reset() { a.chunk = a.chunk[:0] }

// putRuns writes runs (in version order, not yet indexed) as journal.index
// entries under prefix, at most maxRunsPerEntry runs per entry.
func putRuns(idx *bbolt.Bucket, prefix []byte, runs []run) error {
	for len(runs) > 0 {
		chunk := runs[:min(len(runs), maxRunsPerEntry)]
		if err := idx.Put(indexKey(prefix, chunk[0].version), encodeEntry(chunk)); err != nil {
			return fmt.Errorf("write index entry: %w", err)
		}
		runs = runs[len(chunk):]
	}
	return nil
}

func putCheckpoint(tx *bbolt.Tx, pos uint64) error {
	if err := tx.Bucket(bucketMeta).Put(metaCheckpoint, binary.BigEndian.AppendUint64(nil, pos)); err != nil {
		return fmt.Errorf("write checkpoint: %w", err)
	}
	return nil
}

func putStream(b *bbolt.Bucket, name string, head, deletedTo uint64) error {
	v := make([]byte, 16)
	binary.BigEndian.PutUint64(v[0:8], head)
	binary.BigEndian.PutUint64(v[8:16], deletedTo)
	if err := b.Put([]byte(name), v); err != nil {
		return fmt.Errorf("write stream head: %w", err)
	}
	return nil
}

// pendingCap is the capacity of a stream's pending runs when its first
// run after a flush is published.
const pendingCap = 4

// publish makes a committed batch visible to readers and wakes watchers.
func (j *Journal) publish() {
	w := &j.w
	j.mu.Lock()
	for _, st := range w.flushed {
		st.pending = nil
	}
	for _, st := range w.touched {
		st.head = st.wHead
		if !st.flushed {
			if st.pending == nil && len(st.staged) < pendingCap {
				// A stream appended to once per commit gets a run
				// per commit: start with room for a few.
				st.pending = make([]run, 0, pendingCap)
			}
			st.pending = append(st.pending, st.staged...)
		}
	}
	j.lastPos = w.nextPos - 1
	close(j.notify)
	j.notify = make(chan struct{})
	j.mu.Unlock()
	for _, st := range w.touched {
		st.staged = st.staged[:0]
		st.touched = false
	}
	w.touched = w.touched[:0]
	for _, st := range w.flushed {
		st.flushed = false
	}
	clear(w.flushed)
	w.flushed = w.flushed[:0]
}

// finalCheckpoint writes the whole index on Close so that the next Open
// has no log tail to scan.
func (j *Journal) finalCheckpoint() {
	w := &j.w
	if w.broken != nil || (len(w.dirty) == 0 && w.roundNext == len(w.round) && w.checkpoint == w.nextPos-1) {
		return
	}
	err := j.db.Update(j.flushAll)
	if err != nil {
		// Not fatal: Open rebuilds the index from the log.
		j.log.Warn("journal/bolt: final checkpoint failed", "error", err)
	}
}

// check runs the beforeCommit hook, if any.
func (h *hooks) check() error {
	if fn := h.beforeCommit.Load(); fn != nil {
		return (*fn)()
	}
	return nil
}
