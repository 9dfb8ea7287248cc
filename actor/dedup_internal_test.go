package actor

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func addN(d *dedupCache[int], from, to int, at func(i int) int64, lim dedupLimits) {
	for i := from; i < to; i++ {
		id := fmt.Sprint("c", i)
		d.add(Result[int]{CommandID: id, Version: uint64(i)}, idTag(id), at(i), lim)
	}
}

func has(d *dedupCache[int], i int, cutoff int64) bool {
	id := fmt.Sprint("c", i)
	r, ok := d.get(id, idTag(id), cutoff)
	return ok && r.Version == uint64(i)
}

// The cap bounds the ring (its memory) and evicts oldest first, with and
// without the map index.
func TestDedupCache_CapEvictsOldestFirstAndBoundsTheRing(t *testing.T) {
	for _, max := range []int{5, 100} {
		lim := dedupLimits{window: 1 << 62, max: max}
		var d dedupCache[int]
		addN(&d, 0, 3*max+7, func(int) int64 { return 0 }, lim)
		assert.Equal(t, max, d.len())
		assert.LessOrEqual(t, len(d.ring), max, "the ring never grows past the cap")
		assert.Equal(t, max > dedupIndexAt, d.index != nil)
		if d.index != nil {
			assert.Len(t, d.index, max)
		}
		for i := 0; i < 3*max+7; i++ {
			assert.Equal(t, i >= 2*max+7, has(&d, i, 0), "c%d (cap %d)", i, max)
		}
	}
}

// Entries expire with the window, and a ring that a busy spell grew is
// released once its entries expired.
func TestDedupCache_WindowExpiresAndReleasesMemory(t *testing.T) {
	lim := dedupLimits{window: 100, max: 10_000}
	var d dedupCache[int]
	addN(&d, 0, 1000, func(i int) int64 { return int64(i / 10) }, lim) // c_i at time i/10
	require.Equal(t, 1000, d.len(), "all inside the window")
	addN(&d, 1000, 1001, func(int) int64 { return 120 }, lim)
	assert.Equal(t, 801, d.len(), "adding at 120 dropped the entries before 20")
	assert.False(t, has(&d, 199, lim.cutoff(120)))
	assert.True(t, has(&d, 200, lim.cutoff(120)))
	now := int64(190)
	assert.False(t, has(&d, 899, lim.cutoff(now)))
	assert.True(t, has(&d, 900, lim.cutoff(now)))
	assert.Equal(t, 101, d.len(), "expired entries were dropped")
	assert.LessOrEqual(t, len(d.ring), 256, "the ring shrank")
	assert.NotNil(t, d.index)
	assert.False(t, has(&d, 1000, lim.cutoff(1000)))
	assert.Zero(t, d.len())
	assert.Nil(t, d.ring, "an emptied cache holds no ring")
}

// Recovery folds consecutive events of one command into one entry.
func TestDedupCache_AddEventFoldsConsecutiveEvents(t *testing.T) {
	lim := dedupLimits{window: 100, max: 10}
	var d dedupCache[int]
	d.addEvent("a", idTag("a"), 1, 1, 10, 5, lim)
	d.addEvent("a", idTag("a"), 2, 2, 11, 5, lim)
	d.addEvent("b", idTag("b"), 3, 3, 12, 6, lim)
	r, ok := d.get("a", idTag("a"), 0)
	require.True(t, ok)
	assert.Equal(t, Result[int]{CommandID: "a", Events: []int{1, 2}, Version: 2, Position: 11}, r)
	assert.Equal(t, 2, d.len())
}
