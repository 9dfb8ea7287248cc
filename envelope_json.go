package orchestrix

import (
	"encoding/base64"
	"encoding/json"
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
		b = append(b, s[start:i]...)
		switch c {
		case '"', '\\':
			b = append(b, '\\', c)
		case '\n':
			b = append(b, '\\', 'n')
		case '\r':
			b = append(b, '\\', 'r')
		case '\t':
			b = append(b, '\\', 't')
		default:
			b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
		}
		i++
		start = i
	}
	b = append(b, s[start:]...)
	return append(b, '"')
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
// as absent. The result is checked with Validate; Time is returned in UTC
// and SpecVersion is "1.0".
//
// Malformed JSON, a missing or invalid attribute, a specversion other than
// "1.0" or a value of the wrong JSON type yields an error matching
// ErrInvalidEnvelope (an *AttributeError when one attribute is at fault);
// data larger than opts' limit yields an error matching ErrTooLarge.
// DecodeJSON never panics. Callers reading from the network should also
// bound the size of the input itself (for example http.MaxBytesReader).
func DecodeJSON(data []byte, opts DecodeOptions) (Envelope, error) {
	var members map[string]json.RawMessage
	if err := json.Unmarshal(data, &members); err != nil {
		return Envelope{}, fmt.Errorf("%w: %w", ErrInvalidEnvelope, err)
	}
	if members == nil {
		return Envelope{}, fmt.Errorf("%w: not a JSON object", ErrInvalidEnvelope)
	}
	var e Envelope
	sv, ok, err := stringMember(members, attrSpecVersion)
	if err != nil {
		return Envelope{}, err
	}
	if !ok {
		return Envelope{}, attrErr(attrSpecVersion, "missing")
	}
	if sv != SpecVersion {
		return Envelope{}, attrErr(attrSpecVersion, "must be "+strconv.Quote(SpecVersion)+", got "+strconv.Quote(sv))
	}
	e.SpecVersion = SpecVersion

	for _, f := range [...]struct {
		name     string
		dst      *string
		required bool
	}{
		{attrID, &e.ID, true},
		{attrSource, &e.Source, true},
		{attrType, &e.Type, true},
		{attrSubject, &e.Subject, false},
		{attrDataContentType, &e.DataContentType, false},
		{attrDataSchema, &e.DataSchema, false},
		{attrCorrelationID, &e.CorrelationID, false},
		{attrCausationID, &e.CausationID, false},
		{attrTraceParent, &e.TraceParent, false},
	} {
		v, ok, err := stringMember(members, f.name)
		if err != nil {
			return Envelope{}, err
		}
		if !ok && f.required {
			return Envelope{}, attrErr(f.name, "missing")
		}
		*f.dst = v
	}

	if ts, ok, err := stringMember(members, attrTime); err != nil {
		return Envelope{}, err
	} else if ok {
		t, err := time.Parse(time.RFC3339Nano, ts)
		if err != nil {
			return Envelope{}, attrErr(attrTime, "not an RFC 3339 timestamp")
		}
		e.Time = t.UTC()
	}
	if n, ok, err := integerMember(members, attrSequence, math.MaxUint64); err != nil {
		return Envelope{}, err
	} else if ok {
		e.Sequence = n
	}
	if n, ok, err := integerMember(members, attrSchemaVersion, math.MaxInt32); err != nil {
		return Envelope{}, err
	} else if ok {
		e.SchemaVersion = int(n)
	}

	for name, raw := range members {
		if isKnownMember(name) {
			continue
		}
		v, ok, err := extensionValue(name, raw)
		if err != nil {
			return Envelope{}, err
		}
		if !ok {
			continue
		}
		if e.Extensions == nil {
			e.Extensions = make(map[string]string)
		}
		e.Extensions[name] = v
	}

	if err := e.decodeData(members, opts.maxDataSize()); err != nil {
		return Envelope{}, err
	}
	if err := e.Validate(); err != nil {
		return Envelope{}, err
	}
	return e, nil
}

func isKnownMember(name string) bool {
	return name == attrDataBase64 || isReservedName(name)
}

// member returns the raw value of a member, with ok false when the member
// is absent or null.
func member(members map[string]json.RawMessage, name string) (json.RawMessage, bool) {
	raw, ok := members[name]
	if !ok || string(raw) == "null" {
		return nil, false
	}
	return raw, true
}

func stringMember(members map[string]json.RawMessage, name string) (string, bool, error) {
	raw, ok := member(members, name)
	if !ok {
		return "", false, nil
	}
	if raw[0] != '"' {
		return "", false, attrErr(name, "must be a JSON string")
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", false, attrErr(name, err.Error())
	}
	return s, true, nil
}

// integerMember reads a non-negative integer attribute given as a decimal
// string or a JSON number, with the value at most limit.
func integerMember(members map[string]json.RawMessage, name string, limit uint64) (uint64, bool, error) {
	raw, ok := member(members, name)
	if !ok {
		return 0, false, nil
	}
	text := string(raw)
	if raw[0] == '"' {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return 0, false, attrErr(name, err.Error())
		}
		text = s
	}
	n, err := strconv.ParseUint(text, 10, 64)
	if err != nil || n > limit {
		return 0, false, attrErr(name, "must be a non-negative decimal integer no larger than "+strconv.FormatUint(limit, 10))
	}
	return n, true, nil
}

// extensionValue converts the JSON value of an extension attribute to its
// string form; ok is false for null.
func extensionValue(name string, raw json.RawMessage) (string, bool, error) {
	switch c := raw[0]; {
	case c == '"':
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return "", false, attrErr(name, err.Error())
		}
		return s, true, nil
	case c == 'n':
		return "", false, nil
	case c == 't' || c == 'f' || c == '-' || c >= '0' && c <= '9':
		return string(raw), true, nil
	}
	return "", false, attrErr(name, "extension values must be strings, numbers or booleans")
}

func (e *Envelope) decodeData(members map[string]json.RawMessage, limit int) error {
	raw, hasData := member(members, attrData)
	b64, hasBase64 := member(members, attrDataBase64)
	switch {
	case hasData && hasBase64:
		return attrErr(attrData, `"data" and "data_base64" must not both be present`)
	case hasBase64:
		if b64[0] != '"' {
			return attrErr(attrDataBase64, "must be a JSON string")
		}
		var s string
		if err := json.Unmarshal(b64, &s); err != nil {
			return attrErr(attrDataBase64, err.Error())
		}
		// DecodedLen overstates the decoded size by at most two bytes.
		if n := base64.StdEncoding.DecodedLen(len(s)) - 2; n > limit {
			return tooLarge(n, limit)
		}
		d, err := base64.StdEncoding.DecodeString(s)
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
		if len(raw) > limit {
			return tooLarge(len(raw), limit)
		}
		e.Data = raw // json.RawMessage values are copies of the input
	case hasData:
		if raw[0] != '"' {
			mt, _, _ := mime.ParseMediaType(e.DataContentType)
			return attrErr(attrData, "must be a JSON string for media type "+strconv.Quote(mt))
		}
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return attrErr(attrData, err.Error())
		}
		if len(s) > limit {
			return tooLarge(len(s), limit)
		}
		if len(s) > 0 {
			e.Data = []byte(s)
		}
	}
	return nil
}

func tooLarge(n, limit int) error {
	return fmt.Errorf("%w: data is %d bytes, the limit is %d", ErrTooLarge, n, limit)
}
