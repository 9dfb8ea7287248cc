package projection

import (
	"context"
	"fmt"
	"sync"
)

// CheckpointStore keeps each projection's checkpoint: the position up to
// which (inclusive) every record of the journal has been handled or
// deliberately passed over. Implementations must be safe for concurrent
// use.
type CheckpointStore interface {
	// Load returns the checkpoint saved under name, or 0 when none was.
	Load(ctx context.Context, name string) (uint64, error)
	// Save records position as the checkpoint of name, replacing the
	// previous one (it may be lower: Rebuild saves 0). A nil error means
	// the checkpoint is durable to the store's level; on error the old
	// checkpoint may or may not have been replaced.
	Save(ctx context.Context, name string, position uint64) error
}

// MemCheckpoints is a CheckpointStore in memory, for tests and for read
// models that are themselves rebuilt on every start. Create it with
// NewMemCheckpoints.
type MemCheckpoints struct {
	mu sync.Mutex
	m  map[string]uint64
}

var _ CheckpointStore = (*MemCheckpoints)(nil)

// NewMemCheckpoints returns an empty in-memory checkpoint store.
func NewMemCheckpoints() *MemCheckpoints {
	return &MemCheckpoints{m: make(map[string]uint64)}
}

// Load implements CheckpointStore.
func (s *MemCheckpoints) Load(ctx context.Context, name string) (uint64, error) {
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("projection: loading checkpoint %q: %w", name, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.m[name], nil
}

// Save implements CheckpointStore.
func (s *MemCheckpoints) Save(ctx context.Context, name string, position uint64) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("projection: saving checkpoint %q: %w", name, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.m[name] = position
	return nil
}
