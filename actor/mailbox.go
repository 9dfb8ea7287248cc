package actor

import (
	"runtime"
	"sync"
	"sync/atomic"

	proto "github.com/asynkron/protoactor-go/actor"
)

// mailbox is the protoactor-go mailbox of aggregate actors (installed with
// proto.WithMailbox in Register, so they stay protoactor actors). For
// everything posted through protoactor (the journal's completion
// messages, snapshot results, passivation, shutdown, timers, system
// messages) it behaves as protoactor's default mailbox does: system
// messages first, user messages in FIFO order, a run on a goroutine of its
// own that yields every Throughput messages, suspension while the
// supervisor decides, and a panic escalated to the supervisor with the
// message that caused it. Mailbox middlewares and MessageBatch unpacking
// are not supported (the runtime uses neither), and the props' dispatcher
// is consulted only for its Throughput.
//
// What it adds is an inline path for commands whose sender waits for the
// reply (Send, Dispatch): route posts such a command with claim, and when
// the mailbox was idle the sender wins it and runs it itself with
// runInline, on its own goroutine, after releasing the routing lock. That
// saves starting a goroutine per command to an idle aggregate, which was
// the largest single cost of the hop (BENCHMARKS.md, round 4). The inline
// run is bounded: it handles only commands (messages marked inlineOK), at
// most inlineMax of them, and stops once the sender's own command has been
// handled; a system message, a suspension, or any other message hands the
// rest of the queue to a goroutine as the default mailbox would. So the
// journal's writer, timers and Shutdown never run application code (they
// post the ordinary way), and no snapshot save, passivation or shutdown
// runs on a caller's goroutine. route offers the inline path only while
// the aggregate is ready (recovered), not stopping and not hot (see
// direct and aggActor.updateDirect), so a recovery's journal reads run on
// a caller only in a race with a journal failure, and a hot aggregate's
// mailbox goroutine keeps draining its queue as before. A command that
// finds the mailbox idle and empty is not even queued (claimDirect).
type mailbox struct {
	user   mpscQueue
	status atomic.Int32 // mbIdle or mbRunning: who runs the mailbox
	// users counts user messages posted and not yet handled (held
	// included); systems counts system messages likewise.
	users     atomic.Int32
	systems   atomic.Int32
	suspended atomic.Bool
	// direct is set by the actor while route may offer the inline path.
	direct atomic.Bool

	sysMu sync.Mutex
	sys   []any // system messages (rare: started, stop, supervision)

	// held is a user message an inline run popped but may not handle; the
	// goroutine it hands over to handles it first. Only the runner (the
	// holder of status mbRunning) touches it.
	held any

	invoker    proto.MessageInvoker
	throughput int
}

const (
	mbIdle int32 = iota
	mbRunning
)

// inlineCommands switches the inline path on for systems started
// afterwards; only the package's benchmarks turn it off, to compare.
var inlineCommands = true

// inlineMax bounds the messages one inline run handles: the sender's own
// command and the few that arrived just before it.
const inlineMax = 16

// inlineOK marks the messages an inline run may handle: commands.
type inlineOK interface{ inlineOK() }

var _ proto.Mailbox = (*mailbox)(nil)

func newMailbox() proto.Mailbox { return new(mailbox) }

// PostUserMessage implements proto.Mailbox: msg is handled on a goroutine
// of the mailbox (never on the caller's).
func (m *mailbox) PostUserMessage(msg any) {
	if im, ok := msg.(*initMsg); ok {
		// The first message of a new actor, posted by route before the
		// entry is published: link the entry to its mailbox.
		im.e.mb = m
	}
	m.user.push(msg)
	m.users.Add(1)
	m.schedule()
}

// PostSystemMessage implements proto.Mailbox.
func (m *mailbox) PostSystemMessage(msg any) {
	m.sysMu.Lock()
	m.sys = append(m.sys, msg)
	m.sysMu.Unlock()
	m.systems.Add(1)
	m.schedule()
}

// RegisterHandlers implements proto.Mailbox.
func (m *mailbox) RegisterHandlers(invoker proto.MessageInvoker, dispatcher proto.Dispatcher) {
	m.invoker = invoker
	m.throughput = dispatcher.Throughput()
}

// Start implements proto.Mailbox.
func (m *mailbox) Start() {}

// UserMessageCount implements proto.Mailbox.
func (m *mailbox) UserMessageCount() int { return int(m.users.Load()) }

func (m *mailbox) schedule() {
	if m.status.CompareAndSwap(mbIdle, mbRunning) {
		go m.process()
	}
}

// claimed is how claim left a command.
type claimed int8

const (
	// claimLost: msg is queued and the mailbox's current runner handles it.
	claimLost claimed = iota
	// claimQueued: msg is queued behind others and the sender won the
	// mailbox: it must call runInline.
	claimQueued
	// claimDirect: the sender won an idle mailbox with nothing queued;
	// msg was not queued: it must call runInline, which handles msg first.
	claimDirect
)

// claim posts msg, a command whose sender waits for it, and reports
// whether the sender won the mailbox (then it must call runInline(msg, c)
// after releasing any lock it holds, and until it does nothing else runs
// the mailbox). An idle mailbox with nothing queued is won without
// queueing msg at all. Otherwise the mailbox's current runner handles
// msg.
func (m *mailbox) claim(msg any) claimed {
	if m.users.Load() == 0 && m.systems.Load() == 0 && m.status.CompareAndSwap(mbIdle, mbRunning) {
		if m.users.Load() == 0 && m.systems.Load() == 0 && !m.suspended.Load() {
			return claimDirect
		}
		m.user.push(msg)
		m.users.Add(1)
		return claimQueued
	}
	m.user.push(msg)
	m.users.Add(1)
	if m.status.CompareAndSwap(mbIdle, mbRunning) {
		return claimQueued
	}
	return claimLost
}

// runInline handles the queue on the calling goroutine up to and including
// own (see mailbox), then hands what is left to a goroutine or marks the
// mailbox idle. Called only after claim returned c, claimQueued or
// claimDirect.
func (m *mailbox) runInline(own any, c claimed) {
	m.inline(own, c == claimDirect)
	if m.systems.Load() == 0 && m.users.Load() == 0 {
		if testHookBeforeRelease != nil {
			testHookBeforeRelease(m)
		}
		if !m.release() {
			return
		}
		// A message arrived as it went idle, and release took it back.
	}
	go m.process() // still ours: hand over what is left
}

// testHookBeforeRelease, when set by a test, runs just before an inline
// run marks its drained mailbox idle.
var testHookBeforeRelease func(*mailbox)

func (m *mailbox) inline(own any, direct bool) {
	var msg any
	defer func() {
		if r := recover(); r != nil {
			m.invoker.EscalateFailure(r, msg)
		}
	}()
	if direct {
		msg = own
		m.invoker.InvokeUserMessage(own)
		return
	}
	for range inlineMax {
		if m.held != nil || m.systems.Load() > 0 || m.suspended.Load() {
			return
		}
		msg = m.user.pop()
		if msg == nil {
			return // a post still linking its node: the goroutine takes it
		}
		if _, ok := msg.(inlineOK); !ok {
			m.held = msg
			return
		}
		m.users.Add(-1)
		m.invoker.InvokeUserMessage(msg)
		if msg == own {
			return
		}
	}
}

// process runs the mailbox on a goroutine of its own, as protoactor's
// default mailbox does.
func (m *mailbox) process() {
	for {
		m.run()
		if !m.release() {
			return
		}
	}
}

// release marks the mailbox idle and reports whether the caller has
// taken it back because messages arrived meanwhile (then it must run it).
func (m *mailbox) release() bool {
	m.status.Store(mbIdle)
	if m.systems.Load() > 0 || (!m.suspended.Load() && m.users.Load() > 0) {
		if m.status.CompareAndSwap(mbIdle, mbRunning) {
			return true
		}
	}
	return false
}

// runInline's counterpart for the goroutine: handles messages until the
// queue is empty or the mailbox is suspended.
func (m *mailbox) run() {
	var msg any
	defer func() {
		if r := recover(); r != nil {
			m.invoker.EscalateFailure(r, msg)
		}
	}()
	i, t := 0, m.throughput
	for {
		if i > t {
			i = 0
			runtime.Gosched()
		}
		i++
		if msg = m.popSystem(); msg != nil {
			m.systems.Add(-1)
			switch msg.(type) {
			case *proto.SuspendMailbox:
				m.suspended.Store(true)
			case *proto.ResumeMailbox:
				m.suspended.Store(false)
			default:
				m.invoker.InvokeSystemMessage(msg)
			}
			continue
		}
		if m.suspended.Load() {
			return
		}
		if msg = m.held; msg != nil {
			m.held = nil
		} else if msg = m.user.pop(); msg == nil {
			return
		}
		m.users.Add(-1)
		m.invoker.InvokeUserMessage(msg)
	}
}

func (m *mailbox) popSystem() any {
	if m.systems.Load() <= 0 {
		return nil
	}
	m.sysMu.Lock()
	defer m.sysMu.Unlock()
	if len(m.sys) == 0 {
		return nil
	}
	msg := m.sys[0]
	m.sys[0] = nil
	m.sys = m.sys[1:]
	if len(m.sys) == 0 {
		m.sys = nil
	}
	return msg
}

// mpscQueue is an unbounded lock-free queue for many producers and one
// consumer (the mailbox's runner): Vyukov's linked list with a stub node.
// push never blocks; pop may report empty while a push is linking its
// node, which the mailbox's counters catch.
type mpscQueue struct {
	head atomic.Pointer[qnode] // last pushed; producers swap it
	tail *qnode                // consumer's: the node before the next value
	stub qnode
}

type qnode struct {
	next atomic.Pointer[qnode]
	val  any
}

func (q *mpscQueue) push(v any) {
	n := &qnode{val: v}
	prev := q.head.Swap(n)
	if prev == nil {
		// First push: the queue starts at its stub (set lazily so that
		// a zero mpscQueue is ready to use).
		prev = &q.stub
	}
	prev.next.Store(n)
}

func (q *mpscQueue) pop() any {
	tail := q.tail
	if tail == nil {
		tail = &q.stub
	}
	next := tail.next.Load()
	if next == nil {
		return nil
	}
	q.tail = next
	if tail == &q.stub {
		// The stub lives as long as the mailbox: unlinked, so that it
		// does not keep every node pushed since reachable.
		tail.next.Store(nil)
	}
	v := next.val
	next.val = nil
	return v
}
