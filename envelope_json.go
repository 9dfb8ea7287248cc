package orchestrix

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"mime"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// DefaultMaxDataSize is the limit on the decoded size of an envelope's data
// that DecodeJSON applies when DecodeOptions.MaxDataSize is zero, and that
// UnmarshalJSON always applies: 1 MiB.
const DefaultMaxDataSize = 1 << 20

// DecodeOptions configures DecodeJSON. The zero value is ready to use.
type DecodeOptions struct {
	// MaxDataSize is the largest decoded payload, in bytes, DecodeJSON
	// accepts; a larger one yields an error matching ErrTooLarge. Zero
	// means DefaultMaxDataSize; a negative value means no limit.
	MaxDataSize int
}

func (o DecodeOptions) maxDataSize() int {
	switch {
	case o.MaxDataSize == 0:
		return DefaultMaxDataSize
	case o.MaxDataSize < 0:
		return math.MaxInt
	}
	return o.MaxDataSize
}

// MarshalJSON encodes e as a CloudEvents 1.0 event in structured-mode JSON
// (the application/cloudevents+json format).
//
// Data is written as a JSON value in the "data" member when
// DataContentType is a JSON media type (application/json, text/json, any
// type with a +json suffix, or empty, which CloudEvents reads as JSON) and
// Data is valid UTF-8 JSON; white space around the value is not kept. Otherwise
// Data is written base64-encoded in "data_base64". Empty Data writes
// neither member. Time is written in UTC with nanosecond precision;
// Sequence is written as a decimal string (CloudEvents sequence extension)
// and SchemaVersion as a JSON number, each only when non-zero. Extensions
// are written as string attributes.
//
// e is validated first; an invalid envelope yields an error matching
// ErrInvalidEnvelope.
func (e Envelope) MarshalJSON() ([]byte, error) {
	if err := e.Validate(); err != nil {
		return nil, err
	}
	b := make([]byte, 0, 256+len(e.Data)*4/3)
	b = append(b, `{"specversion":"1.0"`...)
	b = appendMember(b, attrID, e.ID)
	b = appendMember(b, attrSource, e.Source)
	b = appendMember(b, attrType, e.Type)
	b = appendOptional(b, attrSubject, e.Subject)
	if !e.Time.IsZero() {
		b = append(b, `,"time":"`...)
		b = e.Time.UTC().AppendFormat(b, time.RFC3339Nano)
		b = append(b, '"')
	}
	b = appendOptional(b, attrDataContentType, e.DataContentType)
	b = appendOptional(b, attrDataSchema, e.DataSchema)
	if e.Sequence != 0 {
		b = append(b, `,"sequence":"`...)
		b = strconv.AppendUint(b, e.Sequence, 10)
		b = append(b, '"')
	}
	if e.SchemaVersion != 0 {
		b = append(b, `,"schemaversion":`...)
		b = strconv.AppendInt(b, int64(e.SchemaVersion), 10)
	}
	b = appendOptional(b, attrCorrelationID, e.CorrelationID)
	b = appendOptional(b, attrCausationID, e.CausationID)
	b = appendOptional(b, attrTraceParent, e.TraceParent)
	if len(e.Extensions) > 0 {
		names := make([]string, 0, len(e.Extensions))
		for k := range e.Extensions {
			names = append(names, k)
		}
		slices.Sort(names)
		for _, k := range names {
			b = appendMember(b, k, e.Extensions[k])
		}
	}
	if len(e.Data) > 0 {
		if v := trimJSONSpace(e.Data); isJSONMediaType(e.DataContentType) && utf8.Valid(v) && json.Valid(v) {
			b = append(b, `,"data":`...)
			b = append(b, v...)
		} else {
			b = append(b, `,"data_base64":"`...)
			b = base64.StdEncoding.AppendEncode(b, e.Data)
			b = append(b, '"')
		}
	}
	return append(b, '}'), nil
}

func appendMember(b []byte, name, value string) []byte {
	b = append(b, ',', '"')
	b = append(b, name...)
	b = append(b, '"', ':')
	return appendJSONString(b, value)
}

func appendOptional(b []byte, name, value string) []byte {
	if value == "" {
		return b
	}
	return appendMember(b, name, value)
}

const hexDigits = "0123456789abcdef"

// appendJSONString appends s, which must be valid UTF-8, as a JSON string.
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c >= utf8.RuneSelf {
			r, size := utf8.DecodeRuneInString(s[i:])
			if r == '\u2028' || r == '\u2029' {
				b = append(b, s[start:i]...)
				b = append(b, `\u202`...)
				b = append(b, hexDigits[r&0xf])
				start = i + size
			}
			i += size
			continue
		}
		if c >= 0x20 && c != '"' && c != '\\' {
			i++
			continue
		}
		b = appendEscapedASCII(append(b, s[start:i]...), c)
		i++
		start = i
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// appendEscapedASCII appends the JSON escape of ASCII byte c: a quote or
// backslash after a backslash, the short escape of a control character
// that has one (as json.Marshal writes them), else \u00XX.
func appendEscapedASCII(b []byte, c byte) []byte {
	switch c {
	case '"', '\\':
		return append(b, '\\', c)
	case '\b':
		return append(b, '\\', 'b')
	case '\f':
		return append(b, '\\', 'f')
	case '\n':
		return append(b, '\\', 'n')
	case '\r':
		return append(b, '\\', 'r')
	case '\t':
		return append(b, '\\', 't')
	}
	return append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
}

// trimJSONSpace removes JSON white space from both ends of b.
func trimJSONSpace(b []byte) []byte {
	isSpace := func(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }
	for len(b) > 0 && isSpace(b[0]) {
		b = b[1:]
	}
	for len(b) > 0 && isSpace(b[len(b)-1]) {
		b = b[:len(b)-1]
	}
	return b
}

// isJSONMediaType reports whether data of media type ct is JSON for the
// CloudEvents JSON format: application/json, text/json, a +json suffix, or
// no content type at all.
func isJSONMediaType(ct string) bool {
	if ct == "" || ct == "application/json" {
		return true
	}
	if i := strings.IndexByte(ct, ';'); i >= 0 {
		ct = ct[:i]
	}
	ct = strings.ToLower(strings.TrimSpace(ct))
	return ct == "application/json" || ct == "text/json" || strings.HasSuffix(ct, "+json")
}

// UnmarshalJSON decodes a CloudEvents 1.0 event in structured-mode JSON
// into e, replacing all of e's fields, with the default DecodeOptions (so
// data larger than DefaultMaxDataSize is rejected). See DecodeJSON.
func (e *Envelope) UnmarshalJSON(data []byte) error {
	out, err := DecodeJSON(data, DecodeOptions{})
	if err != nil {
		return err
	}
	*e = out
	return nil
}

// DecodeJSON decodes a CloudEvents 1.0 event in structured-mode JSON.
//
// The "data" member is kept as the raw JSON text of its value when the
// datacontenttype is a JSON media type (or absent); for any other media
// type it must be a JSON string, whose contents become Data.
// "data_base64" is decoded from standard base64. Both members at once are
// an error. "sequence" and "schemaversion" are accepted as decimal strings
// or JSON integers; other extension attributes as strings, numbers or
// booleans (stored in their JSON text form). A null attribute is treated
// as absent; an attribute that appears twice is an error. Member names are
// case-sensitive, as CloudEvents requires. The result is checked with
// Validate; Time is returned in UTC and SpecVersion is "1.0".
//
// Malformed JSON, a missing or invalid attribute, a specversion other than
// "1.0" or a value of the wrong JSON type yields an error matching
// ErrInvalidEnvelope (an *AttributeError when one attribute is at fault);
// data larger than opts' limit yields an error matching ErrTooLarge.
// DecodeJSON never panics. Callers reading from the network should also
// bound the size of the input itself (for example http.MaxBytesReader).
func DecodeJSON(data []byte, opts DecodeOptions) (Envelope, error) {
	var (
		e                 Envelope
		seen              uint32 // bit i set: member knownMembers[i] seen
		dataRaw, dataB64  jsonMember
		hasData, hasB64   bool
		requiredPresent   = [3]bool{}
		requiredAttribute = [3]string{attrID, attrSource, attrType}
	)
	err := scanObject(data, func(m jsonMember) error {
		bit := knownMemberBit(m.name)
		if bit != 0 {
			if seen&bit != 0 {
				return attrErr(m.name, "appears twice")
			}
			seen |= bit
		}
		isNull := !m.isStr && string(m.raw) == "null"
		if isNull && m.name != attrData && m.name != attrDataBase64 {
			return nil // a null attribute is an absent one
		}
		str := func(dst *string) error {
			if !m.isStr {
				return attrErr(m.name, "must be a JSON string")
			}
			*dst = m.str
			return nil
		}
		switch m.name {
		case attrSpecVersion:
			if !m.isStr || m.str != SpecVersion {
				return attrErr(attrSpecVersion, "must be "+strconv.Quote(SpecVersion)+", got "+string(m.raw))
			}
			e.SpecVersion = SpecVersion
			return nil
		case attrID:
			requiredPresent[0] = true
			return str(&e.ID)
		case attrSource:
			requiredPresent[1] = true
			return str(&e.Source)
		case attrType:
			requiredPresent[2] = true
			return str(&e.Type)
		case attrSubject:
			return str(&e.Subject)
		case attrDataContentType:
			return str(&e.DataContentType)
		case attrDataSchema:
			return str(&e.DataSchema)
		case attrCorrelationID:
			return str(&e.CorrelationID)
		case attrCausationID:
			return str(&e.CausationID)
		case attrTraceParent:
			return str(&e.TraceParent)
		case attrTime:
			var ts string
			if err := str(&ts); err != nil {
				return err
			}
			t, err := time.Parse(time.RFC3339Nano, ts)
			if err != nil {
				return attrErr(attrTime, "not an RFC 3339 timestamp")
			}
			e.Time = t.UTC()
			return nil
		case attrSequence:
			n, err := integerMember(m, math.MaxUint64)
			e.Sequence = n
			return err
		case attrSchemaVersion:
			n, err := integerMember(m, math.MaxInt32)
			e.SchemaVersion = int(n)
			return err
		case attrData:
			dataRaw, hasData = m, !isNull
			return nil
		case attrDataBase64:
			dataB64, hasB64 = m, !isNull
			return nil
		}
		// An extension attribute.
		if _, dup := e.Extensions[m.name]; dup {
			return attrErr(m.name, "appears twice")
		}
		v, err := extensionValue(m)
		if err != nil {
			return err
		}
		if e.Extensions == nil {
			e.Extensions = make(map[string]string)
		}
		e.Extensions[m.name] = v
		return nil
	})
	if err != nil {
		if errors.Is(err, ErrInvalidEnvelope) {
			return Envelope{}, err
		}
		return Envelope{}, fmt.Errorf("%w: %w", ErrInvalidEnvelope, err)
	}
	if e.SpecVersion == "" {
		return Envelope{}, attrErr(attrSpecVersion, "missing")
	}
	for i, ok := range requiredPresent {
		if !ok {
			return Envelope{}, attrErr(requiredAttribute[i], "missing")
		}
	}
	if err := e.decodeData(dataRaw, hasData, dataB64, hasB64, opts.maxDataSize()); err != nil {
		return Envelope{}, err
	}
	if err := e.Validate(); err != nil {
		return Envelope{}, err
	}
	return e, nil
}

// knownMemberBit returns the bit DecodeJSON uses to spot a repeated
// member, or 0 for an extension attribute.
func knownMemberBit(name string) uint32 {
	for i, n := range [...]string{
		attrID, attrSource, attrSpecVersion, attrType, attrSubject, attrTime,
		attrDataContentType, attrDataSchema, attrData, attrDataBase64,
		attrSequence, attrCorrelationID, attrCausationID, attrTraceParent,
		attrSchemaVersion,
	} {
		if n == name {
			return 1 << i
		}
	}
	return 0
}

// integerMember reads a non-negative integer attribute given as a decimal
// string or a JSON number, with the value at most limit.
func integerMember(m jsonMember, limit uint64) (uint64, error) {
	text := m.str
	if !m.isStr {
		text = string(m.raw)
	}
	n, err := strconv.ParseUint(text, 10, 64)
	if err != nil || n > limit {
		return 0, attrErr(m.name, "must be a non-negative decimal integer no larger than "+strconv.FormatUint(limit, 10))
	}
	return n, nil
}

// extensionValue converts the JSON value of an extension attribute (not
// null) to its string form.
func extensionValue(m jsonMember) (string, error) {
	if m.isStr {
		return m.str, nil
	}
	switch c := m.raw[0]; {
	case c == 't' || c == 'f' || c == '-' || c >= '0' && c <= '9':
		return string(m.raw), nil
	}
	return "", attrErr(m.name, "extension values must be strings, numbers or booleans")
}

func (e *Envelope) decodeData(raw jsonMember, hasData bool, b64 jsonMember, hasBase64 bool, limit int) error {
	switch {
	case hasData && hasBase64:
		return attrErr(attrData, `"data" and "data_base64" must not both be present`)
	case hasBase64:
		if !b64.isStr {
			return attrErr(attrDataBase64, "must be a JSON string")
		}
		// DecodedLen overstates the decoded size by at most two bytes.
		if n := base64.StdEncoding.DecodedLen(len(b64.str)) - 2; n > limit {
			return tooLarge(n, limit)
		}
		d, err := base64.StdEncoding.DecodeString(b64.str)
		if err != nil {
			return attrErr(attrDataBase64, "not standard base64: "+err.Error())
		}
		if len(d) > limit {
			return tooLarge(len(d), limit)
		}
		if len(d) > 0 {
			e.Data = d
		}
	case hasData && isJSONMediaType(e.DataContentType):
		if len(raw.raw) > limit {
			return tooLarge(len(raw.raw), limit)
		}
		e.Data = bytes.Clone(raw.raw)
	case hasData:
		if !raw.isStr {
			mt, _, _ := mime.ParseMediaType(e.DataContentType)
			return attrErr(attrData, "must be a JSON string for media type "+strconv.Quote(mt))
		}
		if len(raw.str) > limit {
			return tooLarge(len(raw.str), limit)
		}
		if len(raw.str) > 0 {
			e.Data = []byte(raw.str)
		}
	}
	return nil
}

func tooLarge(n, limit int) error {
	return fmt.Errorf("%w: data is %d bytes, the limit is %d", ErrTooLarge, n, limit)
}
