package cluster

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	proto "github.com/asynkron/protoactor-go/actor"
	protocluster "github.com/asynkron/protoactor-go/cluster"
	"github.com/asynkron/protoactor-go/cluster/clusterproviders/automanaged"
	"github.com/asynkron/protoactor-go/cluster/identitylookup/disthash"
	"github.com/asynkron/protoactor-go/eventstream"
	"github.com/asynkron/protoactor-go/remote"

	"github.com/orchestrix/orchestrix"
	"github.com/orchestrix/orchestrix/actor"
	"github.com/orchestrix/orchestrix/cluster/internal/wire"
	"github.com/orchestrix/orchestrix/internal/clusterseam"
	"github.com/orchestrix/orchestrix/internal/protosys"
	"github.com/orchestrix/orchestrix/internal/telemetryhooks"
	"github.com/orchestrix/orchestrix/journal"
)

// serverName is the name of each member's request actor: requests are
// addressed to it by member address, never to an aggregate's PID.
const serverName = "orchestrix-cluster"

// kindPrefix marks the protoactor-go cluster kinds that stand for
// Orchestrix aggregate kinds (kept apart from protoactor-go's own kinds).
const kindPrefix = "orchestrix:"

// Member is this process's membership in a cluster. Create it with Start;
// its methods are safe for concurrent use.
type Member struct {
	cfg   Config
	sys   *actor.System
	proto *proto.ActorSystem
	c     *protocluster.Cluster
	kinds map[string]clusterseam.Kind
	sub   *eventstream.Subscription

	singles *singletons // see singleton.go

	// cur is the current view (nil until the first topology event);
	// vmu serialises the changes that publish a new one.
	cur     atomic.Pointer[view]
	vmu     sync.Mutex
	epochs  uint64 // views published so far (under vmu)
	closing bool   // under vmu: no more background work is started

	metrics   telemetryhooks.Metrics
	f         *fence      // the self-fence
	lease     *lease      // the peer confirmation (confirm.go)
	unfencing atomic.Bool // an attempt to lift the fence is running
	leaving   atomic.Bool // Shutdown has begun

	bg     context.Context // ends when the member closes
	stopBG context.CancelFunc
	wg     sync.WaitGroup // background work (handoff rounds, releases)

	serving sync.WaitGroup // requests being served
	work    *workers       // the goroutines that serve them (reply.go)
	// replyClock, when set (tests), times the hold of batch replies.
	replyClock orchestrix.Clock
	// outboxHold is how long the outbox of a busy address gathers commands
	// before it flushes (0: never; batch.go), timed by outboxTestClock
	// when set (tests).
	outboxHold      time.Duration
	outboxTestClock orchestrix.Clock

	// pending are the requests this member has sent and not yet seen
	// answered, by target address (pending.go); probe, when set (tests),
	// replaces the TCP probe of a dropped member's endpoint.
	pending pendingSet
	probe   func(addr string) bool
	views   viewChanges // wakes the request loop's retries on a new view

	// caps are the features peers announced, outboxes the commands
	// queued per target address for a batch (batch.go); noBatch (tests)
	// makes this member neither send nor announce batches, noPacked
	// (tests) packed batches (packed.go).
	caps     capabilities
	outboxes outboxes
	noBatch  bool
	noPacked bool

	closeOnce sync.Once
}

// Start makes sys a member of the cluster described by cfg and returns
// once the member runs. From then on every handle of sys (Send, Dispatch,
// Tell, State, StateAt) runs on the owner of each id: on this process when
// it owns the id, on another member otherwise. Register every definition
// on sys before calling Start: the kinds a member hosts are fixed when it
// starts.
//
// Start fails with ErrJournalNotShared when sys's journal cannot be shared
// by several processes, ErrInvalidConfig when cfg is invalid, ErrStarted
// when sys already has a member, and ErrStart when listening or the
// membership provider fails. ctx bounds nothing after Start returns.
func Start(ctx context.Context, sys *actor.System, cfg Config) (*Member, error) {
	if sys == nil {
		return nil, fmt.Errorf("%w: nil *actor.System", ErrInvalidConfig)
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	j := clusterseam.Journal(sys)
	if s, ok := j.(journal.Shared); !ok || !s.Shared() {
		return nil, fmt.Errorf("%w: %T keeps its events in one process (use journal/postgres)", ErrJournalNotShared, j)
	}
	m := &Member{cfg: cfg, sys: sys, proto: protosys.Of(sys), kinds: clusterseam.Kinds(sys),
		metrics: telemetryhooks.MetricsOf(cfg.Metrics), noBatch: olderBuildForTests, noPacked: olderBuildForTests || unpackedBuildForTests,
		outboxHold: defaultOutboxHold}
	m.bg, m.stopBG = context.WithCancel(context.Background())
	m.work = newWorkers(5*time.Second, m.bg.Done())
	m.logBatchCounts()
	origin := time.Now()
	m.f = newFence(func() time.Duration { return time.Since(origin) }, cfg.PauseThreshold, cfg.SettlePeriod)
	m.lease = newLease(m.f.now, cfg.ConfirmLease)
	singles, err := newSingletons(m, j)
	if err != nil {
		return nil, err
	}
	m.singles = singles
	if _, dup := started.LoadOrStore(sys, true); dup {
		m.stopBG()
		return nil, ErrStarted
	}
	if err := m.start(); err != nil {
		m.stopBG()
		started.Delete(sys)
		return nil, err
	}
	m.f.reset()       // starting took a while: that was no pause
	m.lease.restart() // nor a lapse of confirmations
	if err := clusterseam.Attach(sys, m); err != nil {
		m.stopBG()
		m.leave()
		started.Delete(sys)
		return nil, fmt.Errorf("%w: %w", ErrStarted, err)
	}
	m.singles.start()
	m.wg.Add(2)
	go m.watch()
	go m.confirmLoop()
	return m, nil
}

// started holds the systems that have a member.
var started sync.Map

func (m *Member) start() (err error) {
	cfg := m.cfg
	provider := cfg.Provider
	if provider == nil {
		provider = automanaged.NewWithConfig(cfg.RefreshTTL, cfg.AutoManagedPort, cfg.Seeds...)
	}
	idle := proto.PropsFromFunc(func(proto.Context) {})
	var kinds []*protocluster.Kind
	for name := range m.kinds {
		kinds = append(kinds, protocluster.NewKind(kindPrefix+name, idle))
	}
	kinds = append(kinds, m.singles.kinds(idle)...)
	pcfg := protocluster.Configure(cfg.Name, provider, disthash.New(), remote.Configure(cfg.Host, cfg.Port),
		protocluster.WithKinds(kinds...))
	m.sub = m.proto.EventStream.Subscribe(m.onEvent)
	defer func() {
		if r := recover(); r != nil {
			// StartMember panics on listen and provider errors.
			m.proto.EventStream.Unsubscribe(m.sub)
			err = fmt.Errorf("%w: %v", ErrStart, r)
		}
	}()
	if _, err := m.proto.Root.SpawnNamed(proto.PropsFromProducer(func() proto.Actor { return &server{m: m} }), serverName); err != nil {
		m.proto.EventStream.Unsubscribe(m.sub)
		return fmt.Errorf("%w: spawning the request actor: %v", ErrStart, err)
	}
	m.c = protocluster.New(m.proto, pcfg)
	m.c.StartMember()
	m.cfg.Logger.Info("cluster: member started", "address", m.addr(), "cluster", cfg.Name)
	return nil
}

// onEvent handles the events of protoactor-go's event stream this member
// follows.
func (m *Member) onEvent(evt any) {
	switch e := evt.(type) {
	case *protocluster.ClusterTopology:
		m.onTopology(e)
		m.singles.topology(e.Members)
	case *remote.EndpointTerminatedEvent:
		m.caps.lost(e.Address) // batch.go
	}
}

// Address returns this member's address ("host:port" of its remote
// endpoint).
func (m *Member) Address() string { return m.addr() }

// addr is this member's address. protoactor-go sets it when the remote
// endpoint starts, before it serves anything, so a request's goroutine
// reads it without a race (unlike a field set after StartMember returns).
func (m *Member) addr() string { return m.proto.Address() }

// Owner returns the address of the member that owns aggregate id of kind
// in this member's current view, or an error matching ErrNoOwner. It is
// meant for debugging and tests: ownership can change at any time.
func (m *Member) Owner(kind, id string) (string, error) {
	addr := ""
	if v := m.cur.Load(); v != nil {
		addr = v.owner(kind, id)
	}
	if addr == "" {
		return "", fmt.Errorf("%w: %q", ErrNoOwner, kind)
	}
	return addr, nil
}

// Fenced reports whether this member has fenced itself (it serves
// nothing and its own callers go to other members), and why. It is meant
// for health checks: a fenced member is alive but not ready.
func (m *Member) Fenced() (reason string, fenced bool) {
	if !m.f.active() {
		return "", false
	}
	return m.f.why(), true
}

// Members returns how many members this member currently sees (itself
// included).
func (m *Member) Members() int {
	if v := m.cur.Load(); v != nil {
		return v.size()
	}
	return 0
}

// Close stops the singletons running on this member (each stop function,
// then the release of its epoch, so that the next owner starts without
// waiting), detaches the cluster from the system (its handles go back to
// running everything locally), deregisters from the membership provider
// and stops the remote endpoint, at once: it does not hand activations
// off, so requests other members sent here may end with an unknown
// outcome until they notice it left. Shutdown leaves gracefully. The
// actor.System keeps running; shut it down separately. Close is
// idempotent.
func (m *Member) Close() error {
	m.closeOnce.Do(func() {
		m.singles.close() // stop and release them while still a member
		_ = clusterseam.Attach(m.sys, nil)
		m.vmu.Lock()
		m.closing = true
		m.vmu.Unlock()
		m.stopBG()
		m.leave()
		m.wg.Wait()
		started.Delete(m.sys)
	})
	return nil
}

func (m *Member) leave() {
	m.proto.EventStream.Unsubscribe(m.sub)
	_ = m.c.Config.ClusterProvider.Shutdown(true)
	m.c.Gossip.Shutdown()
	m.c.Remote.Shutdown(true)
}

// ---- the request loop (caller side) ----

// attempt is the outcome of one request to the owner.
type attempt int

const (
	delivered    attempt = iota // a reply came (success or error)
	notDelivered                // nothing was executed: retry
	unknown                     // no reply in time: outcome unknown
)

// call runs the request loop: place, send, and retry what was not
// delivered with backoff until ctx ends. local runs on this member when it
// is the owner; send makes one request to the owner at addr.
func (m *Member) call(ctx context.Context, kind, id string, command bool, local func(context.Context) error,
	send func(ctx context.Context, addr string) (attempt, error)) (ranLocally bool, err error) {
	backoff := m.cfg.RetryBackoff
	for {
		changed := m.views.next()
		addr, err := m.Owner(kind, id)
		switch {
		case err == nil && addr == m.addr():
			if err = m.await(ctx, kind, id); err != nil {
				break // ctx ended: the loop returns below
			}
			err = local(ctx)
			if !errors.Is(err, clusterseam.ErrReleased) {
				if command {
					m.metrics.ClusterCommand(kind, false)
				}
				return true, err
			}
			// This member released the activation meanwhile (the id
			// moved): nothing ran; place it again.
		case err == nil:
			var a attempt
			a, err = send(ctx, addr)
			if a != notDelivered {
				if command {
					m.metrics.ClusterCommand(kind, true)
				}
				return false, err
			}
		}
		m.metrics.ClusterNotOwnerRetry(kind)
		jitter := time.Duration(rand.Int64N(int64(backoff)/2 + 1))
		t := time.NewTimer(backoff/2 + jitter)
		select {
		case <-ctx.Done():
			t.Stop()
			// Nothing was delivered: not an unknown outcome.
			return false, fmt.Errorf("cluster: %s %q not delivered: %w (last attempt: %w)", kind, id, ctx.Err(), err)
		case <-changed:
			// The view changed since this attempt was placed: place it
			// again now, with the backoff from its start.
			t.Stop()
			backoff = m.cfg.RetryBackoff
			continue
		case <-t.C:
		}
		backoff = min(2*backoff, m.cfg.MaxRetryBackoff)
	}
}

// request sends msg to the request actor of the member at addr and waits
// for its reply, at most RequestTimeout and until ctx ends.
func (m *Member) request(ctx context.Context, addr string, msg any) (any, attempt, error) {
	return m.requestVia(ctx, addr, func() (<-chan any, func()) {
		return m.sendRequest(proto.NewPID(addr, serverName), msg)
	})
}

// requestVia is request with the sending left to send, which returns the
// channel the reply arrives on and the function to call once the request
// ended (sendRequest, or sendBatched for a command in a batch).
func (m *Member) requestVia(ctx context.Context, addr string, send func() (<-chan any, func())) (any, attempt, error) {
	timeout := m.cfg.RequestTimeout
	if dl, ok := ctx.Deadline(); ok {
		if d := time.Until(dl); d < timeout {
			timeout = d
		}
	}
	if timeout <= 0 {
		return nil, delivered, ctx.Err() // nothing was sent
	}
	t, ok := m.pending.begin(addr, m.inView)
	if !ok {
		// Its view dropped the member (or never had it): nothing is sent.
		return nil, notDelivered, fmt.Errorf("cluster: member %s is not in this member's view", addr)
	}
	defer m.pending.end(t)
	replies, unregister := send()
	defer unregister()
	tm := getTimer(timeout)
	defer putTimer(tm)
	select {
	case v := <-replies:
		if _, dead := v.(*proto.DeadLetterResponse); dead {
			return nil, notDelivered, fmt.Errorf("cluster: member %s has no request actor (dead letter)", addr)
		}
		return v, delivered, nil
	case <-ctx.Done():
		return nil, unknown, fmt.Errorf("%w: cluster: no reply from %s before the context ended: %w",
			orchestrix.ErrOutcomeUnknown, addr, ctx.Err())
	case <-t.gone:
		// The member may have executed the request before it died.
		return nil, unknown, fmt.Errorf("%w: cluster: no reply from %s: %w", orchestrix.ErrOutcomeUnknown, addr, errMemberGone)
	case <-tm.C:
		if err := ctx.Err(); err != nil {
			return nil, unknown, fmt.Errorf("%w: cluster: no reply from %s: %w", orchestrix.ErrOutcomeUnknown, addr, err)
		}
		return nil, unknown, fmt.Errorf("%w: cluster: no reply from %s within %v: %w",
			orchestrix.ErrOutcomeUnknown, addr, timeout, proto.ErrTimeout)
	}
}

// timers recycles the timers of requests (requestVia). Since Go 1.23 a
// timer that was stopped or reset delivers no value from before; putTimer
// also drains a value a fired timer left, for a program that runs with
// the older timer channels (GODEBUG asynctimerchan=1).
var timers = sync.Pool{New: func() any {
	t := time.NewTimer(time.Hour)
	t.Stop()
	return t
}}

func getTimer(d time.Duration) *time.Timer {
	t := timers.Get().(*time.Timer)
	t.Reset(d)
	return t
}

func putTimer(t *time.Timer) {
	if !t.Stop() {
		select {
		case <-t.C:
		default:
		}
	}
	timers.Put(t)
}

// replyError turns an error reply into the caller's error and says whether
// it may be retried (nothing was executed).
func replyError(addr string, code wire.Code, msg string) (attempt, error) {
	err := &remoteError{member: addr, code: code, msg: msg}
	if code == wire.Code_NOT_OWNER || code == wire.Code_UNKNOWN_KIND {
		return notDelivered, err
	}
	return delivered, err
}

// Command implements clusterseam.Router.
func (m *Member) Command(ctx context.Context, kind, id, commandID string, cmd []byte,
	local func(context.Context) error) (clusterseam.CommandReply, bool, error) {
	var out clusterseam.CommandReply
	req := &wire.CommandRequest{Kind: kind, AggregateId: id, CommandId: commandID, Command: cmd}
	ranLocally, err := m.call(ctx, kind, id, true, local, func(ctx context.Context, addr string) (attempt, error) {
		var v any
		var a attempt
		var err error
		if m.batches(addr) {
			v, a, err = m.requestVia(ctx, addr, func() (<-chan any, func()) { return m.sendBatched(addr, req) })
		} else {
			v, a, err = m.request(ctx, addr, req)
		}
		if err != nil {
			return a, err
		}
		r, ok := v.(*wire.CommandReply)
		if !ok {
			return unknown, fmt.Errorf("%w: cluster: member %s answered %T", orchestrix.ErrOutcomeUnknown, addr, v)
		}
		if r.GetCode() != wire.Code_OK {
			return replyError(addr, r.GetCode(), r.GetMessage())
		}
		out = clusterseam.CommandReply{Events: r.GetEvents(), Version: r.GetVersion(), Position: r.GetPosition(), Duplicate: r.GetDuplicate()}
		return delivered, nil
	})
	return out, ranLocally, err
}

// State implements clusterseam.Router.
func (m *Member) State(ctx context.Context, kind, id string, at bool, version uint64,
	local func(context.Context) error) (clusterseam.StateReply, bool, error) {
	var out clusterseam.StateReply
	req := &wire.StateRequest{Kind: kind, AggregateId: id, At: at, Version: version}
	ranLocally, err := m.call(ctx, kind, id, false, local, func(ctx context.Context, addr string) (attempt, error) {
		v, a, err := m.request(ctx, addr, req)
		if err != nil {
			switch {
			case a == unknown && errors.Is(err, errMemberGone):
				// A read changes nothing: place it again, on the new owner.
				return notDelivered, err
			case a == unknown:
				// A read has no outcome to be unsure of: say it timed out.
				return delivered, err
			}
			return a, err
		}
		r, ok := v.(*wire.StateReply)
		if !ok {
			return delivered, fmt.Errorf("cluster: member %s answered %T", addr, v)
		}
		if r.GetCode() != wire.Code_OK {
			return replyError(addr, r.GetCode(), r.GetMessage())
		}
		out = clusterseam.StateReply{State: r.GetState(), Version: r.GetVersion()}
		return delivered, nil
	})
	return out, ranLocally, err
}

// ---- the request actor (receiving side) ----

// server is each member's request actor. It hands each request, and each
// CommandBatch as a whole (serveBatch: its commands do not wait for one
// another), to a goroutine, so a slow command never holds up others.
// Once drained (Shutdown), it answers inline, refusing work.
type server struct {
	m       *Member
	drained bool
}

func (s *server) Receive(c proto.Context) {
	m := s.m
	sender := c.Sender()
	if _, ok := c.Message().(drainMsg); ok {
		s.drained = true
		c.Respond(true)
		return
	}
	if sender == nil {
		return
	}
	if s.drained {
		notOwner := fmt.Sprintf("%v: member %s is leaving", ErrNotOwner, m.addr())
		switch msg := c.Message().(type) {
		case *wire.CommandRequest:
			m.root().Send(sender, &wire.CommandReply{Code: wire.Code_NOT_OWNER, Message: notOwner})
		case *wire.StateRequest:
			m.root().Send(sender, &wire.StateReply{Code: wire.Code_NOT_OWNER, Message: notOwner})
		case *wire.CommandBatch:
			m.refuseBatch(sender, msg, wire.Code_NOT_OWNER, notOwner)
		case *wire.HandoffRequest:
			m.root().Send(sender, &wire.HandoffReply{Features: m.features()})
		case *wire.LeaveRequest:
			m.root().Send(sender, &wire.LeaveReply{})
		}
		return
	}
	var serve func() any
	switch msg := c.Message().(type) {
	case *wire.CommandRequest:
		serve = func() any { return m.serveCommand(msg) }
	case *wire.CommandBatch:
		if m.noBatch {
			return // as a member of an older build (which would crash)
		}
		m.serveBatch(sender, msg)
		return
	case *wire.StateRequest:
		serve = func() any { return m.serveState(msg) }
	case *wire.HandoffRequest:
		serve = func() any { return m.serveHandoff(msg) }
	case *wire.LeaveRequest:
		serve = func() any { return m.serveLeave(msg) }
	default:
		return
	}
	m.serving.Add(1)
	m.work.run(func() {
		defer m.serving.Done()
		m.root().Send(sender, serve())
	})
}

func (m *Member) root() *proto.RootContext { return m.proto.Root }

// check reports why this member will not serve kind/id, if it will not.
func (m *Member) check(kind, id string) (clusterseam.Kind, wire.Code, string) {
	k, code, msg, wait := m.checkNow(kind, id)
	if wait {
		// The id is one this member gained in a handoff round still
		// running: wait for it (await), at most RequestTimeout.
		ctx, cancel := context.WithTimeout(m.bg, m.cfg.RequestTimeout)
		defer cancel()
		if m.await(ctx, kind, id) != nil {
			return nil, wire.Code_NOT_OWNER, fmt.Sprintf("%v of %s %q yet: the handoff from its previous owner did not end in time", ErrNotOwner, kind, id)
		}
	}
	return k, code, msg
}

// checkNow is check without waiting: wait is set (with k and Code_OK) when
// the id is one this member gained in a handoff round still running, which
// check waits for.
func (m *Member) checkNow(kind, id string) (k clusterseam.Kind, code wire.Code, msg string, wait bool) {
	k, ok := m.kinds[kind]
	if !ok {
		return nil, wire.Code_UNKNOWN_KIND, fmt.Sprintf("%v: %q is not hosted here", ErrUnknownKind, kind), false
	}
	owner, err := m.Owner(kind, id)
	if err != nil || owner != m.addr() {
		return nil, wire.Code_NOT_OWNER, fmt.Sprintf("%v of %s %q (owner in this member's view: %q)", ErrNotOwner, kind, id, owner), false
	}
	if v := m.cur.Load(); v != nil && !v.ready(kind, id) {
		return k, wire.Code_OK, "", true
	}
	return k, wire.Code_OK, "", false
}

func (m *Member) serveCommand(req *wire.CommandRequest) *wire.CommandReply {
	k, code, msg := m.check(req.GetKind(), req.GetAggregateId())
	if code != wire.Code_OK {
		return &wire.CommandReply{Code: code, Message: msg}
	}
	ctx, cancel := context.WithTimeout(context.Background(), m.cfg.RequestTimeout)
	defer cancel()
	r, err := k.ServeCommand(ctx, req.GetCommand())
	return m.wireReply(req, r, err)
}

// wireReply is the reply to req that ended with r or err.
func (m *Member) wireReply(req *wire.CommandRequest, r clusterseam.CommandReply, err error) *wire.CommandReply {
	if err != nil {
		if errors.Is(err, actor.ErrUnknownCommandType) {
			m.cfg.Logger.Warn("cluster: refused a command of an unknown type", "kind", req.GetKind(),
				"id", req.GetAggregateId(), "command_id", req.GetCommandId(), "error", err)
		}
		return &wire.CommandReply{Code: codeOf(err), Message: err.Error()}
	}
	return &wire.CommandReply{Events: r.Events, Version: r.Version, Position: r.Position, Duplicate: r.Duplicate}
}

// clock times the hold of a batch's replies (replyBatch): replyClock when
// a test set one.
func (m *Member) clock() orchestrix.Clock {
	if m.replyClock != nil {
		return m.replyClock
	}
	return orchestrix.SystemClock{}
}

func (m *Member) serveState(req *wire.StateRequest) *wire.StateReply {
	k, code, msg := m.check(req.GetKind(), req.GetAggregateId())
	if code != wire.Code_OK {
		return &wire.StateReply{Code: code, Message: msg}
	}
	ctx, cancel := context.WithTimeout(context.Background(), m.cfg.RequestTimeout)
	defer cancel()
	r, err := k.ServeState(ctx, req.GetAggregateId(), req.GetAt(), req.GetVersion())
	if err != nil {
		return &wire.StateReply{Code: codeOf(err), Message: err.Error()}
	}
	return &wire.StateReply{State: r.State, Version: r.Version}
}

var _ clusterseam.Router = (*Member)(nil)
