package actor

import "hash/maphash"

// idSeed hashes command ids for the dedup structures. Hashes only speed up
// comparisons: every hit is confirmed by comparing the ids themselves.
var idSeed = maphash.MakeSeed()

func idTag(id string) uint64 { return maphash.String(idSeed, id) }

// dedupLimits bound what a dedupCache remembers: commands committed within
// window (nanoseconds, measured on Config.Clock), at most max of them.
// window <= 0 means deduplication is off.
type dedupLimits struct {
	window int64
	max    int
}

func (l dedupLimits) on() bool { return l.window > 0 && l.max > 0 }

// cutoff is the oldest commit time still inside the window at now.
func (l dedupLimits) cutoff(now int64) int64 { return now - l.window }

// dedupEntry is one remembered command: its result, the hash of its id and
// the time of its events (the clock reading the command was decided at,
// which is also the Time of its events in the journal, so a recovered entry
// expires exactly when the live one would have).
type dedupEntry[E any] struct {
	res Result[E]
	tag uint64
	at  int64 // unix nanoseconds
}

// dedupCache remembers the results of an aggregate's recent commands in
// commit order: entries leave it when they are older than the window or,
// once the cap is reached, oldest first.
//
// The entries live in a queue of chunks, filled in order and released
// whole once every entry in them has left, so that remembering a command
// never copies the older entries and costs no allocation but a new chunk
// now and then. Chunks grow with the cache (1, 1, 2, 4, … up to
// dedupChunkMax entries): an aggregate that remembers one command holds
// one entry, a busy one allocates about once per dedupChunkMax commands.
// (A ring that doubled, as before, allocated and copied about twice the
// entries it ended with, all of them memory the GC scans.)
//
// A small cache is searched by scanning the id hashes, which each chunk
// keeps in an array of their own (8 to a cache line); from dedupIndexAt
// entries an index from id hash to sequence number is kept as well (a
// busy aggregate remembers thousands). The index holds no pointers
// (nothing for the GC to scan) and maps each hash to the newest entry
// with it; a hit whose id differs (two ids with one hash) falls back to
// the scan, so hash collisions cost time, never a wrong answer.
type dedupCache[E any] struct {
	chunks  []dedupChunk[E]   // in commit order
	off     int               // slot of the oldest entry in chunks[0]
	n       int               // entries remembered
	headSeq uint64            // sequence number of the oldest entry
	index   map[uint64]uint64 // id hash → sequence number of its newest entry; non-nil while n > dedupIndexAt
}

// dedupChunk is a run of entries and, apart, their id hashes: a lookup
// scans the hashes, 8 to a cache line, without touching the entries.
// len(tags) == len(ents) is the filled part.
type dedupChunk[E any] struct {
	tags []uint64
	ents []dedupEntry[E]
}

// dedupIndexAt is the number of entries above which a map index is kept:
// below it, scanning the hashes is cheaper than keeping the map.
const dedupIndexAt = 128

// dedupChunkMax is the largest chunk, in entries.
const dedupChunkMax = 64

func (d *dedupCache[E]) len() int { return d.n }

// slots is the number of entries the chunks have room for, used or not.
func (d *dedupCache[E]) slots() int {
	s := 0
	for _, c := range d.chunks {
		s += cap(c.ents)
	}
	return s
}

// at returns the i-th oldest entry, nil unless 0 <= i < n.
func (d *dedupCache[E]) at(i int) *dedupEntry[E] {
	if i < 0 || i >= d.n {
		return nil
	}
	i += d.off
	for _, c := range d.chunks {
		if i < len(c.ents) {
			return &c.ents[i]
		}
		i -= len(c.ents)
	}
	return nil
}

// oldest and newest return the first and last entry; n must be > 0.
func (d *dedupCache[E]) oldest() *dedupEntry[E] { return &d.chunks[0].ents[d.off] }

func (d *dedupCache[E]) newest() *dedupEntry[E] {
	c := d.chunks[len(d.chunks)-1].ents
	return &c[len(c)-1]
}

// scan returns the entry of command id (hash tag), searching every entry.
func (d *dedupCache[E]) scan(id string, tag uint64) *dedupEntry[E] {
	from := d.off
	for _, c := range d.chunks {
		for i := from; i < len(c.tags); i++ {
			if c.tags[i] == tag {
				if e := &c.ents[i]; e.res.CommandID == id {
					return e
				}
			}
		}
		from = 0
	}
	return nil
}

// find returns the entry of command id (whose hash is tag), if remembered.
func (d *dedupCache[E]) find(id string, tag uint64) *dedupEntry[E] {
	if d.n == 0 {
		return nil
	}
	if d.index != nil {
		seq, ok := d.index[tag]
		if !ok {
			return nil // no entry has this hash
		}
		if e := d.at(int(seq - d.headSeq)); e != nil && e.res.CommandID == id {
			return e
		}
		// Another id with the same hash is newer: the rare collision.
	}
	return d.scan(id, tag)
}

// get returns the remembered result of command id, whose hash is tag,
// unless it was committed before cutoff. It first forgets the entries
// older than cutoff.
func (d *dedupCache[E]) get(id string, tag uint64, cutoff int64) (Result[E], bool) {
	d.expire(cutoff)
	if e := d.find(id, tag); e != nil && e.at >= cutoff {
		return e.res, true
	}
	return Result[E]{}, false
}

// expire forgets the oldest entries while they were committed before
// cutoff. Times only go back when the clock does; an entry behind a newer
// one then stays until that one expires, but get still checks its time.
func (d *dedupCache[E]) expire(cutoff int64) {
	for d.n > 0 && d.oldest().at < cutoff {
		d.dropOldest()
	}
}

func (d *dedupCache[E]) dropOldest() {
	e := d.oldest()
	if d.index != nil {
		if seq, ok := d.index[e.tag]; ok && seq == d.headSeq {
			delete(d.index, e.tag) // no newer entry has its hash
		}
	}
	*e = dedupEntry[E]{}
	d.chunks[0].tags[d.off] = 0
	d.headSeq++
	d.n--
	d.off++
	if d.n == 0 {
		// An emptied cache keeps nothing, so that an aggregate that was
		// busy and went quiet does not keep its peak memory.
		*d = dedupCache[E]{headSeq: d.headSeq}
		return
	}
	if c := d.chunks[0]; d.off == len(c.ents) {
		// The oldest chunk is used up (it is full: entries remain, so a
		// later chunk exists). Release it.
		d.chunks[0] = dedupChunk[E]{}
		d.chunks = d.chunks[1:]
		d.off = 0
	}
	if d.index != nil && d.n <= dedupIndexAt/2 {
		d.index = nil // hysteresis: rebuilt only past dedupIndexAt again
	}
}

// add remembers r (whose command id hashes to tag), committed at at,
// unless its id is already remembered.
func (d *dedupCache[E]) add(r Result[E], tag uint64, at int64, lim dedupLimits) {
	if d.find(r.CommandID, tag) != nil {
		return
	}
	d.addNew(r, tag, at, lim)
}

// addNew is add for a command id known not to be remembered: one that
// was looked up when the command arrived and was pending since (a retry
// meanwhile would have joined it as a duplicate). It forgets entries that
// left the window by at, and the oldest entry when lim.max are
// remembered.
func (d *dedupCache[E]) addNew(r Result[E], tag uint64, at int64, lim dedupLimits) {
	for d.n > 0 && d.oldest().at < lim.cutoff(at) {
		d.dropOldest()
	}
	for d.n >= lim.max {
		d.dropOldest()
	}
	k := len(d.chunks)
	if k == 0 || len(d.chunks[k-1].ents) == cap(d.chunks[k-1].ents) {
		// A new chunk, sized to the entries remembered (the cache
		// doubles in room as a ring would), at most dedupChunkMax and
		// never more than the cap: the chunks hold at most
		// lim.max + 2*dedupChunkMax entries.
		size := min(dedupChunkMax, lim.max, max(1, d.n))
		d.chunks = append(d.chunks, dedupChunk[E]{tags: make([]uint64, 0, size), ents: make([]dedupEntry[E], 0, size)})
		k++
	}
	c := &d.chunks[k-1]
	c.tags = append(c.tags, tag)
	c.ents = append(c.ents, dedupEntry[E]{res: r, tag: tag, at: at})
	seq := d.headSeq + uint64(d.n)
	d.n++
	if d.index != nil {
		d.index[tag] = seq
	} else if d.n > dedupIndexAt {
		d.index = make(map[uint64]uint64, 2*d.n)
		seq := d.headSeq
		from := d.off
		for _, c := range d.chunks {
			for i := from; i < len(c.tags); i++ {
				d.index[c.tags[i]] = seq // in order: the newest of a hash wins
				seq++
			}
			from = 0
		}
	}
}

// addEvent folds one replayed event of command id (hash tag) into the
// cache during recovery: consecutive events with the same causation id
// are one command, so an event of the newest entry's command extends it.
func (d *dedupCache[E]) addEvent(id string, tag uint64, ev E, version, position uint64, at int64, lim dedupLimits) {
	if d.n > 0 {
		if e := d.newest(); e.tag == tag && e.res.CommandID == id {
			e.res.Events = append(e.res.Events, ev)
			e.res.Version, e.res.Position = version, position
			return
		}
	}
	d.add(Result[E]{CommandID: id, Events: []E{ev}, Version: version, Position: position}, tag, at, lim)
}

// pendingSet holds the commands that were accepted and are waiting for
// their batch to commit, in arrival order, for recognising a retry of a
// command still in flight. Commands leave it in the order they entered
// (batches complete in order), so removal is O(1); lookups scan the id
// hashes, and a map index is added only while many commands are queued
// (a hot aggregate).
type pendingSet[E any] struct {
	q     []pendingRef[E]
	head  int
	index map[string]*pendingCmd[E] // non-nil while the set is large
}

type pendingRef[E any] struct {
	tag uint64
	p   *pendingCmd[E]
}

// pendingIndexAt is the queue length from which a map index is kept.
const pendingIndexAt = 32

func (s *pendingSet[E]) len() int { return len(s.q) - s.head }

func (s *pendingSet[E]) get(id string, tag uint64) *pendingCmd[E] {
	if s == nil {
		return nil
	}
	if s.index != nil {
		return s.index[id]
	}
	for _, r := range s.q[s.head:] {
		if r.tag == tag && r.p.res.CommandID == id {
			return r.p
		}
	}
	return nil
}

func (s *pendingSet[E]) add(p *pendingCmd[E]) {
	if s.head > 0 && (s.head == len(s.q) || s.head >= len(s.q)/2 && s.head >= pendingIndexAt) {
		n := copy(s.q, s.q[s.head:])
		clear(s.q[n:])
		s.q, s.head = s.q[:n], 0
	}
	s.q = append(s.q, pendingRef[E]{tag: p.tag, p: p})
	if s.index != nil {
		s.index[p.res.CommandID] = p
	} else if s.len() > pendingIndexAt {
		s.index = make(map[string]*pendingCmd[E], 2*s.len())
		for _, r := range s.q[s.head:] {
			s.index[r.p.res.CommandID] = r.p
		}
	}
}

// remove takes p out of the set; p is normally the oldest entry.
func (s *pendingSet[E]) remove(p *pendingCmd[E]) {
	if s.len() == 0 {
		return
	}
	if s.q[s.head].p == p {
		s.q[s.head] = pendingRef[E]{}
		s.head++
	} else {
		i := s.head
		for i < len(s.q) && s.q[i].p != p {
			i++
		}
		if i == len(s.q) {
			return
		}
		copy(s.q[i:], s.q[i+1:])
		s.q[len(s.q)-1] = pendingRef[E]{}
		s.q = s.q[:len(s.q)-1]
	}
	if s.index != nil {
		delete(s.index, p.res.CommandID)
	}
	if s.len() == 0 {
		s.index = nil
		s.q, s.head = s.q[:0], 0
		if cap(s.q) > 4*pendingIndexAt {
			s.q = nil
		}
	}
}

// reset drops every entry.
func (s *pendingSet[E]) reset() { *s = pendingSet[E]{} }
