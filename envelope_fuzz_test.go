package orchestrix_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"

	"github.com/orchestrix/orchestrix"
)

func jsonSeeds(f *testing.F) {
	f.Helper()
	for _, e := range []orchestrix.Envelope{
		fullEnvelope(),
		{ID: "1", Source: "s", Type: "t"},
		{ID: "2", Source: "urn:x", Type: "t", DataContentType: "text/plain", Data: []byte("hi")},
		{ID: "3", Source: "s", Type: "t", DataContentType: "application/octet-stream", Data: []byte{0, 1}},
	} {
		b, err := json.Marshal(e)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, s := range []string{
		`{"specversion":"1.0","id":"1","source":"s","type":"t","data":{"a":[1,2,{"b":null}]}}`,
		`{"specversion":"1.0","id":"1","source":"s","type":"t","sequence":9,"schemaversion":"2","x":true,"y":-1.5e3}`,
		`{"specversion":"1.0","id":"1","source":"s","type":"t","time":"2026-01-01T00:00:00.5+02:00"}`,
		`{"specversion":"1.0","id":"1","source":"s","type":"t","datacontenttype":"application/x+json","data":"\u00e9"}`,
		`{"specversion":"1.0","id":"1","source":"s","type":"t","data":null,"data_base64":""}`,
		`{"specversion":"1.0"}`,
		`[]`,
		`{`,
	} {
		f.Add([]byte(s))
	}
}

// FuzzEnvelopeJSON checks that decoding arbitrary JSON never panics, that
// whatever decodes re-encodes and decodes to an equal envelope, and that
// it survives the binary form unchanged.
func FuzzEnvelopeJSON(f *testing.F) {
	jsonSeeds(f)
	f.Fuzz(func(t *testing.T, in []byte) {
		e, err := orchestrix.DecodeJSON(in, orchestrix.DecodeOptions{MaxDataSize: -1})
		if err != nil {
			if !errors.Is(err, orchestrix.ErrInvalidEnvelope) && !errors.Is(err, orchestrix.ErrTooLarge) {
				t.Fatalf("DecodeJSON() error %v matches no documented sentinel", err)
			}
			return
		}
		out, err := e.MarshalJSON()
		if err != nil {
			t.Fatalf("MarshalJSON of a decoded envelope: %v", err)
		}
		again, err := orchestrix.DecodeJSON(out, orchestrix.DecodeOptions{MaxDataSize: -1})
		if err != nil {
			t.Fatalf("DecodeJSON(%s) of re-encoded envelope: %v", out, err)
		}
		if !envelopesEqual(e, again) {
			t.Fatalf("JSON round trip changed the envelope:\n%+v\n%+v", e, again)
		}
		bin, err := e.MarshalBinary()
		if err != nil {
			t.Fatalf("MarshalBinary of a decoded envelope: %v", err)
		}
		var fromBin orchestrix.Envelope
		if err := fromBin.UnmarshalBinary(bin); err != nil {
			t.Fatalf("UnmarshalBinary: %v", err)
		}
		if !envelopesEqual(e, fromBin) {
			t.Fatalf("binary round trip changed the envelope:\n%+v\n%+v", e, fromBin)
		}
	})
}

// FuzzEnvelopeBinary checks that decoding arbitrary bytes never panics,
// that whatever decodes re-encodes and decodes to an equal envelope, and
// that it survives the JSON form (up to white space around JSON data).
func FuzzEnvelopeBinary(f *testing.F) {
	for _, e := range []orchestrix.Envelope{
		fullEnvelope(),
		{ID: "1", Source: "s", Type: "t"},
		{ID: "2", Source: "s", Type: "t", DataContentType: "text/plain", Data: []byte(" x ")},
	} {
		b, err := e.MarshalBinary()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{})
	f.Add([]byte{1, 0})
	f.Fuzz(func(t *testing.T, in []byte) {
		var e orchestrix.Envelope
		if err := e.UnmarshalBinary(in); err != nil {
			if !errors.Is(err, orchestrix.ErrCorrupt) && !errors.Is(err, orchestrix.ErrInvalidEnvelope) {
				t.Fatalf("UnmarshalBinary() error %v matches no documented sentinel", err)
			}
			return
		}
		out, err := e.MarshalBinary()
		if err != nil {
			t.Fatalf("MarshalBinary of a decoded envelope: %v", err)
		}
		var again orchestrix.Envelope
		if err := again.UnmarshalBinary(out); err != nil {
			t.Fatalf("UnmarshalBinary of re-encoded envelope: %v", err)
		}
		if !envelopesEqual(e, again) {
			t.Fatalf("binary round trip changed the envelope:\n%+v\n%+v", e, again)
		}
		js, err := e.MarshalJSON()
		if err != nil {
			t.Fatalf("MarshalJSON of a decoded envelope: %v", err)
		}
		fromJSON, err := orchestrix.DecodeJSON(js, orchestrix.DecodeOptions{MaxDataSize: -1})
		if err != nil {
			t.Fatalf("DecodeJSON(%s): %v", js, err)
		}
		want := e
		if bytes.Contains(js, []byte(`"data":`)) {
			want.Data = bytes.Trim(e.Data, " \t\r\n")
		}
		if !envelopesEqual(want, fromJSON) {
			t.Fatalf("JSON round trip changed the envelope:\n%+v\n%+v", want, fromJSON)
		}
	})
}
