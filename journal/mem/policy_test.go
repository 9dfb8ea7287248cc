package mem_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/orchestrix/orchestrix"
	"github.com/orchestrix/orchestrix/journal"
	"github.com/orchestrix/orchestrix/journal/mem"
)

func appendOne(j *mem.Journal, stream, id string) error {
	_, err := j.Append(context.Background(), stream, journal.Any, []orchestrix.Envelope{event(id)})
	return err
}

func TestInjectAppendFault_MatchesKindAndStreamAndCounts(t *testing.T) {
	j := newJournal(t)
	j.InjectAppendFault(mem.AppendFault{Kind: "order", Times: 2})
	j.InjectAppendFault(mem.AppendFault{Stream: "cart-c1", Effect: mem.FaultReject})

	require.NoError(t, appendOne(j, "cart-c2", "e1"), "other streams are unaffected")
	err := appendOne(j, "order-o1", "e2")
	require.ErrorIs(t, err, mem.ErrInjected)
	require.ErrorIs(t, err, orchestrix.ErrOutcomeUnknown)
	require.ErrorIs(t, appendOne(j, "order-o2", "e3"), mem.ErrInjected)
	require.NoError(t, appendOne(j, "order-o1", "e4"), "the fault applied twice only")

	err = appendOne(j, "cart-c1", "e5")
	require.ErrorIs(t, err, mem.ErrInjectedRejection)
	assert.False(t, errors.Is(err, orchestrix.ErrOutcomeUnknown), "a rejection is a definite outcome")
	require.NoError(t, appendOne(j, "cart-c1", "e6"))

	recs, err := readAll(t, j)
	require.NoError(t, err)
	var ids []string
	for _, r := range recs {
		ids = append(ids, r.Envelope.ID)
	}
	assert.Equal(t, []string{"e1", "e4", "e6"}, ids, "failed and rejected appends store nothing")
}

func TestInjectAppendFault_StoredUnknown_Stores(t *testing.T) {
	j := newJournal(t)
	boom := errors.New("ack lost")
	j.InjectAppendFault(mem.AppendFault{Stream: "a-1", Effect: mem.FaultStoredUnknown, Err: boom})
	require.NoError(t, appendOne(j, "a-2", "x"))
	require.ErrorIs(t, appendOne(j, "a-1", "y"), boom)
	recs, err := readStream(t, j, "a-1")
	require.NoError(t, err)
	require.Len(t, recs, 1)
	assert.Equal(t, "y", recs[0].Envelope.ID)
}

// gateClock fires its timers only when open is called.
type gateClock struct {
	mu sync.Mutex
	fs []func()
	d  []time.Duration
}

func (c *gateClock) Now() time.Time { return time.Time{} }
func (c *gateClock) AfterFunc(d time.Duration, f func()) orchestrix.Timer {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.fs = append(c.fs, f)
	c.d = append(c.d, d)
	return stopper{}
}
func (c *gateClock) pending() int { c.mu.Lock(); defer c.mu.Unlock(); return len(c.fs) }
func (c *gateClock) open() {
	c.mu.Lock()
	fs := c.fs
	c.fs = nil
	c.mu.Unlock()
	for _, f := range fs {
		f()
	}
}

type stopper struct{}

func (stopper) Stop() bool { return true }

func TestInjectAppendFault_Delay_HoldsOnTheGivenClock(t *testing.T) {
	j := newJournal(t)
	clock := &gateClock{}
	j.InjectAppendFault(mem.AppendFault{Kind: "a", Effect: mem.FaultDelay, Delay: time.Minute, Clock: clock})
	done := make(chan error, 1)
	go func() { done <- appendOne(j, "a-1", "held") }()
	require.Eventually(t, func() bool { return clock.pending() == 1 }, 5*time.Second, time.Millisecond)
	assert.Equal(t, []time.Duration{time.Minute}, clock.d)
	require.NoError(t, appendOne(j, "b-1", "free"), "other kinds are not held")
	recs, err := readAll(t, j)
	require.NoError(t, err)
	require.Len(t, recs, 1, "the held append has stored nothing yet")
	clock.open()
	require.NoError(t, <-done)
	recs, err = readAll(t, j)
	require.NoError(t, err)
	require.Len(t, recs, 2)
	assert.Equal(t, "held", recs[1].Envelope.ID)

	// A held append gives up when its context ends.
	j.InjectAppendFault(mem.AppendFault{Effect: mem.FaultDelay, Delay: time.Hour, Clock: clock})
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		_, err := j.Append(ctx, "a-1", journal.Any, []orchestrix.Envelope{event("late")})
		done <- err
	}()
	require.Eventually(t, func() bool { return clock.pending() == 1 }, 5*time.Second, time.Millisecond)
	cancel()
	require.ErrorIs(t, <-done, context.Canceled)
	recs, err = readAll(t, j)
	require.NoError(t, err)
	assert.Len(t, recs, 2, "a held append that gave up stored nothing")
}

func TestClearFaults_DisarmsPolicies(t *testing.T) {
	j := newJournal(t)
	j.InjectAppendFault(mem.AppendFault{Times: 5})
	j.ClearFaults()
	require.NoError(t, appendOne(j, "a-1", "x"))
}
