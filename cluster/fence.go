package cluster

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// fence is the self-fence's state: why this member stopped serving, and
// whether it may try to serve again. Its clock is injected (monotonic
// time since some origin), so that its logic is tested without sleeping.
//
// Causes: a pause (the serving path or the ticker finds the last tick
// older than threshold: the process was stopped, or starved, for that
// long, so its peers may have moved its ids meanwhile), and a view below
// the majority of the expected members.
type fence struct {
	now       func() time.Duration
	threshold time.Duration
	settle    time.Duration

	lastTick atomic.Int64 // now() of the ticker's last tick

	mu      sync.Mutex
	fenced  bool
	reason  string
	since   time.Duration // now() of the last cause seen
	causes  uint64        // causes seen so far (a lift checks none came meanwhile)
	isFence atomic.Bool   // fenced, read without the lock
}

func newFence(now func() time.Duration, threshold, settle time.Duration) *fence {
	f := &fence{now: now, threshold: threshold, settle: settle}
	f.lastTick.Store(int64(now()))
	return f
}

// reset records a tick without looking at the gap (the ticker starts).
func (f *fence) reset() { f.lastTick.Store(int64(f.now())) }

// tick records a tick of the ticker and returns the gap since the last
// one, and whether it means a pause.
func (f *fence) tick() (time.Duration, bool) {
	n := f.now()
	gap := n - time.Duration(f.lastTick.Swap(int64(n)))
	return gap, gap > f.threshold
}

// stale reports whether the last tick is older than the threshold: the
// process was paused and the ticker has not run since. The serving path
// asks this before anything else, so a request read right after a pause
// is refused even before the ticker runs again.
func (f *fence) stale() (time.Duration, bool) {
	gap := f.now() - time.Duration(f.lastTick.Load())
	return gap, gap > f.threshold
}

// trigger records a cause and reports whether the member was not fenced
// before (it must release its activations now).
func (f *fence) trigger(reason string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.since = f.now()
	f.causes++
	if f.fenced {
		return false
	}
	f.fenced, f.reason = true, reason
	f.isFence.Store(true)
	return true
}

// liftable reports whether a fenced member may try to serve again (the
// settle period has passed since the last cause, and no pause is being
// seen), and the cause count the lift must still find.
func (f *fence) liftable() (uint64, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.fenced || f.now()-f.since < f.settle {
		return 0, false
	}
	if _, paused := f.stale(); paused {
		return 0, false
	}
	return f.causes, true
}

// lift ends the fence unless a cause was seen since liftable returned
// causes; it reports whether it did.
func (f *fence) lift(causes uint64) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.fenced || f.causes != causes {
		return false
	}
	f.fenced, f.reason = false, ""
	f.isFence.Store(false)
	return true
}

// retry restarts the settle period of a fenced member whose attempt to
// serve again failed.
func (f *fence) retry() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.since = f.now()
}

func (f *fence) active() bool { return f.isFence.Load() }

func (f *fence) why() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.reason
}

// majority is the smallest number of members that is more than half of
// expected; 0 (no check) when expected is 0.
func majority(expected int) int {
	if expected <= 0 {
		return 0
	}
	return expected/2 + 1
}

func belowMajority(members, expected int) (string, bool) {
	if need := majority(expected); members < need {
		return fmt.Sprintf("sees %d of %d expected members (a majority is %d)", members, expected, need), true
	}
	return "", false
}

// isOut reports whether this member takes no ids now (fenced or leaving).
func (m *Member) isOut() bool { return m.f.active() || m.leaving.Load() }

// selfFence fences this member for reason unless it is fenced already:
// it publishes a view in which it owns nothing, which releases every
// activation (in-flight appends finish; queued commands are refused and
// placed again by their callers), and refuses every id from then on. Its
// own callers go to the other members.
func (m *Member) selfFence(cause, reason string) {
	if !m.f.trigger(reason) {
		return
	}
	m.metrics.ClusterSelfFence(cause)
	m.cfg.Logger.Warn("cluster: self-fenced: this member serves nothing until it has a fresh view", "reason", reason)
	m.changeView(func(old *view, n uint64) *view {
		if old == nil {
			return &view{self: m.proto.Address(), out: true, ep: newEpoch(n)}
		}
		nv := old.next(n, old.pl)
		nv.out = true
		return nv
	})
}

// watch ticks the pause detector, fences this member after a pause, and
// tries to lift the fence once the settle period has passed.
func (m *Member) watch() {
	defer m.wg.Done()
	t := time.NewTicker(max(m.cfg.PauseThreshold/4, time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-m.bg.Done():
			return
		case <-t.C:
		}
		if gap, paused := m.f.tick(); paused {
			m.selfFence("paused", fmt.Sprintf("paused: no tick for %v (PauseThreshold %v)", gap.Round(time.Millisecond), m.cfg.PauseThreshold))
		}
		if _, ok := m.f.liftable(); ok && m.unfencing.CompareAndSwap(false, true) {
			m.wg.Add(1)
			go func() {
				defer m.wg.Done()
				defer m.unfencing.Store(false)
				m.tryUnfence()
			}()
		}
	}
}

// tryUnfence lifts the fence when this member's view is fresh again: the
// settle period has passed since the last cause, its view holds a
// majority, and every other member of its view answered a handoff round
// (so each counts this member and has released the ids it owns in this
// view). Otherwise the settle period starts again. A member its peers
// dropped and blocked (protoactor-go blocks for good a member that left
// its view) is never counted again, so it stays fenced: restart it.
func (m *Member) tryUnfence() {
	causes, ok := m.f.liftable()
	if !ok {
		return
	}
	v := m.cur.Load()
	if v == nil {
		m.f.retry()
		return
	}
	if _, below := belowMajority(v.size(), m.cfg.ExpectedMembers); below {
		m.f.retry()
		return
	}
	cand := *v
	cand.out = false
	sent := m.f.now()
	if !m.handoffRound(&cand) {
		m.cfg.Logger.Warn("cluster: still fenced: not every member of the view counts this member", "fenced_for", m.f.why())
		m.f.retry()
		return
	}
	// Every other member of the view counted this member: that round is
	// a confirmation, sent at sent (confirm.go).
	if m.lease != nil {
		m.lease.confirm(sent)
		m.lease.restart()
	}
	if !m.f.lift(causes) {
		return
	}
	m.cfg.Logger.Info("cluster: fence lifted: serving again", "members", v.size())
	m.changeView(func(old *view, n uint64) *view {
		nv := old.next(n, old.pl)
		nv.out = m.isOut()
		return nv
	})
}
