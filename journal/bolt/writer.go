package bolt

import (
	"context"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	bbolt "go.etcd.io/bbolt"
	"go.opentelemetry.io/otel/trace"

	"github.com/orchestrix/orchestrix"
	"github.com/orchestrix/orchestrix/journal"
	"github.com/orchestrix/orchestrix/telemetry"
)

type reqKind uint8

const (
	kindAppend reqKind = iota
	kindDelete
)

// Request states: the caller and the writer race to move a queued request
// out of stateQueued; whoever wins decides whether it is stored.
const (
	stateQueued int32 = iota
	stateTaken
	stateCancelled
)

// request is one append or deletion waiting for, or handled by, the writer.
type request struct {
	kind     reqKind
	ctx      context.Context
	stream   string
	expected journal.ExpectedVersion
	deleteTo uint64

	events []event
	bytes  int // approximate size of the frames

	one  [1]event // storage of events for the common single-event append
	tp   string   // traceparent of the first event, linked from the commit span
	data []byte   // the encoded bodies

	state atomic.Int32
	done  chan struct{}                     // closed when complete (synchronous callers)
	cb    func(journal.AppendResult, error) // called when complete instead (AppendAsync)
	res   journal.AppendResult
	err   error

	// Writer-only: ok is set when the request was accepted (stored or
	// recognised as a duplicate) and so depends on the commit.
	ok bool
}

// event is one encoded event of an append.
type event struct {
	body []byte // Envelope.MarshalBinary output
	crc  uint32 // CRC-32C of body
	key  uint64 // idKey of the event id
	id   string
}

// writerState is owned by the writer goroutine.
type writerState struct {
	nextPos       uint64
	dirty         []*streamState // streams with runs not yet in journal.index
	pendingEvents int
	touched       []*streamState // streams changed by the current batch
	broken        error          // set when reloading after a failed commit failed

	// The commit block being built: frames of positions batchStart… in
	// data, with their end offsets. Reused from batch to batch.
	batchStart uint64
	data       []byte
	ends       []uint32
	block      []byte
}

func checkStream(stream string) error {
	if stream == "" || len(stream) > maxStreamLen {
		return fmt.Errorf("%w: length %d (must be 1 to %d bytes)", ErrInvalidStream, len(stream), maxStreamLen)
	}
	return nil
}

// Append stores events at the end of stream if it is at the expected
// version, and returns once they are durable (see the package
// documentation for batching, idempotency and cancellation). Invalid
// envelopes fail with an error matching orchestrix.ErrInvalidEnvelope,
// events above Config.MaxEventSize, and appends whose events together
// exceed Config.MaxBatchBytes, with orchestrix.ErrTooLarge; all are
// detected before anything is queued.
func (j *Journal) Append(ctx context.Context, stream string, expected journal.ExpectedVersion, events []orchestrix.Envelope) (journal.AppendResult, error) {
	r, _ := requests.Get().(*request)
	if r == nil {
		r = &request{}
	}
	if err := j.prepare(r, ctx, stream, expected, events); err != nil {
		recycle(r)
		return journal.AppendResult{}, err
	}
	r.done = make(chan struct{})
	res, completed, err := j.submit(ctx, r)
	if completed {
		// The writer is done with r: it closed r.done last.
		recycle(r)
	}
	return res, err
}

// AppendAsync is Append without waiting for the commit: it checks and
// encodes the events like Append and queues them. When it returns an
// error (the checks of Append, or a closed journal) nothing was queued
// and done is never called. Otherwise done is called exactly once with
// the outcome Append would have returned, after the commit (or the
// failure), on the journal's writer goroutine: it must be quick,
// must not panic, and must not block; it may queue further appends with
// AppendAsync but must not wait for them. A ctx that ends while the append
// is still queued fails it with ctx's error when the writer reaches it
// (Append would withdraw it at once); once taken into a commit it runs
// to completion. Close completes every queued append before it returns.
func (j *Journal) AppendAsync(ctx context.Context, stream string, expected journal.ExpectedVersion, events []orchestrix.Envelope, done func(journal.AppendResult, error)) error {
	if done == nil {
		return fmt.Errorf("journal/bolt: AppendAsync to %q: nil done function", stream)
	}
	r, _ := requests.Get().(*request)
	if r == nil {
		r = &request{}
	}
	if err := j.prepare(r, ctx, stream, expected, events); err != nil {
		recycle(r)
		return err
	}
	r.cb = done
	if err := j.enqueue(r); err != nil {
		recycle(r)
		return err
	}
	return nil
}

// requests recycles append requests, with the buffer their events were
// encoded into: nothing refers to a request of AppendAsync once its done
// function has been called, nor to one of Append once the writer has
// closed its done channel. (A request withdrawn by its caller is not
// recycled: the writer may still look at it.)
var requests sync.Pool

// maxRecycledData bounds the encoding buffer a recycled request keeps.
const maxRecycledData = 64 << 10

// recycle returns an AppendAsync request to the pool.
func recycle(r *request) {
	data := r.data[:0]
	if cap(data) > maxRecycledData {
		data = nil
	}
	clear(r.one[:])
	*r = request{data: data}
	requests.Put(r)
}

// prepare checks an append and encodes its events into r (empty, or
// recycled with only its data buffer).
func (j *Journal) prepare(r *request, ctx context.Context, stream string, expected journal.ExpectedVersion, events []orchestrix.Envelope) error {
	if err := j.checkOpen(ctx); err != nil {
		return err
	}
	if err := checkStream(stream); err != nil {
		return err
	}
	if len(events) == 0 {
		return ErrNoEvents
	}
	n := len(events)
	r.kind, r.ctx, r.stream, r.expected = kindAppend, ctx, stream, expected
	r.tp = events[0].TraceParent
	if n == 1 {
		r.events = r.one[:]
	} else {
		r.events = make([]event, n)
	}
	// The bodies are encoded back to back into r.data; a body keeps
	// pointing into an earlier array when the buffer grows.
	data := r.data[:0]
	for i := range events {
		ev := &events[i]
		if err := ev.Validate(); err != nil {
			return fmt.Errorf("journal/bolt: append to %q: event %d: %w", stream, i, err)
		}
		start := len(data)
		var err error
		data, err = encodeEvent(data, ev)
		if err != nil {
			return fmt.Errorf("journal/bolt: append to %q: event %d: %w", stream, i, err)
		}
		body := data[start:len(data):len(data)]
		if len(body) > j.opts.MaxEventSize {
			return fmt.Errorf("journal/bolt: append to %q: event %d is %d bytes encoded, above the limit of %d: %w",
				stream, i, len(body), j.opts.MaxEventSize, orchestrix.ErrTooLarge)
		}
		r.events[i] = event{body: body, crc: crc32.Checksum(body, castagnoli), key: j.idKey(ev.ID), id: ev.ID}
		r.bytes += 24 + len(stream) + len(body)
	}
	r.data = data
	if r.bytes > j.opts.MaxBatchBytes {
		return fmt.Errorf("journal/bolt: append to %q: %d events of %d bytes together, above MaxBatchBytes %d: %w",
			stream, n, r.bytes, j.opts.MaxBatchBytes, orchestrix.ErrTooLarge)
	}
	return nil
}

// encodeEvent appends the binary form of ev, without its sequence (the
// journal assigns versions), to dst.
func encodeEvent(dst []byte, ev *orchestrix.Envelope) ([]byte, error) {
	if ev.Sequence == 0 {
		return ev.AppendBinary(dst)
	}
	e := *ev
	e.Sequence = 0
	return e.AppendBinary(dst)
}

// DeleteTo deletes the events of stream with version <= to. The head is
// kept. It is serialised with appends by the writer and is durable when
// it returns.
func (j *Journal) DeleteTo(ctx context.Context, stream string, to uint64) error {
	if err := j.checkOpen(ctx); err != nil {
		return err
	}
	if err := checkStream(stream); err != nil {
		return err
	}
	r := &request{kind: kindDelete, ctx: ctx, stream: stream, deleteTo: to, done: make(chan struct{})}
	_, _, err := j.submit(ctx, r)
	return err
}

// submit queues r and waits for its outcome. A context that ends while r
// is still queued withdraws it. completed reports that the writer has
// finished with r (it was not withdrawn, nor refused by a closed journal).
func (j *Journal) submit(ctx context.Context, r *request) (res journal.AppendResult, completed bool, err error) {
	if err := j.enqueue(r); err != nil {
		return journal.AppendResult{}, false, err
	}
	cancel := ctx.Done()
	if cancel == nil {
		<-r.done
		return r.res, true, r.err
	}
	select {
	case <-r.done:
	case <-cancel:
		if r.state.CompareAndSwap(stateQueued, stateCancelled) {
			return journal.AppendResult{}, false, ctx.Err()
		}
		<-r.done
	}
	return r.res, true, r.err
}

// enqueue adds r to the writer's queue.
func (j *Journal) enqueue(r *request) error {
	j.qmu.Lock()
	if j.qclosed {
		j.qmu.Unlock()
		return orchestrix.ErrClosed
	}
	wasEmpty := len(j.queue) == 0
	j.queue = append(j.queue, r)
	j.qmu.Unlock()
	if wasEmpty {
		j.signal()
	}
	return nil
}

// complete reports r's outcome to its caller.
func complete(r *request) {
	if cb := r.cb; cb != nil {
		res, err := r.res, r.err
		recycle(r)
		cb(res, err)
		return
	}
	close(r.done)
}

func (j *Journal) signal() {
	select {
	case j.wake <- struct{}{}:
	default:
	}
}

// writer is the single goroutine that commits.
func (j *Journal) writer() {
	defer close(j.writerDone)
	var batch []*request
	for {
		batch = j.take(batch[:0])
		if len(batch) == 0 {
			j.finalCheckpoint()
			return
		}
		if batch[0].kind == kindDelete {
			j.runDelete(batch[0])
		} else {
			j.runBatch(batch)
			if len(batch) > 1 {
				j.settle()
			}
		}
		clear(batch)
	}
}

// settle runs after a batch of several appends has been acknowledged. It
// yields the processor for as long as the queue keeps growing, so that
// the callers just woken can queue their next appends before the next
// batch is taken: under load the callers then share one commit instead of
// splitting into two halves that alternate, each waiting a whole commit
// idle. It uses no timer, so an idle journal is never delayed: the loop
// ends at the first yield after which nothing new was queued.
func (j *Journal) settle() {
	const maxYields = 64
	j.qmu.Lock()
	prev := len(j.queue)
	j.qmu.Unlock()
	for range maxYields {
		runtime.Gosched()
		j.qmu.Lock()
		n := len(j.queue)
		j.qmu.Unlock()
		if n == prev || n >= j.opts.MaxBatchEvents {
			return
		}
		prev = n
	}
}

// take waits for queued requests and moves a prefix of the queue into dst:
// appends up to the batch caps (at least one), or a single deletion. It
// returns an empty slice once the journal is closed and the queue drained.
func (j *Journal) take(dst []*request) []*request {
	j.qmu.Lock()
	for len(j.queue) == 0 {
		if j.qclosed {
			j.qmu.Unlock()
			return dst
		}
		j.qmu.Unlock()
		<-j.wake
		j.qmu.Lock()
	}
	events, size, n := 0, 0, 0
	for n < len(j.queue) {
		r := j.queue[n]
		if r.kind == kindDelete {
			if n == 0 {
				n = 1
			}
			break
		}
		if n > 0 && (events+len(r.events) > j.opts.MaxBatchEvents || size+r.bytes > j.opts.MaxBatchBytes) {
			break
		}
		events += len(r.events)
		size += r.bytes
		n++
	}
	dst = append(dst, j.queue[:n]...)
	rest := copy(j.queue, j.queue[n:])
	clear(j.queue[rest:])
	j.queue = j.queue[:rest]
	j.qmu.Unlock()
	return dst
}

// claim moves r from queued to taken. It returns false when the caller
// withdrew r; r must then be ignored.
func claim(r *request) bool {
	return r.state.CompareAndSwap(stateQueued, stateTaken)
}

// stream returns the writer's state of stream, creating (and publishing,
// with head 0) a new one when needed. Only the writer mutates j.streams,
// so it reads the map without the lock.
func (j *Journal) stream(name string) *streamState {
	if st := j.streams[name]; st != nil {
		return st
	}
	st := newStreamState(name)
	j.mu.Lock()
	j.streams[name] = st
	j.mu.Unlock()
	return st
}

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
	if fatal == nil && stored > 0 && j.w.pendingEvents >= j.opts.IndexEvery {
		fatal = j.checkpoint(tx)
		checkpointed = fatal == nil
	}
	if fatal == nil && accepted > 0 {
		fatal = j.hooks.check()
	}
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
	finish(stored, nil)
	if fn := j.hooks.beforePublish.Load(); fn != nil {
		(*fn)()
	}
	j.publish(checkpointed)
	if stored > 0 {
		j.commits.Add(1)
		j.committedEvents.Add(uint64(stored))
		if checkpointed {
			j.checkpoints.Add(1)
		}
	}
	completeAll(live)
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
		_, span = telemetry.StartCommitSpan(context.Background(), j.tracer, events, links...)
	}
	return func(stored int, err error) {
		if err == nil && stored > 0 {
			j.opts.Metrics.ObserveCommit(stored, time.Since(start))
		}
		if span != nil {
			telemetry.EndSpan(span, err)
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
	st := j.stream(r.stream)
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
	if !st.dirty {
		st.dirty = true
		j.w.dirty = append(j.w.dirty, st)
	}
	j.w.pendingEvents += int(n)
	if st.recent != nil {
		for i := range r.events {
			st.remember(first+uint64(i), r.events[i].key)
		}
	}
	r.res = journal.AppendResult{FirstVersion: first, LastVersion: first + n - 1, FirstPosition: pos, LastPosition: pos + n - 1}
	r.ok = true
	return int(n)
}

type matchResult uint8

const (
	matchNone    matchResult = iota // the first id differs: not a retry
	matchAll                        // a duplicate: r.res is set
	matchPartial                    // only a prefix matches: r.err is a conflict
	matchError                      // a stored record could not be read: r.err says why
)

// compareStored compares r's event ids with the stored events of st from
// version from on (KurrentDB's idempotency rule) and sets r's outcome for
// every result but matchNone.
func (j *Journal) compareStored(tx *bbolt.Tx, logB *bbolt.Bucket, r *request, st *streamState, from uint64) matchResult {
	n := uint64(len(r.events))
	to := min(from+n-1, st.wHead)
	matched := uint64(0)
	var firstPos, lastPos uint64
	var readErr error
	err := scanPositions(tx, st, st.pending, st.staged, from, to, func(version, pos uint64) bool {
		if version != from+matched {
			return false // a hole: cannot match beyond it
		}
		v, err := j.writerFrame(logB, pos)
		if err == nil && v == nil {
			err = &journal.CorruptionError{Stream: st.name, Version: version, Position: pos, Err: errMissing}
		}
		if err != nil {
			readErr = err
			return false
		}
		id, err := decodeID(pos, v)
		if err != nil {
			readErr = err
			return false
		}
		if id != r.events[matched].id {
			return false
		}
		if matched == 0 {
			firstPos = pos
		}
		lastPos = pos
		matched++
		return true
	})
	if err == nil {
		err = readErr
	}
	switch {
	case err != nil:
		r.err = fmt.Errorf("journal/bolt: append to %q: checking event ids: %w", r.stream, err)
		return matchError
	case matched == n:
		r.res = journal.AppendResult{FirstVersion: from, LastVersion: from + n - 1, FirstPosition: firstPos, LastPosition: lastPos, Duplicate: true}
		r.ok = true
		return matchAll
	case matched > 0:
		r.err = &journal.VersionConflictError{Stream: r.stream, Expected: r.expected, Actual: st.wHead, Reason: "event ids partly match stored events"}
		return matchPartial
	}
	return matchNone
}

// checkpoint writes the runs and heads of every dirty stream to
// journal.index and journal.streams, and the checkpoint position, in tx.
func (j *Journal) checkpoint(tx *bbolt.Tx) error {
	idx := tx.Bucket(bucketIndex)
	strB := tx.Bucket(bucketStreams)
	var runs []run
	for _, st := range j.w.dirty {
		runs = append(append(runs[:0], st.pending...), st.staged...)
		for len(runs) > 0 {
			chunk := runs[:min(len(runs), maxRunsPerEntry)]
			if err := idx.Put(indexKey(st.prefix, chunk[0].version), encodeEntry(chunk)); err != nil {
				return fmt.Errorf("checkpoint index: %w", err)
			}
			runs = runs[len(chunk):]
		}
		if err := putStream(strB, st.name, st.wHead, st.deletedTo); err != nil {
			return err
		}
	}
	return tx.Bucket(bucketMeta).Put(metaCheckpoint, binary.BigEndian.AppendUint64(nil, j.w.nextPos-1))
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

// publish makes a committed batch visible to readers and wakes watchers.
func (j *Journal) publish(checkpointed bool) {
	w := &j.w
	j.mu.Lock()
	if checkpointed {
		for _, st := range w.dirty {
			st.pending = nil
		}
	}
	for _, st := range w.touched {
		st.head = st.wHead
		if !checkpointed {
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
	if checkpointed {
		for _, st := range w.dirty {
			st.dirty = false
		}
		clear(w.dirty)
		w.dirty = w.dirty[:0]
		w.pendingEvents = 0
	}
}

// finalCheckpoint writes the index on Close so that the next Open has no
// log tail to scan.
func (j *Journal) finalCheckpoint() {
	if len(j.w.dirty) == 0 || j.w.broken != nil {
		return
	}
	err := j.db.Update(j.checkpoint)
	if err != nil {
		// Not fatal: Open rebuilds the index from the log.
		j.log.Warn("journal/bolt: final checkpoint failed", "error", err)
	}
}

// runDelete handles one DeleteTo in its own transaction.
func (j *Journal) runDelete(r *request) {
	if !claim(r) {
		return
	}
	defer complete(r)
	if err := r.ctx.Err(); err != nil {
		r.err = err
		return
	}
	if j.w.broken != nil {
		r.err = fmt.Errorf("journal/bolt: journal unusable after a failed commit: %w", j.w.broken)
		return
	}
	st := j.streams[r.stream]
	if st == nil || st.wHead == 0 {
		return
	}
	to := min(r.deleteTo, st.wHead)
	if to <= st.deletedTo {
		return
	}
	var newPending []run
	err := j.db.Update(func(tx *bbolt.Tx) error {
		logB := tx.Bucket(bucketLog)
		var positions []uint64
		if err := scanPositions(tx, st, st.pending, nil, st.deletedTo+1, to, func(_, pos uint64) bool {
			positions = append(positions, pos)
			return true
		}); err != nil {
			return err
		}
		if err := deletePositions(logB, positions); err != nil {
			return err
		}
		idx := tx.Bucket(bucketIndex)
		var gone [][]byte
		c := idx.Cursor()
		for k, v := c.Seek(indexKey(st.prefix, 0)); k != nil; k, v = c.Next() {
			first, ok := entryVersion(st.prefix, k)
			if !ok || first > to {
				break
			}
			last := first - 1
			if err := decodeEntry(first, v, func(r run) bool { last = r.last(); return true }); err != nil {
				return corruptIndex(st.name, err)
			}
			if last <= to {
				gone = append(gone, append([]byte(nil), k...))
			}
		}
		for _, k := range gone {
			if err := idx.Delete(k); err != nil {
				return err
			}
		}
		for _, p := range st.pending {
			switch {
			case p.last() <= to:
			case p.version > to:
				newPending = append(newPending, p)
			default:
				skip := to + 1 - p.version
				newPending = append(newPending, run{version: to + 1, pos: p.pos + skip, n: p.n - skip})
			}
		}
		if err := putStream(tx.Bucket(bucketStreams), st.name, st.wHead, to); err != nil {
			return err
		}
		if err := j.hooks.check(); err != nil {
			return err
		}
		return tx.Bucket(bucketMeta).Put(metaLastPos, binary.BigEndian.AppendUint64(nil, j.w.nextPos-1))
	})
	if err != nil {
		r.err = fmt.Errorf("journal/bolt: delete %q up to %d: %w: %w", r.stream, to, orchestrix.ErrOutcomeUnknown, err)
		j.log.Error("journal/bolt: delete failed; reloading state from the file", "error", err)
		j.reload()
		return
	}
	j.mu.Lock()
	st.deletedTo = to
	st.pending = newPending
	j.mu.Unlock()
}

// check runs the beforeCommit hook, if any.
func (h *hooks) check() error {
	if fn := h.beforeCommit.Load(); fn != nil {
		return (*fn)()
	}
	return nil
}

// remember records that version of st (the one after recentLast) has the
// event id whose idKey is key.
func (st *streamState) remember(version, key uint64) {
	st.recent[version%uint64(len(st.recent))] = key
	st.recentLast = version
	st.recentLen = min(st.recentLen+1, len(st.recent))
}

// recentVersion returns the version of st's newest event, among its last
// IdempotencyWindow events, whose id has idKey key. It loads the window
// from the log the first time a stream needs it. A hit is a candidate:
// compareStored confirms it against the stored ids.
func (j *Journal) recentVersion(tx *bbolt.Tx, logB *bbolt.Bucket, st *streamState, key uint64) (uint64, bool) {
	if st.wHead == 0 {
		return 0, false
	}
	if st.recent == nil {
		j.loadRecent(tx, logB, st)
	}
	w := uint64(len(st.recent))
	for i := 0; i < st.recentLen; i++ {
		v := st.recentLast - uint64(i)
		if v <= st.deletedTo {
			break
		}
		if st.recent[v%w] == key {
			return v, true
		}
	}
	return 0, false
}

// loadRecent fills st's recent-id ring from its newest stored events. A
// record that cannot be read ends the ring just after it: ids before it
// are not remembered.
func (j *Journal) loadRecent(tx *bbolt.Tx, logB *bbolt.Bucket, st *streamState) {
	w := uint64(j.opts.IdempotencyWindow)
	st.recent = make([]uint64, w)
	st.recentLast, st.recentLen = 0, 0
	from := max(st.deletedTo+1, 1)
	if st.wHead > w {
		from = max(from, st.wHead-w+1)
	}
	_ = scanPositions(tx, st, st.pending, st.staged, from, st.wHead, func(version, pos uint64) bool {
		var id string
		v, err := j.writerFrame(logB, pos)
		if v != nil && err == nil {
			id, err = decodeID(pos, v)
		}
		if id == "" || err != nil || (st.recentLen > 0 && version != st.recentLast+1) {
			st.recentLen = 0 // keep the ring contiguous
			if id == "" || err != nil {
				return true
			}
		}
		st.remember(version, j.idKey(id))
		return true
	})
}

// deletePositions removes the records at positions (ascending) from their
// commit blocks, rewriting each block once and dropping blocks left empty.
func deletePositions(logB *bbolt.Bucket, positions []uint64) error {
	c := logB.Cursor()
	type blockEdit struct {
		first uint64
		n     int
		block []byte
		gone  map[int]bool
	}
	var edits []*blockEdit
	var cur *blockEdit
	for _, pos := range positions {
		if cur == nil || pos >= cur.first+uint64(cur.n) {
			first, block, ok := findBlock(c, pos)
			if !ok || pos < first {
				continue
			}
			n, err := blockCount(block)
			if err != nil {
				return &journal.CorruptionError{Position: pos, Err: err}
			}
			if pos-first >= uint64(n) {
				continue
			}
			cur = &blockEdit{first: first, n: n, block: append([]byte(nil), block...), gone: map[int]bool{}}
			edits = append(edits, cur)
		}
		cur.gone[int(pos-cur.first)] = true
	}
	for _, e := range edits {
		var data []byte
		ends := make([]uint32, e.n)
		for i := range e.n {
			f, err := blockFrame(e.block, e.n, i)
			if err != nil {
				return &journal.CorruptionError{Position: e.first + uint64(i), Err: err}
			}
			if !e.gone[i] {
				data = append(data, f...)
			}
			ends[i] = uint32(len(data))
		}
		key := posKey(e.first)
		if len(data) == 0 {
			if err := logB.Delete(key); err != nil {
				return err
			}
			continue
		}
		if err := logB.Put(key, encodeBlock(nil, data, ends)); err != nil {
			return err
		}
	}
	return nil
}
