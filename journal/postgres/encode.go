package postgres

import (
	"encoding/binary"
	"slices"
	"time"

	"github.com/jackc/pgx/v5/pgtype"
)

// arrayWriter builds one parameter of journal_append in PostgreSQL's
// binary array format: a one-dimensional array of known length whose
// elements are appended one at a time. Encoding the batch's thirteen
// parameters this way, straight into buffers that are reused for the next
// batch, costs a fraction of pgx's general array encoding (which plans
// and encodes every element through its type map).
//
// The format (array_recv): int32 number of dimensions (1), int32 flags
// (1 when an element is NULL), uint32 element type OID, then per dimension
// int32 length and int32 lower bound (1), then each element as int32
// byte length (-1 for NULL) and the element's binary form.
type arrayWriter struct {
	buf []byte
}

// start begins an array of n elements of type oid in w's buffer,
// discarding what it held, with room for size bytes of elements (their
// length prefixes included).
func (w *arrayWriter) start(oid uint32, n int, hasNull bool, size int) {
	b := slices.Grow(w.buf[:0], 20+size)
	b = binary.BigEndian.AppendUint32(b, 1)
	flags := uint32(0)
	if hasNull {
		flags = 1
	}
	b = binary.BigEndian.AppendUint32(b, flags)
	b = binary.BigEndian.AppendUint32(b, oid)
	b = binary.BigEndian.AppendUint32(b, uint32(n))
	b = binary.BigEndian.AppendUint32(b, 1)
	w.buf = b
}

func (w *arrayWriter) text(s string) {
	w.buf = binary.BigEndian.AppendUint32(w.buf, uint32(len(s)))
	w.buf = append(w.buf, s...)
}

func (w *arrayWriter) bytes(p []byte) {
	w.buf = binary.BigEndian.AppendUint32(w.buf, uint32(len(p)))
	w.buf = append(w.buf, p...)
}

func (w *arrayWriter) int8(v int64) {
	w.buf = binary.BigEndian.AppendUint32(w.buf, 8)
	w.buf = binary.BigEndian.AppendUint64(w.buf, uint64(v))
}

func (w *arrayWriter) null() {
	w.buf = binary.BigEndian.AppendUint32(w.buf, ^uint32(0))
}

// microsFromUnixToY2K is the number of microseconds from the Unix epoch
// to PostgreSQL's epoch, 2000-01-01 00:00:00 UTC.
const microsFromUnixToY2K = 946684800 * 1000000

// timestamptz appends t in timestamptz's binary form, microseconds since
// PostgreSQL's epoch (sub-microsecond digits are dropped, as pgx does).
func (w *arrayWriter) timestamptz(t time.Time) {
	w.int8(t.Unix()*1000000 + int64(t.Nanosecond())/1000 - microsFromUnixToY2K)
}

// appendParams is the reusable encoding state of journal_append's
// parameters; the writer keeps one per batch slot.
type appendParams struct {
	arrays [12]arrayWriter
	values [13][]byte
	crc    crcScratch
	wire   wireBuffer // the outgoing messages (wire.go)
}

// size is the memory ps's buffers hold.
func (ps *appendParams) size() int {
	n := cap(ps.wire.buf)
	for i := range ps.arrays {
		n += cap(ps.arrays[i].buf)
	}
	return n
}

// Element type OIDs of journal_append's array parameters, in order
// ($2 … $13; $1 is the channel name, text).
var appendParamOIDs = [12]uint32{
	pgtype.TextOID, pgtype.Int8OID, pgtype.Int8OID, // streams, priors, heads
	pgtype.TextOID, pgtype.TextOID, // check streams, check ids
	pgtype.TextOID, pgtype.Int8OID, pgtype.TextOID, pgtype.TextOID, // event streams, versions, ids, types
	pgtype.TimestamptzOID, pgtype.ByteaOID, pgtype.Int8OID, // event times, records, crcs
}

// Indexes of the arrays in appendParams.arrays.
const (
	parStreams = iota
	parPriors
	parHeads
	parCheckStreams
	parCheckIDs
	parEvStreams
	parEvVersions
	parEvIDs
	parEvTypes
	parEvTimes
	parEvRecords
	parEvCRCs
)

// encode fills ps with the parameters of one journal_append call that
// stores writes (planned: each has its head) and returns them, in binary
// format. The slices returned stay valid until the next encode.
func (ps *appendParams) encode(channel string, writes []*pending) [][]byte {
	// Counts and sizes first, so that each buffer grows at most once.
	n, checks, nullTimes := 0, 0, false
	var streamBytes, evStreamBytes, idBytes, typeBytes, recordBytes, checkStreamBytes, checkIDBytes int
	for _, p := range writes {
		n += len(p.ids)
		streamBytes += 4 + len(p.stream)
		evStreamBytes += len(p.ids) * (4 + len(p.stream))
		ids := 0
		for k, id := range p.ids {
			ids += 4 + len(id)
			typeBytes += 4 + len(p.types[k])
			recordBytes += 4 + len(p.records[k])
			nullTimes = nullTimes || p.times[k].IsZero()
		}
		idBytes += ids
		if p.checkIDs {
			checks += len(p.ids)
			checkStreamBytes += len(p.ids) * (4 + len(p.stream))
			checkIDBytes += ids
		}
	}
	a := &ps.arrays
	for i := range a {
		count, hasNull, size := n, false, 12*n
		switch i {
		case parStreams:
			count, size = len(writes), streamBytes
		case parPriors, parHeads:
			count, size = len(writes), 12*len(writes)
		case parCheckStreams:
			count, size = checks, checkStreamBytes
		case parCheckIDs:
			count, size = checks, checkIDBytes
		case parEvStreams:
			size = evStreamBytes
		case parEvIDs:
			size = idBytes
		case parEvTypes:
			size = typeBytes
		case parEvTimes:
			hasNull = nullTimes
		case parEvRecords:
			size = recordBytes
		}
		a[i].start(appendParamOIDs[i], count, hasNull, size)
	}
	for _, p := range writes {
		a[parStreams].text(p.stream)
		a[parPriors].int8(int64(p.head))
		a[parHeads].int8(int64(p.head) + int64(len(p.ids)))
		for k, id := range p.ids {
			v := p.head + uint64(k) + 1
			if p.checkIDs {
				a[parCheckStreams].text(p.stream)
				a[parCheckIDs].text(id)
			}
			a[parEvStreams].text(p.stream)
			a[parEvVersions].int8(int64(v))
			a[parEvIDs].text(id)
			a[parEvTypes].text(p.types[k])
			if t := p.times[k]; t.IsZero() {
				a[parEvTimes].null()
			} else {
				a[parEvTimes].timestamptz(t)
			}
			a[parEvRecords].bytes(p.records[k])
			a[parEvCRCs].int8(ps.crc.checksum(p.stream, v, p.records[k]))
		}
	}
	ps.values[0] = []byte(channel)
	for i := range a {
		ps.values[i+1] = a[i].buf
	}
	if checks == 0 {
		// As pgx sends an empty slice: NULL (journal_append takes the
		// cardinality of NULL as 0).
		ps.values[1+parCheckStreams], ps.values[1+parCheckIDs] = nil, nil
	}
	return ps.values[:]
}
