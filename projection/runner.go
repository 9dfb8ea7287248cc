package projection

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	proto "github.com/asynkron/protoactor-go/actor"
	"github.com/orchestrix/orchestrix"
	"github.com/orchestrix/orchestrix/internal/telemetryhooks"
	"github.com/orchestrix/orchestrix/journal"
	"github.com/orchestrix/orchestrix/telemetry"
	"go.opentelemetry.io/otel/trace"
)

// runner is the state of one projection. Its status is shared (guarded by
// mu); its worker fields are touched only by the projection's actor.
type runner struct {
	p         Projection
	filter    compiledFilter
	retry     Retry
	store     CheckpointStore
	batchSize int

	journal  journal.Journal
	watcher  journal.Watcher
	registry *orchestrix.Registry
	clock    orchestrix.Clock
	metrics  *telemetry.Metrics
	tracer   trace.Tracer
	log      *slog.Logger

	pid *proto.PID

	mu      sync.Mutex
	status  Status
	changed chan struct{} // closed and replaced on every status change

	// Worker control, owned by the actor.
	cancel context.CancelFunc
	done   chan struct{}
}

// update changes the status under the lock and wakes Wait callers.
func (r *runner) update(fn func(s *Status)) {
	r.mu.Lock()
	fn(&r.status)
	r.status.computeLag()
	telemetryhooks.MetricsOf(r.metrics).ProjectionPosition(r.p.Name, r.status.Position, r.status.Lag)
	close(r.changed)
	r.changed = make(chan struct{})
	r.mu.Unlock()
}

// snapshot returns the status and the channel closed on its next change.
func (r *runner) snapshot() (Status, <-chan struct{}) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.status, r.changed
}

// running reports whether a worker goroutine is active.
func (r *runner) running() bool {
	if r.done == nil {
		return false
	}
	select {
	case <-r.done:
		return false
	default:
		return true
	}
}

// settle waits for a worker that has published a final state (failed or
// completed) to return, so that control operations see it as stopped.
func (r *runner) settle() {
	if !r.running() {
		return
	}
	if st, _ := r.snapshot(); st.State == StateFailed || st.State == StateCompleted {
		<-r.done
	}
}

// startWorker starts the worker goroutine unless one is active.
func (r *runner) startWorker() {
	if r.running() {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	r.cancel, r.done = cancel, done
	r.update(func(s *Status) {
		s.State, s.Live, s.Attempts, s.FailedPosition, s.LastError = StateRunning, false, 0, 0, nil
	})
	go func() {
		defer close(done)
		r.work(ctx)
	}()
}

// stopWorker cancels the worker and waits for it to return.
func (r *runner) stopWorker() {
	if r.cancel == nil {
		return
	}
	r.cancel()
	<-r.done
	r.cancel = nil
}

// work is the worker: catch up from the checkpoint, then follow the
// journal live, until ctx ends, a failure is final or an as-of projection
// completes. Whatever ends it is recorded in the status.
func (r *runner) work(ctx context.Context) {
	defer func() {
		if ctx.Err() != nil {
			r.update(func(s *Status) {
				if s.State == StateRunning || s.State == StateRetrying {
					s.State, s.Live = StateStopped, false
				}
			})
		}
	}()
	var pos uint64
	if _, err := r.attempt(ctx, 1, 0, nil, func() error {
		var err error
		pos, err = r.store.Load(ctx, r.p.Name)
		return err
	}); err != nil {
		r.fail(ctx, 1, 0, fmt.Errorf("projection %q: loading checkpoint: %w", r.p.Name, err))
		return
	}
	var head uint64
	if _, err := r.attempt(ctx, pos+1, 0, nil, func() error {
		var err error
		head, err = r.watcher.LastPosition(ctx)
		return err
	}); err != nil {
		r.fail(ctx, pos+1, 0, fmt.Errorf("projection %q: reading the journal head: %w", r.p.Name, err))
		return
	}
	r.update(func(s *Status) { s.Position, s.Head = pos, max(s.Head, head) })
	r.log.Debug("projection started", slog.Uint64("position", pos), slog.Uint64("head", head))

	until := r.p.UntilPosition
	more := false
	for {
		if until > 0 && pos >= until {
			r.complete(pos)
			return
		}
		if head <= pos && !more {
			r.update(func(s *Status) { s.Live, s.Head = true, max(s.Head, head) })
			if _, err := r.attempt(ctx, pos+1, 0, nil, func() error {
				var err error
				head, err = r.watcher.WaitFor(ctx, pos)
				return err
			}); err != nil {
				r.fail(ctx, pos+1, 0, fmt.Errorf("projection %q: waiting for commits after position %d: %w", r.p.Name, pos, err))
				return
			}
			r.update(func(s *Status) { s.Live, s.Head = false, max(s.Head, head) })
		}

		b, err := r.readBatch(ctx, pos+1, head)
		if err != nil {
			at := pos + 1
			var ce *journal.CorruptionError
			if errors.As(err, &ce) && ce.Position > 0 {
				at = ce.Position
			}
			r.fail(ctx, at, 0, err)
			return
		}
		if len(b.events) > 0 {
			if i, attempts, err := r.handle(ctx, b.events); err != nil {
				if ctx.Err() != nil {
					return
				}
				ev := b.events[i]
				if ev.Position-1 > pos && r.save(ctx, ev.Position-1) == nil {
					pos = ev.Position - 1
				}
				r.fail(ctx, ev.Position, attempts, &EventError{
					Projection: r.p.Name, Position: ev.Position, Stream: ev.Stream,
					Type: ev.Envelope.Type, Attempts: attempts, Err: err,
				})
				return
			}
		}
		if b.scanned > pos {
			if err := r.save(ctx, b.scanned); err != nil {
				r.fail(ctx, pos+1, 0, err)
				return
			}
			pos = b.scanned
		}
		if b.poison != nil {
			r.fail(ctx, b.poison.Position, 0, b.poison)
			return
		}
		if b.reachedTime {
			r.complete(pos)
			return
		}
		// After a full batch there may be more committed already: read
		// on before waiting.
		more = b.full
	}
}

// batch is what readBatch found.
type batch struct {
	// events are the selected, decoded records.
	events []Event
	// scanned is the position up to which every record has been read:
	// the checkpoint once events are handled.
	scanned uint64
	// poison, when set, is a record that could not be decoded; it lies
	// just after scanned.
	poison *EventError
	// reachedTime is set when a record after UntilTime was met; it lies
	// just after scanned.
	reachedTime bool
	// full is set when the read returned as many records as asked for.
	full bool
}

// readBatch reads up to batchSize records from position from, knowing
// that every record up to head is committed and visible.
func (r *runner) readBatch(ctx context.Context, from, head uint64) (batch, error) {
	var b batch
	b.scanned = from - 1
	// One allocation of the batch's size, not a doubling series: an Event
	// is ~280 bytes, so growing to 256 of them allocated and cleared
	// twice what the batch holds, per batch.
	if head >= from {
		b.events = make([]Event, 0, min(uint64(r.batchSize), head-from+1))
	}
	n := 0
	var readErr error
	_, err := r.attempt(ctx, from, 0, nil, func() error {
		b.events, b.scanned, b.poison, b.reachedTime, n = b.events[:0], from-1, nil, false, 0
		for rec, err := range r.journal.ReadAll(ctx, from, r.batchSize) {
			if err != nil {
				readErr = err
				return err
			}
			n++
			if u := r.p.UntilPosition; u > 0 && rec.Position > u {
				// Every record up to u has been read.
				b.scanned = u
				return nil
			}
			if !r.p.UntilTime.IsZero() && rec.Envelope.Time.After(r.p.UntilTime) {
				b.reachedTime = true
				return nil
			}
			if r.filter.match(&rec) {
				data, err := r.registry.Unmarshal(rec.Envelope)
				if err != nil {
					b.poison = &EventError{Projection: r.p.Name, Position: rec.Position, Stream: rec.Stream, Type: rec.Envelope.Type, Err: err}
					return nil
				}
				b.events = append(b.events, Event{Record: rec, Data: data})
			}
			b.scanned = rec.Position
		}
		b.full = n == r.batchSize
		// A short read has seen every record committed before it began,
		// which includes every record up to head.
		if !b.full && head > b.scanned {
			b.scanned = head
			if u := r.p.UntilPosition; u > 0 && b.scanned > u {
				b.scanned = u
			}
		}
		return nil
	})
	if err != nil {
		if readErr == nil {
			readErr = err
		}
		return batch{}, fmt.Errorf("projection %q: reading the journal from position %d: %w", r.p.Name, from, readErr)
	}
	return b, nil
}

// handle delivers events to the handler: as one batch first, then, if
// that fails, one event at a time with retries. It returns the index of
// the event that failed for good, the attempts made at it, and the error.
func (r *runner) handle(ctx context.Context, events []Event) (int, int, error) {
	err := r.call(ctx, events)
	if err == nil {
		return -1, 0, nil
	}
	if ctx.Err() != nil {
		return 0, 0, ctx.Err()
	}
	if len(events) == 1 {
		attempts, err := r.attempt(ctx, events[0].Position, 1, err, func() error { return r.call(ctx, events) })
		if err != nil {
			return 0, attempts, err
		}
		return -1, 0, nil
	}
	r.log.Debug("projection batch failed, retrying its events one by one",
		slog.Uint64("from", events[0].Position), slog.Uint64("to", events[len(events)-1].Position), slog.Any("error", err))
	for i := range events {
		one := events[i : i+1]
		if attempts, err := r.attempt(ctx, events[i].Position, 0, nil, func() error { return r.call(ctx, one) }); err != nil {
			return i, attempts, err
		}
	}
	return -1, 0, nil
}

// maxSpanLinks bounds the links of one projection batch span to the
// traces of its events.
const maxSpanLinks = 32

// call runs the handler in an orchestrix.projection.batch span linked to
// the traces of the batch's events, turning a panic into an error.
func (r *runner) call(ctx context.Context, events []Event) (err error) {
	var links []trace.Link
	seen := ""
	for i := range events {
		tp := events[i].Envelope.TraceParent
		if tp == "" || tp == seen {
			continue
		}
		if l, ok := telemetry.LinkFromTraceParent(tp); ok && len(links) < maxSpanLinks {
			links = append(links, l)
			seen = tp
		}
	}
	ctx, span := telemetryhooks.StartProjectionSpan(ctx, r.tracer, r.p.Name,
		events[0].Position, events[len(events)-1].Position, len(events), links...)
	defer func() {
		if v := recover(); v != nil {
			err = fmt.Errorf("projection %q: handler panicked: %v", r.p.Name, v)
		}
		telemetryhooks.EndSpan(span, err)
	}()
	return r.p.Handler.Handle(ctx, events)
}

// save stores the checkpoint, with retries, and publishes it.
func (r *runner) save(ctx context.Context, pos uint64) error {
	if _, err := r.attempt(ctx, pos+1, 0, nil, func() error { return r.store.Save(ctx, r.p.Name, pos) }); err != nil {
		return fmt.Errorf("projection %q: saving checkpoint %d: %w", r.p.Name, pos, err)
	}
	r.update(func(s *Status) {
		s.Position = pos
		s.Head = max(s.Head, pos)
		s.Attempts, s.FailedPosition, s.LastError = 0, 0, nil
		if s.State == StateRetrying {
			s.State = StateRunning
		}
	})
	return nil
}

// attempt runs op until it succeeds, ctx ends, its error is permanent or
// the retry policy is used up, waiting between attempts on the clock.
// prior failed attempts (with error prevErr) were already made. It
// returns the number of failed attempts and the last error.
func (r *runner) attempt(ctx context.Context, at uint64, prior int, prevErr error, op func() error) (int, error) {
	failures, err := prior, prevErr
	for {
		if failures > 0 {
			if ctx.Err() != nil {
				return failures, ctx.Err()
			}
			if isPermanent(err) || r.retry.GivesUpAfter(failures) {
				return failures, err
			}
			wait := r.retry.Backoff(failures)
			timer := make(chan struct{})
			t := r.clock.AfterFunc(wait, func() { close(timer) })
			r.update(func(s *Status) {
				s.State, s.Attempts, s.FailedPosition, s.LastError = StateRetrying, failures, at, err
			})
			r.log.Warn("projection retrying", slog.Uint64("position", at), slog.Int("attempt", failures),
				slog.Duration("backoff", wait), slog.Any("error", err))
			select {
			case <-timer:
			case <-ctx.Done():
				t.Stop()
				return failures, ctx.Err()
			}
		}
		if err = op(); err == nil {
			if failures > 0 {
				r.update(func(s *Status) {
					if s.State == StateRetrying {
						s.State = StateRunning
					}
					s.Attempts, s.FailedPosition, s.LastError = 0, 0, nil
				})
			}
			return failures, nil
		}
		if ctx.Err() != nil {
			return failures, err
		}
		failures++
	}
}

// fail records a final failure at position at, unless ctx has ended (then
// the projection is merely stopping).
func (r *runner) fail(ctx context.Context, at uint64, attempts int, err error) {
	if ctx.Err() != nil {
		return
	}
	r.log.Error("projection failed", slog.Uint64("position", at), slog.Int("attempts", attempts), slog.Any("error", err))
	r.update(func(s *Status) {
		s.State, s.Live, s.Attempts, s.FailedPosition, s.LastError = StateFailed, false, attempts, at, err
	})
}

// complete records that an as-of projection reached its end.
func (r *runner) complete(pos uint64) {
	r.update(func(s *Status) { s.State, s.Live, s.Position = StateCompleted, false, pos })
	r.log.Info("projection completed", slog.Uint64("position", pos))
}
