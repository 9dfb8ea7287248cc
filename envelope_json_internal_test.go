package orchestrix

// This file keeps the first, map-based JSON decoder as a reference
// implementation: FuzzDecodeJSON_MatchesReference checks the hand-written
// decoder against it.

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"mime"
	"strconv"
	"testing"
	"time"
)

func decodeJSONReference(data []byte, opts DecodeOptions) (Envelope, error) {
	var members map[string]json.RawMessage
	if err := json.Unmarshal(data, &members); err != nil {
		return Envelope{}, fmt.Errorf("%w: %w", ErrInvalidEnvelope, err)
	}
	if members == nil {
		return Envelope{}, fmt.Errorf("%w: not a JSON object", ErrInvalidEnvelope)
	}
	var e Envelope
	sv, ok, err := refStringMember(members, attrSpecVersion)
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
		v, ok, err := refStringMember(members, f.name)
		if err != nil {
			return Envelope{}, err
		}
		if !ok && f.required {
			return Envelope{}, attrErr(f.name, "missing")
		}
		*f.dst = v
	}

	if ts, ok, err := refStringMember(members, attrTime); err != nil {
		return Envelope{}, err
	} else if ok {
		t, err := time.Parse(time.RFC3339Nano, ts)
		if err != nil {
			return Envelope{}, attrErr(attrTime, "not an RFC 3339 timestamp")
		}
		e.Time = t.UTC()
	}
	if n, ok, err := refIntegerMember(members, attrSequence, math.MaxUint64); err != nil {
		return Envelope{}, err
	} else if ok {
		e.Sequence = n
	}
	if n, ok, err := refIntegerMember(members, attrSchemaVersion, math.MaxInt32); err != nil {
		return Envelope{}, err
	} else if ok {
		e.SchemaVersion = int(n)
	}

	for name, raw := range members {
		if refIsKnownMember(name) {
			continue
		}
		v, ok, err := refExtensionValue(name, raw)
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

	if err := e.refDecodeData(members, opts.maxDataSize()); err != nil {
		return Envelope{}, err
	}
	if err := e.Validate(); err != nil {
		return Envelope{}, err
	}
	return e, nil
}

func refIsKnownMember(name string) bool {
	return name == attrDataBase64 || isReservedName(name)
}

// member returns the raw value of a member, with ok false when the member
// is absent or null.
func refMember(members map[string]json.RawMessage, name string) (json.RawMessage, bool) {
	raw, ok := members[name]
	if !ok || string(raw) == "null" {
		return nil, false
	}
	return raw, true
}

func refStringMember(members map[string]json.RawMessage, name string) (string, bool, error) {
	raw, ok := refMember(members, name)
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
func refIntegerMember(members map[string]json.RawMessage, name string, limit uint64) (uint64, bool, error) {
	raw, ok := refMember(members, name)
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
func refExtensionValue(name string, raw json.RawMessage) (string, bool, error) {
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

func (e *Envelope) refDecodeData(members map[string]json.RawMessage, limit int) error {
	raw, hasData := refMember(members, attrData)
	b64, hasBase64 := refMember(members, attrDataBase64)
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

func envelopesEqualInternal(a, b Envelope) bool {
	return a.ID == b.ID && a.Source == b.Source && a.SpecVersion == b.SpecVersion &&
		a.Type == b.Type && a.Subject == b.Subject && a.Time.Equal(b.Time) &&
		a.DataContentType == b.DataContentType && a.DataSchema == b.DataSchema &&
		a.SchemaVersion == b.SchemaVersion && a.Sequence == b.Sequence &&
		a.CorrelationID == b.CorrelationID && a.CausationID == b.CausationID &&
		a.TraceParent == b.TraceParent && maps.Equal(a.Extensions, b.Extensions) &&
		bytes.Equal(a.Data, b.Data)
}

// FuzzDecodeJSONReference checks that the hand-written decoder accepts
// exactly what the encoding/json based reference accepts (except repeated
// members, which only the hand-written one can see) and decodes it to the
// same envelope.
func FuzzDecodeJSONReference(f *testing.F) {
	for _, s := range []string{
		`{"specversion":"1.0","id":"1","source":"/s","type":"t","subject":"a\u00e9\ud83d\ude00\ud800x\n","time":"2026-01-01T00:00:00.5+02:00"}`,
		`{"specversion":"1.0","id":"1","source":"s","type":"t","data":{"a":[1,"]}\"",{"b":null}]},"ext":-1.5e3,"b":true}`,
		`{"specversion":"1.0","id":"1","source":"s","type":"t","sequence":"9","schemaversion":2,"datacontenttype":"text/plain","data":"hi"}`,
		`{"specversion":"1.0","id":"1","source":"s","type":"t","data_base64":"AAEC","dataschema":"http://x/y"}`,
		` {"specversion" : "1.0" , "id":"\"","source":"s","type":"t","data": [ 1 , 2 ] } `,
		`{"specversion":"1.0","id":"1","source":"s","type":"t","data":nul}`,
		`{"specversion":null,"id":1}`,
		`{"a":"\x"}`,
		"{\"specversion\":\"1.0\",\"id\":\"\xff\",\"source\":\"s\",\"type\":\"t\"}",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		opts := DecodeOptions{MaxDataSize: -1}
		got, err := DecodeJSON(in, opts)
		want, refErr := decodeJSONReference(in, opts)
		switch {
		case err == nil && refErr == nil:
			if !envelopesEqualInternal(got, want) {
				t.Fatalf("DecodeJSON(%q) =\n%+v\nreference:\n%+v", in, got, want)
			}
		case err == nil:
			t.Fatalf("DecodeJSON(%q) accepted what the reference rejects: %v", in, refErr)
		case refErr == nil:
			var ae *AttributeError
			if !errors.As(err, &ae) || ae.Reason != "appears twice" {
				t.Fatalf("DecodeJSON(%q) = %v, the reference accepts it", in, err)
			}
		}
		if err != nil && !errors.Is(err, ErrInvalidEnvelope) && !errors.Is(err, ErrTooLarge) {
			t.Fatalf("DecodeJSON(%q) error %v matches no documented sentinel", in, err)
		}
	})
}

func FuzzUnquote(f *testing.F) {
	for _, s := range []string{`abc`, `a\"b`, `\u00e9`, `\ud83d\ude00`, `\ud800\u0041`, `\udc00`, "\xff\xfe", `\/\b\f\n\r\t`, `\u12`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, content []byte) {
		quoted := append(append([]byte{'"'}, content...), '"')
		var want string
		wantErr := json.Unmarshal(quoted, &want)
		s := jsonScanner{b: quoted}
		got, _, err := s.str()
		if err == nil && s.i != len(quoted) {
			// The string ended early at an unescaped quote inside content;
			// encoding/json rejects the trailing data.
			if wantErr == nil {
				t.Fatalf("str(%q) stopped at %d, encoding/json read the whole string", quoted, s.i)
			}
			return
		}
		if (err == nil) != (wantErr == nil) {
			t.Fatalf("str(%q) error = %v, encoding/json error = %v", quoted, err, wantErr)
		}
		if err == nil && got != want {
			t.Fatalf("str(%q) = %q, encoding/json = %q", quoted, got, want)
		}
	})
}
