package bolt

import (
	"context"
	"encoding/binary"
	"fmt"

	bbolt "go.etcd.io/bbolt"

	"github.com/orchestrix/orchestrix"
	"github.com/orchestrix/orchestrix/journal"
)

// DeleteTo deletes the events of stream with version <= to. The head is
// kept. It is serialised with appends by the writer and is durable when
// it returns.
func (j *Journal) DeleteTo(ctx context.Context, stream string, to uint64) error {
	if err := j.checkOpen(ctx); err != nil {
		return err
	}
	if err := checkStream(stream); err != nil {
		return err
	}
	r := &request{kind: kindDelete, ctx: ctx, stream: stream, deleteTo: to, done: make(chan struct{})}
	_, _, err := j.submit(ctx, r)
	return err
}

// runDelete handles one DeleteTo in its own transaction.
func (j *Journal) runDelete(r *request) {
	if !claim(r) {
		return
	}
	defer complete(r)
	if err := r.ctx.Err(); err != nil {
		r.err = err
		return
	}
	if j.w.broken != nil {
		r.err = fmt.Errorf("journal/bolt: journal unusable after a failed commit: %w", j.w.broken)
		return
	}
	st := j.streams[r.stream]
	if st == nil {
		// Not cached: load it (only the writer changes it).
		err := view(j.db, func(tx *bbolt.Tx) error {
			var err error
			st, err = j.stream(tx, r.stream)
			return err
		})
		if err != nil {
			r.err = fmt.Errorf("journal/bolt: delete %q up to %d: %w", r.stream, r.deleteTo, err)
			return
		}
	}
	st.ref = true
	if st.wHead == 0 {
		return
	}
	to := min(r.deleteTo, st.wHead)
	if to <= st.deletedTo {
		return
	}
	var newPending []run // st's unindexed runs above to
	err := j.db.Update(func(tx *bbolt.Tx) error {
		logB := tx.Bucket(bucketLog)
		var positions []uint64
		if err := scanPositions(tx, st, st.pending, nil, st.deletedTo+1, to, func(_, pos uint64) bool {
			positions = append(positions, pos)
			return true
		}); err != nil {
			return err
		}
		if err := deletePositions(logB, positions); err != nil {
			return err
		}
		idx := tx.Bucket(bucketIndex)
		var gone [][]byte
		c := idx.Cursor()
		for k, v := c.Seek(indexKey(st.prefix, 0)); k != nil; k, v = c.Next() {
			first, ok := entryVersion(st.prefix, k)
			if !ok || first > to {
				break
			}
			last := first - 1
			if err := decodeEntry(first, v, func(r run) bool { last = r.last(); return true }); err != nil {
				return corruptIndex(st.name, err)
			}
			if last <= to {
				gone = append(gone, append([]byte(nil), k...))
			}
		}
		for _, k := range gone {
			if err := idx.Delete(k); err != nil {
				return err
			}
		}
		for _, p := range st.pending {
			switch {
			case p.last() <= to:
			case p.version > to:
				newPending = append(newPending, p)
			default:
				skip := to + 1 - p.version
				newPending = append(newPending, run{version: to + 1, pos: p.pos + skip, n: p.n - skip})
			}
		}
		// The stream's head in journal.streams must not run ahead of
		// journal.index (Open takes every version up to it from the
		// index): index its remaining unindexed runs with it.
		if err := putRuns(idx, st.prefix, newPending); err != nil {
			return err
		}
		if err := putStream(tx.Bucket(bucketStreams), st.name, st.wHead, to); err != nil {
			return err
		}
		if err := j.hooks.check(); err != nil {
			return err
		}
		return tx.Bucket(bucketMeta).Put(metaLastPos, binary.BigEndian.AppendUint64(nil, j.w.nextPos-1))
	})
	if err != nil {
		r.err = fmt.Errorf("journal/bolt: delete %q up to %d: %w: %w", r.stream, to, orchestrix.ErrOutcomeUnknown, err)
		j.log.Error("journal/bolt: delete failed; reloading state from the file", "error", err)
		j.reload()
		return
	}
	j.mu.Lock()
	st.deletedTo = to
	st.pending = nil
	j.mu.Unlock()
}

// deletePositions removes the records at positions (ascending) from their
// commit blocks, rewriting each block once and dropping blocks left empty.
func deletePositions(logB *bbolt.Bucket, positions []uint64) error {
	c := logB.Cursor()
	type blockEdit struct {
		first uint64
		n     int
		block []byte
		gone  map[int]bool
	}
	var edits []*blockEdit
	var cur *blockEdit
	for _, pos := range positions {
		if cur == nil || pos >= cur.first+uint64(cur.n) {
			first, block, ok := findBlock(c, pos)
			if !ok || pos < first {
				continue
			}
			n, err := blockCount(block)
			if err != nil {
				return &journal.CorruptionError{Position: pos, Err: err}
			}
			if pos-first >= uint64(n) {
				continue
			}
			cur = &blockEdit{first: first, n: n, block: append([]byte(nil), block...), gone: map[int]bool{}}
			edits = append(edits, cur)
		}
		cur.gone[int(pos-cur.first)] = true
	}
	for _, e := range edits {
		var data []byte
		ends := make([]uint32, e.n)
		for i := range e.n {
			f, err := blockFrame(e.block, e.n, i)
			if err != nil {
				return &journal.CorruptionError{Position: e.first + uint64(i), Err: err}
			}
			if !e.gone[i] {
				data = append(data, f...)
			}
			ends[i] = uint32(len(data))
		}
		key := posKey(e.first)
		if len(data) == 0 {
			if err := logB.Delete(key); err != nil {
				return err
			}
			continue
		}
		if err := logB.Put(key, encodeBlock(nil, data, ends)); err != nil {
			return err
		}
	}
	return nil
}
