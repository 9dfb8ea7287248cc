package cluster

import (
	"sync"
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
// must not hold up others). Starting one per request grows a fresh stack
// through the whole serving call chain every time; a workers pool keeps
// the goroutines that finished for a while and hands them the next
// request instead, the most recently idle first. Its size is not bounded:
// when no worker is idle, a new one starts, exactly as before.

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
//
// The idle workers form a stack: the one that went idle last takes the
// next task. Under load the same few workers are reused, with their stacks
// already grown through the serving call chain, while the rest of the
// pool stays idle and ends; a task is handed over on the worker's own
// channel (no select over shared channels, no timer reset per task). A
// janitor goroutine ends the workers idle for a whole tick of idle/2
// (so between idle/2 and idle after their last task), and all idle ones
// once done is closed.
type workers struct {
	idle time.Duration
	done <-chan struct{} // closed: idle workers end at once

	mu   sync.Mutex
	free []*worker // idle, the most recently idle last
	tick uint64    // janitor ticks so far
}

// worker is one goroutine of a workers pool.
type worker struct {
	task chan func() // buffered (1); closed: end
	tick uint64      // workers.tick when it went idle
}

func newWorkers(idle time.Duration, done <-chan struct{}) *workers {
	w := &workers{idle: idle, done: done}
	go w.janitor()
	return w
}

// run runs f on an idle worker, or on a new goroutine when none is idle
// (always, on a nil *workers).
func (w *workers) run(f func()) {
	if w == nil {
		go f()
		return
	}
	w.mu.Lock()
	if n := len(w.free); n > 0 {
		wk := w.free[n-1]
		w.free[n-1] = nil
		w.free = w.free[:n-1]
		w.mu.Unlock()
		wk.task <- f // buffered, and only run sends to a worker it took off the stack
		return
	}
	w.mu.Unlock()
	go w.loop(&worker{task: make(chan func(), 1)}, f)
}

func (w *workers) loop(wk *worker, f func()) {
	for {
		f()
		w.mu.Lock()
		select {
		case <-w.done:
			w.mu.Unlock()
			return
		default:
		}
		wk.tick = w.tick
		w.free = append(w.free, wk)
		w.mu.Unlock()
		var ok bool
		if f, ok = <-wk.task; !ok {
			return
		}
	}
}

// janitor ends the workers that stayed idle for a whole tick, and every
// idle worker once done is closed.
func (w *workers) janitor() {
	t := time.NewTicker(max(w.idle/2, time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-t.C:
			w.mu.Lock()
			w.tick++
			// The oldest idle workers are at the bottom of the stack.
			n := 0
			for n < len(w.free) && w.tick-w.free[n].tick >= 2 {
				close(w.free[n].task)
				n++
			}
			if n > 0 {
				w.free = append(w.free[:0], w.free[n:]...)
				clear(w.free[len(w.free):cap(w.free)])
			}
			w.mu.Unlock()
		case <-w.done:
			w.mu.Lock()
			for _, wk := range w.free {
				close(wk.task)
			}
			w.free = nil
			w.mu.Unlock()
			return
		}
	}
}
