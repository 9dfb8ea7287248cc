package actortest_test

import (
	"github.com/orchestrix/orchestrix/telemetry"
	"log/slog"
	"testing"
	"time"

	proto "github.com/asynkron/protoactor-go/actor"
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

type ping struct{ n int }

func TestProbe_ExpectMsg_ReceivesInOrder(t *testing.T) {
	sys := quietSystem()
	p := actortest.NewProbe(t, sys)
	sys.Root.Send(p.PID(), &ping{1})
	sys.Root.Send(p.PID(), "hello")
	assert.Equal(t, 1, actortest.ExpectMsg[*ping](p, time.Second).n)
	assert.Equal(t, "hello", actortest.ExpectMsg[string](p, time.Second))
	p.ExpectNoMsg(10 * time.Millisecond)
}

func TestProbe_FishForMsg_SkipsOthers(t *testing.T) {
	sys := quietSystem()
	p := actortest.NewProbe(t, sys)
	for i := range 5 {
		sys.Root.Send(p.PID(), &ping{i})
	}
	got := p.FishForMsg(time.Second, func(m any) bool { pg, ok := m.(*ping); return ok && pg.n == 3 })
	assert.Equal(t, 3, got.(*ping).n)
	assert.Equal(t, 4, actortest.ExpectMsg[*ping](p, time.Second).n)
}

func TestProbe_FromAnActor_RequestReply(t *testing.T) {
	sys := quietSystem()
	p := actortest.NewProbe(t, sys)
	echo := sys.Root.Spawn(proto.PropsFromFunc(func(c proto.Context) {
		if m, ok := c.Message().(*ping); ok {
			c.Send(p.PID(), &ping{m.n * 10})
		}
	}))
	sys.Root.Send(echo, &ping{4})
	assert.Equal(t, 40, actortest.ExpectMsg[*ping](p, time.Second).n)
}

func TestProbe_Receive_TimesOut(t *testing.T) {
	sys := quietSystem()
	p := actortest.NewProbe(t, sys)
	_, ok := p.Receive(5 * time.Millisecond)
	assert.False(t, ok)
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

func quietSystem() *proto.ActorSystem {
	return proto.NewActorSystem(proto.WithLoggerFactory(func(*proto.ActorSystem) *slog.Logger {
		return slog.New(slog.DiscardHandler)
	}))
}
