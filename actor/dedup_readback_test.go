package actor_test

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/orchestrix/orchestrix/actor"
	"github.com/orchestrix/orchestrix/actor/actortest"
	"github.com/orchestrix/orchestrix/aggregate"
	"github.com/orchestrix/orchestrix/journal"
	memjournal "github.com/orchestrix/orchestrix/journal/mem"
	memsnapshot "github.com/orchestrix/orchestrix/snapshot/mem"
	"github.com/orchestrix/orchestrix/telemetry"
)

// tally is an aggregate whose commands produce any number of events, each
// with a string, so that a duplicate's events have to be read back in
// full and decoded.
type (
	tallyState struct{ N int }
	tallyAdd   struct {
		N    int
		Note string
	}
	tallyAdded struct {
		I    int
		Note string
	}
)

func tallyDef() aggregate.Definition[tallyState, tallyAdd, tallyAdded] {
	return aggregate.Definition[tallyState, tallyAdd, tallyAdded]{
		Kind:    "tally",
		Initial: func(string) tallyState { return tallyState{} },
		Decide: func(_ tallyState, c tallyAdd) ([]tallyAdded, error) {
			var evs []tallyAdded
			for i := range c.N {
				evs = append(evs, tallyAdded{I: i, Note: fmt.Sprint(c.Note, "/", i)})
			}
			return evs, nil
		},
		Evolve: func(s tallyState, _ tallyAdded) tallyState { s.N++; return s },
		Events: []aggregate.EventType{aggregate.Event[tallyAdded]("test.tally.added")},
	}
}

// readFaults wraps a journal and, while mode is set, fails its reads
// (readFail) or returns nothing (readNone, as for deleted events).
type readFaults struct {
	journal.Journal
	mode atomic.Int32
}

const (
	readOK int32 = iota
	readFail
	readNone
)

var errReadFault = errors.New("read fault")

func (j *readFaults) Read(ctx context.Context, stream string, from, to uint64, max int) iter.Seq2[journal.Record, error] {
	switch j.mode.Load() {
	case readFail:
		return func(yield func(journal.Record, error) bool) { yield(journal.Record{}, errReadFault) }
	case readNone:
		return func(func(journal.Record, error) bool) {}
	}
	return j.Journal.Read(ctx, stream, from, to, max)
}

type tallyRig struct {
	j   *readFaults
	mj  journal.Journal
	obs *actortest.Recorder
	sys *actor.System
	h   *actor.Handle[tallyState, tallyAdd, tallyAdded]
}

func newTallyRig(t *testing.T, def aggregate.Definition[tallyState, tallyAdd, tallyAdded], snaps bool) *tallyRig {
	mj, err := memjournal.New(memjournal.Config{})
	require.NoError(t, err)
	r := &tallyRig{j: &readFaults{Journal: mj}, mj: mj, obs: &actortest.Recorder{}}
	cfg := actor.Config{Journal: r.j, Clock: actortest.NewManualClock(time.Time{}), Observer: r.obs}
	if snaps {
		cfg.Journal = mj // keeps journal.Deleter
		cfg.Snapshots = memsnapshot.New(memsnapshot.Config{})
	}
	r.sys, err = actor.NewSystem(cfg)
	require.NoError(t, err)
	t.Cleanup(func() { r.sys.Shutdown(context.Background()) })
	r.h, err = actor.Register(r.sys, def)
	require.NoError(t, err)
	return r
}

// tallyIDs are command ids of every form the dedup cache stores: canonical
// UUIDs (kept as 16 bytes), an uppercase UUID (another id, kept as its
// bytes), short ids (kept inline) and long ones (kept in a chunk's arena).
func tallyIDs(n int) []string {
	ids := make([]string, n)
	for i := range ids {
		switch i % 4 {
		case 0:
			ids[i] = fmt.Sprintf("0190a5b4-0000-7000-8000-%012x", i)
		case 1:
			ids[i] = fmt.Sprintf("0190A5B4-0000-7000-8000-%012X", i)
		case 2:
			ids[i] = fmt.Sprint("c", i)
		default:
			ids[i] = fmt.Sprint("a-long-command-id-that-is-no-uuid-", i, strings.Repeat("x", i%7))
		}
	}
	return ids
}

// A duplicate is answered with the original's Result, its events read back
// from the journal (the cache keeps no events): commands with 0 to 4
// events, ids of every form, retried once all are committed (so the events
// read back are among others' events) and again after more commands.
func TestAggregate_Dedup_DuplicateReadsItsEventsBack(t *testing.T) {
	ctx := ctxT(t)
	r := newTallyRig(t, tallyDef(), false)
	ids := tallyIDs(40)
	orig := make([]actor.Result[tallyAdded], len(ids))
	for i, id := range ids {
		var err error
		orig[i], err = r.h.Send(ctx, "t1", tallyAdd{N: i % 5, Note: fmt.Sprint("n", i)}, actor.WithCommandID(id))
		require.NoError(t, err)
		require.False(t, orig[i].Duplicate)
		require.Len(t, orig[i].Events, i%5)
	}
	version := orig[len(orig)-1].Version
	for round := range 2 {
		for i, id := range ids {
			dup, err := r.h.Send(ctx, "t1", tallyAdd{N: 9, Note: "retry"}, actor.WithCommandID(id))
			require.NoError(t, err, "%s (round %d)", id, round)
			assert.True(t, dup.Duplicate, id)
			dup.Duplicate = false
			assert.Equal(t, orig[i], dup, "%s (round %d)", id, round)
		}
		// More commands, so the remembered ones are further back.
		for i := range 30 {
			_, err := r.h.Send(ctx, "t1", tallyAdd{N: 1, Note: "more"}, actor.WithCommandID(fmt.Sprint("more-", round, "-", i)))
			require.NoError(t, err)
		}
		version += 30
	}
	st, v, err := r.h.State(ctx, "t1")
	require.NoError(t, err)
	assert.Equal(t, version, v, "no duplicate was executed")
	assert.Equal(t, int(version), st.N)

	// After a restart the entries come from recovery (consecutive events
	// of one command folded into one entry): the same answers. (Commands
	// without events are remembered only while the aggregate stays
	// active: recovery knows commands by their events.)
	require.NoError(t, r.sys.Shutdown(ctx))
	sys, err := actor.NewSystem(actor.Config{Journal: r.mj, Clock: actortest.NewManualClock(time.Time{})})
	require.NoError(t, err)
	t.Cleanup(func() { sys.Shutdown(context.Background()) })
	h, err := actor.Register(sys, tallyDef())
	require.NoError(t, err)
	for i, id := range ids {
		if len(orig[i].Events) == 0 {
			continue
		}
		dup, err := h.Send(ctx, "t1", tallyAdd{N: 9, Note: "retry"}, actor.WithCommandID(id))
		require.NoError(t, err, "%s after a restart", id)
		assert.True(t, dup.Duplicate, id)
		dup.Duplicate = false
		assert.Equal(t, orig[i], dup, "%s after a restart", id)
	}
	_, v, err = h.State(ctx, "t1")
	require.NoError(t, err)
	assert.Equal(t, version, v, "no duplicate was executed after the restart")
}

// A duplicate whose events cannot be read back gets an error and is not
// executed again: a failing read, and events gone from the journal. A
// duplicate of a command without events needs no read.
func TestAggregate_Dedup_DuplicateReadBackFails_NotExecutedAgain(t *testing.T) {
	ctx := ctxT(t)
	r := newTallyRig(t, tallyDef(), false)
	orig, err := r.h.Send(ctx, "t1", tallyAdd{N: 2, Note: "x"}, actor.WithCommandID("c1"))
	require.NoError(t, err)
	none, err := r.h.Send(ctx, "t1", tallyAdd{N: 0}, actor.WithCommandID("c0"))
	require.NoError(t, err)

	r.j.mode.Store(readFail)
	_, err = r.h.Send(ctx, "t1", tallyAdd{N: 2, Note: "x"}, actor.WithCommandID("c1"))
	require.ErrorIs(t, err, errReadFault)
	dup, err := r.h.Send(ctx, "t1", tallyAdd{N: 3}, actor.WithCommandID("c0"))
	require.NoError(t, err, "a command without events reads nothing back")
	assert.Equal(t, actor.Result[tallyAdded]{CommandID: "c0", Version: none.Version, Duplicate: true}, dup)

	r.j.mode.Store(readNone)
	_, err = r.h.Send(ctx, "t1", tallyAdd{N: 2, Note: "x"}, actor.WithCommandID("c1"))
	require.Error(t, err)
	assert.ErrorContains(t, err, "no longer in the journal")

	r.j.mode.Store(readOK)
	dup, err = r.h.Send(ctx, "t1", tallyAdd{N: 2, Note: "x"}, actor.WithCommandID("c1"))
	require.NoError(t, err)
	dup.Duplicate = false
	assert.Equal(t, orig, dup)
	_, v, err := r.h.State(ctx, "t1")
	require.NoError(t, err)
	assert.Equal(t, uint64(2), v, "no duplicate was executed")
}

// An aggregate that deletes events on snapshot keeps its commands' events
// in the cache: a duplicate whose events were deleted still gets them.
func TestAggregate_Dedup_EventsDeletedOnSnapshot_DuplicateStillAnswered(t *testing.T) {
	ctx := ctxT(t)
	def := tallyDef()
	def.SnapshotEvery = 4
	def.DeleteEventsOnSnapshot = true
	r := newTallyRig(t, def, true)
	orig, err := r.h.Send(ctx, "t1", tallyAdd{N: 3, Note: "first"}, actor.WithCommandID("first"))
	require.NoError(t, err)
	for i := range 20 {
		_, err := r.h.Send(ctx, "t1", tallyAdd{N: 1}, actor.WithCommandID(fmt.Sprint("c", i)))
		require.NoError(t, err)
		// One snapshot at a time, so that every one is saved and the
		// events before the previous one deleted.
		r.obs.WaitFor(t, wait, (i+4)/4, actortest.Is(telemetry.SnapshotSaved, "t1"))
	}
	recs := readStream(t, r.mj, "tally-t1")
	require.NotEmpty(t, recs)
	require.Greater(t, recs[0].Version, orig.Version, "the original's events were deleted")
	dup, err := r.h.Send(ctx, "t1", tallyAdd{N: 3, Note: "first"}, actor.WithCommandID("first"))
	require.NoError(t, err)
	dup.Duplicate = false
	assert.Equal(t, orig, dup)
}
