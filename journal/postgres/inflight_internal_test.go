package postgres

import "testing"

// commitRun feeds g n commits of size events each, starting at position
// from and leaving gap positions (other writers' events) after each one.
// It returns the next free position.
func commitRun(g *inFlightGauge, from uint64, n, size, gap int) uint64 {
	for range n {
		g.observe(from, from+uint64(size)-1)
		from += uint64(size + gap)
	}
	return from
}

func TestInFlightGauge_FollowsOtherWriters(t *testing.T) {
	g := newInFlightGauge(0)
	if got := g.max(); got != soleInFlight {
		t.Fatalf("new gauge allows %d batches, want %d", got, soleInFlight)
	}
	pos := commitRun(g, 1, inFlightWindow, 50, 0)
	if got := g.max(); got != soleInFlight {
		t.Fatalf("sole writer: %d batches, want %d", got, soleInFlight)
	}
	// Two other members committing as much as this one between its
	// commits: one batch.
	pos = commitRun(g, pos, inFlightWindow-1, 50, 100)
	if got := g.max(); got != soleInFlight {
		t.Fatalf("decided before the window closed: %d", got)
	}
	pos = commitRun(g, pos, 1, 50, 100)
	if got := g.max(); got != sharedInFlight {
		t.Fatalf("shared schema: %d batches, want %d", got, sharedInFlight)
	}
	// The others stop: back to two after one window.
	pos = commitRun(g, pos, inFlightWindow, 50, 0)
	if got := g.max(); got != soleInFlight {
		t.Fatalf("others stopped: %d batches, want %d", got, soleInFlight)
	}
	// A writer that commits now and then (under a quarter) is ignored.
	commitRun(g, pos, inFlightWindow, 50, 10)
	if got := g.max(); got != soleInFlight {
		t.Fatalf("light other writer: %d batches, want %d", got, soleInFlight)
	}
}

// Two batches in flight may report their commits out of order, and a
// window may close while one is still in flight: neither is another
// writer.
func TestInFlightGauge_OwnBatchesOutOfOrderAreNotOthers(t *testing.T) {
	g := newInFlightGauge(0)
	pos := uint64(1)
	for i := 0; i < 4*inFlightWindow; i += 2 {
		// Batches a (pos..pos+39) and b (after it) reported b first.
		g.observe(pos+40, pos+79)
		g.observe(pos, pos+39)
		pos += 80
		if got := g.max(); got != soleInFlight {
			t.Fatalf("after %d commits: %d batches, want %d", i+2, got, soleInFlight)
		}
	}
	// A window that closes between a and b, with b reported later.
	g = newInFlightGauge(0)
	pos = commitRun(g, 1, inFlightWindow-1, 40, 0)
	g.observe(pos+40, pos+79) // b closes the window; a (pos..pos+39) is still in flight
	if got := g.max(); got != soleInFlight {
		t.Fatalf("window edge counted as another writer: %d batches", got)
	}
}

func TestInFlightGauge_Fixed(t *testing.T) {
	g := newInFlightGauge(3)
	commitRun(g, 1, 2*inFlightWindow, 10, 100)
	if got := g.max(); got != 3 {
		t.Fatalf("Config.MaxInFlight 3 gave %d", got)
	}
}
