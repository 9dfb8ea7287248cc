package bolt

import (
	"encoding/binary"
	"errors"

	bbolt "go.etcd.io/bbolt"

	"github.com/orchestrix/orchestrix/journal"
)

// Cached stream heads.
//
// j.streams holds the state of every stream with records not yet in
// journal.index (dirty, in a checkpoint round, or changed by the batch
// being committed): those cannot leave memory. Others ("clean":
// journal.streams holds their head and deletion point, and journal.index
// covers them up to the head) stay while j.streams holds at most
// Config.CachedHeads states; the writer evicts the surplus after each
// commit with a clock: it sweeps
// writerState.clock from the hand, clears the ref bit of a stream appended
// to since it last passed, and evicts the first clean stream whose bit is
// clear. An evicted stream is read back from journal.streams by the next
// append, deletion or read that names it (its recent-id window is read
// back from the log when an Any or StreamExists append needs it).
//
// Only the writer inserts into or removes from j.streams, under j.mu. A
// reader that misses reads journal.streams in a read transaction begun
// while it holds j.mu.RLock: the stream is then clean and not loaded, and
// the writer cannot load (let alone change) it before that transaction has
// begun, so the transaction holds its published head.

// storedHead reads stream's head and deletion point from journal.streams.
func storedHead(b *bbolt.Bucket, stream string) (head, deletedTo uint64, ok bool, err error) {
	v := b.Get([]byte(stream))
	if v == nil {
		return 0, 0, false, nil
	}
	if len(v) != 16 {
		return 0, 0, false, &journal.CorruptionError{Stream: stream, Err: errors.New("malformed stream head entry")}
	}
	return binary.BigEndian.Uint64(v[0:8]), binary.BigEndian.Uint64(v[8:16]), true, nil
}

// snapshot is a reader's copy of a stream's published state.
type snapshot struct {
	st              *streamState
	head, deletedTo uint64
	pending         []run
}

// snapshot returns the published state of stream; ok is false for a
// stream never written.
func (j *Journal) snapshot(stream string) (s snapshot, ok bool, err error) {
	j.mu.RLock()
	defer j.mu.RUnlock()
	if st := j.streams[stream]; st != nil {
		return snapshot{st: st, head: st.head, deletedTo: st.deletedTo, pending: st.pending}, true, nil
	}
	err = view(j.db, func(tx *bbolt.Tx) error {
		var err error
		s.head, s.deletedTo, ok, err = storedHead(tx.Bucket(bucketStreams), stream)
		return err
	})
	if err != nil || !ok {
		return snapshot{}, false, err
	}
	// A state of its own (not in j.streams): clean, so no pending runs.
	s.st = newStreamState(stream)
	return s, true, nil
}

// stream returns the writer's state of name, loading it from
// journal.streams in tx (the writer's view) when it is not cached, or
// creating it with head 0. Only the writer mutates j.streams, so it reads
// the map without the lock.
func (j *Journal) stream(tx *bbolt.Tx, name string) (*streamState, error) {
	if st := j.streams[name]; st != nil {
		st.ref = true
		return st, nil
	}
	st := newStreamState(name)
	var err error
	if st.head, st.deletedTo, _, err = storedHead(tx.Bucket(bucketStreams), name); err != nil {
		return nil, err
	}
	st.wHead = st.head
	st.ref = true
	st.slot = len(j.w.clock)
	j.w.clock = append(j.w.clock, st)
	j.mu.Lock()
	j.streams[name] = st
	j.mu.Unlock()
	return st, nil
}

// clean reports whether st may leave memory: journal.streams and
// journal.index hold all of it.
func (st *streamState) clean() bool {
	return st.pending == nil && len(st.staged) == 0 && !st.dirty && !st.inRound && !st.touched && !st.flushed
}

// maxEvictSteps bounds the clock steps of one evict.
const maxEvictSteps = 16384

// evict drops clean streams from memory while more than CachedHeads
// streams are cached.
func (j *Journal) evict() {
	w := &j.w
	over := len(w.clock) - j.opts.CachedHeads
	if over <= 0 {
		return
	}
	var victims []*streamState
	// At most a few times the surplus per commit, and never more than
	// maxEvictSteps: a cache full of dirty streams (a CachedHeads below
	// their number) must not cost a sweep of all of them per commit.
	for steps := min(len(w.clock), 4*over+64, maxEvictSteps); steps > 0 && len(victims) < over; steps-- {
		if w.hand >= len(w.clock) {
			w.hand = 0
		}
		st := w.clock[w.hand]
		switch {
		case st.ref:
			st.ref = false
		case st.clean():
			victims = append(victims, st)
			// Swap the last stream into this slot: the hand looks at
			// it next.
			last := w.clock[len(w.clock)-1]
			w.clock[w.hand], last.slot = last, w.hand
			w.clock[len(w.clock)-1] = nil
			w.clock = w.clock[:len(w.clock)-1]
			continue
		}
		w.hand++
	}
	if len(victims) == 0 {
		return
	}
	j.mu.Lock()
	for _, st := range victims {
		delete(j.streams, st.name)
	}
	j.mu.Unlock()
	if cap(w.clock) > 1024 && len(w.clock) < cap(w.clock)/4 {
		w.clock = append([]*streamState(nil), w.clock...)
	}
}
