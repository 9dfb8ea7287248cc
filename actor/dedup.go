package actor

import (
	"encoding/binary"
	"hash/maphash"
	"math"
)

// idSeed hashes command ids for the dedup structures. Hashes only speed up
// comparisons: every hit is confirmed by comparing the ids themselves.
var idSeed = maphash.MakeSeed()

func idTag(id string) uint64 { return maphash.String(idSeed, id) & idTagMask }

// idTagMask is a test hook: a test narrows it (SetIDTagMask) to make
// command ids' hashes collide.
var idTagMask = ^uint64(0)

// dedupLimits bound what a dedupCache remembers: commands committed within
// window (nanoseconds, measured on Config.Clock), at most max of them.
// window <= 0 means deduplication is off. keep makes the cache keep each
// command's events (see dedupCache): set for aggregates whose definition
// deletes events on snapshot, whose events may leave the journal while
// their commands are still remembered.
type dedupLimits struct {
	window int64
	max    int
	keep   bool
}

func (l dedupLimits) on() bool { return l.window > 0 && l.max > 0 }

// cutoff is the oldest commit time still inside the window at now.
func (l dedupLimits) cutoff(now int64) int64 { return now - l.window }

// dedupEntry is one remembered command, without pointers (the GC does not
// scan the chunks that hold entries): the hash of its id and the id itself
// (see id), the time of its events (the clock reading the command was
// decided at, which is also the Time of its events in the journal, so a
// recovered entry expires exactly when the live one would have), and its
// Result but for the events: Version, Position and the number of events,
// which are the versions version-events+1 … version of the aggregate's
// stream. A duplicate reads them back from the journal (dedupEvents).
type dedupEntry struct {
	tag      uint64
	at       int64 // unix nanoseconds
	version  uint64
	position uint64
	events   uint32
	// idLen and id hold the command id: an id of up to 16 bytes in id
	// itself (idLen its length); a canonical UUID (lowercase, 36 bytes) as
	// its 16 bytes (idLen idUUID); any other id in its chunk's ids, from
	// the offset in id's first 4 bytes (idLen its length).
	idLen uint32
	id    [16]byte
}

// idUUID is dedupEntry.idLen of an id kept as a UUID's 16 bytes.
const idUUID = math.MaxUint32

// dedupChunk is a run of entries, and the ids longer than 16 bytes that
// are not canonical UUIDs (nil while there are none).
type dedupChunk struct {
	e   []dedupEntry // its len is its filled part
	ids []byte
}

// setID stores id in e, in c's ids when it has to.
func (c *dedupChunk) setID(e *dedupEntry, id string) {
	if len(id) <= len(e.id) {
		e.idLen = uint32(len(id))
		copy(e.id[:], id)
		return
	}
	if u, ok := parseUUID(id); ok {
		e.idLen, e.id = idUUID, u
		return
	}
	if c.ids == nil {
		c.ids = make([]byte, 0, cap(c.e)*len(id))
	}
	binary.LittleEndian.PutUint32(e.id[:4], uint32(len(c.ids)))
	e.idLen = uint32(len(id))
	c.ids = append(c.ids, id...)
}

// hasID reports whether e (an entry of c) is the entry of command id.
func (c *dedupChunk) hasID(e *dedupEntry, id string) bool {
	switch {
	case e.idLen == idUUID:
		u, ok := parseUUID(id)
		return ok && u == e.id
	case int(e.idLen) != len(id):
		return false
	case e.idLen <= uint32(len(e.id)):
		return string(e.id[:e.idLen]) == id
	default:
		off := binary.LittleEndian.Uint32(e.id[:4])
		return string(c.ids[off:off+e.idLen]) == id
	}
}

// parseUUID returns the 16 bytes of id if it is a UUID in canonical form
// (lowercase hex, dashes at 8, 13, 18 and 23): the form that turns back
// into the same string, so that two ids are equal exactly when their
// bytes are.
func parseUUID(id string) (u [16]byte, ok bool) {
	if len(id) != 36 || id[8] != '-' || id[13] != '-' || id[18] != '-' || id[23] != '-' {
		return u, false
	}
	j := 0
	for i := 0; i < 36; i += 2 {
		if i == 8 || i == 13 || i == 18 || i == 23 {
			i++
		}
		hi, lo := hexVal(id[i]), hexVal(id[i+1])
		if hi > 15 || lo > 15 {
			return u, false
		}
		u[j] = hi<<4 | lo
		j++
	}
	return u, true
}

// hexVal is the value of a lowercase hex digit, 255 for anything else.
func hexVal(c byte) byte {
	switch {
	case '0' <= c && c <= '9':
		return c - '0'
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10
	}
	return 255
}

// dedupHit is what the cache remembers of a command: its Result without
// the events (which events says how many there were), unless the cache
// keeps events (dedupLimits.keep): then res.Events holds them, and kept
// is set.
type dedupHit[E any] struct {
	res    Result[E]
	events int
	kept   bool
}

// first is the version of the command's first event (events > 0).
func (h dedupHit[E]) first() uint64 { return h.res.Version - uint64(h.events) + 1 }

// dedupCache remembers the results of an aggregate's recent commands in
// commit order: entries leave it when they are older than the window or,
// once the cap is reached, oldest first.
//
// The entries hold no pointers (see dedupEntry): a remembered command
// costs about 56 bytes of entry, plus its id when that is neither a
// canonical UUID nor of at most 16 bytes, plus its slot in the index, and
// nothing for the GC to scan or mark. The events a command produced are
// not kept but read back from the journal on the rare duplicate, as a
// restarted aggregate's recovery would read them. Only under
// dedupLimits.keep (events deleted on snapshot) are they kept, in kept.
//
// The entries live in a queue of chunks, filled in order and released
// whole once every entry in them has left, so that remembering a command
// never copies the older entries and costs no allocation but a new chunk
// now and then. Chunks grow with the cache (1, 1, 2, 4, … up to
// dedupChunkMax entries): an aggregate that remembers one command holds
// one entry, a busy one allocates about once per dedupChunkMax commands.
//
// A small cache is searched by scanning the id hashes; past dedupIndexAt
// entries an index from id hash to sequence number is kept as well (a
// busy aggregate remembers thousands): a pointer-free hash table with a
// slot for every entry (see dedupIndex), so that an id not found there is
// not remembered, and one found there is confirmed by its entry's hash
// and id. Hash collisions cost time, never a wrong answer.
type dedupCache[E any] struct {
	chunks  []dedupChunk   // in commit order
	off     int            // slot of the oldest entry in chunks[0]
	n       int            // entries remembered
	headSeq uint64         // sequence number of the oldest entry
	headAt  int64          // the oldest entry's time (its at), when n > 0
	index   dedupIndex     // a slot per entry while n > dedupIndexAt (slots nil otherwise)
	kept    map[uint64][]E // sequence number → events, under dedupLimits.keep only
}

// dedupIndexAt is the number of entries above which an index is kept.
// Below it a lookup scans the entries (56 bytes each, a cache line per
// entry); an index from 5 entries (tables from 16 slots) made lookups
// cheaper but added a table allocation per doubling and an insert per
// command, and measured worse in the many-aggregates scenario, whose
// aggregates remember tens of commands (BENCHMARKS.md).
const dedupIndexAt = 16

// dedupChunkMax is the largest chunk, in entries.
const dedupChunkMax = 64

func (d *dedupCache[E]) len() int { return d.n }

// slots is the number of entries the chunks have room for, used or not.
func (d *dedupCache[E]) slots() int {
	s := 0
	for _, c := range d.chunks {
		s += cap(c.e)
	}
	return s
}

// locate returns the chunk and slot of the i-th oldest entry; c is nil
// unless 0 <= i < n.
func (d *dedupCache[E]) locate(i int) (c *dedupChunk, slot int) {
	if i < 0 || i >= d.n {
		return nil, 0
	}
	i += d.off
	for k := range d.chunks {
		if c := &d.chunks[k]; i < len(c.e) {
			return c, i
		}
		i -= len(d.chunks[k].e)
	}
	return nil, 0
}

// at returns the i-th oldest entry, nil unless 0 <= i < n.
func (d *dedupCache[E]) at(i int) *dedupEntry {
	if c, slot := d.locate(i); c != nil {
		return &c.e[slot]
	}
	return nil
}

// oldest and newest return the first and last entry; n must be > 0.
func (d *dedupCache[E]) oldest() *dedupEntry { return &d.chunks[0].e[d.off] }

func (d *dedupCache[E]) newest() (*dedupChunk, *dedupEntry) {
	c := &d.chunks[len(d.chunks)-1]
	return c, &c.e[len(c.e)-1]
}

// scan returns the sequence number and entry of command id (hash tag),
// searching every entry.
func (d *dedupCache[E]) scan(id string, tag uint64) (uint64, *dedupEntry) {
	from := d.off
	seq := d.headSeq
	for k := range d.chunks {
		c := &d.chunks[k]
		for i := from; i < len(c.e); i++ {
			if e := &c.e[i]; e.tag == tag && c.hasID(e, id) {
				return seq, e
			}
			seq++
		}
		from = 0
	}
	return 0, nil
}

// find returns the sequence number and entry of command id (whose hash is
// tag), if remembered.
func (d *dedupCache[E]) find(id string, tag uint64) (uint64, *dedupEntry) {
	if d.n == 0 {
		return 0, nil
	}
	x := &d.index
	if x.slots == nil {
		return d.scan(id, tag)
	}
	// Every entry has a slot: the probe ends at an empty slot with every
	// candidate checked.
	hi, m := dedupHi(tag), x.mask()
	for i := x.home(hi); ; i = (i + 1) & m {
		w := x.slots[i]
		if w == 0 {
			return 0, nil
		}
		if uint32(w>>32) != hi {
			continue
		}
		seq := seqOf(w, d.headSeq)
		if c, slot := d.locate(int(seq - d.headSeq)); c != nil {
			if e := &c.e[slot]; e.tag == tag && c.hasID(e, id) {
				return seq, e
			}
		}
	}
}

// get returns what is remembered of command id, whose hash is tag, unless
// it was committed before cutoff. It first forgets the entries older than
// cutoff.
func (d *dedupCache[E]) get(id string, tag uint64, cutoff int64) (dedupHit[E], bool) {
	d.expire(cutoff)
	seq, e := d.find(id, tag)
	if e == nil || e.at < cutoff {
		return dedupHit[E]{}, false
	}
	h := dedupHit[E]{res: Result[E]{CommandID: id, Version: e.version, Position: e.position}, events: int(e.events)}
	if d.kept != nil {
		h.res.Events, h.kept = d.kept[seq], true
	}
	return h, true
}

// expire forgets the oldest entries while they were committed before
// cutoff. Times only go back when the clock does; an entry behind a newer
// one then stays until that one expires, but get still checks its time.
func (d *dedupCache[E]) expire(cutoff int64) {
	for d.n > 0 && d.headAt < cutoff {
		d.dropOldest()
	}
}

func (d *dedupCache[E]) dropOldest() {
	e := d.oldest()
	if d.index.slots != nil && !d.index.remove(e.tag, d.headSeq) {
		// Cannot happen (every entry has a slot). Should it, drop the
		// index rather than trust it: find scans until the next add
		// rebuilds it from the entries.
		d.index = dedupIndex{}
	}
	if d.kept != nil {
		delete(d.kept, d.headSeq)
	}
	*e = dedupEntry{}
	d.headSeq++
	d.n--
	d.off++
	if d.n == 0 {
		// An emptied cache keeps nothing, so that an aggregate that was
		// busy and went quiet does not keep its peak memory.
		*d = dedupCache[E]{headSeq: d.headSeq}
		return
	}
	if c := d.chunks[0]; d.off == len(c.e) {
		// The oldest chunk is used up (it is full: entries remain, so a
		// later chunk exists). Release it.
		d.chunks[0] = dedupChunk{}
		d.chunks = d.chunks[1:]
		d.off = 0
	}
	d.headAt = d.oldest().at
	if d.index.slots != nil && d.n <= dedupIndexAt/2 {
		d.index = dedupIndex{} // hysteresis: rebuilt only past dedupIndexAt again
	}
}

// add remembers r (whose command id hashes to tag), committed at at,
// unless its id is already remembered.
func (d *dedupCache[E]) add(r Result[E], tag uint64, at int64, lim dedupLimits) {
	if _, e := d.find(r.CommandID, tag); e != nil {
		return
	}
	d.addNew(r, tag, at, lim)
}

// addNew is add for a command id known not to be remembered: one that
// was looked up when the command arrived and was pending since (a retry
// meanwhile would have joined it as a duplicate). It forgets entries that
// left the window by at, and the oldest entry when lim.max are
// remembered. It keeps r's events only under lim.keep.
func (d *dedupCache[E]) addNew(r Result[E], tag uint64, at int64, lim dedupLimits) {
	d.addCounted(r, len(r.Events), tag, at, lim)
}

// addCounted is addNew for a command of events events (r.Events is not
// read unless lim.keep).
func (d *dedupCache[E]) addCounted(r Result[E], events int, tag uint64, at int64, lim dedupLimits) {
	for d.n > 0 && d.headAt < lim.cutoff(at) {
		d.dropOldest()
	}
	for d.n >= min(lim.max, dedupMaxLive) {
		d.dropOldest()
	}
	k := len(d.chunks)
	if k == 0 || len(d.chunks[k-1].e) == cap(d.chunks[k-1].e) {
		// A new chunk, sized to the entries remembered (the cache
		// doubles in room as a ring would), at most dedupChunkMax and
		// never more than the cap: the chunks hold at most
		// lim.max + 2*dedupChunkMax entries.
		size := min(dedupChunkMax, lim.max, max(1, d.n))
		d.chunks = append(d.chunks, dedupChunk{e: make([]dedupEntry, 0, size)})
		k++
	}
	c := &d.chunks[k-1]
	c.e = append(c.e, dedupEntry{tag: tag, at: at, version: r.Version, position: r.Position, events: uint32(events)})
	c.setID(&c.e[len(c.e)-1], r.CommandID)
	seq := d.headSeq + uint64(d.n)
	if d.n == 0 {
		d.headAt = at
	}
	d.n++
	if lim.keep {
		if d.kept == nil {
			d.kept = make(map[uint64][]E)
		}
		d.kept[seq] = r.Events
	}
	if d.index.slots != nil {
		d.index.insert(tag, seq)
	} else if d.n > dedupIndexAt {
		d.index.init(d.n)
		seq := d.headSeq
		from := d.off
		for _, c := range d.chunks {
			for i := from; i < len(c.e); i++ {
				d.index.insert(c.e[i].tag, seq)
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
		if c, e := d.newest(); e.tag == tag && c.hasID(e, id) {
			e.events++
			e.version, e.position = version, position
			if d.kept != nil {
				seq := d.headSeq + uint64(d.n) - 1
				d.kept[seq] = append(d.kept[seq], ev)
			}
			return
		}
	}
	if _, e := d.find(id, tag); e != nil {
		return
	}
	r := Result[E]{CommandID: id, Version: version, Position: position}
	if lim.keep {
		r.Events = []E{ev}
	}
	d.addCounted(r, 1, tag, at, lim)
}

// pendingSet holds the commands that were accepted and are waiting for
// their batch to commit, in arrival order, for recognising a retry of a
// command still in flight. Commands leave it in the order they entered
// (batches complete in order), so removal is O(1); lookups scan the id
// hashes, and a map index is added only while many commands are queued
// (a hot aggregate). The first command queued is held in the set itself
// (one), so that an aggregate that is not hot, with one command at a time
// in flight, touches no other memory for it.
type pendingSet[E any] struct {
	q     []pendingRef[E]
	head  int
	index map[string]*pendingCmd[E] // non-nil while the set is large
	one   [1]pendingRef[E]          // q's storage while it needs no more
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
	switch {
	case s.q == nil:
		s.q = s.one[:0]
	case len(s.q) == cap(s.q) && cap(s.q) == len(s.one):
		// Outgrowing one: to the heap, and one forgets its command.
		q := make([]pendingRef[E], len(s.q), 4)
		copy(q, s.q)
		s.one = [1]pendingRef[E]{}
		s.q = q
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
