package cluster

import (
	"context"
	"errors"
	"testing"

	"github.com/orchestrix/orchestrix/actor"
	"github.com/orchestrix/orchestrix/journal/mem"
)

func noopStart(context.Context, Activation) (func(context.Context) error, error) { return nil, nil }

func TestConfigValidate_RejectsBadSingletons(t *testing.T) {
	for name, ss := range map[string][]Singleton{
		"blank":    {{Name: " ", Start: noopStart}},
		"twice":    {{Name: "a", Start: noopStart}, {Name: "a", Start: noopStart}},
		"no start": {{Name: "a"}},
		"negative": {{Name: "a", Start: noopStart, HandoffTimeout: -1}},
	} {
		if err := (Config{Singletons: ss}).Validate(); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("%s: got %v, want ErrInvalidConfig", name, err)
		}
	}
	if err := (Config{Singletons: []Singleton{{Name: "a", Start: noopStart}, {Name: "b", Start: noopStart}}}).Validate(); err != nil {
		t.Errorf("valid singletons: %v", err)
	}
}

// Singletons need epochs from the journal: a journal without
// journal.Epochs is refused before anything starts.
func TestNewSingletons_NeedsEpochs(t *testing.T) {
	j, err := mem.New(mem.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	sys, err := actor.NewSystem(actor.Config{Journal: j})
	if err != nil {
		t.Fatal(err)
	}
	defer sys.Close()
	m := &Member{cfg: Config{Singletons: []Singleton{{Name: "a", Start: noopStart}}}.withDefaults()}
	if _, err := newSingletons(m, j); !errors.Is(err, ErrJournalNotShared) {
		t.Fatalf("singletons over the in-memory journal: %v, want ErrJournalNotShared", err)
	}
	m.cfg.Singletons = nil
	if _, err := newSingletons(m, j); err != nil {
		t.Fatalf("no singletons need no epochs: %v", err)
	}
}
