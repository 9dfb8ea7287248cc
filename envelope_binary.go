package orchestrix

import (
	"encoding/binary"
	"fmt"
	"slices"
	"strings"
	"time"
)

// binaryVersion1 is the first byte of the binary form written by
// MarshalBinary. A future layout gets a new version byte; UnmarshalBinary
// keeps reading every version it has ever written.
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
//	uvarint  SchemaVersion
//	uvarint  Sequence
//	uvarint  number of extensions, then per extension in strictly
//	         increasing name order: string name, string value
//	string   Data
//
// SpecVersion is not stored: version 1 always means CloudEvents "1.0".
const binaryVersion1 = 1

const flagHasTime = 1 << 0

// numFixedStrings is the number of string attributes stored in the fixed
// part of the binary form.
const numFixedStrings = 9

func (e *Envelope) fixedStrings() [numFixedStrings]*string {
	return [numFixedStrings]*string{
		&e.ID, &e.Source, &e.Type, &e.Subject, &e.DataContentType,
		&e.DataSchema, &e.CorrelationID, &e.CausationID, &e.TraceParent,
	}
}

// MarshalBinary encodes e in Orchestrix's compact, versioned binary form,
// the form journals store. e is validated first; an invalid envelope
// yields an error matching ErrInvalidEnvelope. The encoding is
// deterministic: equal envelopes give equal bytes. Time is stored as an
// instant (its location is not kept; UnmarshalBinary returns it in UTC).
func (e Envelope) MarshalBinary() ([]byte, error) {
	if err := e.Validate(); err != nil {
		return nil, err
	}
	strs := e.fixedStrings()
	size := 2 + 3*binary.MaxVarintLen64 + 2*binary.MaxVarintLen64 + len(e.Data) + binary.MaxVarintLen64
	for _, s := range strs {
		size += binary.MaxVarintLen64 + len(*s)
	}
	var names []string
	if len(e.Extensions) > 0 {
		names = make([]string, 0, len(e.Extensions))
		for k, v := range e.Extensions {
			names = append(names, k)
			size += 2*binary.MaxVarintLen64 + len(k) + len(v)
		}
		slices.Sort(names)
	}

	b := make([]byte, 0, size)
	var flags byte
	if !e.Time.IsZero() {
		flags |= flagHasTime
	}
	b = append(b, binaryVersion1, flags)
	for _, s := range strs {
		b = appendString(b, *s)
	}
	if flags&flagHasTime != 0 {
		b = binary.AppendVarint(b, e.Time.Unix())
		b = binary.AppendUvarint(b, uint64(e.Time.Nanosecond()))
	}
	b = binary.AppendUvarint(b, uint64(e.SchemaVersion))
	b = binary.AppendUvarint(b, e.Sequence)
	b = binary.AppendUvarint(b, uint64(len(names)))
	for _, k := range names {
		b = appendString(b, k)
		b = appendString(b, e.Extensions[k])
	}
	b = binary.AppendUvarint(b, uint64(len(e.Data)))
	b = append(b, e.Data...)
	return b, nil
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// UnmarshalBinary decodes data written by MarshalBinary into e, replacing
// all of e's fields. Input that is truncated, has trailing bytes, an
// unknown version or an impossible length yields an error matching
// ErrCorrupt; a well-formed encoding of an envelope that fails Validate
// yields an error matching ErrInvalidEnvelope. UnmarshalBinary never
// panics and never allocates more than a small multiple of len(data).
// The decoded envelope does not share memory with data.
func (e *Envelope) UnmarshalBinary(data []byte) error {
	d := binDecoder{buf: data}
	version := d.byte()
	if d.err != nil {
		return d.err
	}
	if version != binaryVersion1 {
		return corruptf("unknown binary envelope version %d", version)
	}
	flags := d.byte()
	if flags&^flagHasTime != 0 {
		return corruptf("unknown binary envelope flags %#x", flags)
	}

	// First pass over the strings: remember where they are, then copy them
	// all into one allocation.
	type span struct{ off, n int }
	var fixed [numFixedStrings]span
	total := 0
	for i := range fixed {
		off, n := d.span()
		fixed[i] = span{off, n}
		total += n
	}
	var out Envelope
	out.SpecVersion = SpecVersion
	if flags&flagHasTime != 0 {
		sec := d.varint()
		nsec := d.uvarint()
		if d.err == nil && nsec >= uint64(time.Second) {
			return corruptf("time nanoseconds %d out of range", nsec)
		}
		out.Time = time.Unix(sec, int64(nsec)).UTC()
	}
	sv := d.uvarint()
	if d.err == nil && sv > 1<<31-1 {
		return corruptf("schema version %d out of range", sv)
	}
	out.SchemaVersion = int(sv)
	out.Sequence = d.uvarint()
	count := d.uvarint()
	// Every extension takes at least two bytes, which bounds count by the
	// input size before anything is allocated for it.
	if d.err == nil && count > uint64(d.remaining()/2) {
		return corruptf("extension count %d exceeds the input", count)
	}
	var ext []span
	if count > 0 {
		ext = make([]span, 0, 2*count)
	}
	for i := uint64(0); i < count && d.err == nil; i++ {
		off, n := d.span()
		ext = append(ext, span{off, n})
		voff, vn := d.span()
		ext = append(ext, span{voff, vn})
		total += n + vn
	}
	doff, dn := d.span()
	if d.err != nil {
		return d.err
	}
	if d.remaining() != 0 {
		return corruptf("%d trailing bytes after binary envelope", d.remaining())
	}

	var sb strings.Builder
	sb.Grow(total)
	for _, s := range fixed {
		sb.Write(data[s.off : s.off+s.n])
	}
	for _, s := range ext {
		sb.Write(data[s.off : s.off+s.n])
	}
	all := sb.String()
	pos := 0
	next := func(n int) string {
		s := all[pos : pos+n]
		pos += n
		return s
	}
	for i, p := range out.fixedStrings() {
		*p = next(fixed[i].n)
	}
	if len(ext) > 0 {
		out.Extensions = make(map[string]string, len(ext)/2)
		prev := ""
		for i := 0; i < len(ext); i += 2 {
			k := next(ext[i].n)
			v := next(ext[i+1].n)
			if i > 0 && k <= prev {
				return corruptf("extension names out of order or duplicated at %q", k)
			}
			prev = k
			out.Extensions[k] = v
		}
	}
	if dn > 0 {
		out.Data = slices.Clone(data[doff : doff+dn])
	}
	if err := out.Validate(); err != nil {
		return err
	}
	*e = out
	return nil
}

func corruptf(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrCorrupt}, args...)...)
}

// binDecoder reads the primitives of the binary form. After the first
// failure every read returns zero and err keeps that failure.
type binDecoder struct {
	buf []byte
	pos int
	err error
}

func (d *binDecoder) remaining() int { return len(d.buf) - d.pos }

func (d *binDecoder) fail(what string) {
	if d.err == nil {
		d.err = corruptf("binary envelope truncated or malformed reading %s at offset %d", what, d.pos)
	}
}

func (d *binDecoder) byte() byte {
	if d.err != nil {
		return 0
	}
	if d.pos >= len(d.buf) {
		d.fail("a byte")
		return 0
	}
	c := d.buf[d.pos]
	d.pos++
	return c
}

func (d *binDecoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.buf[d.pos:])
	if n <= 0 {
		d.fail("an unsigned varint")
		return 0
	}
	d.pos += n
	return v
}

func (d *binDecoder) varint() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.buf[d.pos:])
	if n <= 0 {
		d.fail("a varint")
		return 0
	}
	d.pos += n
	return v
}

// span reads a length-prefixed byte string and returns where it lies in
// the input.
func (d *binDecoder) span() (off, n int) {
	l := d.uvarint()
	if d.err != nil {
		return 0, 0
	}
	if l > uint64(d.remaining()) {
		d.fail("a length-prefixed field")
		return 0, 0
	}
	off = d.pos
	d.pos += int(l)
	return off, int(l)
}
