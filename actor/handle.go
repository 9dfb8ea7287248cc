package actor

import (
	"context"
	"fmt"
	"math"
	"sync"
	"time"

	proto "github.com/asynkron/protoactor-go/actor"
	"go.opentelemetry.io/otel/trace"

	"github.com/orchestrix/orchestrix"
	"github.com/orchestrix/orchestrix/aggregate"
	"github.com/orchestrix/orchestrix/internal/aggexec"
	"github.com/orchestrix/orchestrix/internal/telemetryhooks"
	"github.com/orchestrix/orchestrix/journal"
	"github.com/orchestrix/orchestrix/telemetry"
)

// Handle is the typed entry point to one registered kind of aggregate:
// service code sends commands and reads state through it, addressing
// aggregates by id. The events of aggregate id are stored in the journal
// stream Kind + "-" + id (see Stream). A Handle is safe for concurrent use.
type Handle[S, C, E any] struct {
	sys    *System
	def    aggexec.Def[S, C, E]
	kind   string
	routes *router
	props  *proto.Props // shared by every activation
	msgs   sync.Pool    // *cmdMsg[C, E] with their reply channels, for Send
	// batches holds *batch[S, E] whose append completed (see recycleBatch).
	batches sync.Pool
}

func (h *Handle[S, C, E]) router() *router { return h.routes }

// Kind returns the aggregate kind.
func (h *Handle[S, C, E]) Kind() string { return h.kind }

// Stream returns the journal stream of aggregate id: Kind + "-" + id.
func (h *Handle[S, C, E]) Stream(id string) string { return journal.StreamName(h.kind, id) }

// Active returns how many aggregates of this kind are active (have an
// actor) right now.
func (h *Handle[S, C, E]) Active() int { return h.routes.count() }

// Result is the outcome of a command that succeeded.
type Result[E any] struct {
	// CommandID is the command's id (generated when the caller set none).
	CommandID string
	// Events are the events the command produced, as committed.
	Events []E
	// Version is the aggregate's version after the command: the version of
	// its last event, or the version it was decided at when it produced
	// none.
	Version uint64
	// Position is a global journal position at or after the command's last
	// event (0 when it produced none): a reader of the global log that has
	// passed it has seen the command's events.
	Position uint64
	// Duplicate is true when the command id had already been executed and
	// this is the original result, returned without executing it again.
	Duplicate bool
}

// SendOption sets per-command metadata.
type SendOption func(*sendOptions)

type sendOptions struct {
	commandID, correlationID, traceParent string
}

// WithCommandID sets the command id used for deduplication (a new UUIDv7
// otherwise).
func WithCommandID(id string) SendOption { return func(o *sendOptions) { o.commandID = id } }

// WithCorrelationID sets the correlation id copied to the command's events.
func WithCorrelationID(id string) SendOption { return func(o *sendOptions) { o.correlationID = id } }

// WithTraceParent sets the W3C traceparent copied to the command's events.
// Without it, Send and Dispatch use the traceparent of the command's span
// (telemetry.SpanCommand), so the events join the caller's trace; with it,
// and no span in the caller's context, the command span becomes a child of
// tp (see telemetry.ContextFromTraceParent).
func WithTraceParent(tp string) SendOption { return func(o *sendOptions) { o.traceParent = tp } }

func buildCommand[C any](id string, body C, opts []SendOption) aggregate.Command[C] {
	var o sendOptions
	if len(opts) > 0 {
		o = applyOptions(opts)
	}
	return aggregate.Command[C]{ID: o.commandID, AggregateID: id, Body: body, CorrelationID: o.correlationID, TraceParent: o.traceParent}
}

func applyOptions(opts []SendOption) sendOptions {
	var o sendOptions
	for _, opt := range opts {
		opt(&o)
	}
	return o
}

// Send executes cmd on aggregate id and returns once the events it produced
// are durable in the journal, with the committed events and the new
// version. Commands to one aggregate execute one at a time in arrival
// order. On error the returned error is a *CommandError; see the package's
// error list for what can be matched.
//
// When ctx ends before the reply, Send returns an error matching ctx's
// error and orchestrix.ErrOutcomeUnknown: the command may still execute.
// When ctx has already ended as Send is called, nothing is sent: the error
// matches ctx's error but not ErrOutcomeUnknown.
//
// Send starts a telemetry.SpanCommand span as a child of the span in ctx
// (with Config.TracerProvider) and ends it with the command's outcome.
func (h *Handle[S, C, E]) Send(ctx context.Context, id string, cmd C, opts ...SendOption) (Result[E], error) {
	return h.Dispatch(ctx, buildCommand(id, cmd, opts))
}

// Dispatch is Send for a command that carries its own target and metadata.
// An empty cmd.TraceParent is set from the command's span.
func (h *Handle[S, C, E]) Dispatch(ctx context.Context, cmd aggregate.Command[C]) (Result[E], error) {
	if cmd.ID == "" {
		cmd.ID = orchestrix.NewID()
	}
	if cmd.TraceParent != "" && !trace.SpanContextFromContext(ctx).IsValid() {
		ctx = telemetry.ContextFromTraceParent(ctx, cmd.TraceParent)
	}
	ctx, span := telemetryhooks.StartCommandSpan(ctx, h.sys.tracer, h.kind, cmd.AggregateID, cmd.ID, cmd.Body)
	if cmd.TraceParent == "" {
		cmd.TraceParent = telemetry.FormatTraceParent(span.SpanContext())
	}
	res, err := h.dispatch(ctx, cmd)
	outcome := outcomeOf(err)
	if res.Duplicate {
		outcome = telemetry.OutcomeDuplicate
	}
	telemetryhooks.EndCommandSpan(span, outcome, err)
	return res, err
}

func (h *Handle[S, C, E]) dispatch(ctx context.Context, cmd aggregate.Command[C]) (Result[E], error) {
	fail := func(err error) (Result[E], error) {
		return Result[E]{}, &CommandError{Kind: h.kind, AggregateID: cmd.AggregateID, CommandID: cmd.ID, Err: err}
	}
	if err := h.checkIDs(cmd); err != nil {
		return fail(err)
	}
	if err := ctx.Err(); err != nil {
		return fail(err)
	}
	if answered, err := h.tapped(ctx, cmd, false); answered {
		if err != nil {
			return fail(err)
		}
		return Result[E]{CommandID: cmd.ID}, nil
	}
	if r := h.sys.cluster.Load(); r != nil {
		return h.dispatchCluster(ctx, cmd, r.r)
	}
	return h.dispatchLocal(ctx, cmd)
}

// dispatchLocal runs cmd on this process's actor for its aggregate.
func (h *Handle[S, C, E]) dispatchLocal(ctx context.Context, cmd aggregate.Command[C]) (Result[E], error) {
	fail := func(err error) (Result[E], error) {
		return Result[E]{}, &CommandError{Kind: h.kind, AggregateID: cmd.AggregateID, CommandID: cmd.ID, Err: err}
	}
	// The message and its reply channel are reused once the reply has
	// been received: the actor answers a command exactly once and does
	// not touch the message after answering.
	msg, _ := h.msgs.Get().(*cmdMsg[C, E])
	if msg == nil {
		msg = &cmdMsg[C, E]{reply: make(chan cmdReply[E], 1)}
	}
	msg.cmd = cmd
	if h.sys.timed {
		msg.start = h.sys.cfg.Clock.Now()
	}
	reply := msg.reply
	if err := h.sys.route(h.routes, cmd.AggregateID, msg, h.props, h.sys.cfg.MaxActive, true); err != nil {
		h.recycle(msg)
		return fail(err)
	}
	var r cmdReply[E]
	if done := ctx.Done(); done == nil {
		r = <-reply
	} else {
		select {
		case r = <-reply:
		case <-done:
			// The actor may still answer: the message is not reused.
			return fail(&unknownOutcomeError{cause: ctx.Err()})
		}
	}
	h.recycle(msg)
	if r.err != nil {
		return fail(r.err)
	}
	return r.res, nil
}

// dispatchAsync runs the command of msg (a message of its own, not
// pooled, whose done is set) on this process's actor for its aggregate
// like dispatchLocal, but without waiting: msg.done.complete is called
// exactly once with the outcome (an error as a *CommandError, as
// dispatchLocal returns it), by whichever goroutine answers the command
// (see replier), or by dispatchAsync itself when the command cannot be
// routed. Like dispatchLocal, it may run the command inline on the calling
// goroutine; it returns once the command is decided and, when it has
// events, queued to the journal. A message is dispatched once: a retry
// takes a new one (the actor that answered may still be handling it).
func (h *Handle[S, C, E]) dispatchAsync(msg *cmdMsg[C, E]) {
	if h.sys.timed {
		msg.start = h.sys.cfg.Clock.Now()
	}
	if err := h.sys.route(h.routes, msg.cmd.AggregateID, msg, h.props, h.sys.cfg.MaxActive, true); err != nil {
		msg.done.complete(Result[E]{}, err)
	}
}

// completion receives the outcome of a command dispatched with
// dispatchAsync. complete is called on whichever goroutine answers the
// command, possibly with the actor's lock held: it must not block and
// must not route a message to an aggregate.
type completion[E any] interface {
	complete(res Result[E], err error)
}

// recycle returns a command message whose reply was received (or that
// was never delivered) to the pool.
func (h *Handle[S, C, E]) recycle(m *cmdMsg[C, E]) {
	m.cmd = aggregate.Command[C]{}
	m.start = time.Time{}
	m.taken = false
	h.msgs.Put(m)
}

// Tell sends cmd to aggregate id without waiting for the outcome. It
// returns an error only when the command cannot be delivered (invalid id,
// system shut down).
func (h *Handle[S, C, E]) Tell(id string, cmd C, opts ...SendOption) error {
	c := buildCommand(id, cmd, opts)
	if c.ID == "" {
		c.ID = orchestrix.NewID()
	}
	if err := h.checkIDs(c); err != nil {
		return &CommandError{Kind: h.kind, AggregateID: id, CommandID: c.ID, Err: err}
	}
	if answered, _ := h.tapped(context.Background(), c, true); answered {
		return nil // nobody waits for a told command's outcome
	}
	if r := h.sys.cluster.Load(); r != nil {
		return h.tellCluster(c, r.r)
	}
	msg := &cmdMsg[C, E]{cmd: c}
	if h.sys.timed {
		msg.start = h.sys.cfg.Clock.Now()
	}
	if err := h.sys.route(h.routes, id, msg, h.props, h.sys.cfg.MaxActive, false); err != nil {
		return &CommandError{Kind: h.kind, AggregateID: id, CommandID: c.ID, Err: err}
	}
	return nil
}

func (h *Handle[S, C, E]) checkIDs(cmd aggregate.Command[C]) error {
	if err := h.sys.validateID("aggregate id", cmd.AggregateID); err != nil {
		return err
	}
	return h.sys.validateID("command id", cmd.ID)
}

// State returns the committed state and version of aggregate id, activating
// it when needed. Events of commands still being written are not included.
// The returned state is shared with the actor: do not modify it. With
// Creates set on the definition, an aggregate without events reports an
// error matching orchestrix.ErrNotFound.
func (h *Handle[S, C, E]) State(ctx context.Context, id string) (S, uint64, error) {
	var zero S
	if err := h.sys.validateID("aggregate id", id); err != nil {
		return zero, 0, err
	}
	if err := ctx.Err(); err != nil {
		return zero, 0, err
	}
	if r := h.sys.cluster.Load(); r != nil {
		return h.stateCluster(ctx, id, false, 0, r.r)
	}
	return h.stateLocal(ctx, id)
}

// stateLocal reads the state of aggregate id from this process's actor.
func (h *Handle[S, C, E]) stateLocal(ctx context.Context, id string) (S, uint64, error) {
	var zero S
	reply := make(chan stateReply[S], 1)
	if err := h.sys.route(h.routes, id, &stateMsg[S]{reply: reply}, h.props, h.sys.cfg.MaxActive, false); err != nil {
		return zero, 0, fmt.Errorf("actor: state of %s %q: %w", h.kind, id, err)
	}
	select {
	case r := <-reply:
		if r.err != nil {
			return zero, 0, fmt.Errorf("actor: state of %s %q: %w", h.kind, id, r.err)
		}
		return r.state, r.version, nil
	case <-ctx.Done():
		return zero, 0, fmt.Errorf("actor: state of %s %q: %w", h.kind, id, ctx.Err())
	}
}

// StateAt returns the state of aggregate id after its event at version
// (after its last event when version is above the head), rebuilt from the
// newest usable snapshot at or below version and the journal. It does not
// touch the live actor. The returned version is the one actually reached.
func (h *Handle[S, C, E]) StateAt(ctx context.Context, id string, version uint64) (S, uint64, error) {
	var zero S
	if err := h.sys.validateID("aggregate id", id); err != nil {
		return zero, 0, err
	}
	if r := h.sys.cluster.Load(); r != nil {
		return h.stateCluster(ctx, id, true, version, r.r)
	}
	return h.stateAtLocal(ctx, id, version)
}

// stateAtLocal is StateAt on this process.
func (h *Handle[S, C, E]) stateAtLocal(ctx context.Context, id string, version uint64) (S, uint64, error) {
	var zero S
	rec, err := h.rebuild(ctx, id, version, nil, dedupLimits{})
	if err != nil {
		return zero, 0, fmt.Errorf("actor: state of %s %q at version %d: %w", h.kind, id, version, err)
	}
	if h.def.Creates != nil && rec.version == 0 {
		return zero, 0, fmt.Errorf("actor: state of %s %q at version %d: %w", h.kind, id, version, orchestrix.ErrNotFound)
	}
	return rec.state, rec.version, nil
}

// StateAtTime returns the state of aggregate id including exactly the
// events whose time is at or before t, rebuilt like StateAt. It relies on
// the clock that stamped the events being monotonic.
func (h *Handle[S, C, E]) StateAtTime(ctx context.Context, id string, t time.Time) (S, uint64, error) {
	var zero S
	if err := h.sys.validateID("aggregate id", id); err != nil {
		return zero, 0, err
	}
	rec, err := h.rebuild(ctx, id, math.MaxUint64, &t, dedupLimits{})
	if err != nil {
		return zero, 0, fmt.Errorf("actor: state of %s %q at %v: %w", h.kind, id, t, err)
	}
	if h.def.Creates != nil && rec.version == 0 {
		return zero, 0, fmt.Errorf("actor: state of %s %q at %v: %w", h.kind, id, t, orchestrix.ErrNotFound)
	}
	return rec.state, rec.version, nil
}

// ---- messages ----

type cmdMsg[C, E any] struct {
	cmd   aggregate.Command[C]
	reply chan cmdReply[E] // nil for Tell and dispatchAsync
	done  completion[E]    // set for dispatchAsync only
	// taken is set once the actor answered m or recorded where its answer
	// goes (replier).
	taken bool
	// start is when the command was sent (zero unless Config.Observer or
	// Config.Metrics is set).
	start time.Time
}

// replier returns where m's outcome goes, and notes that the actor has
// taken the duty to answer m (see Receive's recovery from a panic).
func (m *cmdMsg[C, E]) replier() replier[E] {
	m.taken = true
	return replier[E]{ch: m.reply, to: m.done}
}

// inlineOK: a command may be handled on a sender's goroutine (see mailbox).
func (*cmdMsg[C, E]) inlineOK() {}

type cmdReply[E any] struct {
	res Result[E]
	err error
}

type stateMsg[S any] struct{ reply chan stateReply[S] }

type stateReply[S any] struct {
	state   S
	version uint64
	err     error
}

type passivateMsg struct{ evict bool }

var (
	passivateIdle  = &passivateMsg{}
	passivateEvict = &passivateMsg{evict: true}
)

// shutdownMsg stops an actor once nothing is in flight; release marks a
// cluster release rather than the system's Close.
type shutdownMsg struct {
	done    chan struct{}
	release bool
}
