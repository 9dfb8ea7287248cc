package saga

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/orchestrix/orchestrix"
	"github.com/orchestrix/orchestrix/actor"
	"github.com/orchestrix/orchestrix/aggregate"
	"github.com/orchestrix/orchestrix/journal"
	"github.com/orchestrix/orchestrix/projection"
	"github.com/orchestrix/orchestrix/telemetry"
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
		cfg: cfg, log: cfg.Logger, tracer: telemetry.Tracer(cfg.TracerProvider), projs: projs,
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

// Saga is the typed handle of one registered orchestration: begin sagas
// and read their status through it. It is safe for concurrent use.
type Saga[D any] struct {
	r    *Runner
	o    *Orchestration[D]
	name string

	mu       sync.Mutex
	active   map[string]*instance[D] // executing in this process
	inflight map[string]uint64       // id → position of its Started event
	changed  signals                 // wakes the Waits of one saga
}

// Register validates o and starts executing its sagas: it resumes the
// unfinished ones recorded in the journal and, with StartOn, begins new
// ones for the selected events. The orchestration must not be changed
// afterwards.
func Register[D any](r *Runner, o *Orchestration[D]) (*Saga[D], error) {
	if o == nil {
		return nil, fmt.Errorf("%w: nil orchestration", ErrInvalidSaga)
	}
	if err := o.validate(); err != nil {
		return nil, err
	}
	r.mu.Lock()
	switch {
	case r.closed:
		r.mu.Unlock()
		return nil, orchestrix.ErrClosed
	case r.sagas[o.name]:
		r.mu.Unlock()
		return nil, fmt.Errorf("%w: %q", ErrAlreadyRegistered, o.name)
	}
	r.sagas[o.name] = true
	r.mu.Unlock()

	s := &Saga[D]{
		r: r, o: o, name: o.name,
		active:   make(map[string]*instance[D]),
		inflight: make(map[string]uint64),
	}
	ctx := context.Background()
	kind := StreamKindPrefix + o.name
	// The driver follows the saga's own Started events. Its checkpoint
	// never passes the oldest saga still running, so a restarted runner
	// sees that saga's Started event again and resumes it.
	if err := r.projs.Add(ctx, projection.Projection{
		Name:        kind,
		Handler:     projection.HandlerFunc(s.drive),
		Filter:      projection.Filter{Kinds: []string{kind}, Types: []string{TypeStarted}},
		Checkpoints: lowWater{inner: r.cfg.Checkpoints, s: s.lowWater},
	}); err != nil {
		return nil, fmt.Errorf("saga %q: %w", o.name, err)
	}
	if o.start != nil {
		if err := r.projs.Add(ctx, projection.Projection{
			Name:        kind + ".trigger",
			Handler:     projection.HandlerFunc(s.trigger),
			Filter:      o.filter,
			Checkpoints: r.cfg.Checkpoints,
		}); err != nil {
			return nil, fmt.Errorf("saga %q: %w", o.name, err)
		}
	}
	return s, nil
}

// Name returns the orchestration's name.
func (s *Saga[D]) Name() string { return s.name }

// Stream returns the stream recording saga id.
func (s *Saga[D]) Stream(id string) string { return Stream(s.name, id) }

// Begin begins saga id with data and returns once its start is durable;
// the runner then executes it. Begin is idempotent: when saga id has
// already begun it does nothing (the first data stays).
//
// The traceparent of the span in ctx (telemetry.TraceParent), if any, is
// recorded with the saga's start: every step span of the saga, in this
// process or after a restart, is a child of that span.
func (s *Saga[D]) Begin(ctx context.Context, id string, data D) error {
	return s.begin(ctx, id, data, 0, "", telemetry.TraceParent(ctx))
}

func (s *Saga[D]) begin(ctx context.Context, id string, data D, trigger uint64, causation, traceParent string) error {
	if err := validateID(id); err != nil {
		return err
	}
	raw, err := s.r.cfg.Registry.Codec().Encode(data)
	if err != nil {
		return fmt.Errorf("saga %q %q: encoding data: %w", s.name, id, err)
	}
	ev := Started{Data: raw, Trigger: trigger}
	if s.o.deadline > 0 {
		ev.Deadline = s.r.cfg.Clock.Now().Add(s.o.deadline)
	}
	env, err := s.envelope(id, 1, ev)
	if err != nil {
		return err
	}
	env.CausationID, env.TraceParent = causation, traceParent
	if _, err := s.r.cfg.Journal.Append(ctx, s.Stream(id), journal.NoStream, []orchestrix.Envelope{env}); err != nil {
		if errors.Is(err, orchestrix.ErrVersionConflict) {
			return nil // began before, with other data or another trigger
		}
		return fmt.Errorf("saga %q %q: recording start: %w", s.name, id, err)
	}
	return nil
}

// envelope encodes a saga event that will be the stream's event at
// version.
func (s *Saga[D]) envelope(id string, version uint64, ev any) (orchestrix.Envelope, error) {
	env, err := s.r.envelope(s.Stream(id), id, version, ev)
	if err != nil {
		return env, fmt.Errorf("saga %q %q: %w", s.name, id, err)
	}
	return env, nil
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

// trigger is the handler of the StartOn projection: it begins a saga for
// every accepted event of the batch, concurrently, and returns once every
// start is durable.
func (s *Saga[D]) trigger(ctx context.Context, batch []projection.Event) error {
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
	)
	for _, ev := range batch {
		id, data, ok := s.o.start(ev)
		if !ok {
			continue
		}
		if err := validateID(id); err != nil {
			return projection.Permanent(fmt.Errorf("saga %q: event at position %d: %w", s.name, ev.Position, err))
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := s.begin(ctx, id, data, ev.Position, ev.Envelope.ID, ev.Envelope.TraceParent); err != nil {
				mu.Lock()
				first = cmpErr(first, err)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return first
}

func cmpErr(first, err error) error {
	if first != nil {
		return first
	}
	return err
}

// drive is the handler of the driver projection: it starts an instance
// for every Started event of a saga not already executing here, waiting
// for a free slot when Config.MaxActive instances are executing.
func (s *Saga[D]) drive(ctx context.Context, batch []projection.Event) error {
	for _, ev := range batch {
		id := ev.Envelope.Subject
		s.mu.Lock()
		_, running := s.active[id]
		s.mu.Unlock()
		if running {
			continue
		}
		if s.r.slots != nil {
			select {
			case s.r.slots <- struct{}{}:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		release := func() {
			if s.r.slots != nil {
				<-s.r.slots
			}
		}
		x := &instance[D]{s: s, id: id, stream: s.Stream(id)}
		s.mu.Lock()
		s.active[id] = x
		s.inflight[id] = ev.Position
		s.mu.Unlock()
		if !s.r.spawn(func() { defer release(); x.run(s.r.ctx) }) {
			release()
			s.forget(id)
			return orchestrix.ErrClosed
		}
	}
	return nil
}

// forget removes a finished (or abandoned) instance.
func (s *Saga[D]) forget(id string) {
	s.mu.Lock()
	delete(s.active, id)
	delete(s.inflight, id)
	s.mu.Unlock()
	s.changed.signal(id)
}

// lowWater returns the position of the oldest Started event of a saga
// still executing, or 0 when none is.
func (s *Saga[D]) lowWater() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	var low uint64
	for _, pos := range s.inflight {
		if low == 0 || pos < low {
			low = pos
		}
	}
	return low
}

// Active returns how many sagas this process is executing right now.
func (s *Saga[D]) Active() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.active)
}

// Status returns the status of saga id, read from its stream (and, while
// this process executes it, the attempt in progress). A saga that has not
// begun has StateUnknown.
func (s *Saga[D]) Status(ctx context.Context, id string) (Status[D], error) {
	st := Status[D]{Saga: s.name, ID: id, Stream: s.Stream(id)}
	if err := validateID(id); err != nil {
		return st, err
	}
	rec, err := s.load(ctx, id)
	if err != nil {
		return st, err
	}
	if err := s.fill(&st, &rec); err != nil {
		return st, err
	}
	s.mu.Lock()
	x := s.active[id]
	s.mu.Unlock()
	st.Executing = x != nil
	if x != nil && !st.State.Terminal() {
		st.Attempt, st.LastError = x.progress()
	}
	return st, nil
}

// fill copies a folded record into st.
func (s *Saga[D]) fill(st *Status[D], rec *record) error {
	st.State, st.Version = rec.state, rec.version
	if rec.state == StateUnknown {
		return nil
	}
	if err := s.r.cfg.Registry.Codec().Decode(rec.data, &st.Data); err != nil {
		return fmt.Errorf("saga %q %q: decoding data: %w", s.name, st.ID, err)
	}
	name := func(i int) string {
		if i >= 0 && i < len(s.o.steps) {
			return s.o.steps[i].name
		}
		return fmt.Sprintf("#%d", i)
	}
	for _, i := range rec.done {
		st.Done = append(st.Done, name(i))
	}
	for _, i := range rec.undone {
		st.Undone = append(st.Undone, name(i))
	}
	st.Failure, st.CompensationFailure = rec.failure, rec.compFailure
	switch rec.state {
	case StateRunning:
		st.Step = rec.next
		st.Deadline = rec.deadline(rec.next)
	case StateCompensating:
		st.Step = rec.compensateNext
	}
	st.StepName = name(st.Step)
	return nil
}

// Wait blocks until cond holds for the status of saga id and returns that
// status, or returns ctx's error with the last status seen. cond is
// evaluated on the saga's status each time this process's runner records
// progress of saga id (or is done executing it); it must depend on that
// status only and must not block.
func (s *Saga[D]) Wait(ctx context.Context, id string, cond func(Status[D]) bool) (Status[D], error) {
	return waitFor(ctx, &s.changed, id, s.Status, cond)
}

// Finished is a Wait condition: the saga reached a terminal state.
func Finished[D any](st Status[D]) bool { return st.State.Terminal() }

// SkipTrigger passes over the event at position that the StartOn
// projection ("saga.<name>.trigger") failed at for good (its start
// function returned an invalid id), and starts the projection again after
// it. position must be that projection's Status.FailedPosition; see
// projection.Manager.Skip.
func (s *Saga[D]) SkipTrigger(ctx context.Context, position uint64) error {
	return s.r.projs.Skip(ctx, StreamKindPrefix+s.name+".trigger", position)
}

// Projections returns the status of the saga's projections (the driver
// "saga.<name>" and, with StartOn, "saga.<name>.trigger"): a failed one
// (a journal that cannot be read, an invalid saga id from a start
// function) stops sagas from beginning or resuming.
func (s *Saga[D]) Projections(ctx context.Context) ([]projection.Status, error) {
	names := []string{StreamKindPrefix + s.name}
	if s.o.start != nil {
		names = append(names, StreamKindPrefix+s.name+".trigger")
	}
	out := make([]projection.Status, 0, len(names))
	for _, n := range names {
		st, err := s.r.projs.Status(ctx, n)
		if err != nil {
			return nil, err
		}
		out = append(out, st)
	}
	return out, nil
}

// lowWater is the driver's CheckpointStore: it saves the position the
// manager reached, held back to just before the oldest Started event of a
// saga still executing.
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
