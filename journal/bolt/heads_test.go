package bolt_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/orchestrix/orchestrix/journal"
	"github.com/orchestrix/orchestrix/journal/bolt"
	"github.com/orchestrix/orchestrix/journal/journaltest"
)

// TestJournal_Conformance_OneCachedHead runs the suite with a head cache
// of one stream and checkpoints after almost every commit, so that
// nearly every append, deletion and read meets a stream whose head was
// evicted and must be read back from journal.streams.
func TestJournal_Conformance_OneCachedHead(t *testing.T) {
	journaltest.Run(t, func(t *testing.T) (journal.Journal, journaltest.Features) {
		j, _ := openTemp(t, bolt.Config{MaxEventSize: testMaxEventSize, MaxBatchEvents: 3, IndexEvery: 2, IdempotencyWindow: 8, CachedHeads: 1})
		return j, journaltest.Features{Corrupt: corrupt, MaxEventSize: testMaxEventSize}
	})
}

// fillEvicted appends n events to each of streams s-0 … s-(count-1) of a
// journal caching two heads and checkpointing often, then appends to a
// few more streams and waits until s-0 has been evicted.
func fillEvicted(t *testing.T, count, n int) *bolt.Journal {
	t.Helper()
	ctx := context.Background()
	j, _ := openTemp(t, bolt.Config{IndexEvery: 4, CachedHeads: 2})
	t.Cleanup(func() { _ = j.Close() })
	for i := range count {
		_, err := j.Append(ctx, fmt.Sprintf("s-%d", i), journal.NoStream, newEvents(n))
		require.NoError(t, err)
	}
	// Every later commit sweeps the clock; appends to other streams
	// both make the earlier ones clean (checkpoint rounds) and evict them.
	for i := 0; i < 5 || bolt.IsCached(j, "s-0"); i++ {
		require.Less(t, i, 1000, "s-0 never evicted")
		_, err := j.Append(ctx, fmt.Sprintf("other-%d", i%5), journal.Any, newEvents(1))
		require.NoError(t, err)
	}
	return j
}

func TestJournal_EvictedHead_ReadBackGivesSameVersion(t *testing.T) {
	ctx := context.Background()
	j := fillEvicted(t, 20, 3)
	require.LessOrEqual(t, bolt.CachedStreams(j), 2+5+4, "cache bounded (plus streams with unindexed records)")
	require.False(t, bolt.IsCached(j, "s-0"))
	head, err := j.Head(ctx, "s-0")
	require.NoError(t, err)
	assert.Equal(t, uint64(3), head)
	assert.False(t, bolt.IsCached(j, "s-0"), "a read does not load the head into the cache")
	recs := readStream(t, j, "s-0")
	require.Len(t, recs, 3)
	assert.Equal(t, uint64(3), recs[2].Version)
	// An append with the right version succeeds and loads it.
	res, err := j.Append(ctx, "s-0", journal.Exact(3), newEvents(1))
	require.NoError(t, err)
	assert.Equal(t, uint64(4), res.FirstVersion)
	assert.True(t, bolt.IsCached(j, "s-0"))
	head, err = j.Head(ctx, "s-0")
	require.NoError(t, err)
	assert.Equal(t, uint64(4), head)
}

func TestJournal_EvictedHead_WrongExpectedVersionRefused(t *testing.T) {
	ctx := context.Background()
	j := fillEvicted(t, 20, 3)
	for _, expected := range []journal.ExpectedVersion{journal.NoStream, journal.Exact(2), journal.Exact(4)} {
		require.False(t, bolt.IsCached(j, "s-0"))
		_, err := j.Append(ctx, "s-0", expected, newEvents(1))
		var conflict *journal.VersionConflictError
		require.True(t, errors.As(err, &conflict), "expected %v: %v", expected, err)
		assert.Equal(t, uint64(3), conflict.Actual)
		// Evict it again before the next try.
		for i := 0; bolt.IsCached(j, "s-0"); i++ {
			require.Less(t, i, 1000)
			_, err := j.Append(ctx, fmt.Sprintf("other-%d", i%5), journal.Any, newEvents(1))
			require.NoError(t, err)
		}
	}
	assert.Len(t, readStream(t, j, "s-0"), 3, "nothing stored by the refused appends")
}

func TestJournal_EvictedHead_RetryWithAnyIsDuplicate(t *testing.T) {
	ctx := context.Background()
	j, _ := openTemp(t, bolt.Config{IndexEvery: 4, CachedHeads: 2})
	defer j.Close()
	evs := newEvents(2)
	first, err := j.Append(ctx, "s-0", journal.Any, evs)
	require.NoError(t, err)
	for i := 0; bolt.IsCached(j, "s-0"); i++ {
		require.Less(t, i, 1000)
		_, err := j.Append(ctx, fmt.Sprintf("other-%d", i%5), journal.Any, newEvents(1))
		require.NoError(t, err)
	}
	again, err := j.Append(ctx, "s-0", journal.Any, evs)
	require.NoError(t, err)
	assert.True(t, again.Duplicate, "the recent-id window is read back from the log")
	assert.Equal(t, first.FirstPosition, again.FirstPosition)
}

func TestJournal_EvictedHead_DeleteAndStreams(t *testing.T) {
	ctx := context.Background()
	j := fillEvicted(t, 20, 3)
	require.NoError(t, j.DeleteTo(ctx, "s-0", 2))
	recs := readStream(t, j, "s-0")
	require.Len(t, recs, 1)
	assert.Equal(t, uint64(3), recs[0].Version)

	var names []string
	byName := map[string]journal.StreamInfo{}
	for info, err := range j.Streams(ctx) {
		require.NoError(t, err)
		names = append(names, info.Name)
		byName[info.Name] = info
	}
	assert.Len(t, names, 25, "20 streams and 5 others, cached or not")
	assert.IsIncreasing(t, names)
	assert.Equal(t, journal.StreamInfo{Name: "s-0", Head: 3, DeletedTo: 2}, byName["s-0"])
	assert.Equal(t, journal.StreamInfo{Name: "s-19", Head: 3}, byName["s-19"])
	rep, err := j.Check(ctx)
	require.NoError(t, err)
	assert.True(t, rep.OK(), problemText(rep))
	var live uint64
	for _, info := range byName {
		live += info.Events()
	}
	var n uint64
	for _, err := range j.ReadAll(ctx, 0, math.MaxInt) {
		require.NoError(t, err)
		n++
	}
	assert.Equal(t, live, n, "Streams agrees with the log")
}
