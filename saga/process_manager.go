package saga

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"reflect"
	"sync"

	"github.com/orchestrix/orchestrix"
	"github.com/orchestrix/orchestrix/internal/commandtap"
	"github.com/orchestrix/orchestrix/internal/telemetryhooks"
	"github.com/orchestrix/orchestrix/journal"
	"github.com/orchestrix/orchestrix/projection"
	"github.com/orchestrix/orchestrix/telemetry"
)

// processParallelism bounds how many processes of one manager handle
// events at the same time.
const processParallelism = 256

// processBatch is how many journal records the events projection reads at
// a time.
const processBatch = 1024

// ProcessManager executes the processes of one registered Process and
// reports their status. It is safe for concurrent use.
type ProcessManager[S any] struct {
	r      *Runner
	p      *Process[S]
	name   string
	byType map[string]*processHandler[S]

	mu      sync.Mutex
	locks   map[string]*idLock
	armed   map[string]*armedTimers // id → timers armed from its record
	changed signals                 // wakes the Waits of one process
}

// RegisterProcess validates p and starts executing its processes: the
// runner follows the journal's global log for the events p handles (a
// projection "process.<name>" with its checkpoint in Config.Checkpoints)
// and the processes' records for their timeouts ("process.<name>.timers",
// held back to the oldest process with a pending timeout, so that a new
// Runner re-arms them all).
func RegisterProcess[S any](r *Runner, p *Process[S]) (*ProcessManager[S], error) {
	if p == nil {
		return nil, fmt.Errorf("%w: nil process", ErrInvalidSaga)
	}
	if err := p.validate(); err != nil {
		return nil, err
	}
	m := &ProcessManager[S]{
		r: r, p: p, name: p.name,
		byType: make(map[string]*processHandler[S], len(p.handlers)),
		locks:  make(map[string]*idLock),
		armed:  make(map[string]*armedTimers),
	}
	types := make([]string, 0, len(p.handlers))
	for _, h := range p.handlers {
		name, err := r.cfg.Registry.TypeName(reflect.Zero(h.goType).Interface())
		if err != nil {
			return nil, fmt.Errorf("%w %q: handler for %v: %w", ErrInvalidSaga, p.name, h.goType, err)
		}
		h.typeName = name
		m.byType[name] = h
		types = append(types, name)
	}
	if err := r.claim("process:"+p.name, fmt.Sprintf("process %q", p.name), m.disarmAll); err != nil {
		return nil, err
	}
	kind := ProcessKindPrefix + p.name
	if err := r.follow(fmt.Sprintf("process %q", p.name), projection.Projection{
		Name:        kind + ".timers",
		Handler:     projection.HandlerFunc(m.arm),
		Filter:      projection.Filter{Kinds: []string{kind}, Types: []string{TypeHandled}},
		Checkpoints: r.heldBack(m.lowWater),
	}, projection.Projection{
		Name:        kind,
		Handler:     projection.HandlerFunc(m.handle),
		Filter:      projection.Filter{Types: types},
		BatchSize:   processBatch,
		Checkpoints: r.cfg.Checkpoints,
	}); err != nil {
		return nil, err
	}
	return m, nil
}

// Name returns the process manager's name.
func (m *ProcessManager[S]) Name() string { return m.name }

// Stream returns the stream recording process id.
func (m *ProcessManager[S]) Stream(id string) string { return ProcessStream(m.name, id) }

// idLock serializes the inputs of one process.
type idLock struct {
	mu   sync.Mutex
	refs int
}

// lock serializes the inputs of process id; call the returned function to
// release it.
func (m *ProcessManager[S]) lock(id string) func() {
	m.mu.Lock()
	l := m.locks[id]
	if l == nil {
		l = &idLock{}
		m.locks[id] = l
	}
	l.refs++
	m.mu.Unlock()
	l.mu.Lock()
	return func() {
		l.mu.Unlock()
		m.mu.Lock()
		if l.refs--; l.refs == 0 {
			delete(m.locks, id)
		}
		m.mu.Unlock()
	}
}

// handle is the handler of the events projection: it delivers each event
// to its process, the processes of a batch concurrently, each one's
// events in order, and returns once every delivery is recorded.
func (m *ProcessManager[S]) handle(ctx context.Context, batch []projection.Event) error {
	order := []string{}
	byID := make(map[string][]delivery[S])
	for _, ev := range batch {
		h := m.byType[ev.Envelope.Type]
		if h == nil {
			continue
		}
		id, ok := h.correlate(ev)
		if !ok {
			continue
		}
		if err := validateID(id); err != nil {
			return projection.Permanent(fmt.Errorf("process %q: event at position %d: %w", m.name, ev.Position, err))
		}
		if _, seen := byID[id]; !seen {
			order = append(order, id)
		}
		byID[id] = append(byID[id], delivery[S]{h, ev})
	}
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
		sem   = make(chan struct{}, processParallelism)
	)
	for _, id := range order {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			if err := m.deliver(ctx, id, byID[id]); err != nil {
				mu.Lock()
				first = cmpErr(first, err)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return first
}

// processRecord is a process as its newest Handled event says.
type processRecord struct {
	version uint64
	last    Handled
}

// load reads the newest Handled event of process id.
func (m *ProcessManager[S]) load(ctx context.Context, id string) (processRecord, error) {
	var rec processRecord
	stream := m.Stream(id)
	head, err := m.r.cfg.Journal.Head(ctx, stream)
	if err != nil || head == 0 {
		return rec, err
	}
	for r, err := range m.r.cfg.Journal.Read(ctx, stream, head, head, 1) {
		if err != nil {
			return rec, fmt.Errorf("process %q %q: reading stream: %w", m.name, id, err)
		}
		v, err := m.r.cfg.Registry.Unmarshal(r.Envelope)
		if err != nil {
			return rec, fmt.Errorf("process %q %q: decoding event %d: %w", m.name, id, r.Version, err)
		}
		h, ok := v.(Handled)
		if !ok {
			return rec, fmt.Errorf("process %q %q: event %d is a %T, not a Handled", m.name, id, r.Version, v)
		}
		rec.version, rec.last = r.Version, h
	}
	if rec.version == 0 {
		// Head said the stream has events; a read that finds none is
		// behind it (or the stream was deleted): not a fresh process.
		return rec, fmt.Errorf("process %q %q: stream %q has head %d but its newest event cannot be read", m.name, id, stream, head)
	}
	return rec, nil
}

// delivery is one event for one process.
type delivery[S any] struct {
	h  *processHandler[S]
	ev projection.Event
}

// deliver hands the events of one batch, in order, to process id, skipping
// those it already handled, those after it is done and, before it has
// begun, those that do not start it; it records what the handlers did in
// one append and returns once that is durable (nil) or a journal error
// stops it. When another writer recorded first, it reads the process
// again and runs the handlers again (with the same command ids).
func (m *ProcessManager[S]) deliver(ctx context.Context, id string, ds []delivery[S]) error {
	unlock := m.lock(id)
	defer unlock()
	for {
		rec, err := m.load(ctx, id)
		if err != nil {
			return err
		}
		cur := rec
		var out []Handled
		for _, d := range ds {
			h, ev := d.h, d.ev
			switch {
			case cur.last.Done, cur.version > 0 && cur.last.Through >= ev.Position:
				continue
			case cur.version == 0 && m.p.starters && !h.starts:
				continue
			}
			in := input[S]{
				key:   "event\x00" + ev.Envelope.ID,
				event: ev, name: h.typeName, trace: ev.Envelope.TraceParent,
				call: func(ctx context.Context, pc *ProcessContext[S]) error { return h.handle(ctx, pc, ev) },
			}
			next, err := m.run(ctx, id, &cur, in)
			if err != nil {
				return err
			}
			next.Position, next.EventID, next.Type = ev.Position, ev.Envelope.ID, h.typeName
			next.Through = max(cur.last.Through, ev.Position)
			if next.Failure != nil {
				next.Failure.Position, next.Failure.Type = ev.Position, h.typeName
			}
			out = append(out, next)
			cur.version, cur.last = cur.version+1, next
		}
		if len(out) == 0 {
			return nil
		}
		ok, err := m.record(ctx, id, rec.version, out...)
		if err != nil {
			return err
		}
		if ok {
			m.count(telemetry.InputEvent, out...)
			return nil
		}
	}
}

// count adds recorded inputs to process_inputs_total.
func (m *ProcessManager[S]) count(input string, recs ...Handled) {
	var handled, failed, completed int
	for _, h := range recs {
		switch {
		case h.Failure != nil:
			failed++
		case h.Done:
			completed++
		default:
			handled++
		}
	}
	mt := telemetryhooks.MetricsOf(m.r.cfg.Metrics)
	mt.ProcessInputs(m.name, input, telemetry.OutcomeHandled, handled)
	mt.ProcessInputs(m.name, input, telemetry.OutcomeFailed, failed)
	mt.ProcessInputs(m.name, input, telemetry.OutcomeCompleted, completed)
}

// input is one thing a process handles: an event or a timeout.
type input[S any] struct {
	key     string // identity for command ids
	event   projection.Event
	timeout string
	name    string // for spans and logs
	trace   string // traceparent the handler's span is a child of
	call    func(ctx context.Context, pc *ProcessContext[S]) error
}

// run calls the input's handler until it succeeds, fails for good or ctx
// ends, and returns the Handled event to record (without the input's own
// fields). An error means ctx ended.
func (m *ProcessManager[S]) run(ctx context.Context, id string, rec *processRecord, in input[S]) (Handled, error) {
	cfg := &m.r.cfg
	codec := cfg.Registry.Codec()
	prev := rec.last
	next := Handled{State: prev.State, Timers: prev.Timers, Failures: prev.Failures, LastFailure: prev.LastFailure}
	fail := func(err error) (Handled, error) {
		f := &ProcessFailure{Reason: err.Error()}
		next.Failure, next.Failures, next.LastFailure = f, next.Failures+1, f
		m.r.log.Warn("process handler failed; recorded, the process goes on",
			slog.String("process", m.name), slog.String("id", id), slog.String("input", in.name), slog.Any("error", err))
		return next, nil
	}
	if rec.version == 0 {
		var s S
		if m.p.initial != nil {
			s = m.p.initial(id)
		}
		raw, err := codec.Encode(s)
		if err != nil {
			return fail(fmt.Errorf("encoding the initial state: %w", err))
		}
		next.State = raw
	}
	traced := telemetry.ContextFromTraceParent(ctx, in.trace)
	var budget attemptBudget
	for attempt := 1; ; attempt++ {
		pc := &ProcessContext[S]{
			Process: m.name, ID: id, Event: in.event, Timeout: in.timeout, Attempt: attempt,
			now: cfg.Clock.Now(), timers: maps.Clone(next.Timers), stream: m.Stream(id), key: in.key,
		}
		if in.timeout != "" {
			delete(pc.timers, in.timeout) // fired, unless the handler sets it again
		}
		if err := codec.Decode(next.State, &pc.State); err != nil {
			return fail(fmt.Errorf("decoding process state: %w", err))
		}
		err := m.traced(traced, id, in, pc)
		if err == nil {
			raw, err := codec.Encode(pc.State)
			if err != nil {
				return fail(fmt.Errorf("encoding process state: %w", err))
			}
			next.State, next.Timers, next.Done = raw, pc.timers, pc.done
			if pc.done {
				next.Timers = nil
			}
			return next, nil
		}
		if ctx.Err() != nil {
			return next, context.Cause(ctx)
		}
		if isRejection(err) {
			return fail(err)
		}
		if budget.spent(cfg.Retry, err) {
			return fail(fmt.Errorf("gave up after %d attempts: %w", attempt, err))
		}
		m.r.log.Debug("process handler failed; retrying with the same command ids",
			slog.String("process", m.name), slog.String("id", id), slog.String("input", in.name), slog.Int("attempt", attempt), slog.Any("error", err))
		if !sleepOn(ctx, cfg.Clock, cfg.Retry.Backoff(attempt)) {
			return next, context.Cause(ctx)
		}
	}
}

// traced runs one handler call in an orchestrix.saga.step span (saga =
// the process manager's name, step = the input).
func (m *ProcessManager[S]) traced(ctx context.Context, id string, in input[S], pc *ProcessContext[S]) error {
	ctx, span := telemetryhooks.StartSagaStepSpan(ctx, m.r.tracer, m.name, in.name)
	if span.IsRecording() {
		span.SetAttributes(attrSagaID.String(id), attrAttempt.Int(pc.Attempt))
	}
	pc.TraceParent = telemetry.TraceParent(ctx)
	ctx = commandtap.WithOrigin(ctx, commandtap.Origin{Saga: m.name, ID: id, Process: true, Step: in.name, Attempt: pc.Attempt})
	err := m.r.bounded(ctx, func(ctx context.Context) error { return in.call(ctx, pc) })
	telemetryhooks.EndSpan(span, err)
	return err
}

// record appends recs as the versions after version of process id. It
// reports false when another writer appended first.
func (m *ProcessManager[S]) record(ctx context.Context, id string, version uint64, recs ...Handled) (bool, error) {
	stream := m.Stream(id)
	envs := make([]orchestrix.Envelope, len(recs))
	for i, next := range recs {
		env, err := m.r.envelope(stream, id, version+1+uint64(i), next)
		if err != nil {
			return false, fmt.Errorf("process %q %q: %w", m.name, id, err)
		}
		env.CausationID = next.EventID
		envs[i] = env
	}
	_, err := m.r.cfg.Journal.Append(ctx, stream, journal.Exact(version), envs)
	switch {
	case err == nil:
		m.changed.signal(id)
		return true, nil
	case errors.Is(err, orchestrix.ErrVersionConflict):
		return false, nil
	default:
		return false, fmt.Errorf("process %q %q: recording: %w", m.name, id, err)
	}
}

// Status returns what the journal records of process id.
func (m *ProcessManager[S]) Status(ctx context.Context, id string) (ProcessStatus[S], error) {
	st := ProcessStatus[S]{Process: m.name, ID: id, Stream: m.Stream(id)}
	if err := validateID(id); err != nil {
		return st, err
	}
	rec, err := m.load(ctx, id)
	if err != nil {
		return st, err
	}
	if rec.version == 0 {
		if m.p.initial != nil {
			st.State = m.p.initial(id)
		}
		return st, nil
	}
	h := rec.last
	if err := m.r.cfg.Registry.Codec().Decode(h.State, &st.State); err != nil {
		return st, fmt.Errorf("process %q %q: decoding state: %w", m.name, id, err)
	}
	st.Begun, st.Done, st.Version, st.Through = true, h.Done, rec.version, h.Through
	st.Timers, st.Failures, st.LastFailure = h.Timers, h.Failures, h.LastFailure
	return st, nil
}

// Wait blocks until cond holds for the status of process id and returns
// that status, or returns ctx's error with the last status seen. cond is
// evaluated on the process's status each time this manager records an
// input of process id; it must depend on that status only and must not
// block.
func (m *ProcessManager[S]) Wait(ctx context.Context, id string, cond func(ProcessStatus[S]) bool) (ProcessStatus[S], error) {
	return waitFor(ctx, &m.changed, id, m.Status, cond)
}

// Skip passes over the event at position that the events projection
// ("process.<name>") failed at for good (a correlate function returned an
// invalid id), and starts the projection again after it. position must be
// that projection's Status.FailedPosition; see projection.Manager.Skip.
func (m *ProcessManager[S]) Skip(ctx context.Context, position uint64) error {
	return m.r.projs.Skip(ctx, ProcessKindPrefix+m.name, position)
}

// Projections returns the status of the manager's projections: the events
// it handles ("process.<name>") and its timers ("process.<name>.timers").
func (m *ProcessManager[S]) Projections(ctx context.Context) ([]projection.Status, error) {
	kind := ProcessKindPrefix + m.name
	return m.r.statuses(ctx, kind, kind+".timers")
}

// CaughtUp waits until the manager has handled every event committed
// before the call, and armed the timeouts they set. A projection that
// stopped (see Projections) makes it return that projection's error.
func (m *ProcessManager[S]) CaughtUp(ctx context.Context) error {
	w, _ := m.r.cfg.Journal.(journal.Watcher) // Config.Validate checked it
	last, err := w.LastPosition(ctx)
	if err != nil {
		return err
	}
	kind := ProcessKindPrefix + m.name
	for i, n := range []string{kind, kind + ".timers"} {
		if i == 1 {
			// The records of the events handled lie after last.
			if last, err = w.LastPosition(ctx); err != nil {
				return err
			}
		}
		st, err := m.r.projs.Wait(ctx, n, func(st projection.Status) bool {
			return st.Position >= last || st.State == projection.StateFailed
		})
		if err != nil {
			return err
		}
		if st.State == projection.StateFailed {
			return fmt.Errorf("process %q: projection %q failed: %v", m.name, n, st.LastError)
		}
	}
	return nil
}
