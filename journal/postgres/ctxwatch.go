package postgres

import (
	"context"

	"github.com/orchestrix/orchestrix/journal"
)

// An AppendAsync append whose context ends while it is queued is answered
// at once with the context's error. Watching each append's context with
// context.AfterFunc cost two to three allocations per append and, since
// the aggregate runtime derives every append's context from one
// cancellable context of its system, two lock round trips on that shared
// context's mutex and a child-map insert and delete per append. Instead
// the queued appends are counted per Done channel, and one AfterFunc
// watches each channel while any queued append uses it: a runtime's
// appends share one registration for as long as any of them is queued.

// ctxWatch is the watch of one Done channel: the queued appends counted
// on it and the AfterFunc registration's stop function.
type ctxWatch struct {
	n    int
	stop func() bool
}

// watchCtx counts p (queued, with a context that can end) on its context's
// watch, registering one if p is the first. j.mu is held.
func (j *Journal) watchCtx(p *pending) {
	w := j.watches[p.ctxDone]
	if w == nil {
		d := p.ctxDone
		w = &ctxWatch{}
		// If ctx has already ended, f runs at once on a goroutine of its
		// own and waits for j.mu.
		w.stop = context.AfterFunc(p.ctx, func() { j.abandonQueued(d) })
		j.watches[d] = w
	}
	w.n++
	p.watched = true
}

// unwatchCtx uncounts p, which leaves the queue, and ends its watch if p was
// the last append counted on it. j.mu is held.
func (j *Journal) unwatchCtx(p *pending) {
	if !p.watched {
		return
	}
	p.watched = false
	w := j.watches[p.ctxDone]
	if w == nil {
		return
	}
	if w.n--; w.n == 0 {
		w.stop()
		delete(j.watches, p.ctxDone)
	}
}

// abandonQueued answers every queued append whose context's Done channel
// is d (that context has ended) with the context's error. The writer drops
// abandoned appends when it next forms a batch.
func (j *Journal) abandonQueued(d <-chan struct{}) {
	var gone []*pending
	j.mu.Lock()
	for _, q := range [2][]*pending{j.queue, j.carry} {
		for _, p := range q {
			if p.ctxDone == d && p.state.cas(stateQueued, stateAbandoned) {
				p.watched = false
				gone = append(gone, p)
			}
		}
	}
	delete(j.watches, d)
	if len(gone) == 0 {
		j.mu.Unlock()
		return
	}
	// Close waits for these answers: the writer cannot finish before it
	// has dropped them from the queue, which needs j.mu.
	j.deliveries.Add(1)
	j.mu.Unlock()
	defer j.deliveries.Done()
	for _, p := range gone {
		p.cb(journal.AppendResult{}, p.ctx.Err())
	}
}
