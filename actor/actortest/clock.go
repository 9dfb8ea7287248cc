package actortest

import (
	"github.com/orchestrix/orchestrix"
	"sort"
	"sync"
	"time"
)

// ManualClock is an orchestrix.Clock whose time moves only when a test calls
// Advance or Set. Timers registered with AfterFunc fire synchronously, in
// due order, inside Advance, so passivation and other timed behaviour can
// be tested without sleeping. It is safe for concurrent use.
type ManualClock struct {
	mu     sync.Mutex
	now    time.Time
	seq    uint64
	timers []*manualTimer
}

var _ orchestrix.Clock = (*ManualClock)(nil)

// Epoch is the time a ManualClock created with a zero start begins at.
var Epoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// NewManualClock returns a clock reading start (Epoch when start is zero).
func NewManualClock(start time.Time) *ManualClock {
	if start.IsZero() {
		start = Epoch
	}
	return &ManualClock{now: start}
}

type manualTimer struct {
	c       *ManualClock
	due     time.Time
	seq     uint64
	f       func()
	stopped bool
}

// Now returns the clock's current time.
func (c *ManualClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// AfterFunc registers f to run when the clock has advanced by d. A d <= 0
// fires at the next Advance (of any amount, including zero).
func (c *ManualClock) AfterFunc(d time.Duration, f func()) orchestrix.Timer {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.seq++
	t := &manualTimer{c: c, due: c.now.Add(max(d, 0)), seq: c.seq, f: f}
	c.timers = append(c.timers, t)
	return t
}

// Stop cancels the timer if it has not fired.
func (t *manualTimer) Stop() bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	if t.stopped {
		return false
	}
	t.stopped = true
	for i, x := range t.c.timers {
		if x == t {
			t.c.timers = append(t.c.timers[:i], t.c.timers[i+1:]...)
			return true
		}
	}
	return false
}

// Advance moves the clock forward by d, firing every timer that falls due
// on the way, in due order (timers registered by a firing timer fire too
// if they fall within d). When Advance returns, all those callbacks have
// returned. A negative d is treated as zero.
func (c *ManualClock) Advance(d time.Duration) {
	c.mu.Lock()
	target := c.now.Add(max(d, 0))
	c.mu.Unlock()
	c.advanceTo(target)
}

// Set moves the clock to t (if it is later than now), firing timers like
// Advance.
func (c *ManualClock) Set(t time.Time) { c.advanceTo(t) }

func (c *ManualClock) advanceTo(target time.Time) {
	for {
		c.mu.Lock()
		sort.Slice(c.timers, func(i, j int) bool {
			if !c.timers[i].due.Equal(c.timers[j].due) {
				return c.timers[i].due.Before(c.timers[j].due)
			}
			return c.timers[i].seq < c.timers[j].seq
		})
		if len(c.timers) == 0 || c.timers[0].due.After(target) {
			if target.After(c.now) {
				c.now = target
			}
			c.mu.Unlock()
			return
		}
		t := c.timers[0]
		c.timers = c.timers[1:]
		t.stopped = true
		if t.due.After(c.now) {
			c.now = t.due
		}
		c.mu.Unlock()
		t.f()
	}
}

// Timers returns how many timers are pending.
func (c *ManualClock) Timers() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.timers)
}
