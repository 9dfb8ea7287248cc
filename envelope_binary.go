package orchestrix

import (
	"encoding"
	"encoding/binary"
	"fmt"
	"math"
	"math/bits"
	"slices"
	"strings"
	"time"
	"unsafe"
)

// binaryVersion1 is the first byte of the binary form written by
// AppendBinary and MarshalBinary. A future layout gets a new version byte;
// UnmarshalBinary keeps reading every version it has ever written.
//
// Layout of version 1 (uvarint and varint as in encoding/binary; a string
// is a uvarint byte length followed by the bytes):
//
//	byte     version (1)
//	byte     flags (bit 0: Time is set)
//	string   ID, Source, Type, Subject, DataContentType, DataSchema,
//	         CorrelationID, CausationID, TraceParent
//	varint   Time: seconds since the Unix epoch   (only if flag bit 0)
//	uvarint  Time: nanoseconds within the second  (only if flag bit 0)
//	uvarint  SchemaVersion (at most math.MaxInt32)
//	uvarint  Sequence
//	uvarint  number of extensions, then per extension in strictly
//	         increasing (byte-wise) name order: string name, string value
//	string   Data
//
// SpecVersion is not stored: version 1 always means CloudEvents "1.0".
const binaryVersion1 = 1

const flagHasTime = 1 << 0

// numFixedStrings is the number of string attributes stored in the fixed
// part of the binary form.
const numFixedStrings = 9

// maxStackExtensions is how many extensions AppendBinary sorts without
// allocating.
const maxStackExtensions = 8

// AppendBinary appends the compact, versioned binary form of e to b and
// returns the extended buffer; it implements encoding.BinaryAppender. The
// binary form is what journals store.
//
// AppendBinary does not call Validate: it encodes any envelope whose
// encoding can be read back into an equal envelope, so that the hot path
// of a journal pays for validation only once. Code that accepts envelopes
// from outside must call Validate first (journals do so on Append) or use
// MarshalBinary. AppendBinary fails, with an *AttributeError matching
// ErrInvalidEnvelope and b returned unchanged, only when the binary form
// cannot represent e: SpecVersion other than "" or "1.0", or SchemaVersion
// outside 0..math.MaxInt32.
//
// The encoding is deterministic: equal envelopes give equal bytes. Time is
// stored as an instant (its location is not kept; UnmarshalBinary returns
// it in UTC). When cap(b)-len(b) is large enough AppendBinary does not
// allocate; otherwise it grows b once, to the exact size needed.
func (e Envelope) AppendBinary(b []byte) ([]byte, error) {
	if e.SpecVersion != "" && e.SpecVersion != SpecVersion {
		return b, attrErr(attrSpecVersion, "must be "+SpecVersion+" to be encoded")
	}
	if e.SchemaVersion < 0 || int64(e.SchemaVersion) > math.MaxInt32 {
		return b, attrErr(attrSchemaVersion, "out of range 0..2147483647")
	}

	if len(e.Extensions) > 0 {
		return appendWithExtensions(b, &e), nil
	}
	return appendEnvelope(b, &e, nil, 0), nil
}

var (
	_ encoding.BinaryAppender    = Envelope{}
	_ encoding.BinaryMarshaler   = Envelope{}
	_ encoding.BinaryUnmarshaler = (*Envelope)(nil)
)

// extension is one entry of Envelope.Extensions.
type extension struct{ name, value string }

// appendWithExtensions sorts the extensions of e by name, without
// allocating when there are at most maxStackExtensions of them, and
// appends the binary form of e to b.
func appendWithExtensions(b []byte, e *Envelope) []byte {
	var stack [maxStackExtensions]extension
	sorted := stack[:0]
	if len(e.Extensions) > maxStackExtensions {
		sorted = make([]extension, 0, len(e.Extensions))
	}
	size := 0
	for k, v := range e.Extensions {
		sorted = append(sorted, extension{k, v})
		size += stringLen(len(k)) + stringLen(len(v))
	}
	slices.SortFunc(sorted, func(a, b extension) int { return strings.Compare(a.name, b.name) })
	return appendEnvelope(b, e, sorted, size)
}

// appendEnvelope appends the binary form of e to b, with ext, whose
// encoded size is extSize, as the extensions.
func appendEnvelope(b []byte, e *Envelope, ext []extension, extSize int) []byte {
	var flags byte
	var sec int64
	var nsec uint64
	size := 2 + stringLen(len(e.ID)) + stringLen(len(e.Source)) + stringLen(len(e.Type)) +
		stringLen(len(e.Subject)) + stringLen(len(e.DataContentType)) + stringLen(len(e.DataSchema)) +
		stringLen(len(e.CorrelationID)) + stringLen(len(e.CausationID)) + stringLen(len(e.TraceParent)) +
		uvarintLen(uint64(e.SchemaVersion)) + uvarintLen(e.Sequence) +
		uvarintLen(uint64(len(ext))) + extSize + stringLen(len(e.Data))
	if !e.Time.IsZero() {
		flags |= flagHasTime
		sec, nsec = e.Time.Unix(), uint64(e.Time.Nanosecond())
		size += varintLen(sec) + uvarintLen(nsec)
	}

	b = slices.Grow(b, size)
	b = append(b, binaryVersion1, flags)
	b = appendString(b, e.ID)
	b = appendString(b, e.Source)
	b = appendString(b, e.Type)
	b = appendString(b, e.Subject)
	b = appendString(b, e.DataContentType)
	b = appendString(b, e.DataSchema)
	b = appendString(b, e.CorrelationID)
	b = appendString(b, e.CausationID)
	b = appendString(b, e.TraceParent)
	if flags&flagHasTime != 0 {
		b = binary.AppendVarint(b, sec)
		b = appendUvarint(b, nsec)
	}
	b = appendUvarint(b, uint64(e.SchemaVersion))
	b = appendUvarint(b, e.Sequence)
	b = appendUvarint(b, uint64(len(ext)))
	for _, x := range ext {
		b = appendString(b, x.name)
		b = appendString(b, x.value)
	}
	b = appendUvarint(b, uint64(len(e.Data)))
	return append(b, e.Data...)
}

// MarshalBinary validates e and returns its binary form: Validate followed
// by AppendBinary(nil). An invalid envelope yields the *AttributeError of
// Validate, which matches ErrInvalidEnvelope. Hot paths that have already
// validated e should call AppendBinary with a reused buffer instead.
func (e Envelope) MarshalBinary() ([]byte, error) {
	if err := e.Validate(); err != nil {
		return nil, err
	}
	return e.AppendBinary(nil)
}

// uvarintLen returns the number of bytes binary.AppendUvarint writes for x.
func uvarintLen(x uint64) int { return (bits.Len64(x|1) + 6) / 7 }

// varintLen returns the number of bytes binary.AppendVarint writes for x.
func varintLen(x int64) int {
	ux := uint64(x) << 1
	if x < 0 {
		ux = ^ux
	}
	return uvarintLen(ux)
}

// stringLen returns the encoded size of a string of n bytes.
func stringLen(n int) int { return uvarintLen(uint64(n)) + n }

func appendUvarint(b []byte, x uint64) []byte {
	if x < 0x80 {
		return append(b, byte(x))
	}
	return binary.AppendUvarint(b, x)
}

func appendString(b []byte, s string) []byte {
	return append(appendUvarint(b, uint64(len(s))), s...)
}

// UnmarshalBinary decodes the binary form written by AppendBinary or
// MarshalBinary into e, replacing all of e's fields; on error e is left
// unchanged.
//
// UnmarshalBinary checks structure only: input that is truncated, has
// trailing bytes, an unknown version or flag, an impossible length, time
// nanoseconds or schema version out of range, or extension names that are
// not strictly increasing yields an error matching ErrCorrupt. It does not
// call Validate: anything AppendBinary can write decodes, including
// envelopes that Validate would reject. Journals validate envelopes before
// storing them and protect records with checksums; code decoding bytes
// from an untrusted source should call Validate on the result.
//
// UnmarshalBinary never panics and allocates one buffer of len(data) bytes
// (plus the Extensions map when there are extensions). All string fields
// and Data point into that buffer; the decoded envelope never shares memory
// with data. Data's capacity equals its length, so appending to it does not
// touch the other fields. Time is returned in UTC and SpecVersion is "1.0".
func (e *Envelope) UnmarshalBinary(data []byte) error {
	return e.unmarshalBinary(data, false)
}

// UnmarshalBinaryBorrowed is UnmarshalBinary without the copy: the string
// fields and Data of e point into data itself, so e is valid only while
// data is neither modified nor reused, and whoever keeps a field beyond
// that must copy it (strings.Clone, bytes.Clone). It allocates nothing
// unless there are extensions. It is meant for readers that decode a
// record straight from a buffer they own for a moment, such as a database
// driver's row buffer during one row; the same errors as UnmarshalBinary.
func (e *Envelope) UnmarshalBinaryBorrowed(data []byte) error {
	return e.unmarshalBinary(data, true)
}

func (e *Envelope) unmarshalBinary(data []byte, borrow bool) error {
	if len(data) < 2 {
		return corruptf("binary envelope of %d bytes is truncated", len(data))
	}
	if data[0] != binaryVersion1 {
		return corruptf("unknown binary envelope version %d", data[0])
	}
	flags := data[1]
	if flags&^flagHasTime != 0 {
		return corruptf("unknown binary envelope flags %#x", flags)
	}

	// First pass: check the structure and note where every field lies.
	type span struct{ off, n int }
	var fixed [numFixedStrings]span
	pos := 2
	var ok bool
	for i := range fixed {
		// Inlined fast path for the usual string of under 128 bytes.
		if pos < len(data) && data[pos] < 0x80 {
			n := int(data[pos])
			if n >= len(data)-pos {
				return corruptAt("a string attribute", pos)
			}
			fixed[i] = span{pos + 1, n}
			pos += 1 + n
			continue
		}
		if fixed[i].off, fixed[i].n, pos, ok = readSpan(data, pos); !ok {
			return corruptAt("a string attribute", pos)
		}
	}
	var sec int64
	var nsec uint64
	if flags&flagHasTime != 0 {
		var n int
		if sec, n = binary.Varint(data[pos:]); n <= 0 {
			return corruptAt("the time", pos)
		}
		pos += n
		if nsec, pos = readUvarint(data, pos); pos < 0 {
			return corruptAt("the time", len(data))
		}
		if nsec >= uint64(time.Second) {
			return corruptf("time nanoseconds %d out of range", nsec)
		}
	}
	sv, pos := readUvarint(data, pos)
	if pos < 0 {
		return corruptAt("the schema version", len(data))
	}
	if sv > math.MaxInt32 {
		return corruptf("schema version %d out of range", sv)
	}
	seq, pos := readUvarint(data, pos)
	if pos < 0 {
		return corruptAt("the sequence", len(data))
	}
	count, pos := readUvarint(data, pos)
	if pos < 0 {
		return corruptAt("the extension count", len(data))
	}
	// Every extension takes at least two bytes, which bounds count by the
	// input size before anything is allocated for it.
	if count > uint64(len(data)-pos)/2 {
		return corruptf("extension count %d exceeds the input", count)
	}
	extStart := pos
	var prev span
	for i := uint64(0); i < count; i++ {
		var k span
		if k.off, k.n, pos, ok = readSpan(data, pos); !ok {
			return corruptAt("an extension name", pos)
		}
		if _, _, pos, ok = readSpan(data, pos); !ok {
			return corruptAt("an extension value", pos)
		}
		if i > 0 && string(data[k.off:k.off+k.n]) <= string(data[prev.off:prev.off+prev.n]) {
			return corruptf("extension names out of order or duplicated at %q", data[k.off:k.off+k.n])
		}
		prev = k
	}
	var dat span
	if dat.off, dat.n, pos, ok = readSpan(data, pos); !ok {
		return corruptAt("the data", pos)
	}
	if pos != len(data) {
		return corruptf("%d trailing bytes after binary envelope", len(data)-pos)
	}

	// Second pass: copy the input once (unless borrowing) and point every
	// field into the copy. The copy is never written to again, except that
	// the caller may write to Data, whose bytes (the last field) no string
	// overlaps.
	buf := data
	if !borrow {
		buf = make([]byte, len(data))
		copy(buf, data)
	}
	str := func(s span) string {
		if s.n == 0 {
			return ""
		}
		return unsafe.String(&buf[s.off], s.n)
	}
	out := Envelope{
		ID:              str(fixed[0]),
		Source:          str(fixed[1]),
		SpecVersion:     SpecVersion,
		Type:            str(fixed[2]),
		Subject:         str(fixed[3]),
		DataContentType: str(fixed[4]),
		DataSchema:      str(fixed[5]),
		SchemaVersion:   int(sv),
		Sequence:        seq,
		CorrelationID:   str(fixed[6]),
		CausationID:     str(fixed[7]),
		TraceParent:     str(fixed[8]),
	}
	if flags&flagHasTime != 0 {
		out.Time = time.Unix(sec, int64(nsec)).UTC()
	}
	if count > 0 {
		out.Extensions = make(map[string]string, count)
		pos = extStart
		for range count {
			var k, v span
			k.off, k.n, pos, _ = readSpan(buf, pos)
			v.off, v.n, pos, _ = readSpan(buf, pos)
			out.Extensions[str(k)] = str(v)
		}
	}
	if dat.n > 0 {
		out.Data = buf[dat.off : dat.off+dat.n : dat.off+dat.n]
	}
	*e = out
	return nil
}

// readUvarint reads a uvarint at pos and returns it with the position
// after it, or a negative position when data holds no valid uvarint there.
func readUvarint(data []byte, pos int) (uint64, int) {
	if pos < len(data) && data[pos] < 0x80 {
		return uint64(data[pos]), pos + 1
	}
	v, n := binary.Uvarint(data[pos:])
	if n <= 0 {
		return 0, -1
	}
	return v, pos + n
}

// readSpan reads a length-prefixed byte string at pos and returns where its
// bytes lie and the position after it. ok is false, and next is pos, when
// the length is malformed or runs past the end of data.
func readSpan(data []byte, pos int) (off, n, next int, ok bool) {
	l, p := readUvarint(data, pos)
	if p < 0 || l > uint64(len(data)-p) {
		return 0, 0, pos, false
	}
	return p, int(l), p + int(l), true
}

func corruptAt(what string, offset int) error {
	return corruptf("binary envelope truncated or malformed reading %s at offset %d", what, offset)
}

func corruptf(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrCorrupt}, args...)...)
}
