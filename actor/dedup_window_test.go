package actor_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/orchestrix/orchestrix/actor"
	"github.com/orchestrix/orchestrix/actor/actortest"
	"github.com/orchestrix/orchestrix/internal/banktest"
	"github.com/orchestrix/orchestrix/journal"
	memjournal "github.com/orchestrix/orchestrix/journal/mem"
	"github.com/orchestrix/orchestrix/snapshot"
	memsnapshot "github.com/orchestrix/orchestrix/snapshot/mem"
	"github.com/orchestrix/orchestrix/telemetry"
)

// dedupRig runs an account aggregate on one backend with a manual clock,
// and restarts it on the same storage (another process after a crash or a
// failover, reading the same journal).
type dedupRig struct {
	t         *testing.T
	open      storage
	reopen    bool // the storage is closed and opened again on restart (bbolt)
	snapshots bool
	cfg       func(*actor.Config)

	clock    *actortest.ManualClock
	observed *actortest.Recorder
	j        journal.Journal
	s        snapshot.Store
	sys      *actor.System
	h        *accountHandle
}

// dedupStorage returns new in-memory or bbolt storage, and whether it is
// closed and opened again on restart.
func dedupStorage(t *testing.T, name string) (storage, bool) {
	if name == "bolt" {
		return durableBackends(t)["bolt"], true
	}
	mj, err := memjournal.New(memjournal.Config{})
	require.NoError(t, err)
	ms := memsnapshot.New(memsnapshot.Config{})
	return func(*testing.T) (journal.Journal, snapshot.Store) { return mj, ms }, false
}

func (r *dedupRig) start() {
	r.t.Helper()
	if r.clock == nil {
		r.clock = actortest.NewManualClock(time.Time{})
	}
	if r.j == nil {
		r.j, r.s = r.open(r.t)
	}
	r.observed = &actortest.Recorder{}
	cfg := actor.Config{Journal: r.j, Clock: r.clock, Observer: r.observed}
	if r.snapshots {
		cfg.Snapshots = r.s
	}
	if r.cfg != nil {
		r.cfg(&cfg)
	}
	sys, err := actor.NewSystem(cfg)
	require.NoError(r.t, err)
	r.t.Cleanup(func() { sys.Shutdown(context.Background()) })
	def := banktest.Accounts()
	def.SnapshotEvery = 64
	h, err := actor.Register(sys, def)
	require.NoError(r.t, err)
	r.sys, r.h = sys, h
}

// restart shuts the system down (which saves a snapshot of every active
// aggregate when snapshots are on) and starts a new one on the storage.
func (r *dedupRig) restart(ctx context.Context) {
	r.t.Helper()
	require.NoError(r.t, r.sys.Shutdown(ctx))
	if r.reopen {
		require.NoError(r.t, r.s.Close())
		require.NoError(r.t, r.j.Close())
		r.j, r.s = nil, nil
	}
	r.start()
}

func (r *dedupRig) deposit(ctx context.Context, id string) actor.Result[banktest.Event] {
	r.t.Helper()
	res, err := r.h.Send(ctx, "a1", banktest.Deposit{Amount: 1}, actor.WithCommandID(id))
	require.NoError(r.t, err)
	return res
}

func (r *dedupRig) balance(ctx context.Context) int64 {
	r.t.Helper()
	st, _, err := r.h.State(ctx, "a1")
	require.NoError(r.t, err)
	return st.Balance
}

// assertDuplicate checks that a retry got the original's result back.
func assertDuplicate(t *testing.T, orig, retry actor.Result[banktest.Event], msg string) {
	t.Helper()
	assert.True(t, retry.Duplicate, msg)
	assert.Equal(t, orig.CommandID, retry.CommandID, msg)
	assert.Equal(t, orig.Version, retry.Version, msg)
	assert.Equal(t, orig.Position, retry.Position, msg)
	assert.Equal(t, orig.Events, retry.Events, msg)
}

// A retry that arrives after 1,000 other commands on the same aggregate,
// within the time window, is recognised: live, after a restart that
// recovers from a snapshot taken long after the original (so recovery has
// to read back before the snapshot), and after one that replays the whole
// stream. Once the window has passed the retry executes again, live and
// after recovery, while newer commands are still recognised.
func TestAggregate_Dedup_LateRetryOnBusyAggregate(t *testing.T) {
	for _, name := range []string{"mem", "bolt"} {
		for _, snaps := range []bool{true, false} {
			t.Run(fmt.Sprintf("%s/snapshots=%v", name, snaps), func(t *testing.T) {
				ctx := ctxT(t)
				open, reopen := dedupStorage(t, name)
				r := &dedupRig{t: t, open: open, reopen: reopen, snapshots: snaps}
				r.start()
				_, err := r.h.Send(ctx, "a1", banktest.OpenAccount{Owner: "ada"})
				require.NoError(t, err)
				start := r.clock.Now()
				orig := r.deposit(ctx, "target")
				const others = 1000
				results := make([]actor.Result[banktest.Event], others)
				for i := range others {
					r.clock.Advance(100 * time.Millisecond) // 100 s in all, well inside 5 minutes
					results[i] = r.deposit(ctx, fmt.Sprint("dep-", i))
				}
				streamLen := 2 + others

				assertDuplicate(t, orig, r.deposit(ctx, "target"), "live retry after 1,000 commands")
				assert.Len(t, readStream(t, r.j, "account-a1"), streamLen, "the retry was not stored")
				assert.Equal(t, int64(1+others), r.balance(ctx))

				r.restart(ctx)
				assertDuplicate(t, orig, r.deposit(ctx, "target"), "retry after a restart")
				assertDuplicate(t, results[others-1], r.deposit(ctx, fmt.Sprint("dep-", others-1)), "newest after a restart")
				rec := r.observed.WaitFor(t, wait, 1, actortest.Is(telemetry.Recovered, "a1"))
				if snaps {
					assert.Equal(t, uint64(streamLen), rec.SnapshotVersion, "recovered from the shutdown snapshot, after the original")
				} else {
					assert.Zero(t, rec.SnapshotVersion)
				}
				assert.Len(t, readStream(t, r.j, "account-a1"), streamLen)
				assert.Equal(t, int64(1+others), r.balance(ctx))

				// The window has passed for "target" and the first half of
				// the others, not for the rest.
				r.clock.Set(start.Add(actor.DefaultDedupWindow + 50*time.Second + time.Millisecond))
				assertDuplicate(t, results[others-1], r.deposit(ctx, fmt.Sprint("dep-", others-1)), "inside the window")
				again := r.deposit(ctx, "target")
				assert.False(t, again.Duplicate, "a retry after the window executes again")
				assert.Equal(t, uint64(streamLen+1), again.Version)
				streamLen++

				r.restart(ctx)
				assertDuplicate(t, results[others-1], r.deposit(ctx, fmt.Sprint("dep-", others-1)), "inside the window after a restart")
				assertDuplicate(t, again, r.deposit(ctx, "target"), "the new execution is remembered")
				late := r.deposit(ctx, "dep-0")
				assert.False(t, late.Duplicate, "recovery does not restore commands older than the window")
				streamLen++
				assert.Len(t, readStream(t, r.j, "account-a1"), streamLen)
				assert.Equal(t, int64(streamLen-1), r.balance(ctx))
			})
		}
	}
}

// With more commands in the window than DedupMaxEntries, the oldest are
// forgotten first, live and after recovery (from a snapshot or not).
func TestAggregate_Dedup_MaxEntriesEvictsOldestFirst(t *testing.T) {
	for _, name := range []string{"mem", "bolt"} {
		for _, snaps := range []bool{true, false} {
			t.Run(fmt.Sprintf("%s/snapshots=%v", name, snaps), func(t *testing.T) {
				ctx := ctxT(t)
				open, reopen := dedupStorage(t, name)
				const max, n = 50, 80
				r := &dedupRig{t: t, open: open, reopen: reopen, snapshots: snaps,
					cfg: func(c *actor.Config) { c.DedupMaxEntries = max }}
				r.start()
				_, err := r.h.Send(ctx, "a1", banktest.OpenAccount{Owner: "ada"}, actor.WithCommandID("open"))
				require.NoError(t, err)
				results := make([]actor.Result[banktest.Event], n)
				for i := range n {
					r.clock.Advance(time.Second)
					results[i] = r.deposit(ctx, fmt.Sprint("c", i))
				}
				// Duplicates add no entries, so checking the kept ones
				// first leaves the cache as it was.
				for i := n - max; i < n; i++ {
					assertDuplicate(t, results[i], r.deposit(ctx, fmt.Sprint("c", i)), fmt.Sprint("c", i, " is among the newest"))
				}
				evicted := r.deposit(ctx, fmt.Sprint("c", n-max-1))
				assert.False(t, evicted.Duplicate, "the newest command past the cap was evicted")

				r.restart(ctx)
				// After recovery the newest 50 commands are: c31..c79 and
				// the re-executed c29.
				assertDuplicate(t, evicted, r.deposit(ctx, fmt.Sprint("c", n-max-1)), "re-executed command after restart")
				for i := n - max + 1; i < n; i++ {
					assertDuplicate(t, results[i], r.deposit(ctx, fmt.Sprint("c", i)), fmt.Sprint("c", i, " after restart"))
				}
				again := r.deposit(ctx, fmt.Sprint("c", n-max))
				assert.False(t, again.Duplicate, "c30 is the 51st newest: not recovered")
				assert.Len(t, readStream(t, r.j, "account-a1"), 1+n+2)
			})
		}
	}
}

func TestConfig_Validate_NegativeDedupMaxEntries(t *testing.T) {
	j, err := memjournal.New(memjournal.Config{})
	require.NoError(t, err)
	_, err = actor.NewSystem(actor.Config{Journal: j, DedupMaxEntries: -1})
	require.ErrorIs(t, err, actor.ErrInvalidConfig)
	assert.ErrorContains(t, err, "DedupMaxEntries")
	// More than 2^30 remembered commands per aggregate is refused too
	// (the dedup index numbers entries modulo 2^32).
	_, err = actor.NewSystem(actor.Config{Journal: j, DedupMaxEntries: 1<<30 + 1})
	require.ErrorIs(t, err, actor.ErrInvalidConfig)
	assert.ErrorContains(t, err, "DedupMaxEntries")
	sys, err := actor.NewSystem(actor.Config{Journal: j, DedupMaxEntries: 1 << 30})
	require.NoError(t, err)
	require.NoError(t, sys.Close())
}
