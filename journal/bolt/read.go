package bolt

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"iter"
	"math"

	bbolt "go.etcd.io/bbolt"
	bberrors "go.etcd.io/bbolt/errors"

	"github.com/orchestrix/orchestrix"
	"github.com/orchestrix/orchestrix/journal"
)

// readChunk is how many records one read transaction fetches before the
// iterator yields them outside the transaction.
const readChunk = 256

var errMissing = errors.New("record missing from the log")

// scanPositions calls fn with the version and position of each stored
// event of st with from <= version <= to, in version order, until fn
// returns false. Versions below the first run of runsA/runsB come from
// journal.index in tx, the rest from the runs (runsA, then runsB).
func scanPositions(tx *bbolt.Tx, st *streamState, runsA, runsB []run, from, to uint64, fn func(version, pos uint64) bool) error {
	if from > to {
		return nil
	}
	firstRun := uint64(math.MaxUint64)
	if len(runsA) > 0 {
		firstRun = runsA[0].version
	} else if len(runsB) > 0 {
		firstRun = runsB[0].version
	}
	if from < firstRun {
		upper := min(to, firstRun-1)
		c := tx.Bucket(bucketIndex).Cursor()
		seek := indexKey(st.prefix, from)
		k, v := c.Seek(seek)
		if first, ok := entryVersion(st.prefix, k); !ok || first > from {
			// The entry holding from starts before it.
			if k == nil {
				k, v = c.Last()
			} else {
				k, v = c.Prev()
			}
			if _, ok := entryVersion(st.prefix, k); !ok {
				k, v = c.Seek(seek)
			}
		}
		stop := false
		for ; k != nil && !stop; k, v = c.Next() {
			first, ok := entryVersion(st.prefix, k)
			if !ok || first > upper {
				break
			}
			err := decodeEntry(first, v, func(r run) bool {
				stop = !emitRun(r, from, upper, fn)
				return !stop && r.last() < upper
			})
			if err != nil {
				return corruptIndex(st.name, err)
			}
		}
		if stop || to < firstRun {
			return nil
		}
	}
	for _, runs := range [2][]run{runsA, runsB} {
		for _, r := range runs {
			if !emitRun(r, from, to, fn) {
				return nil
			}
			if r.last() >= to {
				return nil
			}
		}
	}
	return nil
}

// emitRun calls fn for the versions of r within [from, to]. It returns
// false when fn asked to stop.
func emitRun(r run, from, to uint64, fn func(version, pos uint64) bool) bool {
	lo, hi := max(r.version, from), min(r.last(), to)
	for v := lo; v <= hi && v >= lo; v++ {
		if !fn(v, r.pos+(v-r.version)) {
			return false
		}
	}
	return true
}

// blockCursor reads frames by position within one read transaction,
// keeping the block it last found: a stream's records mostly sit at
// consecutive positions of the same or the next block, which spares a
// seek from the root per record.
type blockCursor struct {
	c     *bbolt.Cursor
	first uint64 // position of block's first record
	block []byte // nil until a block is found
	n     int    // records in block
}

// frame returns the frame stored at pos, like frameAt.
func (b *blockCursor) frame(pos uint64) ([]byte, error) {
	if b.block == nil || pos < b.first || pos-b.first >= uint64(b.n) {
		if !b.next(pos) {
			first, block, ok := findBlock(b.c, pos)
			if !ok || pos < first {
				b.block = nil
				return nil, nil
			}
			n, err := blockCount(block)
			if err != nil {
				b.block = nil
				return nil, &journal.CorruptionError{Position: pos, Err: err}
			}
			b.first, b.block, b.n = first, block, n
			if pos-first >= uint64(n) {
				return nil, nil
			}
		}
	}
	f, err := blockFrame(b.block, b.n, int(pos-b.first))
	if err != nil {
		return nil, &journal.CorruptionError{Position: pos, Err: err}
	}
	if len(f) == 0 {
		return nil, nil
	}
	return f, nil
}

// next moves to the block right after the current one when that block
// starts at pos, and reports whether it did.
func (b *blockCursor) next(pos uint64) bool {
	if b.block == nil || pos != b.first+uint64(b.n) {
		return false
	}
	k, v := b.c.Next()
	if len(k) != 8 || binary.BigEndian.Uint64(k) != pos {
		b.block = nil // the cursor moved: findBlock seeks again
		return false
	}
	n, err := blockCount(v)
	if err != nil {
		b.block = nil
		return false // findBlock finds it again and reports the error
	}
	b.first, b.block, b.n = pos, v, n
	return true
}

// decodeStreamRecord is decodeRecord for a frame expected to belong to
// stream: the record shares stream's string instead of copying it.
func decodeStreamRecord(pos uint64, v []byte, stream string) (journal.Record, error) {
	f, err := parseFrame(v)
	if err != nil || string(f.stream) != stream {
		return decodeRecord(pos, v)
	}
	rec := journal.Record{Position: pos, Stream: stream, Version: f.version}
	if err := rec.Envelope.UnmarshalBinary(f.body); err != nil {
		return journal.Record{}, &journal.CorruptionError{Stream: rec.Stream, Version: rec.Version, Position: pos, Err: fmt.Errorf("decode envelope: %w", err)}
	}
	rec.Envelope.Sequence = f.version
	return rec, nil
}

// readErr maps errors from a read transaction on a closed database.
func readErr(err error) error {
	if errors.Is(err, bberrors.ErrDatabaseNotOpen) {
		return orchestrix.ErrClosed
	}
	return err
}

// deletedIn returns how far st is deleted as seen by tx (the published
// value may lag behind a deletion that tx already sees).
func deletedIn(tx *bbolt.Tx, s snapshot) uint64 {
	if v := tx.Bucket(bucketStreams).Get([]byte(s.st.name)); len(v) == 16 {
		return max(s.deletedTo, binary.BigEndian.Uint64(v[8:16]))
	}
	return s.deletedTo
}

// Read returns the events of stream with from <= version <= to, at most
// limit of them, in version order. Each chunk of records is read in its own
// transaction and verified against its checksum; a corrupt or missing
// record ends the iteration with a *journal.CorruptionError.
func (j *Journal) Read(ctx context.Context, stream string, from, to uint64, limit int) iter.Seq2[journal.Record, error] {
	return func(yield func(journal.Record, error) bool) {
		if err := j.checkOpen(ctx); err != nil {
			yield(journal.Record{}, err)
			return
		}
		if limit <= 0 || from > to {
			return
		}
		s, ok, err := j.snapshot(stream)
		if err != nil {
			yield(journal.Record{}, readErr(err))
			return
		}
		if !ok {
			return
		}
		from = max(from, s.deletedTo+1)
		to = min(to, s.head)
		if from > to {
			return
		}
		remaining := limit
		// Sized for what the stream holds: a short stream (a saga's, a
		// process's newest record) must not cost a full chunk.
		buf := make([]journal.Record, 0, min(uint64(readChunk), uint64(limit), to-from+1))
		for from <= to && remaining > 0 {
			if err := j.checkOpen(ctx); err != nil {
				yield(journal.Record{}, err)
				return
			}
			want := min(readChunk, remaining)
			buf = buf[:0]
			next := from
			err := view(j.db, func(tx *bbolt.Tx) error {
				logC := blockCursor{c: tx.Bucket(bucketLog).Cursor()}
				var ferr error
				err := scanPositions(tx, s.st, s.pending, nil, from, to, func(version, pos uint64) bool {
					if version != next && version-1 > deletedIn(tx, s) {
						ferr = &journal.CorruptionError{Stream: stream, Version: next, Err: errMissing}
						return false
					}
					v, err := logC.frame(pos)
					if err != nil {
						ferr = err
						return false
					}
					if v == nil {
						if version > deletedIn(tx, s) {
							ferr = &journal.CorruptionError{Stream: stream, Version: version, Position: pos, Err: errMissing}
							return false
						}
						next = version + 1
						return true
					}
					rec, err := decodeStreamRecord(pos, v, stream)
					if err == nil && (rec.Stream != stream || rec.Version != version) {
						err = &journal.CorruptionError{Stream: stream, Version: version, Position: pos, Err: errors.New("record belongs to another stream or version")}
					}
					if err != nil {
						var ce *journal.CorruptionError
						if errors.As(err, &ce) {
							ce.Stream, ce.Version = stream, version
						}
						ferr = err
						return false
					}
					buf = append(buf, rec)
					next = version + 1
					return len(buf) < want
				})
				if err != nil {
					return err
				}
				if ferr == nil && len(buf) < want && next <= to && next > deletedIn(tx, s) {
					// The scan ended before to without a record: a hole.
					ferr = &journal.CorruptionError{Stream: stream, Version: next, Err: errMissing}
				}
				return ferr
			})
			for _, rec := range buf {
				if !yield(rec, nil) {
					return
				}
			}
			if err != nil {
				yield(journal.Record{}, readErr(err))
				return
			}
			remaining -= len(buf)
			if next <= from {
				return // nothing left (deleted meanwhile)
			}
			from = next
		}
	}
}

// ReadAll returns committed records of all streams with position >= from
// in commit order, at most limit of them. Each chunk is read in its own
// transaction; the iteration ends at the newest record committed when it
// gets there.
func (j *Journal) ReadAll(ctx context.Context, from uint64, limit int) iter.Seq2[journal.Record, error] {
	return func(yield func(journal.Record, error) bool) {
		if err := j.checkOpen(ctx); err != nil {
			yield(journal.Record{}, err)
			return
		}
		remaining := limit
		buf := make([]journal.Record, 0, min(readChunk, max(limit, 0)))
		for remaining > 0 {
			if err := j.checkOpen(ctx); err != nil {
				yield(journal.Record{}, err)
				return
			}
			want := min(readChunk, remaining)
			buf = buf[:0]
			more := false
			// Records past the published position are committed but
			// not yet visible to Read, Head and LastPosition: stop
			// before them, so that whatever ReadAll returns is also
			// what the other reads see. The transaction opens after
			// this, so it holds every record up to last.
			last := j.published()
			if from > last {
				return
			}
			err := view(j.db, func(tx *bbolt.Tx) error {
				c := tx.Bucket(bucketLog).Cursor()
				first, block, ok := findBlock(c, from)
				if ok && first+blockSpan(block) <= from {
					k, v := c.Next()
					ok = k != nil
					if ok {
						first, block = binary.BigEndian.Uint64(k), v
					}
				}
				for ok {
					n, err := blockCount(block)
					if err != nil {
						return &journal.CorruptionError{Position: max(first, from), Err: err}
					}
					for i := max(from, first) - first; i < uint64(n); i++ {
						f, err := blockFrame(block, n, int(i))
						if err != nil {
							return &journal.CorruptionError{Position: first + i, Err: err}
						}
						if first+i > last {
							return nil
						}
						if len(f) == 0 {
							continue
						}
						if len(buf) == want {
							more = true
							return nil
						}
						rec, err := decodeRecord(first+i, f)
						if err != nil {
							return err
						}
						buf = append(buf, rec)
					}
					k, v := c.Next()
					if k == nil {
						break
					}
					first, block = binary.BigEndian.Uint64(k), v
				}
				return nil
			})
			for _, rec := range buf {
				if !yield(rec, nil) {
					return
				}
			}
			if err != nil {
				yield(journal.Record{}, readErr(err))
				return
			}
			remaining -= len(buf)
			if !more {
				return
			}
			from = buf[len(buf)-1].Position + 1
		}
	}
}

// blockSpan returns how many positions block covers (0 when malformed,
// which the caller then reports).
func blockSpan(block []byte) uint64 {
	n, err := blockCount(block)
	if err != nil {
		return 0
	}
	return uint64(n)
}
