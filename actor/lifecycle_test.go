package actor_test

import (
	"encoding/json"
	"fmt"
	"github.com/orchestrix/orchestrix/internal/banktest"
	"github.com/orchestrix/orchestrix/telemetry"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/orchestrix/orchestrix"
	"github.com/orchestrix/orchestrix/actor"
	"github.com/orchestrix/orchestrix/actor/actortest"
	"github.com/orchestrix/orchestrix/snapshot"
)

func TestAggregate_Dedup_SameCommandID_ReturnsOriginalResult(t *testing.T) {
	env := actortest.NewSystem(t)
	h := register(t, env, banktest.Accounts())
	ctx := ctxT(t)
	_, err := h.Send(ctx, "a1", banktest.OpenAccount{Owner: "ada"})
	require.NoError(t, err)
	first, err := h.Send(ctx, "a1", banktest.Deposit{Amount: 5}, actor.WithCommandID("dep"))
	require.NoError(t, err)
	again, err := h.Send(ctx, "a1", banktest.Deposit{Amount: 5}, actor.WithCommandID("dep"))
	require.NoError(t, err)
	assert.True(t, again.Duplicate)
	first.Duplicate = true
	assert.Equal(t, first, again)
	assert.Len(t, readStream(t, env.Journal, "account-a1"), 2)
}

func TestAggregate_Dedup_CommandWithoutEvents_DedupedWhileActive(t *testing.T) {
	env := actortest.NewSystem(t)
	h := register(t, env, banktest.Accounts())
	ctx := ctxT(t)
	_, err := h.Send(ctx, "a1", banktest.OpenAccount{Owner: "ada"})
	require.NoError(t, err)
	r1, err := h.Send(ctx, "a1", banktest.Deposit{Amount: 0}, actor.WithCommandID("noop"))
	require.NoError(t, err)
	assert.False(t, r1.Duplicate)
	r2, err := h.Send(ctx, "a1", banktest.Deposit{Amount: 0}, actor.WithCommandID("noop"))
	require.NoError(t, err)
	assert.True(t, r2.Duplicate)
	assert.Equal(t, uint64(1), r2.Version)
}

func TestAggregate_Dedup_SurvivesRestart(t *testing.T) {
	env := actortest.NewSystem(t)
	h := register(t, env, banktest.Accounts())
	ctx := ctxT(t)
	_, err := h.Send(ctx, "a1", banktest.OpenAccount{Owner: "ada"}, actor.WithCommandID("open"))
	require.NoError(t, err)
	orig, err := h.Send(ctx, "a1", banktest.Deposit{Amount: 9}, actor.WithCommandID("dep"))
	require.NoError(t, err)
	require.NoError(t, env.System.Shutdown(ctx))

	env2 := actortest.NewSystem(t, actortest.WithJournal(env.Journal), actortest.WithSnapshotStore(env.Snapshots))
	h2 := register(t, env2, banktest.Accounts())
	again, err := h2.Send(ctx, "a1", banktest.Deposit{Amount: 9}, actor.WithCommandID("dep"))
	require.NoError(t, err)
	assert.True(t, again.Duplicate)
	assert.Equal(t, orig.Events, again.Events)
	assert.Equal(t, orig.Version, again.Version)
	assert.Equal(t, orig.Position, again.Position)
	assert.Len(t, readStream(t, env.Journal, "account-a1"), 2)
	// The recovery started from the shutdown snapshot and still found the
	// command ids from before it.
	rec := env2.Observed.WaitFor(t, wait, 1, actortest.Is(telemetry.Recovered, "a1"))
	assert.Equal(t, uint64(2), rec.SnapshotVersion)
}

func TestAggregate_Dedup_WindowBoundsMemory(t *testing.T) {
	env := actortest.NewSystem(t, actortest.WithConfig(func(c *actor.Config) { c.DedupMaxEntries = 3 }))
	h := register(t, env, banktest.Accounts())
	ctx := ctxT(t)
	_, err := h.Send(ctx, "a1", banktest.OpenAccount{Owner: "ada"}, actor.WithCommandID("c0"))
	require.NoError(t, err)
	for i := 1; i <= 5; i++ {
		_, err := h.Send(ctx, "a1", banktest.Deposit{Amount: 1}, actor.WithCommandID(fmt.Sprintf("c%d", i)))
		require.NoError(t, err)
	}
	r, err := h.Send(ctx, "a1", banktest.Deposit{Amount: 1}, actor.WithCommandID("c5"))
	require.NoError(t, err)
	assert.True(t, r.Duplicate)
	r, err = h.Send(ctx, "a1", banktest.Deposit{Amount: 1}, actor.WithCommandID("c1"))
	require.NoError(t, err)
	assert.False(t, r.Duplicate, "c1 was evicted by the cap of 3")
}

func TestAggregate_Recovery_FromSnapshotAfterEventsDeleted(t *testing.T) {
	env := actortest.NewSystem(t)
	def := banktest.Accounts()
	def.SnapshotEvery = 3
	h := register(t, env, def)
	ctx := ctxT(t)
	_, err := h.Send(ctx, "a1", banktest.OpenAccount{Owner: "ada"})
	require.NoError(t, err)
	for range 4 {
		_, err := h.Send(ctx, "a1", banktest.Deposit{Amount: 10})
		require.NoError(t, err)
	}
	env.Observed.WaitFor(t, wait, 1, func(o telemetry.Observation) bool {
		return o.Kind == telemetry.SnapshotSaved && o.Version == 3 && o.Err == nil
	})
	snap, ok, err := env.Snapshots.Load(ctx, "account-a1", snapshot.Latest)
	require.NoError(t, err)
	require.True(t, ok)
	assert.Equal(t, uint64(3), snap.Version)
	require.NoError(t, env.System.Shutdown(ctx))

	// Only the passivation snapshot (v5) and events after v3 remain.
	require.NoError(t, env.Journal.DeleteTo(ctx, "account-a1", 3))
	env2 := actortest.NewSystem(t, actortest.WithJournal(env.Journal), actortest.WithSnapshotStore(env.Snapshots))
	h2 := register(t, env2, def)
	state, version, err := h2.State(ctx, "a1")
	require.NoError(t, err)
	assert.Equal(t, uint64(5), version)
	assert.Equal(t, int64(40), state.Balance)
}

func TestAggregate_Recovery_UndecodableSnapshot_FallsBackToReplay(t *testing.T) {
	env := actortest.NewSystem(t)
	h := register(t, env, banktest.Accounts())
	ctx := ctxT(t)
	_, err := h.Send(ctx, "a1", banktest.OpenAccount{Owner: "ada"})
	require.NoError(t, err)
	_, err = h.Send(ctx, "a1", banktest.Deposit{Amount: 4})
	require.NoError(t, err)
	require.NoError(t, env.System.Shutdown(ctx))
	require.NoError(t, env.Snapshots.Save(ctx, snapshot.Snapshot{Stream: "account-a1", Version: 2, Type: "account", SchemaVersion: 1, Data: []byte("{garbage"), Time: actortest.Epoch}))

	env2 := actortest.NewSystem(t, actortest.WithJournal(env.Journal), actortest.WithSnapshotStore(env.Snapshots))
	h2 := register(t, env2, banktest.Accounts())
	state, version, err := h2.State(ctx, "a1")
	require.NoError(t, err)
	assert.Equal(t, uint64(2), version)
	assert.Equal(t, int64(4), state.Balance)
	rec := env2.Observed.WaitFor(t, wait, 1, actortest.Is(telemetry.Recovered, "a1"))
	assert.Equal(t, uint64(0), rec.SnapshotVersion)
	assert.Equal(t, 2, rec.Events)
}

func TestAggregate_Recovery_AppliesUpcasters(t *testing.T) {
	env := actortest.NewSystem(t, actortest.WithoutSnapshots())
	reg := env.System.Registry()
	// Deposited is at schema version 2; version 1 stored the amount in
	// a field called "Cents".
	require.NoError(t, orchestrix.Register[banktest.Deposited](reg, "test.account.deposited", orchestrix.WithSchemaVersion(2)))
	require.NoError(t, reg.AddUpcaster("test.account.deposited", 1, orchestrix.UpcastJSON(func(m map[string]any) error {
		m["Amount"] = m["Cents"]
		delete(m, "Cents")
		return nil
	})))
	h := register(t, env, banktest.Accounts())
	ctx := ctxT(t)
	_, err := h.Send(ctx, "a1", banktest.OpenAccount{Owner: "ada"})
	require.NoError(t, err)
	require.NoError(t, env.System.Shutdown(ctx))

	old, _ := json.Marshal(map[string]any{"Cents": 250})
	_, err = env.Journal.Append(ctx, "account-a1", orchestrixExact(1), []orchestrix.Envelope{{
		ID: orchestrix.NewID(), Source: "/legacy", Type: "test.account.deposited", SchemaVersion: 1,
		DataContentType: "application/json", Data: old, Time: actortest.Epoch,
	}})
	require.NoError(t, err)

	env2 := actortest.NewSystem(t, actortest.WithJournal(env.Journal), actortest.WithoutSnapshots(),
		actortest.WithConfig(func(c *actor.Config) { c.Registry = reg }))
	h2 := register(t, env2, banktest.Accounts())
	state, _, err := h2.State(ctx, "a1")
	require.NoError(t, err)
	assert.Equal(t, int64(250), state.Balance)
}

func TestAggregate_DeleteEventsOnSnapshot_KeepsOneOlderSnapshotsEvents(t *testing.T) {
	env := actortest.NewSystem(t)
	def := banktest.Accounts()
	def.SnapshotEvery = 2
	def.DeleteEventsOnSnapshot = true
	h := register(t, env, def)
	ctx := ctxT(t)
	_, err := h.Send(ctx, "a1", banktest.OpenAccount{Owner: "ada"})
	require.NoError(t, err)
	for i := 0; i < 5; i++ {
		_, err := h.Send(ctx, "a1", banktest.Deposit{Amount: 1})
		require.NoError(t, err)
		// Snapshots are saved asynchronously; wait for each so the next
		// one is not skipped while it is in flight.
		if v := uint64(i + 2); v%2 == 0 {
			env.Observed.WaitFor(t, wait, 1, func(o telemetry.Observation) bool { return o.Kind == telemetry.SnapshotSaved && o.Version == v })
		}
	}
	// Snapshots at 2, 4, 6: saving 4 deleted up to 2, saving 6 up to 4.
	recs := readStream(t, env.Journal, "account-a1")
	require.NotEmpty(t, recs)
	assert.Equal(t, uint64(5), recs[0].Version)
	state, version, err := h.StateAt(ctx, "a1", 6)
	require.NoError(t, err)
	assert.Equal(t, uint64(6), version)
	assert.Equal(t, int64(5), state.Balance)
}

func TestAggregate_Passivation_IdleWithManualClock(t *testing.T) {
	env := actortest.NewSystem(t, actortest.WithConfig(func(c *actor.Config) { c.IdleTimeout = time.Minute }))
	h := register(t, env, banktest.Accounts())
	ctx := ctxT(t)
	_, err := h.Send(ctx, "a1", banktest.OpenAccount{Owner: "ada"})
	require.NoError(t, err)
	_, err = h.Send(ctx, "a1", banktest.Deposit{Amount: 2})
	require.NoError(t, err)

	env.Clock.Advance(30 * time.Second)
	assert.Equal(t, 0, env.Observed.Count(actortest.Is(telemetry.Passivated, "a1")), "not idle long enough")
	env.Clock.Advance(30 * time.Second)
	env.Observed.WaitFor(t, wait, 1, actortest.Is(telemetry.Passivated, "a1"))
	assert.Equal(t, 0, h.Active())
	snap, ok, err := env.Snapshots.Load(ctx, "account-a1", snapshot.Latest)
	require.NoError(t, err)
	require.True(t, ok, "passivation saves a snapshot")
	assert.Equal(t, uint64(2), snap.Version)

	res, err := h.Send(ctx, "a1", banktest.Deposit{Amount: 3})
	require.NoError(t, err)
	assert.Equal(t, uint64(3), res.Version)
	rec := env.Observed.WaitFor(t, wait, 2, actortest.Is(telemetry.Recovered, "a1"))
	assert.Equal(t, uint64(2), rec.SnapshotVersion)
	assert.Equal(t, 0, rec.Events)
}

func TestAggregate_Passivation_ActiveAggregateStays(t *testing.T) {
	env := actortest.NewSystem(t, actortest.WithConfig(func(c *actor.Config) { c.IdleTimeout = time.Minute }))
	h := register(t, env, banktest.Accounts())
	ctx := ctxT(t)
	_, err := h.Send(ctx, "busy", banktest.OpenAccount{Owner: "b"})
	require.NoError(t, err)
	_, err = h.Send(ctx, "idle", banktest.OpenAccount{Owner: "i"})
	require.NoError(t, err)
	for range 4 {
		env.Clock.Advance(20 * time.Second)
		_, err = h.Send(ctx, "busy", banktest.Deposit{Amount: 1})
		require.NoError(t, err)
	}
	env.Observed.WaitFor(t, wait, 1, actortest.Is(telemetry.Passivated, "idle"))
	assert.Equal(t, 0, env.Observed.Count(actortest.Is(telemetry.Passivated, "busy")))
	assert.Equal(t, 1, h.Active())
}

func TestAggregate_MaxActive_EvictsLeastRecentlyUsed(t *testing.T) {
	env := actortest.NewSystem(t, actortest.WithConfig(func(c *actor.Config) { c.MaxActive = 2 }))
	h := register(t, env, banktest.Accounts())
	ctx := ctxT(t)
	for _, id := range []string{"a", "b", "c"} {
		_, err := h.Send(ctx, id, banktest.OpenAccount{Owner: id})
		require.NoError(t, err)
		env.Clock.Advance(time.Second)
	}
	env.Observed.WaitFor(t, wait, 1, actortest.Is(telemetry.Passivated, "a"))
	assert.Equal(t, 0, env.Observed.Count(actortest.Is(telemetry.Passivated, "b")))
	assert.Equal(t, 2, h.Active())
	// Evicted aggregates come back on demand.
	state, _, err := h.State(ctx, "a")
	require.NoError(t, err)
	assert.Equal(t, "a", state.Owner)
}

func TestAggregate_Fence_TwoActivationsOneStream_SecondConflictsAndRecovers(t *testing.T) {
	envA := actortest.NewSystem(t)
	envB := actortest.NewSystem(t, actortest.WithJournal(envA.Journal))
	hA := register(t, envA, banktest.Accounts())
	hB := register(t, envB, banktest.Accounts())
	ctx := ctxT(t)

	_, err := hA.Send(ctx, "a1", banktest.OpenAccount{Owner: "ada"})
	require.NoError(t, err)
	_, err = hB.Send(ctx, "a1", banktest.Deposit{Amount: 10}) // B recovers v1, writes v2
	require.NoError(t, err)

	_, err = hA.Send(ctx, "a1", banktest.Withdraw{Amount: 0}) // A still believes v1
	require.ErrorIs(t, err, orchestrix.ErrVersionConflict)
	envA.Observed.WaitFor(t, wait, 1, actortest.Is(telemetry.Restarted, "a1"))

	res, err := hA.Send(ctx, "a1", banktest.Withdraw{Amount: 10})
	require.NoError(t, err, "A recovered from the journal and sees B's deposit")
	assert.Equal(t, uint64(3), res.Version)
	recs := readStream(t, envA.Journal, "account-a1")
	require.Len(t, recs, 3)
}

func TestHandle_StateAt_TimeTravelWithoutDisturbingLiveActor(t *testing.T) {
	env := actortest.NewSystem(t)
	def := banktest.Accounts()
	def.SnapshotEvery = 2
	h := register(t, env, def)
	ctx := ctxT(t)
	_, err := h.Send(ctx, "a1", banktest.OpenAccount{Owner: "ada"}) // v1 at Epoch
	require.NoError(t, err)
	times := []time.Time{}
	for i := 1; i <= 4; i++ {
		env.Clock.Advance(time.Hour)
		times = append(times, env.Clock.Now())
		_, err := h.Send(ctx, "a1", banktest.Deposit{Amount: int64(i)}) // v2..v5
		require.NoError(t, err)
	}
	// Snapshots are saved in the background; one at 4 or 5 follows.
	env.Observed.WaitFor(t, wait, 1, func(o telemetry.Observation) bool { return o.Kind == telemetry.SnapshotSaved && o.Version >= 4 })

	s, v, err := h.StateAt(ctx, "a1", 3)
	require.NoError(t, err)
	assert.Equal(t, uint64(3), v)
	assert.Equal(t, int64(1+2), s.Balance)

	s, v, err = h.StateAt(ctx, "a1", 100)
	require.NoError(t, err)
	assert.Equal(t, uint64(5), v)
	assert.Equal(t, int64(10), s.Balance)

	s, v, err = h.StateAtTime(ctx, "a1", times[1].Add(time.Minute))
	require.NoError(t, err)
	assert.Equal(t, uint64(3), v)
	assert.Equal(t, int64(3), s.Balance)

	s, v, err = h.StateAtTime(ctx, "a1", actortest.Epoch.Add(-time.Hour))
	require.NoError(t, err)
	assert.Equal(t, uint64(0), v)
	assert.False(t, s.Open)

	live, v, err := h.State(ctx, "a1")
	require.NoError(t, err)
	assert.Equal(t, uint64(5), v)
	assert.Equal(t, int64(10), live.Balance)
}

func TestAggregate_ConcurrentSenders_ManyAggregates_AllApplied(t *testing.T) {
	env := actortest.NewSystem(t)
	h := register(t, env, banktest.Accounts())
	ctx := ctxT(t)
	const ids, senders, perSender = 20, 16, 25
	for i := range ids {
		_, err := h.Send(ctx, fmt.Sprintf("acc-%d", i), banktest.OpenAccount{Owner: "x"})
		require.NoError(t, err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, senders*perSender)
	for s := range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range perSender {
				id := fmt.Sprintf("acc-%d", (s+k)%ids)
				if _, err := h.Send(ctx, id, banktest.Deposit{Amount: 1}); err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	var total int64
	for i := range ids {
		s, v, err := h.State(ctx, fmt.Sprintf("acc-%d", i))
		require.NoError(t, err)
		total += s.Balance
		assert.Equal(t, uint64(s.Balance)+1, v)
	}
	assert.Equal(t, int64(senders*perSender), total)
}
