package orchestrix_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

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

// FuzzEnvelopeBinary checks that decoding arbitrary bytes never panics
// and fails only with ErrCorrupt, that whatever decodes re-encodes with
// AppendBinary to bytes that decode to an equal envelope (and re-encode to
// the same bytes), and that decoded envelopes that pass Validate survive
// MarshalBinary and the JSON form (up to white space around JSON data).
func FuzzEnvelopeBinary(f *testing.F) {
	many := fullEnvelope()
	many.Extensions = map[string]string{}
	for _, k := range []string{"a", "b", "c", "d", "e", "f", "g", "h", "i", "j"} {
		many.Extensions[k] = k + k
	}
	for _, e := range []orchestrix.Envelope{
		fullEnvelope(),
		typicalEnvelope(),
		many,
		{ID: "1", Source: "s", Type: "t"},
		{ID: "2", Source: "s", Type: "t", DataContentType: "text/plain", Data: []byte(" x ")},
		{Source: "%zz", Subject: "\xff", Extensions: map[string]string{"": "", "ID": "x"}},
	} {
		b, err := e.AppendBinary(nil)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{})
	f.Add([]byte{1, 0})
	f.Add([]byte{1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, in []byte) {
		var e, borrowed orchestrix.Envelope
		err := e.UnmarshalBinary(in)
		// The borrowing decoder accepts and rejects exactly the same input
		// and decodes the same envelope.
		if berr := borrowed.UnmarshalBinaryBorrowed(in); (berr == nil) != (err == nil) ||
			(err != nil && berr.Error() != err.Error()) || (err == nil && !envelopesEqual(e, borrowed)) {
			t.Fatalf("UnmarshalBinaryBorrowed() = %+v, %v; UnmarshalBinary() = %+v, %v", borrowed, berr, e, err)
		}
		if err != nil {
			if !errors.Is(err, orchestrix.ErrCorrupt) {
				t.Fatalf("UnmarshalBinary() error %v does not match ErrCorrupt", err)
			}
			return
		}
		out, err := e.AppendBinary(nil)
		if err != nil {
			t.Fatalf("AppendBinary of a decoded envelope: %v", err)
		}
		var again orchestrix.Envelope
		if err := again.UnmarshalBinary(out); err != nil {
			t.Fatalf("UnmarshalBinary of re-encoded envelope: %v", err)
		}
		if !envelopesEqual(e, again) {
			t.Fatalf("binary round trip changed the envelope:\n%+v\n%+v", e, again)
		}
		if out2, err := again.AppendBinary(nil); err != nil || !bytes.Equal(out, out2) {
			t.Fatalf("re-encoding is not stable (err %v):\n%x\n%x", err, out, out2)
		}

		if e.Validate() != nil {
			return
		}
		marshalled, err := e.MarshalBinary()
		if err != nil || !bytes.Equal(marshalled, out) {
			t.Fatalf("MarshalBinary of a valid envelope = %x, %v; want %x (AppendBinary)", marshalled, err, out)
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

// FuzzEnvelopeAppendBinary checks that AppendBinary encodes any envelope
// it accepts, valid or not, into bytes that follow the given prefix and
// decode to an equal envelope, and that it rejects only what the binary
// form cannot hold.
func FuzzEnvelopeAppendBinary(f *testing.F) {
	e := fullEnvelope()
	f.Add(e.ID, e.Source, e.Type, e.Subject, e.DataContentType, e.DataSchema, e.CorrelationID,
		e.CausationID, e.TraceParent, e.Time.Unix(), uint32(e.Time.Nanosecond()), e.SchemaVersion,
		e.Sequence, "tenant", "acme", "region", "eu1", e.Data, []byte("pre"))
	f.Add("", "", "", "", "", "", "", "", "", int64(0), uint32(0), 0, uint64(0), "", "", "", "", []byte(nil), []byte(nil))
	f.Add("\xff", " ", "\t", "x", "bad", "rel", "\xc3", "", "", int64(-62135596800), uint32(0), -1,
		uint64(1<<63), "Upper", "\xff", "sequence", "", []byte{0}, []byte(nil))
	f.Add(strings.Repeat("i", 200), "s", "t", "", "", "", "", "", "", int64(1<<62), uint32(999999999),
		1<<31-1, uint64(1<<64-1), "k", strings.Repeat("v", 300), "k", "dup", bytes.Repeat([]byte{1}, 500), []byte{1, 2})
	f.Fuzz(func(t *testing.T, id, source, typ, subject, ct, schema, corr, caus, tp string,
		sec int64, nsec uint32, sv int, seq uint64, k1, v1, k2, v2 string, data, prefix []byte,
	) {
		in := orchestrix.Envelope{
			ID: id, Source: source, Type: typ, Subject: subject, DataContentType: ct,
			DataSchema: schema, CorrelationID: corr, CausationID: caus, TraceParent: tp,
			SchemaVersion: sv, Sequence: seq, Data: data,
			Extensions: map[string]string{k1: v1, k2: v2},
		}
		if sec != 0 || nsec != 0 {
			in.Time = time.Unix(sec, int64(nsec%1e9))
		}
		out, err := in.AppendBinary(slices.Clip(prefix))
		if sv < 0 || sv > math.MaxInt32 {
			if !errors.Is(err, orchestrix.ErrInvalidEnvelope) || !bytes.Equal(out, prefix) {
				t.Fatalf("AppendBinary(schema version %d) = %x, %v; want the prefix and ErrInvalidEnvelope", sv, out, err)
			}
			return
		}
		if err != nil {
			t.Fatalf("AppendBinary() error = %v", err)
		}
		if !bytes.HasPrefix(out, prefix) {
			t.Fatalf("AppendBinary() = %x, does not start with the prefix %x", out, prefix)
		}
		alone, err := in.AppendBinary(nil)
		if err != nil || !bytes.Equal(alone, out[len(prefix):]) {
			t.Fatalf("AppendBinary(nil) = %x, %v; want %x", alone, err, out[len(prefix):])
		}
		var got orchestrix.Envelope
		if err := got.UnmarshalBinary(out[len(prefix):]); err != nil {
			t.Fatalf("UnmarshalBinary() error = %v", err)
		}
		if !envelopesEqual(in, got) {
			t.Fatalf("round trip changed the envelope:\n%+v\n%+v", in, got)
		}
	})
}
