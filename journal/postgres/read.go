package postgres

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"iter"
	"math"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/orchestrix/orchestrix"
	"github.com/orchestrix/orchestrix/journal"
)

// readChunk is how many records one query of Read or ReadAll fetches. No
// connection is held while the caller consumes a chunk.
const readChunk = 512

// readFirstChunk is the room a read starts with; see readChunks.
const readFirstChunk = 16

// clampInt64 converts a uint64 bound to the bigint range.
func clampInt64(v uint64) int64 {
	if v > math.MaxInt64 {
		return math.MaxInt64
	}
	return int64(v)
}

// readBounds starts Read and ReadBorrowed: it yields the error of a
// closed journal or done context, and returns the version bounds as
// bigints, or ok false when there is nothing to read.
func (j *Journal) readBounds(ctx context.Context, from, to uint64, max int, yield func(journal.Record, error) bool) (lo, hi int64, ok bool) {
	if err := j.check(ctx); err != nil {
		yield(journal.Record{}, err)
		return 0, 0, false
	}
	if max <= 0 || from > to || from > math.MaxInt64 {
		return 0, 0, false
	}
	return clampInt64(from), clampInt64(to), true
}

// Read returns the events of stream with from <= version <= to, in version
// order, at most max of them. See journal.Journal.
func (j *Journal) Read(ctx context.Context, stream string, from, to uint64, max int) iter.Seq2[journal.Record, error] {
	return func(yield func(journal.Record, error) bool) {
		lo, hi, ok := j.readBounds(ctx, from, to, max, yield)
		if !ok {
			return
		}
		j.readChunks(ctx, stream, max, uint64(hi-lo)+1, yield, func(n int) (pgx.Rows, error) {
			return j.pool.Query(ctx, j.sql.read, stream, lo, hi, n)
		}, func(last journal.Record) bool {
			if last.Version >= uint64(hi) {
				return false
			}
			lo = int64(last.Version) + 1
			return true
		})
	}
}

var _ journal.BorrowedReader = (*Journal)(nil)

// readBorrowedChunk is how many records one query of ReadBorrowed asks
// for. Rows are decoded and yielded as they arrive, so the server keeps
// sending while the caller works; the bound only caps what a loop that
// stops early makes the connection drain.
const readBorrowedChunk = 4096

// ReadBorrowed is Read without copying records: each record is decoded in
// place from the row buffer of the connection and yielded before the next
// row is read, so it is valid only until the loop body returns. A
// connection is held while a chunk of up to readBorrowedChunk rows is
// being consumed. See journal.BorrowedReader.
func (j *Journal) ReadBorrowed(ctx context.Context, stream string, from, to uint64, max int) iter.Seq2[journal.Record, error] {
	return func(yield func(journal.Record, error) bool) {
		lo, hi, ok := j.readBounds(ctx, from, to, max, yield)
		if !ok {
			return
		}
		var crcs crcScratch
		for remaining := max; remaining > 0; {
			n := min(remaining, readBorrowedChunk)
			rows, err := j.pool.Query(ctx, j.sql.read, stream, lo, hi, n)
			if err != nil {
				yield(journal.Record{}, j.wrapDB(ctx, "read", err))
				return
			}
			got, last, more, err := yieldRows(ctx, rows, stream, &crcs, yield)
			if err != nil {
				var ce *journal.CorruptionError
				if !errors.As(err, &ce) && !errors.Is(err, ctx.Err()) {
					err = j.wrapDB(ctx, "read", err)
				}
				yield(journal.Record{}, err)
				return
			}
			if !more || got < n || last >= uint64(hi) {
				return
			}
			lo = int64(last) + 1
			remaining -= got
		}
	}
}

// yieldRows decodes the rows in place and yields each before reading the
// next. It returns how many it yielded, the version of the last, whether
// the caller wants more, and the error that ended the rows (not yielded).
func yieldRows(ctx context.Context, rows pgx.Rows, stream string, crcs *crcScratch, yield func(journal.Record, error) bool) (n int, last uint64, more bool, err error) {
	defer rows.Close()
	raw := rawColumns(rows.FieldDescriptions())
	var r journal.Record
	for rows.Next() {
		if err := ctx.Err(); err != nil {
			return n, last, false, err
		}
		r = journal.Record{}
		if err := decodeRow(rows, raw, stream, crcs, true, &r); err != nil {
			return n, last, false, err
		}
		n, last = n+1, r.Version
		if !yield(r, nil) {
			return n, last, false, nil
		}
	}
	return n, last, true, rows.Err()
}

// ReadAll returns committed records of all streams with position >= from,
// in commit order, at most max of them. See journal.Journal.
func (j *Journal) ReadAll(ctx context.Context, from uint64, max int) iter.Seq2[journal.Record, error] {
	return func(yield func(journal.Record, error) bool) {
		if err := j.check(ctx); err != nil {
			yield(journal.Record{}, err)
			return
		}
		if max <= 0 || from > math.MaxInt64 {
			return
		}
		next := int64(from)
		j.readChunks(ctx, "", max, 0, yield, func(n int) (pgx.Rows, error) {
			return j.pool.Query(ctx, j.sql.readAll, next, n)
		}, func(last journal.Record) bool {
			if last.Position >= math.MaxInt64 {
				return false
			}
			next = int64(last.Position) + 1
			return true
		})
	}
}

// readChunks runs query for chunks of at most readChunk records of stream
// ("" for all streams) until max records are yielded, a chunk comes back
// short, or advance (given the chunk's last record) says there is nothing
// more.
func (j *Journal) readChunks(ctx context.Context, stream string, max int, want uint64, yield func(journal.Record, error) bool,
	query func(n int) (pgx.Rows, error), advance func(last journal.Record) bool) {
	remaining := max
	// One slice of records serves every chunk (they are yielded by
	// value). It starts small and grows by appending: a recovery asks
	// for every version up to the largest, so want is no guide, and
	// zeroing room for a full chunk on each read of a short stream cost
	// more CPU than anything else in recovering a cold aggregate.
	recs := make([]journal.Record, 0, min(uint64(max), readFirstChunk, want))
	var err error
	for remaining > 0 {
		n := min(remaining, readChunk)
		var rows pgx.Rows
		if rows, err = query(n); err != nil {
			yield(journal.Record{}, j.wrapDB(ctx, "read", err))
			return
		}
		recs, err = scanRecords(rows, recs[:0], stream)
		for _, r := range recs {
			if cerr := ctx.Err(); cerr != nil {
				yield(journal.Record{}, cerr)
				return
			}
			if !yield(r, nil) {
				return
			}
		}
		if err != nil {
			var ce *journal.CorruptionError
			if !errors.As(err, &ce) {
				err = j.wrapDB(ctx, "read", err)
			}
			yield(journal.Record{}, err)
			return
		}
		if len(recs) < n || !advance(recs[len(recs)-1]) {
			return
		}
		remaining -= len(recs)
	}
}

// scanRecords decodes rows into recs, stopping at the first corrupt
// record: the records before it are returned with a
// *journal.CorruptionError. Rows of stream (when not "") share its
// string.
func scanRecords(rows pgx.Rows, recs []journal.Record, stream string) ([]journal.Record, error) {
	defer rows.Close()
	raw := rawColumns(rows.FieldDescriptions())
	var crcs crcScratch
	for rows.Next() {
		var r journal.Record
		if err := decodeRow(rows, raw, stream, &crcs, false, &r); err != nil {
			return recs, err
		}
		recs = append(recs, r)
	}
	return recs, rows.Err()
}

// decodeRow decodes the current row of rows into r, checking its
// checksum; a record that does not match or decode is a
// *journal.CorruptionError. raw is rawColumns of the rows' fields.
//
// When the server sends the five columns with the types the schema gives
// them and the numbers and bytes in binary format (the usual case), they
// are read from the rows' raw values: the record's bytes go straight to
// the checksum and to the envelope decoder instead of through a []byte
// that Scan would allocate and fill first. With borrow the envelope is
// decoded in place (Envelope.UnmarshalBinaryBorrowed), so r is valid only
// until the next call of rows.Next; otherwise it is a copy. Any other
// format is read with Scan, whose values r may keep.
func decodeRow(rows pgx.Rows, raw bool, stream string, crcs *crcScratch, borrow bool, r *journal.Record) error {
	var record []byte
	var crc int64
	if vals := rows.RawValues(); raw && len(vals) == 5 && len(vals[0]) == 8 && vals[1] != nil && len(vals[2]) == 8 && vals[3] != nil && len(vals[4]) == 8 {
		r.Position = binary.BigEndian.Uint64(vals[0])
		r.Version = binary.BigEndian.Uint64(vals[2])
		if string(vals[1]) == stream {
			r.Stream = stream
		} else {
			r.Stream = string(vals[1])
		}
		record, crc = vals[3], int64(binary.BigEndian.Uint64(vals[4]))
	} else {
		// Scan's destinations escape: only this path pays for them. Its
		// bytes are the row's own, so they need no second copy.
		var position, version, sum int64
		var name string
		var data []byte
		if err := rows.Scan(&position, &name, &version, &data, &sum); err != nil {
			return err
		}
		r.Position, r.Stream, r.Version, record, crc = uint64(position), name, uint64(version), data, sum
		borrow = true
	}
	if got := crcs.checksum(r.Stream, r.Version, record); got != crc {
		return &journal.CorruptionError{Stream: r.Stream, Version: r.Version, Position: r.Position,
			Err: fmt.Errorf("checksum mismatch: stored %08x, computed %08x", uint32(crc), uint32(got))}
	}
	var err error
	if borrow {
		err = r.Envelope.UnmarshalBinaryBorrowed(record)
	} else {
		err = r.Envelope.UnmarshalBinary(record)
	}
	if err != nil {
		return &journal.CorruptionError{Stream: r.Stream, Version: r.Version, Position: r.Position, Err: err}
	}
	r.Envelope.Sequence = r.Version
	return nil
}

// rawColumns reports whether fds are sqlRead's columns (position, stream,
// version, record, crc) as bigint, text, bigint, bytea and bigint, the
// numbers and the bytes in binary format, whose raw values scanRecords
// can read directly.
func rawColumns(fds []pgconn.FieldDescription) bool {
	want := [5]uint32{pgtype.Int8OID, pgtype.TextOID, pgtype.Int8OID, pgtype.ByteaOID, pgtype.Int8OID}
	if len(fds) != len(want) {
		return false
	}
	for i, fd := range fds {
		// A text value is its UTF-8 bytes in either format (pgx asks
		// for text columns in text format).
		if fd.DataTypeOID != want[i] || (fd.Format != pgx.BinaryFormatCode && fd.DataTypeOID != pgtype.TextOID) {
			return false
		}
	}
	return true
}

// Head returns the highest version ever stored in stream, 0 for a stream
// never written. Deletion does not lower it.
func (j *Journal) Head(ctx context.Context, stream string) (uint64, error) {
	if err := j.check(ctx); err != nil {
		return 0, err
	}
	var head int64
	err := j.pool.QueryRow(ctx, j.sql.head, stream).Scan(&head)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, j.wrapDB(ctx, "head", err)
	}
	return uint64(head), nil
}

// DeleteTo deletes the events of stream with version <= to. The stream's
// head is unchanged. See journal.Deleter.
func (j *Journal) DeleteTo(ctx context.Context, stream string, to uint64) error {
	if err := j.check(ctx); err != nil {
		return err
	}
	if err := journal.ValidateStream(stream); err != nil {
		return fmt.Errorf("journal/postgres: %w", err)
	}
	if to == 0 {
		return nil
	}
	if _, err := j.pool.Exec(ctx, j.sql.del, stream, clampInt64(to)); err != nil {
		return j.wrapDB(ctx, "delete", err)
	}
	return nil
}

// errClosedWhileWaiting is returned by WaitFor when Close interrupts it.
var errClosedWhileWaiting = fmt.Errorf("journal/postgres: closed while waiting: %w", orchestrix.ErrClosed)
