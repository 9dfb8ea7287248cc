package bolt

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"

	bbolt "go.etcd.io/bbolt"

	"github.com/orchestrix/orchestrix/journal"
)

// Bucket and meta key names; see the package documentation.
var (
	bucketLog     = []byte("journal.log")
	bucketIndex   = []byte("journal.index")
	bucketStreams = []byte("journal.streams")
	bucketMeta    = []byte("journal.meta")

	metaFormat     = []byte("format")
	metaCheckpoint = []byte("checkpoint")
	metaLastPos    = []byte("lastpos")
)

// formatVersion is the layout version stored under meta "format". In
// version 2 a stream's head in journal.streams is also how far
// journal.index covers it: a checkpoint writes a stream's index entries
// and its head together, a slice of the streams per commit, so records
// after the checkpoint position may already be indexed (Open skips them by
// their version). Version 1 files (every stream indexed only up to the
// checkpoint position, heads possibly ahead of the index after a
// deletion) are read as such and upgraded by the first Open that may
// write (formatVersion1Upgrade).
const (
	formatVersion  = 2
	formatVersion1 = 1
)

// maxRunsPerEntry bounds the runs stored in one journal.index entry.
const maxRunsPerEntry = 1024

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// appendFrame appends the sealed frame of one record to dst: CRC,
// version, stream, body. bodyCRC is the CRC-32C of body.
func appendFrame(dst []byte, version uint64, stream string, body []byte, bodyCRC uint32) []byte {
	start := len(dst)
	dst = append(dst, 0, 0, 0, 0)
	dst = binary.BigEndian.AppendUint64(dst, version)
	dst = binary.AppendUvarint(dst, uint64(len(stream)))
	dst = append(dst, stream...)
	crc := crc32.Update(bodyCRC, castagnoli, dst[start+4:])
	binary.BigEndian.PutUint32(dst[start:], crc)
	return append(dst, body...)
}

// frameView is a parsed frame; its slices alias the frame.
type frameView struct {
	stream  []byte
	version uint64
	body    []byte
}

var (
	errChecksum = errors.New("checksum mismatch")
	errTruncate = errors.New("truncated record frame")
)

// parseFrame parses v. When the header parses but the checksum fails, it
// returns the parsed view and errChecksum, so callers can name the record.
func parseFrame(v []byte) (frameView, error) {
	if len(v) < 13 {
		return frameView{}, errTruncate
	}
	n, k := binary.Uvarint(v[12:])
	if k <= 0 || n > uint64(len(v)-12-k) {
		return frameView{}, errTruncate
	}
	hdr := 12 + k + int(n)
	f := frameView{
		stream:  v[12+k : hdr],
		version: binary.BigEndian.Uint64(v[4:12]),
		body:    v[hdr:],
	}
	crc := crc32.Update(crc32.Checksum(f.body, castagnoli), castagnoli, v[4:hdr])
	if crc != binary.BigEndian.Uint32(v[0:4]) {
		return f, errChecksum
	}
	return f, nil
}

// decodeRecord verifies and decodes the frame v stored at pos. The record
// does not alias v.
func decodeRecord(pos uint64, v []byte) (journal.Record, error) {
	f, err := parseFrame(v)
	if err != nil {
		return journal.Record{}, &journal.CorruptionError{Stream: string(f.stream), Version: f.version, Position: pos, Err: err}
	}
	rec := journal.Record{Position: pos, Stream: string(f.stream), Version: f.version}
	if err := rec.Envelope.UnmarshalBinary(f.body); err != nil {
		return journal.Record{}, &journal.CorruptionError{Stream: rec.Stream, Version: rec.Version, Position: pos, Err: fmt.Errorf("decode envelope: %w", err)}
	}
	rec.Envelope.Sequence = f.version
	return rec, nil
}

// decodeID returns the event id of the frame v stored at pos, after
// verifying it.
func decodeID(pos uint64, v []byte) (string, error) {
	rec, err := decodeRecord(pos, v)
	if err != nil {
		return "", err
	}
	return rec.Envelope.ID, nil
}

// A journal.log value (a "block") holds records of one commit at
// consecutive positions starting at the key's position; a commit writes
// one or more blocks of at most half a page each:
//
//	uint32      count, big endian
//	count ×     uint32 end offset of record i's frame within the data,
//	            big endian; a deleted record has an empty frame
//	data        the frames, concatenated
const blockHeader = 4

// blockCount returns the number of positions block covers.
func blockCount(block []byte) (int, error) {
	if len(block) < blockHeader {
		return 0, errBlock
	}
	n := int(binary.BigEndian.Uint32(block))
	if n == 0 || n > (len(block)-blockHeader)/4 {
		return 0, errBlock
	}
	return n, nil
}

var errBlock = errors.New("malformed commit block")

// blockFrame returns the frame of record i of block (empty when the record
// was deleted).
func blockFrame(block []byte, n, i int) ([]byte, error) {
	data := block[blockHeader+4*n:]
	start := uint32(0)
	if i > 0 {
		start = binary.BigEndian.Uint32(block[blockHeader+4*(i-1):])
	}
	end := binary.BigEndian.Uint32(block[blockHeader+4*i:])
	if start > end || int(end) > len(data) {
		return nil, errBlock
	}
	return data[start:end:end], nil
}

// encodeBlock builds a commit block from frame data and end offsets into
// dst (reusing its memory).
func encodeBlock(dst []byte, data []byte, ends []uint32) []byte {
	dst = binary.BigEndian.AppendUint32(dst[:0], uint32(len(ends)))
	for _, e := range ends {
		dst = binary.BigEndian.AppendUint32(dst, e)
	}
	return append(dst, data...)
}

// findBlock positions c on the block holding pos, or, when no block
// starts at or before pos, on the first block after it. It returns the
// block's first position and value; ok is false when the log is empty or
// every block is before pos and there is none.
func findBlock(c *bbolt.Cursor, pos uint64) (first uint64, block []byte, ok bool) {
	seek := posKey(pos)
	k, v := c.Seek(seek)
	if k != nil && binary.BigEndian.Uint64(k) == pos {
		return pos, v, true
	}
	var pk, pv []byte
	if k == nil {
		pk, pv = c.Last()
	} else {
		pk, pv = c.Prev()
	}
	if pk != nil {
		return binary.BigEndian.Uint64(pk), pv, true
	}
	if k == nil {
		return 0, nil, false
	}
	k, v = c.Seek(seek)
	return binary.BigEndian.Uint64(k), v, true
}

// frameAt returns the frame stored at pos (nil when there is none: never
// written or deleted) using cursor c on journal.log.
func frameAt(c *bbolt.Cursor, pos uint64) ([]byte, error) {
	first, block, ok := findBlock(c, pos)
	if !ok || pos < first {
		return nil, nil
	}
	n, err := blockCount(block)
	if err != nil {
		return nil, &journal.CorruptionError{Position: pos, Err: err}
	}
	if pos-first >= uint64(n) {
		return nil, nil
	}
	f, err := blockFrame(block, n, int(pos-first))
	if err != nil {
		return nil, &journal.CorruptionError{Position: pos, Err: err}
	}
	if len(f) == 0 {
		return nil, nil
	}
	return f, nil
}

func posKey(pos uint64) []byte {
	return binary.BigEndian.AppendUint64(make([]byte, 0, 8), pos)
}

// streamPrefix returns the journal.index key prefix of stream.
func streamPrefix(stream string) []byte {
	b := make([]byte, 0, binary.MaxVarintLen64+len(stream)+8)
	b = binary.AppendUvarint(b, uint64(len(stream)))
	return append(b, stream...)
}

// indexKey returns prefix followed by version.
func indexKey(prefix []byte, version uint64) []byte {
	k := make([]byte, len(prefix), len(prefix)+8)
	copy(k, prefix)
	return binary.BigEndian.AppendUint64(k, version)
}

// run is a range of consecutive versions of one stream stored at
// consecutive positions.
type run struct {
	version, pos, n uint64
}

func (r run) last() uint64 { return r.version + r.n - 1 }

// appendRun appends r to runs, merging it into the last run when both are
// contiguous in versions and positions. It may change the last element in
// place: use it only on slices no reader holds (the writer's staged runs,
// or state being built by load).
func appendRun(runs []run, r run) []run {
	if k := len(runs); k > 0 {
		l := &runs[k-1]
		if l.version+l.n == r.version && l.pos+l.n == r.pos {
			l.n += r.n
			return runs
		}
	}
	return append(runs, r)
}

// encodeEntry encodes runs as a journal.index value.
func encodeEntry(runs []run) []byte {
	b := make([]byte, 0, len(runs)*6)
	for _, r := range runs {
		b = binary.AppendUvarint(b, r.pos)
		b = binary.AppendUvarint(b, r.n)
	}
	return b
}

// decodeEntry decodes a journal.index value whose first version is first.
func decodeEntry(first uint64, v []byte, fn func(r run) bool) error {
	ver := first
	for len(v) > 0 {
		pos, k := binary.Uvarint(v)
		if k <= 0 {
			return errTruncate
		}
		v = v[k:]
		n, k := binary.Uvarint(v)
		if k <= 0 || n == 0 {
			return errTruncate
		}
		v = v[k:]
		if !fn(run{version: ver, pos: pos, n: n}) {
			return nil
		}
		ver += n
	}
	return nil
}

// entryVersion returns the first version of the index key k under prefix.
func entryVersion(prefix, k []byte) (uint64, bool) {
	if len(k) != len(prefix)+8 || !bytes.HasPrefix(k, prefix) {
		return 0, false
	}
	return binary.BigEndian.Uint64(k[len(prefix):]), true
}

// errCorruptIndex wraps a malformed journal.index entry.
func corruptIndex(stream string, err error) error {
	return &journal.CorruptionError{Stream: stream, Err: fmt.Errorf("index entry: %w", err)}
}
