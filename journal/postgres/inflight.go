package postgres

import (
	"sync"
	"sync/atomic"
)

// How many batches a Journal commits at once.
//
// Every commit holds the journal_position row lock from its first
// statement to its end, so commits to one schema run one after another
// whatever their writer. A second batch in flight pays off for a writer
// that has the schema to itself: it is planned, encoded and sent while the
// first commits, and takes the lock the moment the first lets go instead
// of a round trip later. When other writers (the other members of a
// cluster) commit to the same schema, the lock is never idle anyway, and
// the second batch only splits this writer's appends into smaller
// commits: measured with three cluster members, one batch in flight made
// member commits 65 -> 118 events and the PostgreSQL server's CPU per
// command 86 -> 74 µs (BENCHMARKS.md, "Cluster ratio").
//
// So by default the writer watches the positions its commits get: over a
// window of its commits, the positions between its lowest and highest that
// it did not write were written by someone else. When those are more than
// a quarter of its own, it keeps one batch in flight; otherwise two. The
// quarter leaves room for the window's edges (a batch still in flight when
// the window closes leaves a gap of its size) and ignores a writer that
// commits now and then. Config.MaxInFlight fixes the number instead.

const (
	// inFlightWindow is the number of this journal's commits the adaptive
	// limit looks at each time it decides.
	inFlightWindow = 32
	// soleInFlight and sharedInFlight are the adaptive limit's two values.
	soleInFlight   = 2
	sharedInFlight = 1
)

// inFlightGauge decides how many batches may be committing at once.
type inFlightGauge struct {
	limit atomic.Int32 // read by the writer loop
	fixed bool         // Config.MaxInFlight set: limit never changes

	mu     sync.Mutex
	n      int    // commits observed in the current window
	lo, hi uint64 // lowest first and highest last position in it
	own    uint64 // events this journal committed in it
}

func newInFlightGauge(fixed int) *inFlightGauge {
	g := &inFlightGauge{fixed: fixed > 0}
	if g.fixed {
		g.limit.Store(int32(fixed))
	} else {
		g.limit.Store(soleInFlight)
	}
	return g
}

// max returns how many batches may be committing now.
func (g *inFlightGauge) max() int { return int(g.limit.Load()) }

// observe records a commit of this journal that stored positions
// first..last (first <= last), and at the end of each window sets the
// limit from what the window showed.
func (g *inFlightGauge) observe(first, last uint64) {
	if g.fixed {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.n == 0 || first < g.lo {
		g.lo = first
	}
	if g.n == 0 || last > g.hi {
		g.hi = last
	}
	g.own += last - first + 1
	g.n++
	if g.n < inFlightWindow {
		return
	}
	others := (g.hi - g.lo + 1) - g.own
	if others > g.own/4 {
		g.limit.Store(sharedInFlight)
	} else {
		g.limit.Store(soleInFlight)
	}
	g.n, g.own = 0, 0
}
