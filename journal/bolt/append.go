package bolt

import (
	"context"
	"fmt"
	"hash/crc32"
	"sync"

	"github.com/orchestrix/orchestrix"
	"github.com/orchestrix/orchestrix/journal"
)

// checkStream applies journal.ValidateStream.
func checkStream(stream string) error {
	if err := journal.ValidateStream(stream); err != nil {
		return fmt.Errorf("journal/bolt: %w", err)
	}
	return nil
}

// Append stores events at the end of stream if it is at the expected
// version, and returns once they are durable (see the package
// documentation for batching, idempotency and cancellation). Invalid
// envelopes fail with an error matching orchestrix.ErrInvalidEnvelope,
// events above Options.MaxEventSize, and appends whose events together
// exceed Options.MaxBatchBytes, with orchestrix.ErrTooLarge; all are
// detected before anything is queued.
func (j *Journal) Append(ctx context.Context, stream string, expected journal.ExpectedVersion, events []orchestrix.Envelope) (journal.AppendResult, error) {
	r, _ := requests.Get().(*request)
	if r == nil {
		r = &request{}
	}
	if err := j.prepare(ctx, r, stream, expected, events); err != nil {
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
	if err := j.prepare(ctx, r, stream, expected, events); err != nil {
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
func (j *Journal) prepare(ctx context.Context, r *request, stream string, expected journal.ExpectedVersion, events []orchestrix.Envelope) error {
	if err := j.checkOpen(ctx); err != nil {
		return err
	}
	if err := checkStream(stream); err != nil {
		return err
	}
	if len(events) == 0 {
		return fmt.Errorf("journal/bolt: append to %q: %w", stream, journal.ErrNoEvents)
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
