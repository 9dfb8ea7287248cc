package saga

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"sync"
	"time"

	"github.com/orchestrix/orchestrix"
	"github.com/orchestrix/orchestrix/actor"
	"github.com/orchestrix/orchestrix/aggregate"
	"github.com/orchestrix/orchestrix/internal/telemetryhooks"
	"github.com/orchestrix/orchestrix/journal"
	"github.com/orchestrix/orchestrix/projection"
	"github.com/orchestrix/orchestrix/telemetry"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
)

// Defaults applied to zero Config fields.
const (
	DefaultSource         = "/orchestrix/saga"
	DefaultAttemptTimeout = 30 * time.Second
	DefaultMaxActive      = 10_000
)

// Config configures a Runner. Journal, Registry and Checkpoints are
// required; the zero value of every other field is a sensible default.
type Config struct {
	// Journal is where sagas record their progress and whose global log
	// they follow. Required; it must implement journal.Watcher. The
	// runner does not close it.
	Journal journal.Journal
	// Registry decodes the events that start sagas (pass the actor
	// system's, actor.System.Registry) and receives the saga event types.
	// Required.
	Registry *orchestrix.Registry
	// Checkpoints keeps the checkpoints of the runner's projections: for
	// each saga, "saga.<name>.trigger" (the events that start sagas) and
	// "saga.<name>" (the oldest saga still running). Required; use a
	// durable store (projection/boltstore) so that sagas resume after a
	// restart without rereading the whole journal.
	Checkpoints projection.CheckpointStore
	// Clock times durable deadlines, attempt timeouts and retry backoff,
	// and stamps the saga events. Nil means orchestrix.SystemClock.
	Clock orchestrix.Clock
	// Logger receives failures and retries. Nil discards them.
	Logger *slog.Logger
	// Source is the CloudEvents source of the saga events. Empty means
	// DefaultSource.
	Source string
	// Retry is the policy for transient failures of a saga's actions and
	// compensations (an unknown outcome, a closed or restarting system, an
	// attempt that timed out) and of a process handler. Every retry reuses
	// the command ids, so the aggregate executes a command at most once.
	// The zero value means projection.Retry's defaults (10 attempts);
	// attempts that fail with orchestrix.ErrClosed (the system the
	// commands go to is shutting down) do not count, so stopping a
	// service never compensates a saga or fails a process. Set
	// MaxAttempts to projection.UnlimitedAttempts to retry a saga step
	// until it succeeds, is rejected or reaches its deadline. The
	// runner's own projections use the same backoff with no attempt
	// limit: a journal that is down for a while delays sagas and
	// processes, visibly in their Projections status, instead of stopping
	// them until the next restart. A permanent failure (an invalid id
	// from a StartOn or correlate function) still stops a projection at
	// once; see Skip.
	Retry projection.Retry
	// AttemptTimeout bounds one call of an action or compensation (on
	// Clock); an attempt that runs out is a transient failure and is
	// retried with the same command ids. Zero means
	// DefaultAttemptTimeout; negative means no bound.
	AttemptTimeout time.Duration
	// MaxActive bounds the saga instances the runner executes at once,
	// over all its orchestrations. When that many are executing, the
	// next sagas wait to start (their Started events stay unread) until
	// one finishes. Zero means DefaultMaxActive; negative means no bound.
	MaxActive int
	// System hosts the runner's projection actors (pass the system the
	// sagas send their commands to). Nil makes the runner start a private
	// one.
	System *actor.System
	// Metrics receives orchestrix_saga_instances{saga,state} and
	// orchestrix_saga_compensations_total{saga} (see the package
	// documentation for what they count), and is passed on to the
	// runner's projections (orchestrix_projection_position and
	// orchestrix_projection_lag_events for "saga.<name>" and
	// "saga.<name>.trigger"). Nil records nothing.
	Metrics *telemetry.Metrics
	// TracerProvider starts one orchestrix.saga.step span per attempt of
	// an action or compensation, a child of the trace that began the
	// saga, and is passed on to the runner's projections. Nil means the
	// global provider (otel.GetTracerProvider), which records nothing
	// unless an OpenTelemetry SDK is installed.
	TracerProvider trace.TracerProvider
}

// Validate reports whether c can be used, with an error matching
// ErrInvalidSaga that says what is wrong.
func (c Config) Validate() error {
	var errs []error
	if c.Journal == nil {
		errs = append(errs, errors.New("Config.Journal is nil"))
	} else if _, ok := c.Journal.(journal.Watcher); !ok {
		errs = append(errs, fmt.Errorf("journal %T does not implement journal.Watcher", c.Journal))
	}
	if c.Registry == nil {
		errs = append(errs, errors.New("Config.Registry is nil"))
	}
	if c.Checkpoints == nil {
		errs = append(errs, errors.New("Config.Checkpoints is nil"))
	}
	if err := c.Retry.Validate(); err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return fmt.Errorf("%w: config: %w", ErrInvalidSaga, errors.Join(errs...))
	}
	return nil
}

// Runner executes sagas. Register orchestrations with Register; each saga
// instance runs on its own goroutine, recording every step in its stream
// before moving on, so that a new Runner on the same journal and
// checkpoint store resumes every unfinished saga where it stopped. Run at
// most one Runner per orchestration name at a time. All methods are safe
// for concurrent use.
type Runner struct {
	cfg      Config
	log      *slog.Logger
	tracer   trace.Tracer
	projs    *projection.Manager
	ctx      context.Context // cancelled by Close: stops every instance
	cancel   context.CancelFunc
	inflight sync.WaitGroup
	slots    chan struct{} // one per executing saga instance; nil: no bound

	mu      sync.Mutex
	closed  bool
	sagas   map[string]bool // registered orchestrations and processes
	closers []func()        // run by Close before the instances stop
}

// NewRunner validates cfg, registers the saga event types in its Registry
// and returns a runner without sagas.
func NewRunner(cfg Config) (*Runner, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Clock == nil {
		cfg.Clock = orchestrix.SystemClock{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Source == "" {
		cfg.Source = DefaultSource
	}
	if cfg.AttemptTimeout == 0 {
		cfg.AttemptTimeout = DefaultAttemptTimeout
	}
	if cfg.MaxActive == 0 {
		cfg.MaxActive = DefaultMaxActive
	}
	if err := registerEvents(cfg.Registry); err != nil {
		return nil, err
	}
	projs, err := projection.NewManager(projection.Config{
		Journal:  cfg.Journal,
		Registry: cfg.Registry,
		Retry:    projectionRetry(cfg.Retry),
		Clock:    cfg.Clock,
		Logger:   cfg.Logger,
		System:   cfg.System,

		Metrics:        cfg.Metrics,
		TracerProvider: cfg.TracerProvider,
	})
	if err != nil {
		return nil, fmt.Errorf("saga: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &Runner{
		cfg: cfg, log: cfg.Logger, tracer: telemetryhooks.Tracer(cfg.TracerProvider), projs: projs,
		ctx: ctx, cancel: cancel, sagas: make(map[string]bool),
	}
	if cfg.MaxActive > 0 {
		r.slots = make(chan struct{}, cfg.MaxActive)
	}
	return r, nil
}

// projectionRetry is the policy of the runner's projections: r's backoff,
// without an attempt limit.
func projectionRetry(r projection.Retry) projection.Retry {
	r.MaxAttempts = projection.UnlimitedAttempts
	return r
}

// Close stops the runner at once: in-flight actions see their context
// cancelled, nothing more is recorded, and the runner's projections stop.
// Unfinished sagas stay as their streams record them; a new Runner resumes
// them. Close waits for the instances' goroutines to return and is
// idempotent.
func (r *Runner) Close() error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	r.mu.Unlock()
	err := r.projs.Close()
	for _, f := range r.closers {
		f()
	}
	r.cancel()
	r.inflight.Wait()
	return err
}

// spawn runs f on a tracked goroutine unless the runner is closed.
func (r *Runner) spawn(f func()) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return false
	}
	r.inflight.Add(1)
	go func() {
		defer r.inflight.Done()
		f()
	}()
	return true
}

// bounded calls f with ctx bounded by the attempt timeout, turning a panic
// into a rejection. An error after the timeout passed matches
// orchestrix.ErrOutcomeUnknown, so it is retried.
func (r *Runner) bounded(ctx context.Context, f func(ctx context.Context) error) (err error) {
	if d := r.cfg.AttemptTimeout; d > 0 {
		actx, cancel := context.WithCancelCause(ctx)
		t := r.cfg.Clock.AfterFunc(d, func() { cancel(errAttemptTimeout) })
		defer func() {
			t.Stop()
			cancel(nil)
		}()
		ctx = actx
	}
	defer func() {
		if v := recover(); v != nil {
			err = Reject(&aggregate.PanicError{Func: "saga action", Value: v})
		}
	}()
	err = f(ctx)
	if err != nil && ctx.Err() != nil && errors.Is(context.Cause(ctx), errAttemptTimeout) {
		err = fmt.Errorf("%w: %w", errAttemptTimeout, err)
	}
	return err
}

// envelope encodes ev as the event at version of the stream recording saga
// or process id: its id derives from stream and version (so a retried
// append is recognised as a duplicate), its subject and correlation id
// are id.
func (r *Runner) envelope(stream, id string, version uint64, ev any) (orchestrix.Envelope, error) {
	env, err := r.cfg.Registry.Marshal(ev)
	if err != nil {
		return env, fmt.Errorf("encoding %T: %w", ev, err)
	}
	env.ID = eventID(stream, version)
	env.Source = r.cfg.Source
	env.Subject = id
	env.CorrelationID = id
	env.Time = r.cfg.Clock.Now()
	return env, nil
}

// registerEvents registers the saga event types in reg (accepting ones
// already registered under the same names).
func registerEvents(reg *orchestrix.Registry) error {
	for _, err := range []error{
		register[Started](reg, TypeStarted),
		register[StepStarted](reg, TypeStepStarted),
		register[StepCompleted](reg, TypeStepCompleted),
		register[StepFailed](reg, TypeStepFailed),
		register[StepCompensated](reg, TypeStepCompensated),
		register[Completed](reg, TypeCompleted),
		register[Compensated](reg, TypeCompensated),
		register[Failed](reg, TypeFailed),
		register[Handled](reg, TypeHandled),
	} {
		if err != nil {
			return fmt.Errorf("saga: registering event types: %w", err)
		}
	}
	return nil
}

func register[T any](reg *orchestrix.Registry, name string) error {
	if got, err := reg.TypeName(reflect.New(reflect.TypeFor[T]()).Elem().Interface()); err == nil && got == name {
		return nil
	}
	return orchestrix.Register[T](reg, name)
}

// Attributes of the orchestrix.saga.step span besides telemetry.AttrSaga
// and telemetry.AttrSagaStep.
const (
	attrSagaID       = attribute.Key("orchestrix.saga.id")
	attrCompensating = attribute.Key("orchestrix.saga.compensating")
	attrAttempt      = attribute.Key("orchestrix.saga.attempt")
)

func cmpErr(first, err error) error {
	if first != nil {
		return first
	}
	return err
}

// claim reserves key for one registration (an orchestration's name, or
// "process:" + a process manager's name); what names it in the error.
// closer, when not nil, runs in Close before the instances stop.
func (r *Runner) claim(key, what string, closer func()) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case r.closed:
		return orchestrix.ErrClosed
	case r.sagas[key]:
		return fmt.Errorf("%w: %s", ErrAlreadyRegistered, what)
	}
	r.sagas[key] = true
	if closer != nil {
		r.closers = append(r.closers, closer)
	}
	return nil
}

// follow starts the projections of the registration named owner (for
// errors) on the runner's projection manager.
func (r *Runner) follow(owner string, ps ...projection.Projection) error {
	for _, p := range ps {
		if err := r.projs.Add(context.Background(), p); err != nil {
			return fmt.Errorf("%s: %w", owner, err)
		}
	}
	return nil
}

// statuses returns the status of the runner's projections named names.
func (r *Runner) statuses(ctx context.Context, names ...string) ([]projection.Status, error) {
	out := make([]projection.Status, 0, len(names))
	for _, n := range names {
		st, err := r.projs.Status(ctx, n)
		if err != nil {
			return nil, err
		}
		out = append(out, st)
	}
	return out, nil
}

// heldBack returns the checkpoint store of a projection whose checkpoint
// must not pass what is still in progress: low returns the position of
// the oldest event whose work is unfinished (0 when none is).
func (r *Runner) heldBack(low func() uint64) projection.CheckpointStore {
	return lowWater{inner: r.cfg.Checkpoints, s: low}
}

// lowWater is the CheckpointStore of heldBack: it saves the position the
// manager reached, held back to just before the oldest unfinished event
// (a saga's Started event, a process's Handled event with a pending
// timeout).
type lowWater struct {
	inner projection.CheckpointStore
	s     func() uint64
}

func (l lowWater) Load(ctx context.Context, name string) (uint64, error) {
	return l.inner.Load(ctx, name)
}

func (l lowWater) Save(ctx context.Context, name string, position uint64) error {
	if low := l.s(); low != 0 && low-1 < position {
		position = low - 1
	}
	return l.inner.Save(ctx, name, position)
}

// sleepOn waits d on clock; it reports false when ctx ended first.
func sleepOn(ctx context.Context, clock orchestrix.Clock, d time.Duration) bool {
	done := make(chan struct{})
	t := clock.AfterFunc(d, func() { close(done) })
	defer t.Stop()
	select {
	case <-done:
		return true
	case <-ctx.Done():
		return false
	}
}

// attemptBudget counts the failed attempts of a step or process handler
// against Retry.MaxAttempts. An attempt that failed with
// orchestrix.ErrClosed does not count: the system the commands go to is
// shutting down, which is not the step failing, so stopping a service
// never compensates a saga or fails a process.
type attemptBudget struct{ failed int }

// spent records an attempt that failed with err and reports whether the
// policy gives up now.
func (b *attemptBudget) spent(r projection.Retry, err error) bool {
	if !errors.Is(err, orchestrix.ErrClosed) {
		b.failed++
	}
	return r.GivesUpAfter(b.failed)
}
