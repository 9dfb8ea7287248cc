package actor

// dedupIndex maps id hashes to the sequence numbers of a dedupCache's
// entries: an open-addressing hash table with linear probing, one uint64
// per slot and no pointers (nothing for the GC to scan), so that a lookup
// or an insert on an aggregate that has not run for a while touches one
// or two cache lines of the table instead of a map's header, directory
// and groups.
//
// Every entry of the cache has its own slot (two entries whose ids have
// the same hash have two), so a lookup that finds no slot for a hash has
// found that no entry has it: a miss is a true miss. A slot is the word
//
//	hi<<32 | uint32(seq)
//
// where hi is the hash's upper 32 bits with the top bit set (so that no
// slot is 0, the empty word) and seq the entry's sequence number modulo
// 2^32: the cache holds fewer than dedupMaxLive entries, so the full
// number is the one within 2^32 of the cache's oldest (see seqOf). A
// slot's home is hi modulo the table size, so the table can be resized
// and slots deleted (by backward shift, no tombstones) from the words
// alone, without reading the entries. A slot whose hi matches is only a
// candidate: the caller confirms it with the entry's full hash and id.
type dedupIndex struct {
	slots []uint64 // len is a power of two, at least dedupIndexMin; 0 = empty
	n     int      // slots in use
}

// dedupIndexMin is the smallest table, in slots.
const dedupIndexMin = 64

// dedupMaxLive bounds the entries of one cache (whatever the configured
// cap), so that sequence numbers modulo 2^32 stay unambiguous in the
// index. Config.Validate rejects a larger DedupMaxEntries.
const dedupMaxLive = 1 << 30

// dedupHi is the part of tag a slot keeps: the upper 32 bits, top bit set.
func dedupHi(tag uint64) uint32 { return uint32(tag>>32) | 1<<31 }

func dedupWord(tag, seq uint64) uint64 { return uint64(dedupHi(tag))<<32 | uint64(uint32(seq)) }

// seqOf is the sequence number of slot word w, given the sequence number
// of the cache's oldest entry.
func seqOf(w, headSeq uint64) uint64 { return headSeq + uint64(uint32(w)-uint32(headSeq)) }

func (x *dedupIndex) mask() uint64 { return uint64(len(x.slots) - 1) }

// home is the first slot probed for a word whose hi is hi.
func (x *dedupIndex) home(hi uint32) uint64 { return uint64(hi) & x.mask() }

// init makes an empty table with room for n entries.
func (x *dedupIndex) init(n int) {
	size := dedupIndexMin
	for size < 2*n {
		size *= 2
	}
	x.slots, x.n = make([]uint64, size), 0
}

// insert adds the slot of entry seq, whose id hashes to tag, growing the
// table to keep it at most half full.
func (x *dedupIndex) insert(tag, seq uint64) {
	if 2*(x.n+1) > len(x.slots) {
		x.resize(2 * len(x.slots))
	}
	x.put(dedupWord(tag, seq))
	x.n++
}

func (x *dedupIndex) put(w uint64) {
	m := x.mask()
	i := x.home(uint32(w >> 32))
	for x.slots[i] != 0 {
		i = (i + 1) & m
	}
	x.slots[i] = w
}

// resize moves the slots to a table of size slots.
func (x *dedupIndex) resize(size int) {
	old := x.slots
	x.slots = make([]uint64, size)
	for _, w := range old {
		if w != 0 {
			x.put(w)
		}
	}
}

// remove deletes the slot of entry seq (hash tag) and reports whether it
// was there. It shrinks the table when it is less than an eighth full.
func (x *dedupIndex) remove(tag, seq uint64) bool {
	w := dedupWord(tag, seq)
	m := x.mask()
	i := x.home(uint32(w >> 32))
	for x.slots[i] != w {
		if x.slots[i] == 0 {
			return false
		}
		i = (i + 1) & m
	}
	// Backward shift: move later slots of the run into the hole when the
	// hole lies between their home and where they are.
	for j := i; ; {
		j = (j + 1) & m
		v := x.slots[j]
		if v == 0 {
			break
		}
		k := x.home(uint32(v >> 32))
		if (j-k)&m < (j-i)&m {
			continue // home k is after the hole: v stays reachable where it is
		}
		x.slots[i] = v
		i = j
	}
	x.slots[i] = 0
	x.n--
	if len(x.slots) > dedupIndexMin && 8*x.n < len(x.slots) {
		x.resize(len(x.slots) / 2)
	}
	return true
}
