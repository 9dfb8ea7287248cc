package saga

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/orchestrix/orchestrix"
	"github.com/orchestrix/orchestrix/internal/commandtap"
	"github.com/orchestrix/orchestrix/internal/telemetryhooks"
	"github.com/orchestrix/orchestrix/journal"
	"github.com/orchestrix/orchestrix/telemetry"
)

// instance executes one saga: it folds the saga's stream, then runs the
// next step (or compensation), records the outcome, and repeats until the
// saga is terminal or the runner closes.
type instance[D any] struct {
	s      *Saga[D]
	id     string
	stream string
	rec    record
	trace  string // traceparent of the Started event

	// counted is the state this instance is counted in by the
	// saga_instances gauge (StateUnknown: not counted). Only run's
	// goroutine uses it.
	counted State

	mu        sync.Mutex
	attempt   int
	lastError string
}

// progress returns the attempt in progress and the last attempt's error.
func (x *instance[D]) progress() (int, string) {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.attempt, x.lastError
}

func (x *instance[D]) setProgress(attempt int, lastErr error) {
	x.mu.Lock()
	x.attempt = attempt
	if lastErr != nil {
		x.lastError = lastErr.Error()
	} else if attempt == 0 {
		x.lastError = ""
	}
	x.mu.Unlock()
	x.s.changed.signal(x.id)
}

func (x *instance[D]) logger() *slog.Logger {
	return x.s.r.log.With(slog.String("saga", x.s.name), slog.String("id", x.id))
}

// run executes the saga until it is terminal or ctx ends.
//
// While it runs, the instance is counted in saga_instances under its
// current state; when it ends unfinished (the runner closes) it stops
// being counted, and when it ends terminal it stays counted under its
// terminal state. A saga already terminal when loaded (it finished before
// this runner started) is not counted at all.
func (x *instance[D]) run(ctx context.Context) {
	defer x.s.forget(x.id)
	if !x.reload(ctx) || x.rec.state.Terminal() {
		return
	}
	defer x.untrack()
	steps := x.s.o.steps
	for ctx.Err() == nil && !x.rec.state.Terminal() {
		x.track()
		switch x.rec.state {
		case StateRunning:
			if x.rec.next >= len(steps) {
				x.record(ctx, Completed{})
				continue
			}
			x.forward(ctx, x.rec.next)
		case StateCompensating:
			i := x.rec.compensateNext
			for i >= 0 && steps[i].compensate == nil {
				i--
			}
			if i < 0 {
				x.record(ctx, Compensated{})
				continue
			}
			x.backward(ctx, i)
		default:
			x.logger().Error("saga stream in an unexpected state", slog.String("state", x.rec.state.String()))
			return
		}
	}
	x.track()
}

// track moves the instance, in the saga_instances gauge, from the state
// it is counted in to its current state.
func (x *instance[D]) track() {
	if x.counted == x.rec.state {
		return
	}
	telemetryhooks.MetricsOf(x.s.r.cfg.Metrics).SagaTransition(x.s.name, stateLabel(x.counted), stateLabel(x.rec.state))
	x.counted = x.rec.state
}

// untrack stops counting an instance that ends unfinished: another runner
// (or this process's next one) counts it when it resumes it.
func (x *instance[D]) untrack() {
	if x.counted.Terminal() {
		return
	}
	telemetryhooks.MetricsOf(x.s.r.cfg.Metrics).SagaTransition(x.s.name, stateLabel(x.counted), "")
	x.counted = StateUnknown
}

// stateLabel is the state label of s in saga_instances; "" for
// StateUnknown (not counted).
func stateLabel(s State) string {
	if s == StateUnknown {
		return ""
	}
	return s.String()
}

// reload folds the saga's stream into x.rec, retrying read failures until
// ctx ends. It reports whether it succeeded.
//
// The instance exists because its Started event was read from the global
// log, so a stream read that returns nothing is behind that read, not a
// saga that never began: it is retried like a failure, never taken for
// the end of the saga.
func (x *instance[D]) reload(ctx context.Context) bool {
	for failures := 0; ; failures++ {
		rec, trace, err := x.s.loadTrace(ctx, x.id)
		if err == nil && rec.state == StateUnknown {
			err = fmt.Errorf("saga %q %q: stream %q is empty although its start was read from the journal", x.s.name, x.id, x.stream)
		}
		if err == nil {
			x.rec, x.trace = rec, trace
			return true
		}
		if ctx.Err() != nil {
			return false
		}
		x.logger().Warn("reading saga stream failed; retrying", slog.Any("error", err))
		x.setProgress(0, err)
		if !x.sleep(ctx, x.s.r.cfg.Retry.Backoff(failures+1)) {
			return false
		}
	}
}

// record appends ev as the stream's next event and folds it in. A journal
// failure is retried with the same event id (an append that was stored
// after all is then reported as a duplicate); a conflict means another
// writer recorded progress, so the stream is folded again. It reports
// whether ev was recorded; false means ctx ended or the stream changed.
func (x *instance[D]) record(ctx context.Context, ev any) bool {
	for failures := 0; ; failures++ {
		env, err := x.s.envelope(x.id, x.rec.version+1, ev)
		if err != nil {
			// An event of ours that cannot be encoded is a bug; keep
			// the saga where it is and say so.
			x.logger().Error("cannot encode saga event", slog.Any("error", err))
			x.setProgress(0, err)
			<-ctx.Done()
			return false
		}
		env.TraceParent = x.trace
		_, err = x.s.r.cfg.Journal.Append(ctx, x.stream, journal.Exact(x.rec.version), []orchestrix.Envelope{env})
		if err == nil {
			before := x.rec.state
			if err := x.rec.apply(ev); err != nil {
				x.logger().Error("cannot fold saga event", slog.Any("error", err))
			}
			if _, failed := ev.(StepFailed); failed && before != StateCompensating {
				telemetryhooks.MetricsOf(x.s.r.cfg.Metrics).SagaCompensation(x.s.name)
			}
			x.track()
			x.setProgress(0, nil)
			return true
		}
		if ctx.Err() != nil {
			return false
		}
		if errors.Is(err, orchestrix.ErrVersionConflict) {
			x.logger().Warn("saga stream changed under this runner; reloading", slog.Any("error", err))
			x.reload(ctx)
			return false
		}
		x.logger().Warn("recording saga progress failed; retrying", slog.Any("error", err), slog.String("event", fmt.Sprintf("%T", ev)))
		x.setProgress(0, err)
		if !x.sleep(ctx, x.s.r.cfg.Retry.Backoff(failures+1)) {
			return false
		}
	}
}

// forward executes step i and records its outcome.
func (x *instance[D]) forward(ctx context.Context, i int) {
	st := x.s.o.steps[i]
	clock := x.s.r.cfg.Clock
	stepCtx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)

	deadline := x.rec.deadline(i)
	if st.timeout > 0 && x.rec.stepStarted != i {
		d := clock.Now().Add(st.timeout)
		if deadline.IsZero() || d.Before(deadline) {
			deadline = d
		}
	}
	var timedOut atomic.Bool
	if !deadline.IsZero() {
		// Arm the timer before recording the deadline: once the
		// StepStarted event is visible, the timer is running.
		fire := func() {
			timedOut.Store(true)
			cancel(ErrTimeout)
		}
		if d := deadline.Sub(clock.Now()); d <= 0 {
			fire()
		} else {
			t := clock.AfterFunc(d, fire)
			defer t.Stop()
		}
	}
	if st.timeout > 0 && x.rec.stepStarted != i {
		if !x.record(ctx, StepStarted{Step: i, Name: st.name, Deadline: deadline}) {
			return
		}
	}

	data, err := x.attempts(stepCtx, st.name, false, st.action)
	switch {
	case err == nil:
		ev := StepCompleted{Step: i, Name: st.name}
		if string(data) != string(x.rec.data) {
			ev.Data = data
		}
		x.record(ctx, ev)
	case ctx.Err() != nil:
		// The runner is closing: record nothing, the next runner resumes.
	case timedOut.Load():
		x.record(ctx, StepFailed{Step: i, Name: st.name, TimedOut: true,
			Reason: fmt.Sprintf("deadline %s passed: %v", deadline.Format(time.RFC3339Nano), err)})
	default:
		x.record(ctx, StepFailed{Step: i, Name: st.name, Reason: err.Error()})
	}
}

// backward runs the compensation of step i and records its outcome.
func (x *instance[D]) backward(ctx context.Context, i int) {
	st := x.s.o.steps[i]
	_, err := x.attempts(ctx, st.name, true, st.compensate)
	switch {
	case err == nil:
		x.record(ctx, StepCompensated{Step: i, Name: st.name})
	case ctx.Err() != nil:
	default:
		x.record(ctx, Failed{Step: i, Name: st.name, Reason: err.Error()})
	}
}

// attempts calls action until it succeeds, is rejected, gives up or ctx
// ends, and returns the saga data as the successful attempt left it.
//
// Each attempt runs in its own orchestrix.saga.step span, a child of the
// traceparent recorded with the saga's start; the action's ctx carries
// the span, so the commands it sends are the span's children.
func (x *instance[D]) attempts(ctx context.Context, stepName string, compensating bool, action Action[D]) ([]byte, error) {
	cfg := &x.s.r.cfg
	codec := cfg.Registry.Codec()
	traced := telemetry.ContextFromTraceParent(ctx, x.trace)
	var budget attemptBudget
	for attempt := 1; ; attempt++ {
		if ctx.Err() != nil {
			return nil, context.Cause(ctx)
		}
		sc := &Context[D]{
			Saga: x.s.name, ID: x.id, Step: stepName, Compensating: compensating,
			Attempt: attempt, TraceParent: x.trace, stream: x.stream,
		}
		if compensating && x.rec.failure != nil {
			f := *x.rec.failure
			sc.Failure = &f
		}
		if err := codec.Decode(x.rec.data, &sc.Data); err != nil {
			return nil, Reject(fmt.Errorf("decoding saga data: %w", err))
		}
		x.setProgress(attempt, nil)
		err := x.traced(traced, action, sc)
		if err == nil {
			data, err := codec.Encode(sc.Data)
			if err != nil {
				return nil, Reject(fmt.Errorf("encoding saga data: %w", err))
			}
			return data, nil
		}
		if ctx.Err() != nil || isRejection(err) {
			return nil, err
		}
		if budget.spent(cfg.Retry, err) {
			return nil, fmt.Errorf("gave up after %d attempts: %w", attempt, err)
		}
		x.logger().Debug("saga step failed; retrying with the same command id",
			slog.String("step", stepName), slog.Bool("compensating", compensating), slog.Int("attempt", attempt), slog.Any("error", err))
		x.setProgress(attempt, err)
		if !x.sleep(ctx, cfg.Retry.Backoff(attempt)) {
			return nil, context.Cause(ctx)
		}
	}
}

// traced runs one attempt (call) in an orchestrix.saga.step span started
// from ctx, and ends the span with the attempt's error. sc.TraceParent is
// set to the span's traceparent.
func (x *instance[D]) traced(ctx context.Context, action Action[D], sc *Context[D]) error {
	ctx, span := telemetryhooks.StartSagaStepSpan(ctx, x.s.r.tracer, sc.Saga, sc.Step)
	if span.IsRecording() {
		span.SetAttributes(
			attrSagaID.String(sc.ID),
			attrCompensating.Bool(sc.Compensating),
			attrAttempt.Int(sc.Attempt),
		)
	}
	sc.TraceParent = telemetry.TraceParent(ctx)
	ctx = commandtap.WithOrigin(ctx, commandtap.Origin{
		Saga: sc.Saga, ID: sc.ID, Step: sc.Step, Compensating: sc.Compensating, Attempt: sc.Attempt,
	})
	err := x.call(ctx, action, sc)
	telemetryhooks.EndSpan(span, err)
	return err
}

// call runs one attempt, bounded by the attempt timeout, turning a panic
// into a rejection.
func (x *instance[D]) call(ctx context.Context, action Action[D], sc *Context[D]) error {
	return x.s.r.bounded(ctx, func(ctx context.Context) error { return action(ctx, sc) })
}

// errAttemptTimeout is the cause of an attempt's context when the attempt
// timeout passes; the attempt is then retried.
var errAttemptTimeout = fmt.Errorf("saga: attempt timed out: %w", orchestrix.ErrOutcomeUnknown)

// sleep waits d on the runner's clock; it reports false when ctx ended
// first.
func (x *instance[D]) sleep(ctx context.Context, d time.Duration) bool {
	return sleepOn(ctx, x.s.r.cfg.Clock, d)
}
