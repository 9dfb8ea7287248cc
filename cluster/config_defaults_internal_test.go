package cluster

import (
	"testing"
	"time"
)

// automanagedHealthTimeout is the HTTP client timeout of automanaged's
// health checks at the pinned protoactor-go version (hard-coded upstream):
// a stopped member is dropped by its peers only after it.
const automanagedHealthTimeout = 2 * time.Second

// The timing defaults stay coherent with each other: a pause long enough
// for automanaged peers to drop a member is one the member sees
// (PauseThreshold below the health-check timeout), and a fenced member
// waits a few polls before it tries to serve again.
func TestConfigDefaults_TimingCoherent(t *testing.T) {
	c := Config{}.withDefaults()
	if c.RefreshTTL != DefaultRefreshTTL || DefaultRefreshTTL != 500*time.Millisecond {
		t.Fatalf("RefreshTTL default %v (DefaultRefreshTTL %v), want 500ms", c.RefreshTTL, DefaultRefreshTTL)
	}
	if c.PauseThreshold >= automanagedHealthTimeout {
		t.Fatalf("PauseThreshold %v is not below automanaged's health-check timeout %v", c.PauseThreshold, automanagedHealthTimeout)
	}
	if want := max(3*c.RefreshTTL, time.Second); c.SettlePeriod != want {
		t.Fatalf("SettlePeriod default %v, want 3×RefreshTTL and at least 1s: %v", c.SettlePeriod, want)
	}
	for _, ttl := range []time.Duration{100 * time.Millisecond, 2 * time.Second} {
		c := Config{RefreshTTL: ttl}.withDefaults()
		if want := max(3*ttl, time.Second); c.SettlePeriod != want {
			t.Fatalf("RefreshTTL %v: SettlePeriod default %v, want %v", ttl, c.SettlePeriod, want)
		}
	}
}
