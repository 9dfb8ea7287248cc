package cluster

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/orchestrix/orchestrix"
	"github.com/orchestrix/orchestrix/actor"
	"github.com/orchestrix/orchestrix/aggregate"
	"github.com/orchestrix/orchestrix/cluster/internal/wire"
	"github.com/orchestrix/orchestrix/internal/clusterseam"
	"github.com/orchestrix/orchestrix/journal/mem"
)

func TestConfigZeroValueIsValid(t *testing.T) {
	if err := (Config{}).Validate(); err != nil {
		t.Fatalf("zero Config: %v", err)
	}
	c := Config{}.withDefaults()
	if c.Name == "" || c.Host == "" || len(c.Seeds) != 1 || c.RequestTimeout <= 0 || c.RetryBackoff <= 0 {
		t.Fatalf("defaults not applied: %+v", c)
	}
}

func TestConfigValidateRejects(t *testing.T) {
	for name, c := range map[string]Config{
		"port":     {Port: 70000},
		"seed":     {Seeds: []string{"no-port"}},
		"negative": {RequestTimeout: -1},
		"backoff":  {RetryBackoff: 2e9, MaxRetryBackoff: 1e9},
	} {
		if err := c.Validate(); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("%s: got %v, want ErrInvalidConfig", name, err)
		}
	}
}

func TestStartRefusesUnsharedJournal(t *testing.T) {
	j, err := mem.New(mem.Config{})
	if err != nil {
		t.Fatal(err)
	}
	sys, err := actor.NewSystem(actor.Config{Journal: j})
	if err != nil {
		t.Fatal(err)
	}
	defer sys.Close()
	_, err = Start(context.Background(), sys, Config{})
	if !errors.Is(err, ErrJournalNotShared) {
		t.Fatalf("Start over the in-memory journal: got %v, want ErrJournalNotShared", err)
	}
}

func TestErrorCodesRoundTrip(t *testing.T) {
	for _, c := range codes {
		err := &remoteError{member: "m", code: codeOf(c.err), msg: "x"}
		if !errors.Is(err, c.err) {
			t.Errorf("code %v: remote error does not match %v", c.code, c.err)
		}
	}
	if codeOf(fmt.Errorf("x: %w", clusterseam.ErrReleased)) != wire.Code_NOT_OWNER {
		t.Error("a command released while queued should cross as NOT_OWNER (not executed, retried)")
	}
	if codeOf(errors.New("other")) != wire.Code_FAILED {
		t.Error("an unclassified error should be FAILED")
	}
	// A rejection keeps matching aggregate.ErrRejected, an unknown outcome
	// its sentinel, across the wire.
	rej := &remoteError{code: codeOf(&actor.CommandError{Err: aggregate.ErrRejected}), msg: "no"}
	if !errors.Is(rej, aggregate.ErrRejected) || errors.Is(rej, orchestrix.ErrOutcomeUnknown) {
		t.Errorf("rejection code: %v", rej.code)
	}
}
