package saga

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"reflect"
	"sync"
	"time"

	"github.com/orchestrix/orchestrix"
	"github.com/orchestrix/orchestrix/actor"
	"github.com/orchestrix/orchestrix/aggregate"
	"github.com/orchestrix/orchestrix/journal"
	"github.com/orchestrix/orchestrix/projection"
	"github.com/orchestrix/orchestrix/telemetry"
)

// ProcessKindPrefix starts the kind of every process stream: the record of
// process id of the process manager named name is the stream
// "process." + name + "-" + id.
const ProcessKindPrefix = "process."

// ProcessStream returns the journal stream recording process id of the
// process manager named name.
func ProcessStream(name, id string) string { return journal.StreamName(ProcessKindPrefix+name, id) }

// DefaultProcessAttempts is how many times a process handler is called for
// one input when Config.Retry.MaxAttempts is zero. Unlike a saga's steps,
// which retry without end by default, a process handler gives up (and
// the failure is recorded): while it retries, the other processes' events
// read in the same batch wait for it.
const DefaultProcessAttempts = 10

// processParallelism bounds how many processes of one manager handle
// events at the same time.
const processParallelism = 256

// processBatch is how many journal records the events projection reads at
// a time.
const processBatch = 1024

// Handled is the one event a process records: after every event (or
// timeout) it handles, the process's whole state, its pending timers and
// whether it is done. Reading a process means reading its newest Handled
// event, however long the process has lived.
type Handled struct {
	// Position is the global position of the event handled; 0 for a
	// timeout.
	Position uint64 `json:"position,omitempty"`
	// EventID and Type identify the event handled; Timeout names the
	// timeout handled instead.
	EventID string `json:"eventId,omitempty"`
	Type    string `json:"type,omitempty"`
	Timeout string `json:"timeout,omitempty"`
	// Through is the highest global position of any event the process
	// has handled: an event at or below it is a redelivery.
	Through uint64 `json:"through,omitempty"`
	// State is the process state after the handler ran.
	State json.RawMessage `json:"state"`
	// Timers are the pending timeouts, by name.
	Timers map[string]time.Time `json:"timers,omitempty"`
	// Done is set once the process completed: later events are ignored.
	Done bool `json:"done,omitempty"`
	// Failure, when set, says why this handler call failed for good (a
	// rejection, or Retry.MaxAttempts reached); the state and timers are
	// then the ones from before it. Failures counts the failures so far
	// and LastFailure repeats the newest one.
	Failure     *ProcessFailure `json:"failure,omitempty"`
	Failures    uint64          `json:"failures,omitempty"`
	LastFailure *ProcessFailure `json:"lastFailure,omitempty"`
}

// ProcessFailure describes a handler call that failed for good.
type ProcessFailure struct {
	// Position and Type are the event's (0 and "" for a timeout);
	// Timeout names the timeout.
	Position uint64 `json:"position,omitempty"`
	Type     string `json:"type,omitempty"`
	Timeout  string `json:"timeout,omitempty"`
	Reason   string `json:"reason"`
}

// TypeHandled is the type name of Handled.
const TypeHandled = "orchestrix.process.handled"

// Process describes an event-driven process manager: handlers for the
// event types it reacts to, each correlating an event with one process
// instance by id, and a state per instance that the handlers read and
// change while they send commands and set timeouts. Build one with
// NewProcess, On and the chained methods, then RegisterProcess it.
//
// Where an Orchestration drives fixed steps, a Process waits for what
// happens: an order process that reacts to the payment, the stock
// reservation and the shipment in whatever order they arrive, and acts
// when a payment does not come in time.
type Process[S any] struct {
	name      string
	initial   func(id string) S
	handlers  []*processHandler[S]
	onTimeout ProcessHandler[S, string]
	starters  bool
	errs      []error
}

// ProcessHandler handles one input of a process: an event payload of type
// E, or for OnTimeout the name of the timeout. It reads and changes
// pc.State, may send commands (with pc.SendOptions, so that a redelivery
// is deduplicated by the aggregate), set or cancel timeouts, and complete
// the process. Its changes are recorded only when it returns nil.
//
// An error that is a rejection (Reject, or a command the aggregate
// refused) is recorded as the process's failure for that input, with its
// state unchanged, and the process goes on with the next input. Any other
// error is transient: the handler is called again, with the same command
// ids and a fresh copy of the state, after the runner's Retry backoff,
// up to Retry.MaxAttempts calls (DefaultProcessAttempts when zero); then
// it is recorded as a failure.
type ProcessHandler[S, E any] func(ctx context.Context, pc *ProcessContext[S], input E) error

type processHandler[S any] struct {
	goType    reflect.Type
	typeName  string // resolved by RegisterProcess
	starts    bool
	correlate func(ev projection.Event) (string, bool)
	handle    func(ctx context.Context, pc *ProcessContext[S], ev projection.Event) error
}

// HandlerOption configures one handler of a process.
type HandlerOption func(*handlerOptions)

type handlerOptions struct{ starts bool }

// Starts marks the handler's events as ones that may begin a process.
// When a process has handlers marked Starts, an event of any other
// handler whose process has not begun is ignored; when none is marked,
// any handled event begins its process.
func Starts() HandlerOption { return func(o *handlerOptions) { o.starts = true } }

// NewProcess starts the description of a process manager named name. The
// name must be 1-55 ASCII letters, digits, '_' or '.' (no '-': a process's
// stream is "process." + name + "-" + id).
func NewProcess[S any](name string) *Process[S] {
	p := &Process[S]{name: name}
	if err := aggregate.ValidateKind(ProcessKindPrefix + name); err != nil || name == "" {
		p.errs = append(p.errs, fmt.Errorf("name %q: must be 1-55 ASCII letters, digits, '_' or '.'", name))
	}
	return p
}

// Name returns the process manager's name.
func (p *Process[S]) Name() string { return p.name }

// Initial sets the state of a process before its first event (the zero S
// when not set).
func (p *Process[S]) Initial(initial func(id string) S) *Process[S] {
	if initial == nil {
		p.errs = append(p.errs, errors.New("Initial: nil function"))
	}
	p.initial = initial
	return p
}

// OnTimeout sets the handler of the process's timeouts (see
// ProcessContext.Schedule); input is the timeout's name.
func (p *Process[S]) OnTimeout(handle ProcessHandler[S, string]) *Process[S] {
	if handle == nil {
		p.errs = append(p.errs, errors.New("OnTimeout: nil handler"))
	}
	p.onTimeout = handle
	return p
}

// On makes process p react to events whose payload is an E (a type
// registered in the runner's Registry): correlate picks the id of the
// process an event belongs to (ok false: the event concerns no process),
// and handle handles it. One handler per event type.
func On[S, E any](p *Process[S], correlate func(ev projection.Event, payload E) (id string, ok bool), handle ProcessHandler[S, E], opts ...HandlerOption) *Process[S] {
	goType := reflect.TypeFor[E]()
	var o handlerOptions
	for _, opt := range opts {
		if opt != nil {
			opt(&o)
		}
	}
	switch {
	case correlate == nil || handle == nil:
		p.errs = append(p.errs, fmt.Errorf("On[%v]: nil correlate or handle function", goType))
		return p
	}
	for _, h := range p.handlers {
		if h.goType == goType {
			p.errs = append(p.errs, fmt.Errorf("On[%v]: a handler for that type is already set", goType))
			return p
		}
	}
	p.starters = p.starters || o.starts
	p.handlers = append(p.handlers, &processHandler[S]{
		goType: goType,
		starts: o.starts,
		correlate: func(ev projection.Event) (string, bool) {
			return correlate(ev, ev.Data.(E))
		},
		handle: func(ctx context.Context, pc *ProcessContext[S], ev projection.Event) error {
			return handle(ctx, pc, ev.Data.(E))
		},
	})
	return p
}

// BySubject is a correlate function for On: the process of an event is
// the one named by the event's subject (for an aggregate's event, the
// aggregate id). Events without a subject concern no process.
func BySubject[E any](ev projection.Event, _ E) (string, bool) {
	return ev.Envelope.Subject, ev.Envelope.Subject != ""
}

// ByCorrelationID is a correlate function for On: the process of an event
// is the one named by the event's correlation id (the id a command was
// sent with, actor.WithCorrelationID). Events without one concern no
// process.
func ByCorrelationID[E any](ev projection.Event, _ E) (string, bool) {
	return ev.Envelope.CorrelationID, ev.Envelope.CorrelationID != ""
}

func (p *Process[S]) validate() error {
	errs := p.errs
	if len(p.handlers) == 0 {
		errs = append(errs, errors.New("no event handlers"))
	}
	if len(errs) > 0 {
		return fmt.Errorf("%w %q: %w", ErrInvalidSaga, p.name, errors.Join(errs...))
	}
	return nil
}

// ProcessContext is what a process handler is given: which process and
// input it handles, the process's state, and its timers.
type ProcessContext[S any] struct {
	// Process is the process manager's name and ID the process's id.
	Process, ID string
	// State is the process's state, freshly decoded for each call. The
	// handler may change it; the change is recorded when the handler
	// returns nil.
	State S
	// Event is the event being handled; its Data is the payload. It is
	// zero for a timeout.
	Event projection.Event
	// Timeout is the name of the timeout being handled ("" for an event).
	Timeout string
	// Attempt counts the calls for this input in this process, from 1.
	Attempt int
	// TraceParent is the traceparent of this call's orchestrix.saga.step
	// span, the one ctx carries (see Context.TraceParent).
	TraceParent string

	now    time.Time
	timers map[string]time.Time
	done   bool
	stream string
	key    string // what command ids derive from: the input's identity
}

// Now returns the runner's clock reading when the call began.
func (pc *ProcessContext[S]) Now() time.Time { return pc.now }

// Schedule sets timeout name to fire d from Now, replacing a pending one
// of the same name. The deadline is recorded with the process and fires
// through the runner's Clock, also after a restart.
func (pc *ProcessContext[S]) Schedule(name string, d time.Duration) {
	pc.ScheduleAt(name, pc.now.Add(d))
}

// ScheduleAt sets timeout name to fire at t.
func (pc *ProcessContext[S]) ScheduleAt(name string, t time.Time) {
	if pc.timers == nil {
		pc.timers = make(map[string]time.Time)
	}
	pc.timers[name] = t.UTC()
}

// Cancel removes timeout name if it is pending.
func (pc *ProcessContext[S]) Cancel(name string) { delete(pc.timers, name) }

// Timers returns a copy of the pending timeouts.
func (pc *ProcessContext[S]) Timers() map[string]time.Time { return maps.Clone(pc.timers) }

// Complete ends the process once this call is recorded: its pending
// timeouts are dropped and later events are ignored.
func (pc *ProcessContext[S]) Complete() { pc.done = true }

// CommandID returns a deterministic id for the command named name that
// this call sends: the same for every attempt and every redelivery of the
// input, in every process, different for every input.
func (pc *ProcessContext[S]) CommandID(name string) string {
	return commandID(pc.stream, pc.key, "process", name)
}

// SendOptions returns the options to pass to actor.Handle.Send for the
// command named name: its CommandID and the process id as correlation id.
// Send with the handler's ctx so that the command's span is a child of
// the handler's.
func (pc *ProcessContext[S]) SendOptions(name string) []actor.SendOption {
	return []actor.SendOption{actor.WithCommandID(pc.CommandID(name)), actor.WithCorrelationID(pc.ID)}
}

// ProcessStatus is what the journal records of one process.
type ProcessStatus[S any] struct {
	Process, ID, Stream string
	// Begun is false for a process that has not handled any input.
	Begun bool
	// Done is true once a handler completed the process.
	Done bool
	// State is the process's state (Initial's for one not begun).
	State S
	// Version counts the inputs the process recorded.
	Version uint64
	// Through is the global position of the newest event handled.
	Through uint64
	// Timers are the pending timeouts.
	Timers map[string]time.Time
	// Failures counts the inputs whose handler failed for good, and
	// LastFailure is the newest of them.
	Failures    uint64
	LastFailure *ProcessFailure
}

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

// idLock serializes the inputs of one process.
type idLock struct {
	mu   sync.Mutex
	refs int
}

// armedTimers are the clock timers of one process, armed from its record
// at position.
type armedTimers struct {
	position uint64
	timers   []actor.Timer
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
	key := "process:" + p.name
	r.mu.Lock()
	switch {
	case r.closed:
		r.mu.Unlock()
		return nil, orchestrix.ErrClosed
	case r.sagas[key]:
		r.mu.Unlock()
		return nil, fmt.Errorf("%w: process %q", ErrAlreadyRegistered, p.name)
	}
	r.sagas[key] = true
	r.closers = append(r.closers, m.disarmAll)
	r.mu.Unlock()

	ctx := context.Background()
	kind := ProcessKindPrefix + p.name
	if err := r.projs.Add(ctx, projection.Projection{
		Name:        kind + ".timers",
		Handler:     projection.HandlerFunc(m.arm),
		Filter:      projection.Filter{Kinds: []string{kind}, Types: []string{TypeHandled}},
		Checkpoints: lowWater{inner: r.cfg.Checkpoints, s: m.lowWater},
	}); err != nil {
		return nil, fmt.Errorf("process %q: %w", p.name, err)
	}
	if err := r.projs.Add(ctx, projection.Projection{
		Name:        kind,
		Handler:     projection.HandlerFunc(m.handle),
		Filter:      projection.Filter{Types: types},
		BatchSize:   processBatch,
		Checkpoints: r.cfg.Checkpoints,
	}); err != nil {
		return nil, fmt.Errorf("process %q: %w", p.name, err)
	}
	return m, nil
}

// Name returns the process manager's name.
func (m *ProcessManager[S]) Name() string { return m.name }

// Stream returns the stream recording process id.
func (m *ProcessManager[S]) Stream(id string) string { return ProcessStream(m.name, id) }

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
	mt := m.r.cfg.Metrics
	mt.ProcessInputs(m.name, input, telemetry.OutcomeHandled, handled)
	mt.ProcessInputs(m.name, input, telemetry.OutcomeFailed, failed)
	mt.ProcessInputs(m.name, input, telemetry.OutcomeCompleted, completed)
}

// fire handles timeout name of process id, set for at, unless the
// process no longer has that timeout pending. Journal errors are retried
// until the runner closes.
func (m *ProcessManager[S]) fire(ctx context.Context, id, name string, at time.Time) {
	unlock := m.lock(id)
	defer unlock()
	log := m.r.log.With(slog.String("process", m.name), slog.String("id", id), slog.String("timeout", name))
	for failures := 1; ctx.Err() == nil; failures++ {
		rec, err := m.load(ctx, id)
		if err == nil {
			if t, pending := rec.last.Timers[name]; rec.last.Done || !pending || !t.Equal(at) {
				return // handled, cancelled or moved since it was armed
			}
			in := input[S]{
				key:     "timeout\x00" + name + "\x00" + at.Format(time.RFC3339Nano),
				timeout: name, name: "timeout " + name,
				call: func(ctx context.Context, pc *ProcessContext[S]) error {
					if m.p.onTimeout == nil {
						return Reject(fmt.Errorf("process %q has no OnTimeout handler for timeout %q", m.name, name))
					}
					return m.p.onTimeout(ctx, pc, name)
				},
			}
			var next Handled
			next, err = m.run(ctx, id, &rec, in)
			if err == nil {
				next.Timeout, next.Through = name, rec.last.Through
				if next.Failure != nil {
					next.Failure.Timeout = name
					// The timeout fired: drop it even though its
					// handler failed, or it would fire again forever.
					next.Timers = maps.Clone(next.Timers)
					delete(next.Timers, name)
				}
				var ok bool
				if ok, err = m.record(ctx, id, rec.version, next); err == nil {
					if ok {
						m.count(telemetry.InputTimeout, next)
						return
					}
					continue // another writer recorded first
				}
			}
		}
		if ctx.Err() != nil {
			return
		}
		log.Warn("process timeout failed; retrying", slog.Any("error", err))
		if !sleepOn(ctx, m.r.cfg.Clock, m.r.cfg.Retry.backoff(failures)) {
			return
		}
	}
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
		if limit := cmp.Or(cfg.Retry.MaxAttempts, DefaultProcessAttempts); attempt >= limit {
			return fail(fmt.Errorf("gave up after %d attempts: %w", attempt, err))
		}
		m.r.log.Debug("process handler failed; retrying with the same command ids",
			slog.String("process", m.name), slog.String("id", id), slog.String("input", in.name), slog.Int("attempt", attempt), slog.Any("error", err))
		if !sleepOn(ctx, cfg.Clock, cfg.Retry.backoff(attempt)) {
			return next, context.Cause(ctx)
		}
	}
}

// traced runs one handler call in an orchestrix.saga.step span (saga =
// the process manager's name, step = the input).
func (m *ProcessManager[S]) traced(ctx context.Context, id string, in input[S], pc *ProcessContext[S]) error {
	ctx, span := telemetry.StartSagaStepSpan(ctx, m.r.tracer, m.name, in.name)
	if span.IsRecording() {
		span.SetAttributes(attrSagaID.String(id), attrAttempt.Int(pc.Attempt))
	}
	pc.TraceParent = telemetry.TraceParent(ctx)
	err := m.r.bounded(ctx, func(ctx context.Context) error { return in.call(ctx, pc) })
	telemetry.EndSpan(span, err)
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

// arm is the handler of the timers projection: it (re)arms the clock
// timers of every process from its newest record.
func (m *ProcessManager[S]) arm(_ context.Context, batch []projection.Event) error {
	for _, ev := range batch {
		h, ok := ev.Data.(Handled)
		if !ok {
			continue
		}
		id := ev.Envelope.Subject
		m.mu.Lock()
		cur := m.armed[id]
		if cur != nil && cur.position >= ev.Position {
			m.mu.Unlock()
			continue
		}
		if cur != nil {
			for _, t := range cur.timers {
				t.Stop()
			}
			delete(m.armed, id)
		}
		if h.Done || len(h.Timers) == 0 {
			m.mu.Unlock()
			continue
		}
		a := &armedTimers{position: ev.Position}
		now := m.r.cfg.Clock.Now()
		for name, at := range h.Timers {
			fire := func() {
				m.r.spawn(func() { m.fire(m.r.ctx, id, name, at) })
			}
			if !at.After(now) {
				fire() // overdue (it passed while no runner was up)
				continue
			}
			a.timers = append(a.timers, m.r.cfg.Clock.AfterFunc(at.Sub(now), fire))
		}
		m.armed[id] = a
		m.mu.Unlock()
	}
	return nil
}

// lowWater returns the position of the oldest record whose timers are
// armed, or 0 when none is.
func (m *ProcessManager[S]) lowWater() uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	var low uint64
	for _, a := range m.armed {
		if low == 0 || a.position < low {
			low = a.position
		}
	}
	return low
}

// disarmAll stops every armed timer (the runner is closing).
func (m *ProcessManager[S]) disarmAll() {
	m.mu.Lock()
	defer m.mu.Unlock()
	for id, a := range m.armed {
		for _, t := range a.timers {
			t.Stop()
		}
		delete(m.armed, id)
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
	out := make([]projection.Status, 0, 2)
	for _, n := range []string{kind, kind + ".timers"} {
		st, err := m.r.projs.Status(ctx, n)
		if err != nil {
			return nil, err
		}
		out = append(out, st)
	}
	return out, nil
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

// sleepOn waits d on clock; it reports false when ctx ended first.
func sleepOn(ctx context.Context, clock actor.Clock, d time.Duration) bool {
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
