package actor

import (
	"context"
	"fmt"
	"hash/maphash"
	"log/slog"
	"math"
	"sync"
	"sync/atomic"
	"time"
	"unicode"
	"unicode/utf8"

	proto "github.com/asynkron/protoactor-go/actor"
	"go.opentelemetry.io/otel/trace"

	"github.com/orchestrix/orchestrix"
	"github.com/orchestrix/orchestrix/aggregate"
	"github.com/orchestrix/orchestrix/internal/aggexec"
	"github.com/orchestrix/orchestrix/internal/clusterseam"
	"github.com/orchestrix/orchestrix/internal/protosys"
	"github.com/orchestrix/orchestrix/internal/telemetryhooks"
)

// System runs aggregates: one protoactor-go actor per active aggregate id,
// spawned on the first message and passivated when idle. Create it with
// NewSystem, register definitions with Register, and stop it with
// Shutdown. All methods are safe for concurrent use.
type System struct {
	cfg    Config
	actors *proto.ActorSystem
	root   *proto.RootContext
	sem    chan struct{} // bounds concurrent recoveries

	tracer trace.Tracer
	// timed is set when an Observer or Metrics wants command durations;
	// only then is the clock read when a command is sent.
	timed bool
	// dedup bounds the aggregates' dedup caches (from DedupWindow and
	// DedupMaxEntries).
	dedup dedupLimits
	// inline: senders may run their commands themselves (see mailbox);
	// inlineCommands when the system started.
	inline bool

	// bg is cancelled by Shutdown when its context ends, to give up on
	// appends and saves still running.
	bg       context.Context
	cancelBG context.CancelFunc

	closed  atomic.Bool
	workers sync.WaitGroup // append and snapshot goroutines

	mu    sync.Mutex
	kinds map[string]kindRuntime
	sweep orchestrix.Timer

	// cluster is set while package cluster has a member running on this
	// system (see cluster.go).
	cluster atomic.Pointer[clusterRouter]
	// tap is set while the saga test kit watches this system's commands
	// (see tap.go).
	tap  atomic.Pointer[tapBox]
	down chan struct{} // closed when Shutdown has finished
	once sync.Once
}

// kindRuntime is the untyped view of a Handle the system needs.
type kindRuntime interface {
	router() *router
	clusterKind() clusterseam.Kind
}

// NewSystem validates cfg, applies its defaults and starts a system.
func NewSystem(cfg Config) (*System, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	protoLog := slog.New(levelFloor{h: cfg.Logger.Handler(), floor: slog.LevelWarn}).With("lib", "protoactor")
	actors := proto.NewActorSystemWithConfig(proto.Configure(
		proto.WithLoggerFactory(func(*proto.ActorSystem) *slog.Logger { return protoLog }),
		proto.WithDeadLetterRequestLogging(false),
	))
	bg, cancel := context.WithCancel(context.Background())
	s := &System{
		cfg:      cfg,
		actors:   actors,
		root:     actors.Root,
		sem:      make(chan struct{}, cfg.MaxConcurrentRecoveries),
		tracer:   telemetryhooks.Tracer(cfg.TracerProvider),
		timed:    cfg.Observer != nil || cfg.Metrics != nil,
		dedup:    dedupLimits{window: int64(cfg.DedupWindow), max: cfg.DedupMaxEntries},
		inline:   inlineCommands,
		bg:       bg,
		cancelBG: cancel,
		kinds:    make(map[string]kindRuntime),
		down:     make(chan struct{}),
	}
	if cfg.IdleTimeout > 0 {
		s.sweep = cfg.Clock.AfterFunc(s.sweepInterval(), s.sweepIdle)
	}
	return s, nil
}

// Registry returns the event type registry the system decodes events with.
func (s *System) Registry() *orchestrix.Registry { return s.cfg.Registry }

func init() {
	protosys.Of = func(sys any) *proto.ActorSystem { return sys.(*System).actors }
}

// Clock returns the clock the system uses.
func (s *System) Clock() orchestrix.Clock { return s.cfg.Clock }

// Register adds def to sys and returns the typed handle through which
// commands are sent. It registers def's event and command types in the
// system's registry. A kind may be registered once per system.
func Register[S, C, E any](sys *System, def aggregate.Definition[S, C, E]) (*Handle[S, C, E], error) {
	if err := def.Validate(); err != nil {
		return nil, err
	}
	if err := def.RegisterEvents(sys.cfg.Registry); err != nil {
		return nil, err
	}
	if err := def.RegisterCommands(sys.cfg.Registry); err != nil {
		return nil, err
	}
	sys.mu.Lock()
	defer sys.mu.Unlock()
	if sys.closed.Load() {
		return nil, fmt.Errorf("actor: register %q: %w", def.Kind, orchestrix.ErrClosed)
	}
	if _, dup := sys.kinds[def.Kind]; dup {
		return nil, fmt.Errorf("%w: %q", ErrAlreadyRegistered, def.Kind)
	}
	h := &Handle[S, C, E]{sys: sys, def: aggexec.Of(def), kind: def.Kind}
	h.routes = newRouter(def.Kind)
	h.props = proto.PropsFromProducer(func() proto.Actor { return &aggActor[S, C, E]{h: h} },
		proto.WithMailbox(newMailbox))
	sys.kinds[def.Kind] = h
	return h, nil
}

// Shutdown stops accepting commands, lets every active aggregate finish the
// commands it has already received (their appends complete and their
// callers get replies), saves passivation snapshots, and stops the actors.
// When ctx ends first, Shutdown gives up waiting, cancels appends still
// running (their callers see an unknown outcome) and returns ctx's error.
// Later calls return nil at once. Shutdown does not close the journal or
// snapshot store.
func (s *System) Shutdown(ctx context.Context) error {
	first := false
	s.once.Do(func() { first = true })
	if !first {
		<-s.down
		return nil
	}
	defer close(s.down)

	s.mu.Lock()
	s.closed.Store(true)
	if s.sweep != nil {
		s.sweep.Stop()
	}
	kinds := make([]kindRuntime, 0, len(s.kinds))
	for _, k := range s.kinds {
		kinds = append(kinds, k)
	}
	s.mu.Unlock()

	// Every sender checks closed under its shard's read lock, so once each
	// shard lock has been taken no further command can be enqueued and
	// the shutdown message is the last one each actor receives.
	var waits []chan struct{}
	for _, k := range kinds {
		r := k.router()
		for i := range r.shards {
			sh := &r.shards[i]
			sh.mu.Lock()
			for _, e := range sh.m {
				done := make(chan struct{})
				e.sent.Add(1)
				s.root.Send(e.pid, &shutdownMsg{done: done})
				waits = append(waits, done)
			}
			sh.mu.Unlock()
		}
	}
	var err error
	for _, w := range waits {
		select {
		case <-w:
		case <-ctx.Done():
			err = fmt.Errorf("actor: shutdown: %w", ctx.Err())
		}
		if err != nil {
			break
		}
	}
	s.cancelBG()
	if err == nil {
		s.workers.Wait()
	}
	s.actors.Shutdown()
	return err
}

// Close is Shutdown without a deadline.
func (s *System) Close() error { return s.Shutdown(context.Background()) }

func (s *System) sweepInterval() time.Duration {
	d := s.cfg.IdleTimeout / 2
	if d <= 0 {
		d = s.cfg.IdleTimeout
	}
	return d
}

// sweepIdle asks every aggregate idle for at least IdleTimeout to
// passivate, then re-arms itself.
func (s *System) sweepIdle() {
	if s.closed.Load() {
		return
	}
	now := s.cfg.Clock.Now().UnixNano()
	limit := int64(s.cfg.IdleTimeout)
	s.mu.Lock()
	kinds := make([]kindRuntime, 0, len(s.kinds))
	for _, k := range s.kinds {
		kinds = append(kinds, k)
	}
	s.mu.Unlock()
	for _, k := range kinds {
		r := k.router()
		for i := range r.shards {
			sh := &r.shards[i]
			sh.mu.RLock()
			for _, e := range sh.m {
				if now-e.lastActive.Load() >= limit && e.passivating.CompareAndSwap(false, true) {
					e.sent.Add(1)
					s.root.Send(e.pid, passivateIdle)
				}
			}
			sh.mu.RUnlock()
		}
	}
	s.mu.Lock()
	if !s.closed.Load() {
		s.sweep = s.cfg.Clock.AfterFunc(s.sweepInterval(), s.sweepIdle)
	}
	s.mu.Unlock()
}

// ioContext returns the context of one append or snapshot save: cancelled
// by Shutdown, and bounded by AppendTimeout when set.
func (s *System) ioContext() (context.Context, context.CancelFunc) {
	if s.cfg.AppendTimeout > 0 {
		return context.WithTimeout(s.bg, s.cfg.AppendTimeout)
	}
	return s.bg, func() {}
}

// validateID checks an aggregate or command id.
func (s *System) validateID(what, id string) error {
	if id == "" {
		return fmt.Errorf("%w: %s is empty", ErrInvalidID, what)
	}
	if len(id) > s.cfg.MaxIDLength {
		return fmt.Errorf("%w: %s is %d bytes, limit %d", ErrInvalidID, what, len(id), s.cfg.MaxIDLength)
	}
	if printableASCII(id) {
		return nil // the common case, in one pass
	}
	if !utf8.ValidString(id) {
		return fmt.Errorf("%w: %s is not valid UTF-8", ErrInvalidID, what)
	}
	for _, r := range id {
		if unicode.IsControl(r) {
			return fmt.Errorf("%w: %s %q contains a control character", ErrInvalidID, what, id)
		}
	}
	return nil
}

// printableASCII reports whether id is ASCII without control characters,
// which validateID then accepts without decoding runes.
func printableASCII(id string) bool {
	for i := 0; i < len(id); i++ {
		if c := id[i]; c < 0x20 || c >= 0x7f {
			return false
		}
	}
	return true
}

// ---- routing ----

const numShards = 256

// router maps aggregate ids to their actors. It is sharded so that no
// single lock or mailbox sits in front of every command: a command takes
// its shard's read lock only to find the PID (and the write lock only to
// spawn), then goes straight to the aggregate's mailbox.
type router struct {
	kind   string // the aggregate kind, for the cluster's admission check
	seed   maphash.Seed
	shards [numShards]shard
	active atomic.Int64
}

type shard struct {
	mu sync.RWMutex
	m  map[string]*entry
}

// entry is the routing record of one active aggregate.
type entry struct {
	pid *proto.PID
	// proc is the actor's process, looked up once at spawn so that sends
	// skip the PID's process lookup (a chain of cache misses when
	// thousands of actors are active). Messages go to the mailbox in
	// the same way as through the PID.
	proc proto.Process
	// mb is the actor's mailbox (set when the entry's initMsg is posted,
	// before the entry is published), for route's inline path.
	mb *mailbox
	// sent counts messages routed to the actor; received (written only by
	// the actor) counts those it has handled. The actor removes its entry
	// only under the shard's write lock and only when they are equal, so
	// no routed message is ever left in a stopped mailbox.
	sent     atomic.Uint64
	received uint64
	// lastActive is the clock time (UnixNano) of the last command or state
	// request the actor handled (of its activation before any): the
	// completion of an append does not restamp it.
	lastActive  atomic.Int64
	passivating atomic.Bool
}

func newRouter(kind string) *router {
	r := &router{kind: kind, seed: maphash.MakeSeed()}
	for i := range r.shards {
		r.shards[i].m = make(map[string]*entry)
	}
	return r
}

func (r *router) shardOf(id string) *shard {
	return &r.shards[maphash.String(r.seed, id)%numShards]
}

// errClosedSend is returned by route when the system is shut down.
var errClosedSend = orchestrix.ErrClosed

// route delivers msg to the actor of id, spawning it from props when
// absent (under the shard's write lock). With inline set (a command whose
// sender waits for its reply) and the actor ready and idle, the calling
// goroutine runs the actor for it once the shard's lock is released (see
// mailbox).
func (s *System) route(r *router, id string, msg any, props *proto.Props, maxActive int, inline bool) error {
	sh := r.shardOf(id)
	sh.mu.RLock()
	if s.closed.Load() {
		sh.mu.RUnlock()
		return errClosedSend
	}
	if err := s.admit(r, id); err != nil {
		sh.mu.RUnlock()
		return err
	}
	if e := sh.m[id]; e != nil {
		e.sent.Add(1)
		if mb := e.mb; inline && s.inline && mb != nil && mb.direct.Load() {
			c := mb.claim(msg)
			sh.mu.RUnlock()
			if c != claimLost {
				mb.runInline(msg, c)
			}
			return nil
		}
		e.send(msg)
		sh.mu.RUnlock()
		return nil
	}
	sh.mu.RUnlock()

	sh.mu.Lock()
	if s.closed.Load() {
		sh.mu.Unlock()
		return errClosedSend
	}
	if err := s.admit(r, id); err != nil {
		sh.mu.Unlock()
		return err
	}
	e := sh.m[id]
	spawned := false
	if e == nil {
		e = &entry{}
		e.lastActive.Store(s.cfg.Clock.Now().UnixNano())
		e.pid = s.root.Spawn(props)
		e.proc, _ = s.actors.ProcessRegistry.Get(e.pid) // dead letters if absent
		// The mailbox is FIFO: the actor learns its identity before any
		// routed message.
		e.send(&initMsg{id: id, e: e})
		sh.m[id] = e
		spawned = true
	}
	e.sent.Add(1)
	e.send(msg)
	sh.mu.Unlock()
	if spawned {
		if n := r.active.Add(1); maxActive > 0 && n > int64(maxActive) {
			s.evictOne(r, e)
		}
	}
	return nil
}

// admit asks the attached cluster router, if it checks admission, whether
// this member may route a message to the activation of id. Called under
// the shard's lock (see clusterseam.Admitter).
func (s *System) admit(r *router, id string) error {
	if cr := s.cluster.Load(); cr != nil && cr.admit != nil {
		return cr.admit.Admit(r.kind, id)
	}
	return nil
}

// evictOne asks an approximately least recently used aggregate other than
// keep to passivate: the oldest of up to evictSample aggregates sampled
// from consecutive shards, starting at a pseudo-random one.
func (s *System) evictOne(r *router, keep *entry) {
	var victim *entry
	var victimShard *shard
	var victimID string
	oldest := int64(math.MaxInt64)
	start := int(maphash.String(r.seed, keep.pid.Id) % numShards)
	sampled := 0
	for i := 0; i < numShards && sampled < evictSample; i++ {
		sh := &r.shards[(start+i)%numShards]
		sh.mu.RLock()
		for id, e := range sh.m {
			if e == keep || e.passivating.Load() {
				continue
			}
			if t := e.lastActive.Load(); t < oldest {
				oldest, victim, victimShard, victimID = t, e, sh, id
			}
			if sampled++; sampled >= evictSample {
				break
			}
		}
		sh.mu.RUnlock()
	}
	if victim == nil {
		return
	}
	victimShard.mu.RLock()
	if victimShard.m[victimID] == victim && victim.passivating.CompareAndSwap(false, true) {
		victim.sent.Add(1)
		s.root.Send(victim.pid, passivateEvict)
	}
	victimShard.mu.RUnlock()
}

const evictSample = 16

// remove deletes e from the routing table if every message routed to it
// has been handled, and reports whether it did. Called by the actor.
func (r *router) remove(id string, e *entry, force bool) bool {
	sh := r.shardOf(id)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if !force && e.sent.Load() != e.received {
		return false
	}
	if sh.m[id] == e {
		delete(sh.m, id)
		r.active.Add(-1)
	}
	return true
}

// send posts msg to the actor's mailbox.
func (e *entry) send(msg any) { e.proc.SendUserMessage(e.pid, msg) }

// initMsg tells a new actor which aggregate it is.
type initMsg struct {
	id string
	e  *entry
}

// count returns the number of active aggregates.
func (r *router) count() int { return int(r.active.Load()) }
