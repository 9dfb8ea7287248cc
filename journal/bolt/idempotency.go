package bolt

import (
	"fmt"

	bbolt "go.etcd.io/bbolt"

	"github.com/orchestrix/orchestrix/journal"
)

type matchResult uint8

const (
	matchNone    matchResult = iota // the first id differs: not a retry
	matchAll                        // a duplicate: r.res is set
	matchPartial                    // only a prefix matches: r.err is a conflict
	matchError                      // a stored record could not be read: r.err says why
)

// compareStored compares r's event ids with the stored events of st from
// version from on (journal.MatchIDs) and sets r's outcome for every result
// but matchNone.
func (j *Journal) compareStored(tx *bbolt.Tx, logB *bbolt.Bucket, r *request, st *streamState, from uint64) matchResult {
	n := uint64(len(r.events))
	to := min(from+n-1, st.wHead)
	// ids and positions of the stored events at from, from+1, …, up to
	// the first hole.
	ids := make([]string, 0, n)
	positions := make([]uint64, 0, n)
	var readErr error
	err := scanPositions(tx, st, st.pending, st.staged, from, to, func(version, pos uint64) bool {
		if version != from+uint64(len(ids)) {
			return false // a hole: nothing stored at the versions beyond
		}
		v, err := j.writerFrame(logB, pos)
		if err == nil && v == nil {
			err = &journal.CorruptionError{Stream: st.name, Version: version, Position: pos, Err: errMissing}
		}
		if err != nil {
			readErr = err
			return false
		}
		id, err := decodeID(pos, v)
		if err != nil {
			readErr = err
			return false
		}
		ids = append(ids, id)
		positions = append(positions, pos)
		return true
	})
	if err == nil {
		err = readErr
	}
	if err != nil {
		r.err = fmt.Errorf("journal/bolt: append to %q: checking event ids: %w", r.stream, err)
		return matchError
	}
	switch journal.MatchIDs(int(n), func(i int) bool { return i < len(ids) && ids[i] == r.events[i].id }) {
	case journal.MatchAll:
		r.res = journal.AppendResult{FirstVersion: from, LastVersion: from + n - 1, FirstPosition: positions[0], LastPosition: positions[n-1], Duplicate: true}
		r.ok = true
		return matchAll
	case journal.MatchPartial:
		r.err = &journal.VersionConflictError{Stream: r.stream, Expected: r.expected, Actual: st.wHead, Reason: journal.ReasonPartialMatch}
		return matchPartial
	}
	return matchNone
}

// remember records that version of st (the one after recentLast) has the
// event id whose idKey is key.
func (st *streamState) remember(version, key uint64) {
	st.recent[version%uint64(len(st.recent))] = key
	st.recentLast = version
	st.recentLen = min(st.recentLen+1, len(st.recent))
}

// recentVersion returns the version of st's newest event, among its last
// IdempotencyWindow events, whose id has idKey key. It loads the window
// from the log the first time a stream needs it. A hit is a candidate:
// compareStored confirms it against the stored ids.
func (j *Journal) recentVersion(tx *bbolt.Tx, logB *bbolt.Bucket, st *streamState, key uint64) (uint64, bool) {
	if st.wHead == 0 {
		return 0, false
	}
	if st.recent == nil {
		j.loadRecent(tx, logB, st)
	}
	w := uint64(len(st.recent))
	for i := 0; i < st.recentLen; i++ {
		v := st.recentLast - uint64(i)
		if v <= st.deletedTo {
			break
		}
		if st.recent[v%w] == key {
			return v, true
		}
	}
	return 0, false
}

// loadRecent fills st's recent-id ring from its newest stored events. A
// record that cannot be read ends the ring just after it: ids before it
// are not remembered.
func (j *Journal) loadRecent(tx *bbolt.Tx, logB *bbolt.Bucket, st *streamState) {
	w := uint64(j.opts.IdempotencyWindow)
	st.recent = make([]uint64, w)
	st.recentLast, st.recentLen = 0, 0
	from := max(st.deletedTo+1, 1)
	if st.wHead > w {
		from = max(from, st.wHead-w+1)
	}
	_ = scanPositions(tx, st, st.pending, st.staged, from, st.wHead, func(version, pos uint64) bool {
		var id string
		v, err := j.writerFrame(logB, pos)
		if v != nil && err == nil {
			id, err = decodeID(pos, v)
		}
		if id == "" || err != nil || (st.recentLen > 0 && version != st.recentLast+1) {
			st.recentLen = 0 // keep the ring contiguous
			if id == "" || err != nil {
				return true
			}
		}
		st.remember(version, j.idKey(id))
		return true
	})
}
