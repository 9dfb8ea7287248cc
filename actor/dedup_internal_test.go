package actor

import (
	"fmt"
	"reflect"
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
	return ok && r.res.Version == uint64(i)
}

// The cap bounds the ring (its memory) and evicts oldest first, with and
// without the map index.
func TestDedupCache_CapEvictsOldestFirstAndBoundsTheRing(t *testing.T) {
	for _, max := range []int{dedupIndexAt - 1, 5, 3 * dedupIndexAt, 48} {
		lim := dedupLimits{window: 1 << 62, max: max}
		var d dedupCache[int]
		addN(&d, 0, 3*max+7, func(int) int64 { return 0 }, lim)
		assert.Equal(t, max, d.len())
		assert.LessOrEqual(t, d.slots(), max+2*dedupChunkMax, "the chunks never grow past the cap (plus two chunks)")
		if max <= dedupChunkMax {
			assert.LessOrEqual(t, d.slots(), 2*max, "a small cap bounds the chunks to twice the cap")
		}
		assert.Equal(t, max > dedupIndexAt, d.index.slots != nil)
		if d.index.slots != nil {
			assert.Equal(t, max, d.index.n)
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
	assert.LessOrEqual(t, d.slots(), 101+2*dedupChunkMax, "chunks whose entries expired were released")
	assert.NotNil(t, d.index.slots)
	assert.False(t, has(&d, 1000, lim.cutoff(1000)))
	assert.Zero(t, d.len())
	assert.Nil(t, d.chunks, "an emptied cache holds no chunks")
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
	assert.Equal(t, dedupHit[int]{res: Result[int]{CommandID: "a", Version: 2, Position: 11}, events: 2}, r)
	assert.Equal(t, uint64(1), r.first())
	assert.Equal(t, 2, d.len())

	// Under keep (events deleted on snapshot) the events themselves are
	// kept too.
	lim.keep = true
	var k dedupCache[int]
	k.addEvent("a", idTag("a"), 1, 1, 10, 5, lim)
	k.addEvent("a", idTag("a"), 2, 2, 11, 5, lim)
	k.addEvent("b", idTag("b"), 3, 3, 12, 6, lim)
	r, ok = k.get("a", idTag("a"), 0)
	require.True(t, ok)
	assert.Equal(t, dedupHit[int]{res: Result[int]{CommandID: "a", Events: []int{1, 2}, Version: 2, Position: 11}, events: 2, kept: true}, r)
	r, ok = k.get("b", idTag("b"), 0)
	require.True(t, ok)
	assert.Equal(t, []int{3}, r.res.Events)
}

// Two ids with the same hash are told apart by their ids, with and
// without the index, also as the older of them leaves the cache: the
// index maps a hash to its newest entry and a mismatch falls back to a
// scan.
func TestDedupCache_HashCollisionsAreToldApartByID(t *testing.T) {
	for _, n := range []int{4, dedupIndexAt + 40} { // without and with the index
		lim := dedupLimits{window: 1 << 62, max: n}
		var d dedupCache[int]
		const tag = 42 // every id gets the same hash
		for i := range n {
			id := fmt.Sprint("c", i)
			d.add(Result[int]{CommandID: id, Version: uint64(i)}, tag, 0, lim)
		}
		require.Equal(t, n, d.len(), "an id with a known hash is still new")
		for i := range n {
			r, ok := d.get(fmt.Sprint("c", i), tag, 0)
			require.True(t, ok, "c%d (n %d)", i, n)
			assert.Equal(t, uint64(i), r.res.Version)
		}
		_, ok := d.get("other", tag, 0)
		assert.False(t, ok, "an unknown id with a known hash")
		// At the cap, each add drops the oldest, which shares its hash
		// with every newer entry: the newer ones stay found.
		for i := n; i < 2*n; i++ {
			id := fmt.Sprint("c", i)
			d.add(Result[int]{CommandID: id, Version: uint64(i)}, tag, 0, lim)
			_, ok := d.get(fmt.Sprint("c", i-n), tag, 0)
			assert.False(t, ok, "c%d was dropped", i-n)
			for k := i - n + 1; k <= i; k++ {
				r, ok := d.get(fmt.Sprint("c", k), tag, 0)
				require.True(t, ok, "c%d after adding c%d (n %d)", k, i, n)
				assert.Equal(t, uint64(k), r.res.Version)
			}
		}
		// A different hash is not found through the colliding ones.
		id := fmt.Sprint("c", 2*n-1)
		_, ok = d.get(id, tag+1, 0)
		assert.False(t, ok)
	}
	// Expiry alone (nothing added after it) drops the older of two
	// colliding ids; the newer stays found.
	for _, n := range []int{4, dedupIndexAt + 40} {
		lim := dedupLimits{window: 10, max: 1000}
		var d dedupCache[int]
		d.add(Result[int]{CommandID: "old", Version: 1}, 42, 0, lim)
		for i := range n {
			d.add(Result[int]{CommandID: fmt.Sprint("x", i), Version: uint64(i)}, uint64(1000+i), 5, lim)
		}
		d.add(Result[int]{CommandID: "new", Version: 2}, 42, 5, lim)
		_, ok := d.get("old", 42, lim.cutoff(12)) // drops the entry at 0
		assert.False(t, ok)
		require.Equal(t, n+1, d.len())
		r, ok := d.get("new", 42, lim.cutoff(12))
		require.True(t, ok, "n %d", n)
		assert.Equal(t, uint64(2), r.res.Version)
	}
}

// A cache at its cap remembers a command without copying or allocating
// per command: one chunk every dedupChunkMax commands.
func TestDedupCache_AddAtCapAllocatesOncePerChunk(t *testing.T) {
	lim := dedupLimits{window: 1 << 62, max: 1000}
	var d dedupCache[int]
	ids := make([]string, 5000)
	for i := range ids {
		ids[i] = fmt.Sprint("c", i)
	}
	for i := range 2000 {
		d.addNew(Result[int]{CommandID: ids[i], Version: uint64(i)}, idTag(ids[i]), 0, lim)
	}
	i := 2000
	allocs := testing.AllocsPerRun(2000, func() {
		d.addNew(Result[int]{CommandID: ids[i], Version: uint64(i)}, idTag(ids[i]), 0, lim)
		i++
	})
	assert.LessOrEqual(t, allocs, 2.0/dedupChunkMax, "allocations per command at the cap")
	assert.Equal(t, 1000, d.len())
	// Entries stay where they were put: adding never moves them.
	mid := d.at(500)
	for k := range 3 * dedupChunkMax {
		d.addNew(Result[int]{CommandID: ids[i+k], Version: 1}, idTag(ids[i+k]), 0, lim)
	}
	assert.Same(t, mid, d.at(500-3*dedupChunkMax))
}

// Ids of every stored form (canonical UUID as 16 bytes, an uppercase UUID
// and a long id in the chunk's arena, short ids inline), all with one
// forced hash, are told apart by the ids themselves, with and without the
// index, and an id that differs from a remembered one only in case or in
// its last byte is not found.
func TestDedupCache_HashCollisionsAcrossIDForms(t *testing.T) {
	ids := []string{
		"0190a5b4-0000-7000-8000-00000000000a",
		"0190A5B4-0000-7000-8000-00000000000A",
		"0190a5b4-0000-7000-8000-00000000000b",
		"a-command-id-longer-than-16-bytes",
		"a-command-id-longer-than-16-bytez",
		"short",
		"shore",
		"0123456789abcdef",
		"",
	}
	absent := []string{
		"0190a5b4-0000-7000-8000-00000000000c",
		"0190a5b4-0000-7000-8000-00000000000A",
		"0190a5b4_0000-7000-8000-00000000000a",
		"a-command-id-longer-than-16-byteS",
		"shor",
		"0123456789abcdeg",
	}
	for _, n := range []int{1, 40} { // padding before: without and with the index
		lim := dedupLimits{window: 1 << 62, max: 1000}
		var d dedupCache[int]
		for i := range n {
			id := fmt.Sprint("pad", i)
			d.add(Result[int]{CommandID: id}, idTag(id), 0, lim)
		}
		const tag = 7
		for i, id := range ids {
			d.add(Result[int]{CommandID: id, Version: uint64(100 + i), Events: make([]int, i)}, tag, 0, lim)
		}
		require.Equal(t, n+len(ids), d.len(), "every id is new")
		for i, id := range ids {
			r, ok := d.get(id, tag, 0)
			require.True(t, ok, "%q (n %d)", id, n)
			assert.Equal(t, dedupHit[int]{res: Result[int]{CommandID: id, Version: uint64(100 + i)}, events: i}, r, "%q", id)
		}
		for _, id := range absent {
			_, ok := d.get(id, tag, 0)
			assert.False(t, ok, "%q (n %d)", id, n)
		}
	}
}

func TestParseUUID_CanonicalLowercaseOnly(t *testing.T) {
	u, ok := parseUUID("0190a5b4-1c2d-7e3f-8a9b-0c1d2e3f4a5b")
	require.True(t, ok)
	assert.Equal(t, [16]byte{0x01, 0x90, 0xa5, 0xb4, 0x1c, 0x2d, 0x7e, 0x3f, 0x8a, 0x9b, 0x0c, 0x1d, 0x2e, 0x3f, 0x4a, 0x5b}, u)
	for _, id := range []string{
		"0190A5B4-1c2d-7e3f-8a9b-0c1d2e3f4a5b",
		"0190a5b41c2d7e3f8a9b0c1d2e3f4a5b",
		"0190a5b4-1c2d-7e3f-8a9b-0c1d2e3f4a5",
		"0190a5b4-1c2d-7e3f-8a9b-0c1d2e3f4a5bb",
		"0190a5b4-1c2d-7e3f-8a9b_0c1d2e3f4a5b",
		"0190a5b4-1c2d-7e3f-8a9b-0c1d2e3f4a5g",
		"{190a5b4-1c2d-7e3f-8a9b-0c1d2e3f4a5b",
	} {
		_, ok := parseUUID(id)
		assert.False(t, ok, id)
	}
}

// A dedup entry holds no pointers (the GC neither scans nor marks the
// chunks), and stays small.
func TestDedupEntry_HasNoPointers(t *testing.T) {
	typ := reflect.TypeOf(dedupEntry{})
	for i := range typ.NumField() {
		switch k := typ.Field(i).Type.Kind(); k {
		case reflect.Uint64, reflect.Int64, reflect.Uint32, reflect.Array:
			if k == reflect.Array {
				assert.Equal(t, reflect.Uint8, typ.Field(i).Type.Elem().Kind(), typ.Field(i).Name)
			}
		default:
			t.Errorf("field %s is a %v", typ.Field(i).Name, k)
		}
	}
	assert.LessOrEqual(t, typ.Size(), uintptr(56))
}
