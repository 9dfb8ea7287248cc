// The write path of the journal is split by concern:
//
//	writer.go       the queue and the writer goroutine (this file)
//	append.go       Append, AppendAsync: checks and encoding before queueing
//	commit.go       one batch: apply, write the commit blocks, commit, publish
//	idempotency.go  the recent-id window and the comparison with stored ids
//	delete.go       DeleteTo and its transaction
//
// Invariants of the write path (every file above relies on them):
//
//  1. One goroutine, writer, commits. It alone mutates j.w, the map
//     j.streams (readers take j.mu to read it; the writer does not) and the
//     writer-only fields of a streamState (wHead, staged, recent, ...).
//  2. Readers see only committed state: the published fields of a
//     streamState (head, deletedTo, pending) and j.lastPos change under
//     j.mu in publish, after tx.Commit returned, never before.
//  3. No request is completed as stored before its transaction committed.
//     When a commit (or a deletion) fails, every accepted request of the
//     batch fails with orchestrix.ErrOutcomeUnknown and the in-memory state
//     is reloaded from the file; if that fails too, the journal refuses
//     further writes (j.w.broken).
//  4. A queued request leaves stateQueued exactly once, by a
//     compare-and-swap: to stateTaken by the writer (claim), which then
//     completes it exactly once, or to stateCancelled by a caller whose
//     ctx ended, after which the writer ignores it.
//  5. Positions are assigned in commit order without gaps by the writer
//     (j.w.nextPos); versions of a stream without gaps from wHead.
//  6. A deletion runs alone, in its own transaction, between batches.
//  7. A request is recycled (sync.Pool) only once nothing refers to it: after
//     its done function ran, or after the writer closed its done channel.

package bolt

import (
	"context"
	"runtime"
	"sync/atomic"
	"time"

	"github.com/orchestrix/orchestrix"
	"github.com/orchestrix/orchestrix/journal"
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
	nextPos uint64
	touched []*streamState // streams changed by the current batch
	broken  error          // set when reloading after a failed commit failed

	// The spread checkpoint (commit.go, advanceCheckpoint). checkpoint is
	// the committed meta "checkpoint". dirty holds the streams with
	// records not yet in journal.index that are not in the round; round
	// the streams a checkpoint round is writing, in index key order, of
	// which round[roundNext:] are still to be flushed; when all are, the
	// checkpoint moves to roundEnd. flushed lists the streams the current
	// batch flushed.
	checkpoint  uint64
	dirty       []*streamState
	round       []*streamState
	roundNext   int
	roundEnd    uint64
	roundEvents int // events stored since the round began
	roundActive bool
	flushed     []*streamState
	runs        []run      // scratch of flushStream
	vals        valueArena // keys and values of flushStream

	// The cached heads (heads.go): every state in j.streams, in clock
	// order; hand is where the next eviction scan starts.
	clock []*streamState
	hand  int

	// The commit block being built: frames of positions batchStart… in
	// data, with their end offsets. Reused from batch to batch.
	batchStart uint64
	data       []byte
	ends       []uint32
	block      []byte
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
	if j.readOnly {
		if j.closed.Load() {
			return orchestrix.ErrClosed
		}
		return ErrReadOnly
	}
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
				start := time.Now()
				j.settle()
				j.settleNs.Add(int64(time.Since(start)))
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
