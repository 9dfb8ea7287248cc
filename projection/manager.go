package projection

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"sync"

	proto "github.com/asynkron/protoactor-go/actor"
	"github.com/orchestrix/orchestrix"
	"github.com/orchestrix/orchestrix/actor"
	"github.com/orchestrix/orchestrix/internal/protosys"
	"github.com/orchestrix/orchestrix/internal/telemetryhooks"
	"github.com/orchestrix/orchestrix/journal"
	"github.com/orchestrix/orchestrix/telemetry"
	"go.opentelemetry.io/otel/trace"
)

// Config configures a Manager.
type Config struct {
	// Journal is the log projections read. Required; it must also
	// implement journal.Watcher, which lets projections follow commits
	// without polling.
	Journal journal.Journal
	// Registry decodes payloads (applying upcasters). Required.
	Registry *orchestrix.Registry
	// Checkpoints is the store of projections that bring none of their
	// own. Nil means every projection must set Projection.Checkpoints.
	Checkpoints CheckpointStore
	// Retry is the policy of projections that set none; the zero value
	// uses the defaults (see Retry).
	Retry Retry
	// Clock measures retry backoff. Nil means orchestrix.SystemClock.
	Clock orchestrix.Clock
	// Logger receives failures (Error), retries (Warn) and life-cycle
	// lines. Nil discards them.
	Logger *slog.Logger
	// System is the actor system the projection actors run in (it is not
	// shut down by Close). Nil makes the manager run them on a private
	// one, which Close shuts down.
	System *actor.System
	// Metrics receives projection_position and projection_lag_events for
	// every projection whenever its status changes. Nil records nothing.
	Metrics *telemetry.Metrics
	// TracerProvider makes one orchestrix.projection.batch span per
	// handler call, linked to the traces of the batch's events; a handler
	// that sends commands with its ctx makes them children of that span.
	// Nil means the global provider (a no-op unless an OpenTelemetry SDK
	// is installed).
	TracerProvider trace.TracerProvider
}

// Validate reports whether c is usable.
func (c Config) Validate() error {
	switch {
	case c.Journal == nil:
		return fmt.Errorf("%w: Config.Journal is nil", ErrInvalidProjection)
	case c.Registry == nil:
		return fmt.Errorf("%w: Config.Registry is nil", ErrInvalidProjection)
	}
	if _, ok := c.Journal.(journal.Watcher); !ok {
		return fmt.Errorf("%w: journal %T does not implement journal.Watcher", ErrInvalidProjection, c.Journal)
	}
	if err := c.Retry.Validate(); err != nil {
		return fmt.Errorf("%w: Config: %w", ErrInvalidProjection, err)
	}
	return nil
}

// Manager runs projections, each as its own protoactor-go actor that
// drives a worker goroutine: the actor serialises the control operations
// (start, stop, skip, rebuild) of its projection, and the worker reads the
// journal and calls the handler. Projections run in parallel with each
// other. All methods are safe for concurrent use.
type Manager struct {
	cfg       Config
	watcher   journal.Watcher
	system    *proto.ActorSystem
	ownSystem bool
	log       *slog.Logger

	mu      sync.Mutex
	closed  bool
	runners map[string]*runner
	// stopped is closed once Close has stopped every actor, releasing
	// requests whose actor will never answer.
	stopped chan struct{}
}

// NewManager returns a manager without projections.
func NewManager(cfg Config) (*Manager, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Clock == nil {
		cfg.Clock = orchestrix.SystemClock{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	m := &Manager{
		cfg:     cfg,
		watcher: cfg.Journal.(journal.Watcher),
		log:     cfg.Logger,
		runners: make(map[string]*runner),
		stopped: make(chan struct{}),
	}
	if cfg.System != nil {
		m.system = protosys.Of(cfg.System)
	} else {
		quiet := slog.New(slog.DiscardHandler)
		m.system = proto.NewActorSystem(proto.WithLoggerFactory(func(*proto.ActorSystem) *slog.Logger { return quiet }))
		m.ownSystem = true
	}
	return m, nil
}

// Add registers p and starts it: it catches up from its checkpoint, then
// follows the journal. ctx bounds only the call, not the projection's
// life. A bad definition matches ErrInvalidProjection, a name in use
// ErrDuplicateProjection, and a closed manager orchestrix.ErrClosed.
func (m *Manager) Add(ctx context.Context, p Projection) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := p.validate(); err != nil {
		return err
	}
	store := p.Checkpoints
	if store == nil {
		store = m.cfg.Checkpoints
	}
	if store == nil {
		return fmt.Errorf("%w: projection %q has no CheckpointStore and Config.Checkpoints is nil", ErrInvalidProjection, p.Name)
	}
	retry := p.Retry
	if retry.isZero() {
		retry = m.cfg.Retry
	}
	r := &runner{
		p:         p,
		filter:    compileFilter(p.Filter),
		retry:     retry.withDefaults(),
		store:     store,
		batchSize: p.BatchSize,
		journal:   m.cfg.Journal,
		watcher:   m.watcher,
		registry:  m.cfg.Registry,
		clock:     m.cfg.Clock,
		metrics:   m.cfg.Metrics,
		tracer:    telemetryhooks.Tracer(m.cfg.TracerProvider),
		log:       m.log.With(slog.String("projection", p.Name)),
		status:    Status{Name: p.Name},
		changed:   make(chan struct{}),
	}
	if r.batchSize == 0 {
		r.batchSize = DefaultBatchSize
	}

	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return orchestrix.ErrClosed
	}
	if _, dup := m.runners[p.Name]; dup {
		m.mu.Unlock()
		return fmt.Errorf("%w: %q", ErrDuplicateProjection, p.Name)
	}
	r.pid = m.system.Root.Spawn(proto.PropsFromProducer(func() proto.Actor { return &projectionActor{r: r} }))
	m.runners[p.Name] = r
	m.mu.Unlock()

	return m.request(ctx, r, opStart, 0)
}

// Start restarts a stopped, failed or completed projection from its
// checkpoint (a failed one retries the event it failed at). Starting a
// running projection does nothing.
func (m *Manager) Start(ctx context.Context, name string) error {
	r, err := m.runner(name)
	if err != nil {
		return err
	}
	return m.request(ctx, r, opStart, 0)
}

// Stop stops a projection and returns once its worker has returned (the
// handler's context is cancelled). Its checkpoint stays where it is; a
// failed or completed projection keeps its state.
func (m *Manager) Stop(ctx context.Context, name string) error {
	r, err := m.runner(name)
	if err != nil {
		return err
	}
	return m.request(ctx, r, opStop, 0)
}

// Skip passes over the event a projection failed at, for a poisoned event
// that can never be handled: it saves position as the checkpoint and
// starts the projection again after it. position must be the projection's
// Status.FailedPosition and the projection must be in State Failed;
// otherwise Skip returns an error matching ErrNotFailed and changes
// nothing.
func (m *Manager) Skip(ctx context.Context, name string, position uint64) error {
	r, err := m.runner(name)
	if err != nil {
		return err
	}
	return m.request(ctx, r, opSkip, position)
}

// Rebuild replays a projection from the start of the journal: it stops
// the projection, calls its Reset hook to clear the read model, saves
// checkpoint 0 and starts it again. Without a Reset hook it returns an
// error matching ErrNoReset and changes nothing. If Reset or the save
// fails, the projection is left stopped and the error returned.
func (m *Manager) Rebuild(ctx context.Context, name string) error {
	r, err := m.runner(name)
	if err != nil {
		return err
	}
	if r.p.Reset == nil {
		return fmt.Errorf("%w: projection %q", ErrNoReset, name)
	}
	return m.request(ctx, r, opRebuild, 0)
}

// Status returns the status of a projection, with Head and Lag computed
// from the journal's current last position. When the journal cannot tell
// it (it is closed, say; the projection's LastError then says so), Head is
// the last one the projection observed. Only ctx ending is an error.
func (m *Manager) Status(ctx context.Context, name string) (Status, error) {
	if err := ctx.Err(); err != nil {
		return Status{}, err
	}
	r, err := m.runner(name)
	if err != nil {
		return Status{}, err
	}
	head, headErr := m.watcher.LastPosition(ctx)
	if headErr != nil && ctx.Err() != nil {
		return Status{}, ctx.Err()
	}
	st, _ := r.snapshot()
	if headErr == nil {
		st.Head = max(st.Head, head)
		st.computeLag()
	}
	return st, nil
}

// Statuses returns the status of every projection, sorted by name, as in
// Status.
func (m *Manager) Statuses(ctx context.Context) ([]Status, error) {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil, orchestrix.ErrClosed
	}
	names := make([]string, 0, len(m.runners))
	for name := range m.runners {
		names = append(names, name)
	}
	m.mu.Unlock()
	sort.Strings(names)
	out := make([]Status, 0, len(names))
	for _, name := range names {
		st, err := m.Status(ctx, name)
		if err != nil {
			return nil, err
		}
		out = append(out, st)
	}
	return out, nil
}

// Wait blocks until cond holds for the projection's status and returns
// that status, or returns the context's error (with the last status seen)
// when ctx ends first. Head and Lag are the last the projection observed,
// without asking the journal. cond must not block.
func (m *Manager) Wait(ctx context.Context, name string, cond func(Status) bool) (Status, error) {
	r, err := m.runner(name)
	if err != nil {
		return Status{}, err
	}
	for {
		st, changed := r.snapshot()
		if cond(st) {
			return st, nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return st, ctx.Err()
		}
	}
}

// Close stops every projection (as Stop does, without saving anything
// more) and, when the manager started its own actor system, shuts it
// down. Later calls return orchestrix.ErrClosed. Close is idempotent.
func (m *Manager) Close() error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil
	}
	m.closed = true
	runners := make([]*runner, 0, len(m.runners))
	for _, r := range m.runners {
		runners = append(runners, r)
	}
	m.mu.Unlock()
	for _, r := range runners {
		// Stopping the actor stops its worker first (see Receive).
		if err := m.system.Root.StopFuture(r.pid).Wait(); err != nil {
			m.log.Warn("projection actor did not stop in time", slog.String("projection", r.p.Name), slog.Any("error", err))
		}
	}
	close(m.stopped)
	if m.ownSystem {
		m.system.Shutdown()
	}
	return nil
}

func (m *Manager) runner(name string) (*runner, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil, orchestrix.ErrClosed
	}
	r, ok := m.runners[name]
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrUnknownProjection, name)
	}
	return r, nil
}

// op is a control operation executed by a projection's actor.
type op int

const (
	opStart op = iota
	opStop
	opSkip
	opRebuild
)

// control is the message asking a projection's actor to run an op.
type control struct {
	ctx      context.Context
	op       op
	position uint64
	reply    chan error
}

// request sends a control message to r's actor and waits for its reply.
func (m *Manager) request(ctx context.Context, r *runner, o op, position uint64) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c := control{ctx: ctx, op: o, position: position, reply: make(chan error, 1)}
	m.system.Root.Send(r.pid, c)
	select {
	case err := <-c.reply:
		return err
	case <-ctx.Done():
		return ctx.Err()
	case <-m.stopped:
		select {
		case err := <-c.reply:
			return err
		default:
			return orchestrix.ErrClosed
		}
	}
}

// projectionActor owns one projection's worker.
type projectionActor struct {
	r *runner
}

// Receive implements proto.Actor.
func (a *projectionActor) Receive(c proto.Context) {
	switch msg := c.Message().(type) {
	case control:
		msg.reply <- a.r.control(msg)
	case *proto.Stopping, *proto.Restarting:
		a.r.stopWorker()
	}
}

// control runs one control operation; called only from the actor.
func (r *runner) control(c control) error {
	r.settle()
	switch c.op {
	case opStart:
		r.startWorker()
		return nil
	case opStop:
		r.stopWorker()
		return nil
	case opSkip:
		st, _ := r.snapshot()
		if r.running() || st.State != StateFailed || st.FailedPosition != c.position || c.position == 0 {
			return fmt.Errorf("%w: projection %q is %s at failed position %d, not failed at %d",
				ErrNotFailed, r.p.Name, st.State, st.FailedPosition, c.position)
		}
		if err := r.store.Save(c.ctx, r.p.Name, c.position); err != nil {
			return fmt.Errorf("projection %q: saving checkpoint %d to skip: %w", r.p.Name, c.position, err)
		}
		r.log.Warn("projection skipped an event", slog.Uint64("position", c.position), slog.Any("error", st.LastError))
		r.update(func(s *Status) { s.Position = c.position })
		r.startWorker()
		return nil
	case opRebuild:
		r.stopWorker()
		if err := r.p.Reset(c.ctx); err != nil {
			r.update(func(s *Status) { s.State, s.Live = StateStopped, false })
			return fmt.Errorf("projection %q: resetting the read model: %w", r.p.Name, err)
		}
		if err := r.store.Save(c.ctx, r.p.Name, 0); err != nil {
			r.update(func(s *Status) { s.State, s.Live = StateStopped, false })
			return fmt.Errorf("projection %q: resetting the checkpoint: %w", r.p.Name, err)
		}
		r.log.Info("projection rebuilding from position 0")
		r.update(func(s *Status) { s.Position = 0 })
		r.startWorker()
		return nil
	}
	return fmt.Errorf("projection: unknown control operation %d", c.op)
}
