package actor

import "hash/maphash"

// idSeed hashes command ids for the dedup structures. Hashes only speed up
// comparisons: every hit is confirmed by comparing the ids themselves.
var idSeed = maphash.MakeSeed()

func idTag(id string) uint64 { return maphash.String(idSeed, id) }

// dedupCache remembers the results of an aggregate's most recent commands,
// up to the dedup window, in a ring. Each entry's id hash is kept in a
// parallel slice, so a lookup scans a few cache lines of integers instead
// of probing a map: at the default window of 100 that is cheaper than a
// map access across thousands of aggregates, and it costs 8 bytes per
// remembered command.
type dedupCache[E any] struct {
	ring []Result[E]
	tags []uint64 // tags[i] == idTag(ring[i].CommandID)
	next int      // slot to overwrite once the ring is full
}

// get returns the remembered result of command id, whose hash is tag.
func (d *dedupCache[E]) get(id string, tag uint64) (Result[E], bool) {
	for i, t := range d.tags {
		if t == tag && d.ring[i].CommandID == id {
			return d.ring[i], true
		}
	}
	return Result[E]{}, false
}

// add remembers r (whose command id hashes to tag) unless its id is
// already remembered, evicting the oldest entry once window are.
func (d *dedupCache[E]) add(r Result[E], tag uint64, window int) {
	if _, ok := d.get(r.CommandID, tag); ok {
		return
	}
	d.addNew(r, tag, window)
}

// addNew is add for a command id known not to be remembered: one that
// was looked up when the command arrived and was pending since (a retry
// meanwhile would have joined it as a duplicate).
func (d *dedupCache[E]) addNew(r Result[E], tag uint64, window int) {
	if n := len(d.ring); n < window {
		if n == cap(d.ring) {
			// Grow by doubling, but never past the window.
			c := min(window, max(1, 2*n))
			d.ring = append(make([]Result[E], 0, c), d.ring...)
			d.tags = append(make([]uint64, 0, c), d.tags...)
		}
		d.ring = append(d.ring, r)
		d.tags = append(d.tags, tag)
		return
	}
	d.ring[d.next] = r
	d.tags[d.next] = tag
	d.next = (d.next + 1) % window
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
