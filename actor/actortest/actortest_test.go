package actortest_test

import (
	"github.com/orchestrix/orchestrix/telemetry"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/orchestrix/orchestrix/actor/actortest"
)

func TestManualClock_Advance_FiresDueTimersInOrder(t *testing.T) {
	c := actortest.NewManualClock(time.Time{})
	assert.Equal(t, actortest.Epoch, c.Now())
	var fired []string
	c.AfterFunc(2*time.Second, func() { fired = append(fired, "2s") })
	c.AfterFunc(time.Second, func() { fired = append(fired, "1s") })
	late := c.AfterFunc(10*time.Second, func() { fired = append(fired, "10s") })

	c.Advance(500 * time.Millisecond)
	assert.Empty(t, fired)
	c.Advance(2 * time.Second)
	assert.Equal(t, []string{"1s", "2s"}, fired)
	assert.Equal(t, actortest.Epoch.Add(2500*time.Millisecond), c.Now())
	assert.Equal(t, 1, c.Timers())
	assert.True(t, late.Stop())
	assert.False(t, late.Stop())
	c.Advance(time.Minute)
	assert.Equal(t, []string{"1s", "2s"}, fired)
}

func TestManualClock_Advance_TimerSeesItsDueTimeAndRearms(t *testing.T) {
	c := actortest.NewManualClock(time.Time{})
	var seen []time.Duration
	var tick func()
	tick = func() {
		seen = append(seen, c.Now().Sub(actortest.Epoch))
		c.AfterFunc(time.Second, tick)
	}
	c.AfterFunc(time.Second, tick)
	c.Advance(3 * time.Second)
	assert.Equal(t, []time.Duration{time.Second, 2 * time.Second, 3 * time.Second}, seen)
}

func TestManualClock_Set_MovesForwardOnly(t *testing.T) {
	c := actortest.NewManualClock(actortest.Epoch)
	c.Set(actortest.Epoch.Add(-time.Hour))
	assert.Equal(t, actortest.Epoch, c.Now())
	c.Set(actortest.Epoch.Add(time.Hour))
	assert.Equal(t, actortest.Epoch.Add(time.Hour), c.Now())
}

func TestRecorder_WaitFor_Counts(t *testing.T) {
	r := &actortest.Recorder{}
	go func() {
		r.Observe(telemetry.Observation{Kind: telemetry.Activated, AggregateID: "a"})
		r.Observe(telemetry.Observation{Kind: telemetry.Activated, AggregateID: "b"})
	}()
	o := r.WaitFor(t, time.Second, 2, actortest.Is(telemetry.Activated, ""))
	assert.Equal(t, telemetry.Activated, o.Kind)
	assert.Equal(t, 1, r.Count(actortest.Is(telemetry.Activated, "a")))
	assert.Contains(t, r.String(), "activated")
}

func TestNewSystem_UsesManualClockAndMemStores(t *testing.T) {
	env := actortest.NewSystem(t)
	require.NotNil(t, env.Journal)
	require.NotNil(t, env.Snapshots)
	assert.Equal(t, actortest.Epoch, env.System.Clock().Now())
	env2 := actortest.NewSystem(t, actortest.WithoutSnapshots(), actortest.WithJournal(env.Journal))
	assert.Nil(t, env2.Snapshots)
	assert.Same(t, env.Journal, env2.Journal)
}
