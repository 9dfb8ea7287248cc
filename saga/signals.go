package saga

import (
	"context"
	"sync"
)

// signals wakes the waiters of one saga or process at a time, so that a
// change to one does not make every Wait re-read its stream.
type signals struct {
	mu sync.Mutex
	ch map[string]chan struct{}
}

// watch returns a channel closed on the next signal for id.
func (s *signals) watch(id string) <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ch == nil {
		s.ch = make(map[string]chan struct{})
	}
	c := s.ch[id]
	if c == nil {
		c = make(chan struct{})
		s.ch[id] = c
	}
	return c
}

// signal wakes the waiters of id.
func (s *signals) signal(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c := s.ch[id]; c != nil {
		close(c)
		delete(s.ch, id)
	}
}

// waitFor reads the status of id until cond holds for it, reading again
// after every signal for id; it returns the last status with ctx's error
// when ctx ends first.
func waitFor[T any](ctx context.Context, sig *signals, id string, status func(context.Context, string) (T, error), cond func(T) bool) (T, error) {
	for {
		changed := sig.watch(id)
		st, err := status(ctx, id)
		if err != nil || cond(st) {
			return st, err
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return st, ctx.Err()
		}
	}
}
