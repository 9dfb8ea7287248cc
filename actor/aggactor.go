package actor

import (
	"fmt"
	"math"
	"runtime/debug"
	"sync"
	"time"

	proto "github.com/asynkron/protoactor-go/actor"

	"github.com/orchestrix/orchestrix"
	"github.com/orchestrix/orchestrix/internal/aggexec"
	"github.com/orchestrix/orchestrix/internal/clusterseam"
	"github.com/orchestrix/orchestrix/journal"
	"github.com/orchestrix/orchestrix/snapshot"
	"github.com/orchestrix/orchestrix/telemetry"
)

// aggActor is the actor of one aggregate. Its fields are guarded by mu,
// which Receive holds while it handles a message; appends and snapshot
// saves report back by message, except that a successful append of the
// only batch of an otherwise idle actor may be completed directly by the
// journal's completion function (see completeInline), which saves a trip
// through the mailbox for the common case of an aggregate that is not hot.
//
// mu is the actor's own: no lock is shared between aggregates. Only two
// goroutines ever take it: the actor's mailbox goroutine in Receive, and
// the journal's goroutine in completeInline, which uses TryLock and falls
// back to the mailbox rather than wait. So Receive takes an uncontended
// mutex except while completeInline runs (bookkeeping and replies, no
// journal or snapshot I/O), and the journal's goroutine never blocks on
// an aggregate.
//
// Pipelining: commands are decided against the pending state (committed
// state plus the events of batches not yet durable). batches[0] is the
// batch being appended (at most one append is in flight); later batches
// collect the commands decided meanwhile, and are appended one Append call
// each once the previous one is durable. Every command, including rejected
// ones, takes its place in a batch so that replies leave in arrival order.
type aggActor[S, C, E any] struct {
	mu   sync.Mutex
	h    *Handle[S, C, E]
	e    *entry
	id   string
	self *proto.PID
	// stream is the aggregate's journal stream name, made on its first
	// append and reused by every later one (one allocation per actor
	// instead of one per append).
	stream string

	ready    bool
	state    S // committed
	version  uint64
	pstate   S // pending: state after every decided command
	pversion uint64

	batches  []*batch[S, E]
	inFlight bool
	pending  pendingSet[E] // accepted commands not yet answered, for dedup
	dedup    dedupCache[E]

	snapMark     uint64 // version of the last snapshot attempt
	snapSaved    uint64 // version of the newest snapshot known saved
	snapInFlight bool

	// direct mirrors the mailbox's direct flag (see updateDirect); hot
	// is set when a command arrives while an append is in flight, and
	// cleared when no batch is left.
	direct, hot bool

	shutdown chan struct{}
	// released: the shutdown is a cluster release (this member no longer
	// owns the id), so refused commands are told to run on the owner.
	released bool
	alsoDone []chan struct{} // further shutdowns waiting for this one
}

type batch[S, E any] struct {
	cmds       []*pendingCmd[E]
	envs       []orchestrix.Envelope
	endState   S
	endVersion uint64
	launched   bool

	// Storage for the common batch of one command with one event (an
	// aggregate that is not hot), so that it costs one allocation, and
	// for the message reporting its append.
	cmd0 pendingCmd[E]
	cmdp [1]*pendingCmd[E]
	env0 [1]orchestrix.Envelope
	done appendDone[S, E]
	// payloads holds the encoded payloads of envs where the registry
	// could write them into it (Registry.AppendMarshalFor); kept when b is
	// recycled, since the journal keeps no bytes of an append once it has
	// reported it.
	payloads []byte

	// owner is the actor that launched b. onAppended is b's completion
	// function for AppendAsync: made at b's first launch and kept when b
	// is recycled, since it refers to nothing but b.
	owner      appendReceiver[S, E]
	onAppended func(journal.AppendResult, error)
}

// appendReceiver is the actor that launched a batch, as its completion
// function sees it (a batch does not know the command type).
type appendReceiver[S, E any] interface {
	appended(b *batch[S, E], res journal.AppendResult, err error)
}

// newBatch returns an empty batch whose first command and event use the
// batch's own storage: a recycled one (see recycleBatch) when there is
// one.
func (h *Handle[S, C, E]) newBatch(state S, version uint64) *batch[S, E] {
	b, _ := h.batches.Get().(*batch[S, E])
	if b == nil {
		b = new(batch[S, E])
	}
	b.endState, b.endVersion = state, version
	b.cmds = b.cmdp[:0]
	b.envs = b.env0[:0]
	return b
}

// recycleBatch returns b to the Handle's pool. Call it only once nothing
// refers to b any more: every command of b answered and out of the
// pending set, b out of a.batches, and either b never launched or its
// append completed and reported (after the journal's completion function
// and any appendDone message of b). Batches of a failed append are not
// recycled: a late report of them is told apart by its pointer.
func (h *Handle[S, C, E]) recycleBatch(b *batch[S, E]) {
	f := b.onAppended
	payloads := b.payloads[:0]
	if cap(payloads) > maxRecycledPayloads {
		payloads = nil
	}
	*b = batch[S, E]{onAppended: f, payloads: payloads}
	h.batches.Put(b)
}

// maxRecycledPayloads bounds the payload buffer a recycled batch keeps:
// enough for a full batch (DefaultMaxBatchEvents) of small events, so that
// a hot aggregate's batches do not grow their buffers again each time.
const maxRecycledPayloads = 256 << 10

// newCmd returns storage for the next command of b.
func (b *batch[S, E]) newCmd() *pendingCmd[E] {
	if len(b.cmds) == 0 {
		return &b.cmd0
	}
	return new(pendingCmd[E])
}

type pendingCmd[E any] struct {
	tag      uint64 // idTag of res.CommandID
	at       int64  // when it was decided (Clock, unix ns): its events' Time
	res      Result[E]
	err      error
	reply    replier[E]
	start    time.Time // when it was sent; zero when not timed
	dups     []dupWaiter[E]
	answered bool // finish has run: a command is answered once
}

// dupWaiter is a retry of a command still in flight, answered with its
// result.
type dupWaiter[E any] struct {
	reply replier[E]
	start time.Time
}

type appendDone[S, E any] struct {
	b    *batch[S, E]
	base uint64
	res  journal.AppendResult
	err  error
}

type snapshotDone struct {
	version uint64
	err     error
}

func (a *aggActor[S, C, E]) sys() *System { return a.h.sys }

func (a *aggActor[S, C, E]) observe(o telemetry.Observation) {
	cfg := &a.h.sys.cfg
	if cfg.Observer == nil && cfg.Metrics == nil {
		return
	}
	o.AggregateKind = a.h.kind
	o.AggregateID = a.id
	if cfg.Metrics != nil {
		cfg.Metrics.Observe(o)
	}
	if cfg.Observer != nil {
		cfg.Observer.Observe(o)
	}
}

// commandDone reports a command about to be answered (before the reply,
// so that metrics include a command once its Send has returned): err is
// its error, start when it was sent (zero when not timed).
func (a *aggActor[S, C, E]) commandDone(start time.Time, version uint64, events int, outcome telemetry.Outcome, err error) {
	if !a.h.sys.timed {
		return
	}
	var d time.Duration
	if !start.IsZero() {
		d = a.sys().cfg.Clock.Now().Sub(start)
	}
	a.observe(telemetry.Observation{Kind: telemetry.CommandDone, Version: version, Events: events, Outcome: outcome, Duration: d, Err: err})
}

// Receive implements proto.Actor.
func (a *aggActor[S, C, E]) Receive(c proto.Context) {
	a.mu.Lock()
	defer a.mu.Unlock()
	defer a.updateDirect()
	defer func() {
		// Our own code should not panic; if it does, fail what is
		// pending and start over from the journal rather than let the
		// supervisor replace the actor with its routing counters.
		if r := recover(); r != nil {
			a.sys().cfg.Logger.Error("aggregate actor panicked; restarting from the journal",
				"kind", a.h.kind, "id", a.id, "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
			err := fmt.Errorf("actor: internal error: %v", r)
			a.failAll(err)
			if m, ok := c.Message().(*cmdMsg[C, E]); ok && !m.taken {
				// The panic came before the command was answered or
				// recorded: answer it here, or its sender (a served
				// command's completion function, which nothing else
				// bounds) would never hear of it.
				m.replier().send(Result[E]{}, err)
			}
		}
	}()
	switch m := c.Message().(type) {
	case *initMsg:
		a.id, a.e = m.id, m.e
		a.observe(telemetry.Observation{Kind: telemetry.Activated})
	case *cmdMsg[C, E]:
		// One clock reading for the command: its arrival (lastActive)
		// and its decision (see onCommand).
		now := a.sys().cfg.Clock.Now()
		a.routed(false)
		a.e.lastActive.Store(now.UnixNano())
		a.onCommand(c, m, now)
		a.maybeFinish(c) // a stopping actor refused it: maybe the last one routed
	case *stateMsg[S]:
		a.routed(true)
		a.onState(m)
		a.maybeFinish(c)
	case *appendDone[S, E]:
		// Not a touch: the append's commands stamped lastActive when they
		// arrived, and the actor cannot passivate with an append in flight.
		a.onAppendDone(c, m)
	case *snapshotDone:
		a.onSnapshotDone(c, m)
	case *passivateMsg:
		a.routed(false)
		a.onPassivate(c, m)
		a.maybeFinish(c)
	case *shutdownMsg:
		a.routed(false)
		if a.shutdown != nil {
			// Already stopping (a release, then the system's Close, say):
			// this one waits for the same end.
			a.alsoDone = append(a.alsoDone, m.done)
			a.released = a.released && m.release
			a.maybeFinish(c)
			return
		}
		a.shutdown = m.done
		a.released = m.release
		a.maybeFinish(c)
	case *proto.Started:
		a.self = c.Self()
	}
}

func (a *aggActor[S, C, E]) routed(active bool) {
	a.e.received++
	if active {
		a.touch()
	}
}

func (a *aggActor[S, C, E]) touch() {
	a.e.lastActive.Store(a.sys().cfg.Clock.Now().UnixNano())
}

// ---- recovery ----

// restore rebuilds the aggregate's state, version and dedup cache from its
// snapshot and journal stream, and marks the actor ready.
func (a *aggActor[S, C, E]) restore() error {
	sys := a.sys()
	select {
	case sys.sem <- struct{}{}:
	case <-sys.bg.Done():
		return orchestrix.ErrClosed
	}
	defer func() { <-sys.sem }()
	start := sys.cfg.Clock.Now()
	rb, err := a.h.rebuild(sys.bg, a.id, math.MaxUint64, nil, a.dedupLim())
	a.observe(telemetry.Observation{Kind: telemetry.Recovered, Version: rb.version, SnapshotVersion: rb.snapshotVersion,
		Events: rb.replayed, Duration: sys.cfg.Clock.Now().Sub(start), Err: err})
	if err != nil {
		sys.cfg.Logger.Warn("aggregate recovery failed", "kind", a.h.kind, "id", a.id, "error", err)
		return &recoveryError{cause: err}
	}
	a.state, a.pstate = rb.state, rb.state
	a.version, a.pversion = rb.version, rb.version
	a.snapMark, a.snapSaved = rb.snapshotVersion, rb.snapshotVersion
	a.dedup = rb.dedup
	a.ready = true
	return nil
}

// updateDirect tells route whether senders may run this actor's commands
// on their own goroutines (see mailbox): only while it is ready, not
// stopping, and not hot. So neither a recovery nor a stop runs on a
// caller, and a hot aggregate (commands arriving while its append is in
// flight, its mailbox rarely idle) is run by its mailbox goroutine as
// before. Called with a.mu held after each message and inline completion.
func (a *aggActor[S, C, E]) updateDirect() {
	on := a.ready && a.shutdown == nil && !a.hot
	if on != a.direct && a.e != nil && a.e.mb != nil {
		a.direct = on
		a.e.mb.direct.Store(on)
	}
}

// ---- commands ----

// onCommand decides m's command. now is the clock reading taken when
// Receive got m: it is the command's decision time (its events' Time and
// dedup entry time, the dedup window's end for its lookup) unless the
// actor first recovers, which takes a reading of its own after recovery.
func (a *aggActor[S, C, E]) onCommand(c proto.Context, m *cmdMsg[C, E], now time.Time) {
	cmd := m.cmd
	if a.shutdown != nil {
		err := orchestrix.ErrClosed
		if a.released {
			err = clusterseam.ErrReleased // not executed: the caller re-places it
		}
		a.commandDone(m.start, 0, 0, telemetry.OutcomeClosed, err)
		m.replier().send(Result[E]{}, err)
		return
	}
	if !a.ready {
		if err := a.restore(); err != nil {
			a.commandDone(m.start, 0, 0, outcomeOf(err), err)
			m.replier().send(Result[E]{}, err)
			return
		}
		now = a.sys().cfg.Clock.Now() // recovery took its time
	}
	if a.inFlight {
		a.hot = true
	}
	lim := a.dedupLim()
	var tag uint64
	if lim.on() {
		tag = idTag(cmd.ID)
		if hit, ok := a.dedup.get(cmd.ID, tag, lim.cutoff(now.UnixNano())); ok {
			r, err := a.dedupResult(hit)
			outcome := telemetry.OutcomeDuplicate
			if err != nil {
				outcome = outcomeOf(err)
			}
			a.commandDone(m.start, hit.res.Version, 0, outcome, err)
			m.replier().send(r, err)
			return
		}
		if p := a.pending.get(cmd.ID, tag); p != nil {
			p.dups = append(p.dups, dupWaiter[E]{reply: m.replier(), start: m.start})
			return
		}
	}

	var next S
	var events []E
	var decErr error
	if a.h.def.Creates != nil && a.pversion == 0 {
		if ok, err := a.creates(cmd.Body); err != nil {
			decErr = err
		} else if !ok {
			decErr = fmt.Errorf("%w: %s %q has no events and the command does not create it", orchestrix.ErrNotFound, a.h.kind, a.id)
		}
	}
	if decErr == nil {
		next, events, decErr = a.h.def.Execute(a.pstate, cmd.Body)
	}

	if len(a.batches) == 0 && (decErr != nil || len(events) == 0) {
		// Nothing pending: the outcome is final now.
		p := &pendingCmd[E]{tag: tag, at: now.UnixNano(), reply: m.replier(), start: m.start, err: decErr,
			res: Result[E]{CommandID: cmd.ID, Version: a.pversion}}
		a.finish(p)
		return
	}
	b := a.building(len(events))
	p := b.newCmd()
	*p = pendingCmd[E]{tag: tag, at: now.UnixNano(), reply: m.replier(), start: m.start, err: decErr, res: Result[E]{CommandID: cmd.ID}}
	if p.err == nil && len(events) > 0 {
		n := len(b.envs)
		var err error
		b.envs, b.payloads, err = a.h.envelopesFor(cmd, events, now, b.envs, b.payloads)
		if err != nil {
			clear(b.envs[n:])
			b.envs = b.envs[:n]
			p.err = fmt.Errorf("actor: encoding events: %w", err)
		} else {
			a.pstate = next
			a.pversion += uint64(len(events))
			p.res.Events = events
		}
	}
	p.res.Version = a.pversion
	b.cmds = append(b.cmds, p)
	b.endState, b.endVersion = a.pstate, a.pversion
	if p.err == nil && lim.on() {
		a.pending.add(p)
	}
	if a.inFlight {
		a.observe(telemetry.Observation{Kind: telemetry.Decided, Version: p.res.Version, Events: len(p.res.Events), Err: p.err})
	}
	a.advance(c)
}

func (a *aggActor[S, C, E]) creates(body C) (ok bool, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = aggexec.PanicError("Creates", r)
		}
	}()
	return a.h.def.Creates(body), nil
}

// building returns the batch new commands join: the last one unless it is
// already being appended or adding n events would exceed MaxBatchEvents.
func (a *aggActor[S, C, E]) building(n int) *batch[S, E] {
	if k := len(a.batches); k > 0 {
		last := a.batches[k-1]
		if !last.launched && (len(last.envs) == 0 || len(last.envs)+n <= a.sys().cfg.MaxBatchEvents) {
			return last
		}
	}
	b := a.h.newBatch(a.pstate, a.pversion)
	a.batches = append(a.batches, b)
	return b
}

// advance answers leading batches without events and launches the next
// append when none is in flight.
func (a *aggActor[S, C, E]) advance(c proto.Context) {
	for !a.inFlight && len(a.batches) > 0 {
		b := a.batches[0]
		if len(b.envs) > 0 {
			a.launch(b)
			break
		}
		for _, p := range b.cmds {
			a.finish(p)
		}
		a.popBatch()
		a.h.recycleBatch(b) // never launched: nothing else refers to it
	}
	a.maybeFinish(c)
}

func (a *aggActor[S, C, E]) popBatch() {
	n := copy(a.batches, a.batches[1:])
	a.batches[n] = nil
	a.batches = a.batches[:n]
	if n == 0 {
		a.hot = false
		if cap(a.batches) > 4 {
			a.batches = nil
		}
	}
}

// launch appends b; the result comes back as an appendDone message. A
// journal.AsyncAppender (package journal/bolt) is handed the batch
// with a completion function; any other journal is called on a goroutine
// of its own.
func (a *aggActor[S, C, E]) launch(b *batch[S, E]) {
	sys := a.sys()
	b.launched = true
	a.inFlight = true
	base := a.version
	if a.stream == "" {
		a.stream = a.h.Stream(a.id)
	}
	stream := a.stream
	self, proc := a.self, a.e.proc
	sys.workers.Add(1)
	if aj, ok := sys.cfg.Journal.(journal.AsyncAppender); ok && sys.cfg.AppendTimeout <= 0 {
		// The append's context carries the trace of the batch's first
		// event (its command's span), so that a journal's commit span
		// (telemetryhooks.StartCommitSpan) joins that trace.
		ctx := telemetry.ContextFromTraceParent(sys.bg, b.envs[0].TraceParent)
		// b.done is the batch's own message: one append per batch.
		b.done = appendDone[S, E]{b: b, base: base}
		b.owner = a
		if b.onAppended == nil {
			b.onAppended = func(res journal.AppendResult, err error) { b.owner.appended(b, res, err) }
		}
		err := aj.AppendAsync(ctx, stream, journal.Exact(base), b.envs, b.onAppended)
		if err != nil {
			b.done.err = err
			proc.SendUserMessage(self, &b.done)
			sys.workers.Done()
		}
		return
	}
	go func() {
		defer sys.workers.Done()
		ctx, cancel := sys.ioContext()
		ctx = telemetry.ContextFromTraceParent(ctx, b.envs[0].TraceParent)
		res, err := sys.cfg.Journal.Append(ctx, stream, journal.Exact(base), b.envs)
		cancel()
		proc.SendUserMessage(self, &appendDone[S, E]{b: b, base: base, res: res, err: err})
	}()
}

// appended is the completion function of b's AppendAsync, called on the
// journal's goroutine: it completes b in place when it can (see
// completeInline) and otherwise posts b's own appendDone message.
// What it needs of b is read first: once b is completed or posted, the
// actor may recycle b and another actor may reuse it. The actor's pid and
// process (fixed before its first command) are read only when b is
// posted, so that an inline completion does not load the routing entry.
func (a *aggActor[S, C, E]) appended(b *batch[S, E], res journal.AppendResult, err error) {
	sys, base := a.sys(), b.done.base
	if err == nil && a.completeInline(b, base, res) {
		sys.workers.Done()
		return
	}
	self, proc := a.self, a.e.proc
	b.done.res, b.done.err = res, err
	proc.SendUserMessage(self, &b.done)
	sys.workers.Done()
}

// completeInline completes the successful append of b on the calling
// goroutine (the journal's writer) when that is cheap and safe: the actor
// is not handling a message (its lock is free), b is its only batch (so
// no further append has to be encoded and launched here), the journal
// stored the expected versions, and neither a snapshot nor a shutdown is
// due. It reports whether it did; otherwise the result goes through the
// mailbox as an appendDone message. It never blocks.
func (a *aggActor[S, C, E]) completeInline(b *batch[S, E], base uint64, res journal.AppendResult) bool {
	if !a.mu.TryLock() {
		return false
	}
	defer a.mu.Unlock()
	defer a.updateDirect()
	if a.shutdown != nil || len(a.batches) != 1 || a.batches[0] != b ||
		res.FirstVersion != base+1 || res.LastVersion != b.endVersion || a.snapshotDue(b.endVersion) {
		return false
	}
	defer func() {
		// As in Receive: an Observer's panic must not take the journal's
		// writer down with it.
		if r := recover(); r != nil {
			a.sys().cfg.Logger.Error("aggregate actor panicked; restarting from the journal",
				"kind", a.h.kind, "id", a.id, "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
			a.failAll(fmt.Errorf("actor: internal error: %v", r))
		}
	}()
	// No touch (lastActive) either, as for an appendDone message: the
	// commands stamped it when they arrived; this saves the journal's
	// goroutine a clock reading per batch.
	//
	// There is no proto.Context here (we are on the journal's goroutine,
	// not in Receive), so c is nil. onAppendDone uses c only to stop the
	// actor, through maybeFinish, which does nothing unless a shutdown is
	// pending; a.shutdown was nil above, and only Receive sets it, under
	// a.mu, which we hold until we return. The checks above also make b
	// the only batch, so advance launches nothing either.
	a.onAppendDone(nil, &appendDone[S, E]{b: b, base: base, res: res})
	return true
}

func (a *aggActor[S, C, E]) onAppendDone(c proto.Context, m *appendDone[S, E]) {
	if len(a.batches) == 0 || a.batches[0] != m.b {
		return // from before a restart
	}
	a.inFlight = false
	b := m.b
	err := m.err
	if err == nil && (m.res.FirstVersion != m.base+1 || m.res.LastVersion != b.endVersion) {
		err = fmt.Errorf("%w: journal stored versions %d-%d, expected %d-%d", orchestrix.ErrCorrupt,
			m.res.FirstVersion, m.res.LastVersion, m.base+1, b.endVersion)
	}
	a.observe(telemetry.Observation{Kind: telemetry.Committed, Version: b.endVersion, Events: len(b.envs), Commands: len(b.cmds), Err: err})
	if err != nil {
		a.sys().cfg.Logger.Warn("append failed; aggregate restarts from the journal",
			"kind", a.h.kind, "id", a.id, "error", err)
		a.failAll(classifyAppendError(err))
		a.maybeFinish(c)
		return
	}
	a.state, a.version = b.endState, b.endVersion
	for _, p := range b.cmds {
		if p.err == nil && len(p.res.Events) > 0 {
			p.res.Position = m.res.LastPosition
		}
		a.finish(p)
	}
	a.popBatch()
	a.maybeSnapshot()
	a.advance(c)
	// b's append has reported (m is this report: b's own done message, or
	// completeInline's), its commands are answered and out of the pending
	// set: nothing refers to b now. m is not read after this.
	a.h.recycleBatch(b)
}

// finish answers p and its duplicates and remembers a success for dedup.
func (a *aggActor[S, C, E]) finish(p *pendingCmd[E]) {
	if p.answered {
		return
	}
	p.answered = true
	if a.pending.len() > 0 {
		a.pending.remove(p)
	}
	if lim := a.dedupLim(); p.err == nil && lim.on() {
		// A success was looked up when it arrived and, when it had
		// events, was in the pending set since: its id is new.
		a.dedup.addNew(p.res, p.tag, p.at, lim)
	}
	outcome := outcomeOf(p.err)
	a.commandDone(p.start, p.res.Version, len(p.res.Events), outcome, p.err)
	p.reply.send(p.res, p.err)
	if len(p.dups) > 0 {
		dup := p.res
		dup.Duplicate = true
		if p.err == nil {
			outcome = telemetry.OutcomeDuplicate
		}
		for _, w := range p.dups {
			a.commandDone(w.start, p.res.Version, 0, outcome, p.err)
			w.reply.send(dup, p.err)
		}
	}
}

// replier is where a command's outcome goes: the reply channel of a
// caller waiting in dispatchLocal, or the completion function of one that
// does not wait (dispatchAsync), or neither (Tell). The actor answers a
// command exactly once, through send.
type replier[E any] struct {
	ch chan cmdReply[E]
	// to is called on whichever goroutine answers the command: the
	// actor's, the journal's (completeInline) or a sender's running the
	// command inline, with the actor's lock held (see completion).
	to completion[E]
}

func (r replier[E]) send(res Result[E], err error) {
	if err != nil {
		res = Result[E]{}
	}
	if r.ch != nil {
		r.ch <- cmdReply[E]{res: res, err: err}
	}
	if r.to != nil {
		r.to.complete(res, err)
	}
}

// failAll fails every queued command after a journal failure (cause) and
// drops the state: the next message recovers from the journal. Commands
// with events in the failed batch get cause; every command decided against
// state that included uncommitted events gets an abortedError.
func (a *aggActor[S, C, E]) failAll(cause error) {
	speculative := false
	for i, b := range a.batches {
		for _, p := range b.cmds {
			switch {
			case p.err == nil && len(p.res.Events) > 0 && i == 0 && b.launched:
				p.err = cause
				speculative = true
			case p.err == nil || speculative:
				p.err = &abortedError{cause: cause}
			}
			a.finish(p)
		}
	}
	var zero S
	clear(a.batches)
	a.batches, a.inFlight, a.hot = a.batches[:0], false, false
	a.pending.reset()
	a.state, a.pstate, a.version, a.pversion = zero, zero, 0, 0
	a.dedup = dedupCache[E]{}
	a.ready = false
	a.observe(telemetry.Observation{Kind: telemetry.Restarted, Err: cause})
}

// ---- state ----

func (a *aggActor[S, C, E]) onState(m *stateMsg[S]) {
	var zero S
	if !a.ready {
		if err := a.restore(); err != nil {
			m.reply <- stateReply[S]{err: err}
			return
		}
	}
	if a.h.def.Creates != nil && a.version == 0 {
		m.reply <- stateReply[S]{state: zero, err: orchestrix.ErrNotFound}
		return
	}
	m.reply <- stateReply[S]{state: a.state, version: a.version}
}

// ---- snapshots ----

// snapshotDue reports whether a snapshot would be taken at version.
func (a *aggActor[S, C, E]) snapshotDue(version uint64) bool {
	n := a.h.def.SnapshotInterval()
	return a.sys().cfg.Snapshots != nil && n > 0 && !a.snapInFlight && version-a.snapMark >= uint64(n)
}

func (a *aggActor[S, C, E]) maybeSnapshot() {
	sys := a.sys()
	if !a.snapshotDue(a.version) {
		return
	}
	snap, ok := a.encodeSnapshot()
	a.snapMark = a.version
	if !ok {
		return
	}
	a.snapInFlight = true
	prev := a.snapSaved
	deleteEvents := a.h.def.DeleteEventsOnSnapshot
	self := a.self
	sys.workers.Add(1)
	go func() {
		defer sys.workers.Done()
		ctx, cancel := sys.ioContext()
		defer cancel()
		err := sys.cfg.Snapshots.Save(ctx, snap)
		if err == nil && deleteEvents && prev > 0 {
			if d, ok := sys.cfg.Journal.(journal.Deleter); ok {
				if derr := d.DeleteTo(ctx, snap.Stream, prev); derr != nil {
					sys.cfg.Logger.Warn("deleting events before snapshot failed", "stream", snap.Stream, "to", prev, "error", derr)
				}
			}
		}
		sys.root.Send(self, &snapshotDone{version: snap.Version, err: err})
	}()
}

func (a *aggActor[S, C, E]) encodeSnapshot() (snapshot.Snapshot, bool) {
	sys := a.sys()
	data, err := a.h.encodeState(sys.bg, a.id, a.state)
	if err != nil {
		sys.cfg.Logger.Warn("encoding snapshot failed", "kind", a.h.kind, "id", a.id, "error", err)
		a.observe(telemetry.Observation{Kind: telemetry.SnapshotSaved, Version: a.version, Err: err})
		return snapshot.Snapshot{}, false
	}
	return snapshot.Snapshot{
		Stream: a.h.Stream(a.id), Version: a.version, Type: a.h.kind,
		SchemaVersion: a.h.def.SchemaVersion(), Time: sys.cfg.Clock.Now(), Data: data,
	}, true
}

func (a *aggActor[S, C, E]) onSnapshotDone(c proto.Context, m *snapshotDone) {
	a.snapInFlight = false
	a.observe(telemetry.Observation{Kind: telemetry.SnapshotSaved, Version: m.version, Err: m.err})
	if m.err != nil {
		a.sys().cfg.Logger.Warn("saving snapshot failed", "kind", a.h.kind, "id", a.id, "version", m.version, "error", m.err)
	} else if m.version > a.snapSaved {
		a.snapSaved = m.version
	}
	if a.ready && a.shutdown == nil {
		a.maybeSnapshot() // catch up on an interval passed meanwhile
	}
	a.maybeFinish(c)
}

// ---- passivation ----

func (a *aggActor[S, C, E]) onPassivate(c proto.Context, m *passivateMsg) {
	a.e.passivating.Store(false)
	if a.shutdown != nil || len(a.batches) > 0 || a.snapInFlight {
		return
	}
	sys := a.sys()
	if !m.evict {
		idle := sys.cfg.Clock.Now().UnixNano() - a.e.lastActive.Load()
		if sys.cfg.IdleTimeout <= 0 || idle < int64(sys.cfg.IdleTimeout) {
			return
		}
	}
	if !a.h.routes.remove(a.id, a.e, false) {
		return // messages are on their way; stay active
	}
	a.stop(c)
}

// maybeFinish completes a shutdown once nothing is in flight.
func (a *aggActor[S, C, E]) maybeFinish(c proto.Context) {
	if a.shutdown == nil || len(a.batches) > 0 || a.snapInFlight {
		return
	}
	if !a.h.routes.remove(a.id, a.e, false) {
		// More messages were routed here than handled: another stop
		// request (two releases at once, a release and Close) or
		// commands are still in the mailbox. Handle them first: once
		// this actor stops, protoactor-go drops what is left in its
		// mailbox, and a stop request's waiter would wait forever. Each
		// of them calls maybeFinish again.
		return
	}
	done := a.shutdown
	a.shutdown = nil
	a.stop(c)
	close(done)
	for _, d := range a.alsoDone {
		close(d)
	}
	a.alsoDone = nil
}

// stop saves a final snapshot when the state moved past the last one, and
// stops the actor. The entry is already out of the routing table.
func (a *aggActor[S, C, E]) stop(c proto.Context) {
	sys := a.sys()
	if a.ready && sys.cfg.Snapshots != nil && a.version > a.snapSaved {
		if snap, ok := a.encodeSnapshot(); ok {
			ctx, cancel := sys.ioContext()
			err := sys.cfg.Snapshots.Save(ctx, snap)
			cancel()
			a.observe(telemetry.Observation{Kind: telemetry.SnapshotSaved, Version: snap.Version, Err: err})
			if err != nil {
				sys.cfg.Logger.Warn("saving passivation snapshot failed", "kind", a.h.kind, "id", a.id, "error", err)
			}
		}
	}
	a.observe(telemetry.Observation{Kind: telemetry.Passivated, Version: a.version})
	c.Stop(c.Self())
}
