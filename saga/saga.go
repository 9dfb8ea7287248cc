package saga

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"

	"github.com/orchestrix/orchestrix"
	"github.com/orchestrix/orchestrix/journal"
	"github.com/orchestrix/orchestrix/projection"
	"github.com/orchestrix/orchestrix/telemetry"
)

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
	if err := r.claim(o.name, fmt.Sprintf("%q", o.name), nil); err != nil {
		return nil, err
	}

	s := &Saga[D]{
		r: r, o: o, name: o.name,
		active:   make(map[string]*instance[D]),
		inflight: make(map[string]uint64),
	}
	kind := StreamKindPrefix + o.name
	// The driver follows the saga's own Started events. Its checkpoint
	// never passes the oldest saga still running, so a restarted runner
	// sees that saga's Started event again and resumes it.
	ps := []projection.Projection{{
		Name:        kind,
		Handler:     projection.HandlerFunc(s.drive),
		Filter:      projection.Filter{Kinds: []string{kind}, Types: []string{TypeStarted}},
		Checkpoints: r.heldBack(s.lowWater),
	}}
	if o.start != nil {
		ps = append(ps, projection.Projection{
			Name:        kind + ".trigger",
			Handler:     projection.HandlerFunc(s.trigger),
			Filter:      o.filter,
			Checkpoints: r.cfg.Checkpoints,
		})
	}
	if err := r.follow(fmt.Sprintf("saga %q", o.name), ps...); err != nil {
		return nil, err
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
	return s.r.statuses(ctx, names...)
}

// load folds the stream of saga id.
func (s *Saga[D]) load(ctx context.Context, id string) (record, error) {
	rec, _, err := s.loadTrace(ctx, id)
	return rec, err
}

func (s *Saga[D]) loadTrace(ctx context.Context, id string) (record, string, error) {
	rec := newRecord()
	var trace string
	for r, err := range s.r.cfg.Journal.Read(ctx, s.Stream(id), 1, math.MaxUint64, math.MaxInt) {
		if err != nil {
			return rec, "", fmt.Errorf("saga %q %q: reading stream: %w", s.name, id, err)
		}
		ev, err := s.r.cfg.Registry.Unmarshal(r.Envelope)
		if err != nil {
			return rec, "", fmt.Errorf("saga %q %q: decoding event %d: %w", s.name, id, r.Version, err)
		}
		if r.Version == 1 {
			trace = r.Envelope.TraceParent
		}
		if err := rec.apply(ev); err != nil {
			return rec, "", err
		}
	}
	return rec, trace, nil
}
