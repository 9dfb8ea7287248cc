package cluster

import (
	"time"

	proto "github.com/asynkron/protoactor-go/actor"
)

// This file holds two pieces of the remote path that replace
// protoactor-go's general-purpose ones with cheaper ones for this
// package's single use: one reply per request, and one short-lived task
// per request served.
//
// A protoactor-go request future (RootContext.RequestFuture) starts a
// timer goroutine-callback per request (time.AfterFunc), waits on a
// condition variable, and needs a goroutine of its own to be selected
// with the caller's context and the target's death. A replySlot is a
// process in the registry that hands its one message to a buffered
// channel, so the request loop selects on it directly.
//
// Each request a member serves runs on its own goroutine (a slow command
// must not hold up others; a CommandBatch's commands share one, which
// waits for none of them: serveBatch). Starting one per request grows a fresh stack
// through the whole serving call chain every time; a workers pool keeps
// the goroutines that finished for a while and hands them the next
// request instead. Its size is not bounded: when no worker is idle, a new
// one starts, exactly as before.

// replySlot is a registered process that receives the one reply to a
// request sent with its PID as the sender.
type replySlot struct {
	ch chan any // buffered (1): the reply, or a *proto.DeadLetterResponse
}

func (r *replySlot) SendUserMessage(_ *proto.PID, message any) {
	_, msg, _ := proto.UnwrapEnvelope(message)
	select {
	case r.ch <- msg:
	default: // a second message to one request: only the first counts
	}
}

func (r *replySlot) SendSystemMessage(*proto.PID, any) {}

func (r *replySlot) Stop(*proto.PID) {}

// sendRequest sends msg to pid with a fresh reply slot as its sender and
// returns the slot's channel and the function that unregisters the slot
// (call it once the request ended, whatever the outcome: a reply that
// comes later finds no process and goes to dead letters). Slots are not
// recycled: a late second message must never reach another request.
func (m *Member) sendRequest(pid *proto.PID, msg any) (<-chan any, func()) {
	slot := &replySlot{ch: make(chan any, 1)}
	reg := m.proto.ProcessRegistry
	self, _ := reg.Add(slot, "orchestrix-reply"+reg.NextId())
	m.root().RequestWithCustomSender(pid, msg, self)
	return slot.ch, func() { reg.Remove(self) }
}

// workers runs tasks on goroutines that stay for a while after their task
// ended, to take the next one (see the top of this file).
type workers struct {
	tasks chan func() // unbuffered: a send succeeds only to an idle worker
	idle  time.Duration
	done  <-chan struct{} // closed: idle workers end at once
}

func newWorkers(idle time.Duration, done <-chan struct{}) *workers {
	return &workers{tasks: make(chan func()), idle: idle, done: done}
}

// run runs f on an idle worker, or on a new goroutine when none is idle
// (always, on a nil *workers).
func (w *workers) run(f func()) {
	if w == nil {
		go f()
		return
	}
	select {
	case w.tasks <- f:
	default:
		go w.loop(f)
	}
}

func (w *workers) loop(f func()) {
	f()
	t := time.NewTimer(w.idle)
	defer t.Stop()
	for {
		select {
		case f = <-w.tasks:
			f()
			t.Reset(w.idle) // no drain needed since Go 1.23
		case <-t.C:
			return
		case <-w.done:
			return
		}
	}
}
