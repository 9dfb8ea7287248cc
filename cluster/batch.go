package cluster

import (
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	proto "github.com/asynkron/protoactor-go/actor"

	"github.com/orchestrix/orchestrix"
	"github.com/orchestrix/orchestrix/cluster/internal/wire"
	"github.com/orchestrix/orchestrix/internal/clusterseam"
)

// This file coalesces the commands this member sends to the same member
// into one wire message (wire.CommandBatch), and the replies it sends back
// to one caller's batch into as few wire.CommandBatchReply messages as
// the bound on holding them allows (replyBatch).
//
// Each remote command otherwise costs its own protoactor-go envelope on
// both sides (marshalled and unmarshalled by type name, a mailbox post to
// the request actor, a reply process registered per request), which was
// a large share of a member's CPU under load (BENCHMARKS.md).
//
// Batching is Nagle-free, like the journal writers' group commit: a
// command is queued in the outbox of its target address, and the caller
// that queued into an idle outbox yields the processor once
// (runtime.Gosched) and sends everything queued by then; what is queued
// while it sends goes in the next batch, sent by a worker goroutine. With
// nothing else runnable the yield returns at once, so a lone command is
// not held up; under load, the commands of the callers that ran during
// that one pass of the scheduler go together. Nothing waits on a timer.
//
// What does not change: each command keeps its own id, and its caller
// keeps its own deadline, pending-target tracking and outcome (request in
// member.go): a reply comes back to its caller by the command's seq in its
// batch, a caller that gives up abandons only its own command (a late
// reply is dropped), a dead letter (the target has no request actor) ends
// each command of the batch as not delivered, and a target that dies ends
// each one with orchestrix.ErrOutcomeUnknown through the pending set.
//
// Rolling upgrade: a member of an older build crashes on a protobuf type
// it does not know, so a member sends batches only to a peer that
// announced wire.Feature_FEATURE_COMMAND_BATCH in a wire.HandoffReply (the
// answer to every confirmation probe and handoff; an older build leaves
// the field 0), recorded against the peer's member id: a member restarted
// at the same address (a new id) gets single requests until it announces
// the feature itself.

// olderBuildForTests makes the members Start creates behave, for this
// file, as members of a build before batches: they neither announce nor
// send them, and drop a CommandBatch unanswered (an older build would
// crash). Set only by the multi-process tests, before Start.
var olderBuildForTests bool

// unpackedBuildForTests is olderBuildForTests for packed batches alone
// (packed.go): the members Start creates then neither announce nor send
// them, as a build with batches but before packed ones.
var unpackedBuildForTests bool

// featureBit is the HandoffReply.features bit of f.
func featureBit(f wire.Feature) uint64 { return 1 << uint(f) }

// features is what this member announces in its HandoffReplies.
func (m *Member) features() uint64 {
	if m.noBatch {
		return 0
	}
	if m.noPacked {
		return featureBit(wire.Feature_FEATURE_COMMAND_BATCH)
	}
	return featureBit(wire.Feature_FEATURE_COMMAND_BATCH) | featureBit(wire.Feature_FEATURE_PACKED_BATCH)
}

// Limits of one CommandBatch: more commands, or more command bytes, than
// this go in the next batch (a single command larger than maxBatchBytes
// goes alone, as it would unbatched).
const (
	maxBatchCommands = 256
	maxBatchBytes    = 1 << 20
)

// capabilities records which peers announced which features, by address,
// against the member id the peer had in this member's view when asked,
// and forgets an address when the connection to it is lost (protoactor-go
// publishes remote.EndpointTerminatedEvent): a process restarted at that
// address (an older build, in a rolling downgrade) may answer before this
// member's view shows its new id. gen counts the losses per address, so
// that an answer to a request sent before a loss is not recorded after it.
type capabilities struct {
	mu     sync.RWMutex
	byAddr map[string]capability
	gen    map[string]uint64
}

type capability struct {
	id       string
	features uint64
}

// generation returns the count of connection losses of addr so far; take
// it before sending the request whose answer is recorded.
func (c *capabilities) generation(addr string) uint64 {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.gen[addr]
}

// lost forgets what addr announced: its connection was lost.
func (c *capabilities) lost(addr string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gen == nil {
		c.gen = map[string]uint64{}
	}
	c.gen[addr]++
	delete(c.byAddr, addr)
}

// record notes that the member with id at addr announced features, in an
// answer to a request sent at generation gen of addr.
func (c *capabilities) record(addr, id string, gen, features uint64) {
	if id == "" {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gen[addr] != gen {
		return // the connection was lost since: the answer may be stale
	}
	if c.byAddr == nil {
		c.byAddr = map[string]capability{}
	}
	c.byAddr[addr] = capability{id: id, features: features}
}

// has reports whether the member with id at addr announced f.
func (c *capabilities) has(addr, id string, f wire.Feature) bool {
	c.mu.RLock()
	cp, ok := c.byAddr[addr]
	c.mu.RUnlock()
	return ok && cp.id == id && cp.features&featureBit(f) != 0
}

// peerID returns the member id of addr in the current view ("" if none).
func (m *Member) peerID(addr string) string {
	v := m.cur.Load()
	if v == nil {
		return ""
	}
	for _, p := range v.pl {
		if p.addr == addr {
			return p.id
		}
	}
	return ""
}

// askedAt is what noteFeatures needs to know of the moment a request
// to addr was sent: the member id addr had in this member's view, and the
// generation of its connection.
type askedAt struct {
	id  string
	gen uint64
}

func (m *Member) asking(addr string) askedAt {
	return askedAt{id: m.peerID(addr), gen: m.caps.generation(addr)}
}

// noteFeatures records the features a HandoffReply from addr announced,
// in answer to a request sent at a.
func (m *Member) noteFeatures(addr string, a askedAt, r *wire.HandoffReply) {
	m.caps.record(addr, a.id, a.gen, r.GetFeatures())
}

// batches reports whether commands to addr may go in batches.
func (m *Member) batches(addr string) bool {
	return !m.noBatch && m.caps.has(addr, m.peerID(addr), wire.Feature_FEATURE_COMMAND_BATCH)
}

// packs reports whether a batch to addr may be packed (packed.go).
func (m *Member) packs(addr string) bool {
	return !m.noPacked && m.caps.has(addr, m.peerID(addr), wire.Feature_FEATURE_PACKED_BATCH)
}

// ---- caller side ----

// outbox queues the commands to one target address.
type outbox struct {
	mu        sync.Mutex
	queue     []*batchItem
	scheduled bool      // a flush is scheduled or running
	lastSent  time.Time // when the last batch to the address was taken (Member.outboxClock)
	lastSize  int       // how many commands it took
}

// Under load, the commands for a member come in bursts: a batch's
// replies wake its callers together, and each sends its next command
// within a fraction of a millisecond, but on its own goroutine, so one
// scheduler pass (flushOutbox's yield) catches only the callers already
// runnable. When the last batch to an address left less than outboxBusy
// ago and carried at least outboxBurst commands (so, under a load that
// comes in bursts), the outbox gathers for Member.outboxHold before it
// flushes, which puts most of a burst in one message (in bench cluster:
// ~12 commands a batch instead of ~6, and half the messages over both
// directions). An address without recent traffic, or whose commands come
// one at a time (a lone command, a quiet system, a moderate steady load),
// is flushed at once, as before: the hold only adds its latency where it
// saves messages (BENCHMARKS.md, "…packed batches and the caller-side
// hold").
const (
	outboxBusy        = 2 * time.Millisecond
	outboxBurst       = 4
	defaultOutboxHold = 3 * time.Millisecond
)

// batchItem is one command waiting in an outbox or sent in a batch.
type batchItem struct {
	req *wire.CommandRequest
	// sent is what goes in the batch: a copy of req with its seq (the
	// caller's req may be sent again, by a retry, while this one is in
	// flight), kept here to spare an allocation per command.
	sent  wire.CommandRequest
	reply chan any // buffered (1): its *wire.CommandReply, or a *proto.DeadLetterResponse
	// done is set once by whoever ends the item first: its reply (or a
	// dead letter) arriving, or its caller abandoning it.
	done atomic.Bool
	// slot is set when its batch is sent; counted makes the item count
	// once in the slot's left, whoever of its sender and its caller
	// sees both slot and done first.
	slot    atomic.Pointer[batchSlot]
	counted atomic.Bool
}

// outboxes holds an outbox per target address.
type outboxes struct {
	mu     sync.Mutex
	byAddr map[string]*outbox
}

func (o *outboxes) get(addr string) *outbox {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.byAddr == nil {
		o.byAddr = map[string]*outbox{}
	}
	b := o.byAddr[addr]
	if b == nil {
		b = &outbox{}
		o.byAddr[addr] = b
	}
	return b
}

// sendBatched queues req for the member at addr and returns the channel
// its reply arrives on and the function that abandons it (call it once
// the request ended, whatever the outcome), like sendRequest.
func (m *Member) sendBatched(addr string, req *wire.CommandRequest) (<-chan any, func()) {
	it := &batchItem{req: req, reply: make(chan any, 1)}
	ob := m.outboxes.get(addr)
	ob.mu.Lock()
	ob.queue = append(ob.queue, it)
	start := !ob.scheduled
	ob.scheduled = true
	hold := start && m.outboxHold > 0 && ob.lastSize >= outboxBurst && m.outboxClock().Now().Sub(ob.lastSent) < outboxBusy
	ob.mu.Unlock()
	switch {
	case hold:
		m.outboxClock().AfterFunc(m.outboxHold, func() { m.flushOutbox(addr, ob, false) })
	case start:
		m.flushOutbox(addr, ob, true)
	}
	return it.reply, func() { it.abandon() }
}

// outboxClock times the outboxes' hold: outboxTestClock when set (tests),
// the system clock otherwise.
func (m *Member) outboxClock() orchestrix.Clock {
	if m.outboxTestClock != nil {
		return m.outboxTestClock
	}
	return orchestrix.SystemClock{}
}

// flushOutbox sends what is queued in ob, in batches. It first yields
// the processor once (runtime.Gosched), so that the callers already
// runnable queue their commands too: with nothing else runnable it goes
// on at once (a lone command is not held up), under load the batch holds
// what arrived during one pass of the scheduler (and, to a busy address,
// during the hold before it: see outboxBusy). inline is set when the
// caller that found the outbox idle runs it: it sends one batch and hands
// what was queued meanwhile to a worker, so no caller is held up sending
// others' commands for long; a worker sends until the outbox is empty.
func (m *Member) flushOutbox(addr string, ob *outbox, inline bool) {
	pid := proto.NewPID(addr, serverName)
	for {
		runtime.Gosched()
		ob.mu.Lock()
		items := ob.queue
		n, size := 0, 0
		for n < len(items) && n < maxBatchCommands {
			size += len(items[n].req.GetCommand())
			if n > 0 && size > maxBatchBytes {
				break
			}
			n++
		}
		if n == 0 {
			ob.scheduled = false
			ob.mu.Unlock()
			return
		}
		if n == len(items) {
			ob.queue = nil
		} else {
			ob.queue = append([]*batchItem(nil), items[n:]...)
		}
		if m.outboxHold > 0 {
			ob.lastSent, ob.lastSize = m.outboxClock().Now(), n
		}
		ob.mu.Unlock()
		// Commands whose callers gave up before they were sent are not
		// sent (their callers reported an unknown outcome, and nothing
		// ran).
		send := items[:0:0]
		for _, it := range items[:n] {
			if !it.done.Load() {
				send = append(send, it)
			}
		}
		if len(send) > 0 {
			m.sendBatch(pid, send)
		}
		if inline {
			ob.mu.Lock()
			more := len(ob.queue) > 0
			if !more {
				ob.scheduled = false
			}
			ob.mu.Unlock()
			if more {
				m.work.run(func() { m.flushOutbox(addr, ob, false) })
			}
			return
		}
	}
}

// batchSlot is a registered process that receives the replies to one
// batch (one or more CommandBatchReply, or a dead letter) and hands each
// to its item. It unregisters itself once every item has ended.
type batchSlot struct {
	m     *Member
	items []*batchItem // index seq-1
	left  atomic.Int64 // items not yet ended
	reg   *proto.ProcessRegistryValue
	self  *proto.PID
}

func (m *Member) sendBatch(pid *proto.PID, items []*batchItem) {
	s := &batchSlot{m: m, items: items, reg: m.proto.ProcessRegistry}
	s.left.Store(int64(len(items)))
	var msg *wire.CommandBatch
	if m.packs(pid.GetAddress()) {
		msg = &wire.CommandBatch{Packed: packCommands(items)}
	} else {
		msg = &wire.CommandBatch{Commands: make([]*wire.CommandRequest, 0, len(items))}
		for i, it := range items {
			r := &it.sent
			r.Kind, r.AggregateId, r.CommandId, r.Command = it.req.GetKind(), it.req.GetAggregateId(), it.req.GetCommandId(), it.req.GetCommand()
			r.Seq = uint32(i + 1)
			msg.Commands = append(msg.Commands, r)
		}
	}
	s.self, _ = s.reg.Add(s, "orchestrix-batch"+s.reg.NextId())
	for _, it := range items {
		it.slot.Store(s)
		if it.done.Load() {
			// Abandoned meanwhile: its caller may not have seen the slot.
			it.release()
		}
	}
	m.root().RequestWithCustomSender(pid, msg, s.self)
}

// abandon ends the item for its caller: a reply that comes later is
// dropped.
func (it *batchItem) abandon() {
	if it.done.CompareAndSwap(false, true) {
		// sendBatch stores the slot before it reads done, and this reads
		// the slot after setting done: one of the two sees the other.
		it.release()
	}
}

// release counts the ended item in its batch's slot, once.
func (it *batchItem) release() {
	if s := it.slot.Load(); s != nil && it.counted.CompareAndSwap(false, true) {
		s.ended()
	}
}

func (s *batchSlot) ended() {
	if s.left.Add(-1) == 0 {
		s.reg.Remove(s.self)
	}
}

func (s *batchSlot) deliver(i int, msg any) {
	if i < 0 || i >= len(s.items) {
		return
	}
	it := s.items[i]
	if !it.done.CompareAndSwap(false, true) {
		return
	}
	it.reply <- msg
	it.release()
}

func (s *batchSlot) SendUserMessage(_ *proto.PID, message any) {
	_, msg, _ := proto.UnwrapEnvelope(message)
	switch r := msg.(type) {
	case *wire.CommandBatchReply:
		reps := r.GetReplies()
		if len(r.GetPacked()) > 0 {
			var err error
			if reps, err = unpackReplies(r.GetPacked()); err != nil {
				// Their callers end with an unknown outcome (no reply).
				s.m.cfg.Logger.Error("cluster: dropped malformed replies to a batch", "error", err)
				return
			}
		}
		for _, rep := range reps {
			s.deliver(int(rep.GetSeq())-1, rep)
		}
	case *proto.DeadLetterResponse:
		// The target has no request actor: none of the batch ran.
		for i := range s.items {
			s.deliver(i, r)
		}
	}
}

func (s *batchSlot) SendSystemMessage(*proto.PID, any) {}

func (s *batchSlot) Stop(*proto.PID) {}

// ---- serving side ----

// serveBatch serves the commands of b on one worker task (serveBatchTask),
// answering to sender in as few CommandBatchReply messages as the bound
// on holding replies allows (replyBatch).
func (m *Member) serveBatch(sender *proto.PID, b *wire.CommandBatch) {
	reqs, packed, ok := m.batchCommands(b)
	if !ok || len(reqs) == 0 {
		return
	}
	batchCounts.batches.Add(1)
	batchCounts.commands.Add(int64(len(reqs)))
	rb := &replyBatch{m: m, sender: sender, packed: packed, left: len(reqs) + 1, start: m.clock().Now()}
	m.serving.Add(len(reqs)) // each done once its reply is handed to the transport
	m.work.run(func() { m.serveBatchTask(rb, reqs) })
}

// serveBatchTask checks each command of a batch in turn and starts it on
// the local path without waiting for it (clusterseam.AsyncKind): its
// outcome joins rb when the aggregate answers it. A command whose check
// must wait (an id this member gained in a handoff round still running),
// or whose kind cannot be served asynchronously, is served on a worker of
// its own as a single request is, so that it holds up no other.
func (m *Member) serveBatchTask(rb *replyBatch, reqs []*wire.CommandRequest) {
	for _, req := range reqs {
		k, code, msg, wait := m.checkNow(req.GetKind(), req.GetAggregateId())
		ak, async := k.(clusterseam.AsyncKind)
		switch {
		case wait || (code == wire.Code_OK && !async):
			m.work.run(func() {
				r := m.serveCommand(req)
				r.Seq = req.GetSeq()
				rb.add(batchReply{r: r}, false)
			})
		case code != wire.Code_OK:
			rb.add(batchReply{r: &wire.CommandReply{Code: code, Message: msg, Seq: req.GetSeq()}}, true)
		default:
			ak.ServeCommandAsync(req.GetCommand(), func(o clusterseam.Outcome) {
				rb.add(batchReply{req: req, out: o}, false)
			})
		}
	}
	rb.add(batchReply{}, true) // the task's own count: the batch may end here
}

// batchCommands returns the commands of b, and whether they came packed.
// Packed bytes that are malformed are logged and the batch dropped
// unserved (ok false): its callers end with an unknown outcome, and
// nothing of it ran.
func (m *Member) batchCommands(b *wire.CommandBatch) (reqs []*wire.CommandRequest, packed, ok bool) {
	if len(b.GetPacked()) == 0 {
		return b.GetCommands(), false, true
	}
	reqs, err := unpackCommands(b.GetPacked())
	if err != nil {
		m.cfg.Logger.Error("cluster: dropped a malformed batch of commands", "error", err)
		return nil, true, false
	}
	return reqs, true, true
}

// batchReplyMsg is the message carrying replies to a batch, packed when
// the batch was.
func batchReplyMsg(replies []*wire.CommandReply, packed bool) *wire.CommandBatchReply {
	if packed {
		return &wire.CommandBatchReply{Packed: packReplies(replies)}
	}
	return &wire.CommandBatchReply{Replies: replies}
}

// refuseBatch answers every command of b with code (a drained member).
func (m *Member) refuseBatch(sender *proto.PID, b *wire.CommandBatch, code wire.Code, msg string) {
	reqs, packed, ok := m.batchCommands(b)
	if !ok {
		return
	}
	replies := make([]*wire.CommandReply, 0, len(reqs))
	for _, req := range reqs {
		replies = append(replies, &wire.CommandReply{Code: code, Message: msg, Seq: req.GetSeq()})
	}
	m.root().Send(sender, batchReplyMsg(replies, packed))
}

// replyBatch gathers the replies to one CommandBatch and sends them to its
// sender: all together once every command of the batch has its reply, or,
// when some take longer, what is ready once the first reply waiting has
// waited replyHold (then the rest the same way). So the usual batch, whose
// commands are committed by the same journal commits, is answered by one
// message, and a slow command (a recovery, a hot aggregate's queue, an
// append the journal retries) holds the others' replies for at most
// replyHold. The bound is a trade-off: each CommandBatchReply costs tens
// of µs of CPU over both ends (BENCHMARKS.md), while holding a reply adds
// to its command's latency.
type replyBatch struct {
	m      *Member
	sender *proto.PID
	packed bool      // the batch came packed: so go its replies
	start  time.Time // when the batch was received

	mu    sync.Mutex
	ready []batchReply
	left  int // replies not yet in ready, plus 1 while serveBatchTask runs
	timer orchestrix.Timer
}

// batchReply is one reply of a batch: r, or the outcome out of req, which
// is encoded on the goroutine that sends it.
type batchReply struct {
	r   *wire.CommandReply
	req *wire.CommandRequest
	out clusterseam.Outcome
}

// replyHold is how long a batch's ready replies wait for the others: half
// the time the batch's first reply took since the batch arrived (the
// commands of one batch that share a journal commit answer within a
// fraction of that), within [minReplyHold, maxReplyHold].
func replyHold(first time.Duration) time.Duration {
	return min(max(first/2, minReplyHold), maxReplyHold)
}

const (
	minReplyHold = 200 * time.Microsecond
	maxReplyHold = 5 * time.Millisecond
)

// add adds one reply (an empty one: serveBatchTask's own count). onTask is
// set when the caller is serveBatchTask's goroutine, which may send;
// otherwise the caller may be an aggregate's or the journal's goroutine,
// which must not be held up: the send goes to a worker.
func (rb *replyBatch) add(r batchReply, onTask bool) {
	rb.mu.Lock()
	if r.r != nil || r.out != nil {
		rb.ready = append(rb.ready, r)
	}
	rb.left--
	if rb.left > 0 {
		if rb.timer == nil && len(rb.ready) > 0 {
			hold := replyHold(rb.m.clock().Now().Sub(rb.start))
			rb.timer = rb.m.clock().AfterFunc(hold, rb.expired)
		}
		rb.mu.Unlock()
		return
	}
	ready := rb.ready
	rb.ready = nil
	if rb.timer != nil {
		rb.timer.Stop()
		rb.timer = nil
	}
	rb.mu.Unlock()
	if len(ready) == 0 {
		return
	}
	if onTask {
		rb.send(ready)
	} else {
		rb.m.work.run(func() { rb.send(ready) })
	}
}

// expired sends what is ready when the hold ended before the batch did.
func (rb *replyBatch) expired() {
	rb.mu.Lock()
	ready := rb.ready
	rb.ready = nil
	rb.timer = nil
	rb.mu.Unlock()
	if len(ready) > 0 {
		rb.send(ready)
	}
}

func (rb *replyBatch) send(ready []batchReply) {
	replies := make([]*wire.CommandReply, len(ready))
	for i, r := range ready {
		if r.out != nil {
			rep, err := r.out()
			r.r = rb.m.wireReply(r.req, rep, err)
			r.r.Seq = r.req.GetSeq()
		}
		replies[i] = r.r
	}
	rb.m.root().Send(rb.sender, batchReplyMsg(replies, rb.packed))
	batchCounts.replyMsgs.Add(1)
	batchCounts.replies.Add(int64(len(ready)))
	rb.m.serving.Add(-len(ready))
}
