package saga

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"time"

	"github.com/orchestrix/orchestrix"
	"github.com/orchestrix/orchestrix/projection"
	"github.com/orchestrix/orchestrix/telemetry"
)

// armedTimers are the clock timers of one process, armed from its record
// at position.
type armedTimers struct {
	position uint64
	timers   []orchestrix.Timer
}

// fire handles timeout name of process id, set for at, unless the
// process no longer has that timeout pending. Journal errors are retried
// until the runner closes.
func (m *ProcessManager[S]) fire(ctx context.Context, id, name string, at time.Time) {
	unlock := m.lock(id)
	defer unlock()
	log := m.r.log.With(slog.String("process", m.name), slog.String("id", id), slog.String("timeout", name))
	for failures := 1; ctx.Err() == nil; failures++ {
		rec, err := m.load(ctx, id)
		if err == nil {
			if t, pending := rec.last.Timers[name]; rec.last.Done || !pending || !t.Equal(at) {
				return // handled, cancelled or moved since it was armed
			}
			in := input[S]{
				key:     "timeout\x00" + name + "\x00" + at.Format(time.RFC3339Nano),
				timeout: name, name: "timeout " + name,
				call: func(ctx context.Context, pc *ProcessContext[S]) error {
					if m.p.onTimeout == nil {
						return Reject(fmt.Errorf("process %q has no OnTimeout handler for timeout %q", m.name, name))
					}
					return m.p.onTimeout(ctx, pc, name)
				},
			}
			var next Handled
			next, err = m.run(ctx, id, &rec, in)
			if err == nil {
				next.Timeout, next.Through = name, rec.last.Through
				if next.Failure != nil {
					next.Failure.Timeout = name
					// The timeout fired: drop it even though its
					// handler failed, or it would fire again forever.
					next.Timers = maps.Clone(next.Timers)
					delete(next.Timers, name)
				}
				var ok bool
				if ok, err = m.record(ctx, id, rec.version, next); err == nil {
					if ok {
						m.count(telemetry.InputTimeout, next)
						return
					}
					continue // another writer recorded first
				}
			}
		}
		if ctx.Err() != nil {
			return
		}
		log.Warn("process timeout failed; retrying", slog.Any("error", err))
		if !sleepOn(ctx, m.r.cfg.Clock, m.r.cfg.Retry.Backoff(failures)) {
			return
		}
	}
}

// arm is the handler of the timers projection: it (re)arms the clock
// timers of every process from its newest record.
func (m *ProcessManager[S]) arm(_ context.Context, batch []projection.Event) error {
	for _, ev := range batch {
		h, ok := ev.Data.(Handled)
		if !ok {
			continue
		}
		id := ev.Envelope.Subject
		m.mu.Lock()
		cur := m.armed[id]
		if cur != nil && cur.position >= ev.Position {
			m.mu.Unlock()
			continue
		}
		if cur != nil {
			for _, t := range cur.timers {
				t.Stop()
			}
			delete(m.armed, id)
		}
		if h.Done || len(h.Timers) == 0 {
			m.mu.Unlock()
			continue
		}
		a := &armedTimers{position: ev.Position}
		now := m.r.cfg.Clock.Now()
		for name, at := range h.Timers {
			fire := func() {
				m.r.spawn(func() { m.fire(m.r.ctx, id, name, at) })
			}
			if !at.After(now) {
				fire() // overdue (it passed while no runner was up)
				continue
			}
			a.timers = append(a.timers, m.r.cfg.Clock.AfterFunc(at.Sub(now), fire))
		}
		m.armed[id] = a
		m.mu.Unlock()
	}
	return nil
}

// lowWater returns the position of the oldest record whose timers are
// armed, or 0 when none is.
func (m *ProcessManager[S]) lowWater() uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	var low uint64
	for _, a := range m.armed {
		if low == 0 || a.position < low {
			low = a.position
		}
	}
	return low
}

// disarmAll stops every armed timer (the runner is closing).
func (m *ProcessManager[S]) disarmAll() {
	m.mu.Lock()
	defer m.mu.Unlock()
	for id, a := range m.armed {
		for _, t := range a.timers {
			t.Stop()
		}
		delete(m.armed, id)
	}
}
