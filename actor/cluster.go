package actor

import (
	"context"
	"errors"
	"fmt"

	"github.com/orchestrix/orchestrix"
	"github.com/orchestrix/orchestrix/aggregate"
	"github.com/orchestrix/orchestrix/internal/clusterseam"
	"github.com/orchestrix/orchestrix/internal/telemetryhooks"
	"github.com/orchestrix/orchestrix/journal"
)

// This file is the seam package cluster plugs into (internal/clusterseam):
// while a router is attached, Send, Dispatch, Tell, State and StateAt ask
// it to run on the owner of the id, which is either this process (the
// local path, unchanged) or another member (the wire).

// clusterRouter boxes the attached router for an atomic pointer.
// admit is r's optional admission check (nil when r has none).
type clusterRouter struct {
	r     clusterseam.Router
	admit clusterseam.Admitter
}

func init() {
	clusterseam.Attach = func(sys any, r clusterseam.Router) error {
		s := sys.(*System)
		if r == nil {
			s.cluster.Store(nil)
			return nil
		}
		cr := &clusterRouter{r: r}
		cr.admit, _ = r.(clusterseam.Admitter)
		if !s.cluster.CompareAndSwap(nil, cr) {
			return errors.New("actor: a cluster member is already running on this system")
		}
		return nil
	}
	clusterseam.Kinds = func(sys any) map[string]clusterseam.Kind {
		s := sys.(*System)
		s.mu.Lock()
		defer s.mu.Unlock()
		m := make(map[string]clusterseam.Kind, len(s.kinds))
		for name, k := range s.kinds {
			m[name] = k.clusterKind()
		}
		return m
	}
	clusterseam.Journal = func(sys any) journal.Journal { return sys.(*System).cfg.Journal }
}

func (h *Handle[S, C, E]) clusterKind() clusterseam.Kind { return kindServer[S, C, E]{h} }

// localRetrying runs cmd on the local path; a version conflict (another
// activation wrote to the stream; this one has dropped its state) is
// retried once, on the state recovered from the journal. The command id is
// unchanged, so a command that did commit is answered as a duplicate.
func (h *Handle[S, C, E]) localRetrying(ctx context.Context, cmd aggregate.Command[C]) (Result[E], error) {
	res, err := h.dispatchLocal(ctx, cmd)
	if err != nil && errors.Is(err, orchestrix.ErrVersionConflict) && ctx.Err() == nil {
		telemetryhooks.MetricsOf(h.sys.cfg.Metrics).ClusterConflictRetry(h.kind)
		res, err = h.dispatchLocal(ctx, cmd)
	}
	return res, err
}

func (h *Handle[S, C, E]) dispatchCluster(ctx context.Context, cmd aggregate.Command[C], r clusterseam.Router) (Result[E], error) {
	fail := func(err error) (Result[E], error) {
		return Result[E]{}, &CommandError{Kind: h.kind, AggregateID: cmd.AggregateID, CommandID: cmd.ID, Err: err}
	}
	if h.sys.closed.Load() {
		return fail(orchestrix.ErrClosed)
	}
	data, err := h.EncodeCommand(ctx, cmd)
	if err != nil {
		return fail(fmt.Errorf("actor: in cluster mode commands cross members, so they must be encodable: %w", err))
	}
	var res Result[E]
	local := func(ctx context.Context) error {
		var err error
		res, err = h.localRetrying(ctx, cmd)
		return err
	}
	reply, ranLocally, err := r.Command(ctx, h.kind, cmd.AggregateID, cmd.ID, data, local)
	if ranLocally {
		return res, err // a *CommandError already
	}
	if err != nil {
		return fail(err)
	}
	res = Result[E]{CommandID: cmd.ID, Version: reply.Version, Position: reply.Position, Duplicate: reply.Duplicate}
	for _, b := range reply.Events {
		e, err := h.decodeEvent(ctx, b)
		if err != nil {
			// The command did execute: its result just cannot be shown.
			return fail(&unknownOutcomeError{cause: fmt.Errorf("decoding the owner's reply: %w", err)})
		}
		res.Events = append(res.Events, e)
	}
	return res, nil
}

func (h *Handle[S, C, E]) tellCluster(cmd aggregate.Command[C], r clusterseam.Router) error {
	if h.sys.closed.Load() {
		return &CommandError{Kind: h.kind, AggregateID: cmd.AggregateID, CommandID: cmd.ID, Err: orchestrix.ErrClosed}
	}
	h.sys.workers.Add(1)
	go func() {
		defer h.sys.workers.Done()
		if _, err := h.dispatchCluster(h.sys.bg, cmd, r); err != nil {
			h.sys.cfg.Logger.Warn("cluster: told command failed", "kind", h.kind, "id", cmd.AggregateID,
				"command_id", cmd.ID, "error", err)
		}
	}()
	return nil
}

func (h *Handle[S, C, E]) stateCluster(ctx context.Context, id string, at bool, version uint64, r clusterseam.Router) (S, uint64, error) {
	var zero, st S
	var v uint64
	local := func(ctx context.Context) error {
		var err error
		if at {
			st, v, err = h.stateAtLocal(ctx, id, version)
		} else {
			st, v, err = h.stateLocal(ctx, id)
		}
		return err
	}
	wrap := func(err error) error {
		if at {
			return fmt.Errorf("actor: state of %s %q at version %d: %w", h.kind, id, version, err)
		}
		return fmt.Errorf("actor: state of %s %q: %w", h.kind, id, err)
	}
	reply, ranLocally, err := r.State(ctx, h.kind, id, at, version, local)
	if ranLocally {
		return st, v, err // wrapped by the local path
	}
	if err != nil {
		return zero, 0, wrap(err)
	}
	st, err = h.decodeState(ctx, h.Stream(id), reply.State)
	if err != nil {
		return zero, 0, wrap(fmt.Errorf("decoding the owner's state: %w", err))
	}
	return st, reply.Version, nil
}

// encodeEvent encodes e, an event of aggregate id, for a reply to another
// member (the payload through a scratch buffer, the envelope into one
// exact allocation).
func (h *Handle[S, C, E]) encodeEvent(ctx context.Context, id string, e E) ([]byte, error) {
	scratch := getScratch()
	defer putScratch(scratch)
	env, payload, err := h.sys.cfg.Registry.AppendMarshalFor(ctx, (*scratch)[:0], id, e)
	*scratch = payload
	if err != nil {
		return nil, err
	}
	// Only the payload matters to the caller (Result carries E); the
	// envelope just has to be valid.
	env.ID = orchestrix.NewID()
	env.Source = h.sys.cfg.Source
	env.Time = h.sys.cfg.Clock.Now()
	return marshalEnvelope(env)
}

// decodeEvent decodes an event of the owner's reply. b is the wire
// decoder's buffer for this reply alone, never modified again, so the
// envelope borrows it instead of copying it; the registry's codec copies
// (JSONCodec) or keeps, as it would from the copy, what the event holds.
func (h *Handle[S, C, E]) decodeEvent(ctx context.Context, b []byte) (E, error) {
	var zero E
	var env orchestrix.Envelope
	if err := env.UnmarshalBinaryBorrowed(b); err != nil {
		return zero, err
	}
	v, err := h.sys.cfg.Registry.UnmarshalFor(ctx, env)
	if err != nil {
		return zero, err
	}
	e, ok := v.(E)
	if !ok {
		return zero, fmt.Errorf("%w: event type %q decoded to %T, not an event of aggregate kind %q",
			orchestrix.ErrInvalidEnvelope, env.Type, v, h.kind)
	}
	return e, nil
}

// kindServer serves other members' requests for one kind on the local path.
type kindServer[S, C, E any] struct{ h *Handle[S, C, E] }

func (k kindServer[S, C, E]) ServeCommand(ctx context.Context, data []byte) (clusterseam.CommandReply, error) {
	h := k.h
	cmd, err := h.decodeCommand(ctx, data, true)
	if err != nil {
		return clusterseam.CommandReply{}, err
	}
	res, err := h.localRetrying(ctx, cmd)
	if err != nil {
		return clusterseam.CommandReply{}, err
	}
	out := clusterseam.CommandReply{Version: res.Version, Position: res.Position, Duplicate: res.Duplicate}
	for _, e := range res.Events {
		b, err := h.encodeEvent(ctx, cmd.AggregateID, e)
		if err != nil {
			// Committed, but the reply cannot carry it.
			return clusterseam.CommandReply{}, &unknownOutcomeError{cause: fmt.Errorf("encoding the reply: %w", err)}
		}
		out.Events = append(out.Events, b)
	}
	return out, nil
}

// ServeCommandAsync implements clusterseam.AsyncKind: the command runs on
// the local path without a goroutine waiting for it, and done gets its
// outcome once decided and durable; the reply is encoded only when the
// function done was given is called (by the cluster's reply sender, not
// on the goroutine that answered the command: the journal's, often). A
// version conflict is retried once on fresh state, as localRetrying does.
func (k kindServer[S, C, E]) ServeCommandAsync(data []byte, done func(clusterseam.Outcome)) {
	h := k.h
	cmd, err := h.decodeCommand(h.sys.bg, data, true)
	if err != nil {
		done(func() (clusterseam.CommandReply, error) { return clusterseam.CommandReply{}, err })
		return
	}
	s := &servedCmd[S, C, E]{k: k, done: done}
	s.msg = cmdMsg[C, E]{cmd: cmd, done: s}
	h.dispatchAsync(&s.msg)
}

// servedCmd is a command served for another member, in one allocation: its
// message to the aggregate, the function its outcome goes to, and that
// outcome until its reply is encoded.
type servedCmd[S, C, E any] struct {
	msg     cmdMsg[C, E]
	k       kindServer[S, C, E]
	done    func(clusterseam.Outcome)
	retried bool
	res     Result[E]
	err     error
}

// complete implements completion. A version conflict (another activation
// wrote to the stream; this one dropped its state) is dispatched once more
// with the same command id, in a new message and from a goroutine of its
// own: complete runs with the answering actor's lock held, where routing
// to the same aggregate could run it inline on that actor.
func (s *servedCmd[S, C, E]) complete(res Result[E], err error) {
	h := s.k.h
	if err != nil && !s.retried && errors.Is(err, orchestrix.ErrVersionConflict) && !h.sys.closed.Load() {
		s.retried = true
		telemetryhooks.MetricsOf(h.sys.cfg.Metrics).ClusterConflictRetry(h.kind)
		go h.dispatchAsync(&cmdMsg[C, E]{cmd: s.msg.cmd, done: s})
		return
	}
	if err != nil {
		cmd := &s.msg.cmd
		err = &CommandError{Kind: h.kind, AggregateID: cmd.AggregateID, CommandID: cmd.ID, Err: err}
	}
	s.res, s.err = res, err
	s.done(s.outcome)
}

// outcome is the served command's reply, or its error (clusterseam.Outcome).
func (s *servedCmd[S, C, E]) outcome() (clusterseam.CommandReply, error) {
	return s.k.reply(s.k.h.sys.bg, s.msg.cmd.AggregateID, s.res, s.err)
}

// reply is the outcome of a served command as it crosses members.
func (k kindServer[S, C, E]) reply(ctx context.Context, id string, res Result[E], err error) (clusterseam.CommandReply, error) {
	if err != nil {
		return clusterseam.CommandReply{}, err
	}
	out := clusterseam.CommandReply{Version: res.Version, Position: res.Position, Duplicate: res.Duplicate}
	for _, e := range res.Events {
		b, err := k.h.encodeEvent(ctx, id, e)
		if err != nil {
			// Committed, but the reply cannot carry it.
			return clusterseam.CommandReply{}, &unknownOutcomeError{cause: fmt.Errorf("encoding the reply: %w", err)}
		}
		out.Events = append(out.Events, b)
	}
	return out, nil
}

func (k kindServer[S, C, E]) ServeState(ctx context.Context, id string, at bool, version uint64) (clusterseam.StateReply, error) {
	h := k.h
	if err := h.sys.validateID("aggregate id", id); err != nil {
		return clusterseam.StateReply{}, err
	}
	var st S
	var v uint64
	var err error
	if at {
		st, v, err = h.stateAtLocal(ctx, id, version)
	} else {
		st, v, err = h.stateLocal(ctx, id)
	}
	if err != nil {
		return clusterseam.StateReply{}, err
	}
	b, err := h.encodeState(ctx, id, st)
	if err != nil {
		return clusterseam.StateReply{}, fmt.Errorf("encoding the state: %w", err)
	}
	return clusterseam.StateReply{State: b, Version: v}, nil
}

func (k kindServer[S, C, E]) Release(ctx context.Context, keep func(id string) bool) (int, error) {
	h := k.h
	r := h.router()
	var waits []chan struct{}
	// Under each shard's lock no message can be routed to an entry in
	// between, and an actor removes its own entry only under that lock,
	// so every entry seen here receives the shutdown.
	for i := range r.shards {
		sh := &r.shards[i]
		sh.mu.Lock()
		for id, e := range sh.m {
			if keep != nil && keep(id) {
				continue
			}
			done := make(chan struct{})
			e.sent.Add(1)
			h.sys.root.Send(e.pid, &shutdownMsg{done: done, release: true})
			waits = append(waits, done)
		}
		sh.mu.Unlock()
	}
	for _, w := range waits {
		select {
		case <-w:
		case <-ctx.Done():
			return len(waits), fmt.Errorf("actor: releasing %d %s activations: %w", len(waits), h.kind, ctx.Err())
		}
	}
	return len(waits), nil
}
