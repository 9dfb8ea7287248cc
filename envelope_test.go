package orchestrix_test

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/orchestrix/orchestrix"
)

// fullEnvelope returns an envelope with every attribute set.
func fullEnvelope() orchestrix.Envelope {
	return orchestrix.Envelope{
		ID:              "0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b",
		Source:          "/orchestrix/bank",
		SpecVersion:     orchestrix.SpecVersion,
		Type:            "bank.AccountOpened",
		Subject:         "account-42",
		Time:            time.Date(2026, 11, 25, 10, 30, 0, 123456789, time.UTC),
		DataContentType: "application/json",
		DataSchema:      "https://schemas.example.com/bank/account-opened/v2",
		SchemaVersion:   2,
		Sequence:        17,
		CorrelationID:   "corr-1",
		CausationID:     "cmd-9",
		TraceParent:     "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
		Extensions:      map[string]string{"tenant": "acme", "region": "eu1"},
		Data:            []byte(`{"owner":"Ada","balance":100}`),
	}
}

// envelopesEqual compares envelopes attribute by attribute: times as
// instants, empty and nil Data and Extensions as equal, SpecVersion "" as
// "1.0".
func envelopesEqual(a, b orchestrix.Envelope) bool {
	sv := func(s string) string {
		if s == "" {
			return orchestrix.SpecVersion
		}
		return s
	}
	return a.ID == b.ID && a.Source == b.Source && sv(a.SpecVersion) == sv(b.SpecVersion) &&
		a.Type == b.Type && a.Subject == b.Subject && a.Time.Equal(b.Time) &&
		a.DataContentType == b.DataContentType && a.DataSchema == b.DataSchema &&
		a.SchemaVersion == b.SchemaVersion && a.Sequence == b.Sequence &&
		a.CorrelationID == b.CorrelationID && a.CausationID == b.CausationID &&
		a.TraceParent == b.TraceParent && maps.Equal(a.Extensions, b.Extensions) &&
		bytes.Equal(a.Data, b.Data)
}

func TestNewID_Call_ReturnsOrderedUUIDv7(t *testing.T) {
	seen := make(map[string]bool)
	prev := ""
	for range 1000 {
		id := orchestrix.NewID()
		if len(id) != 36 || id[14] != '7' {
			t.Fatalf("NewID() = %q, want a UUIDv7 string", id)
		}
		if seen[id] {
			t.Fatalf("NewID() returned %q twice", id)
		}
		seen[id] = true
		if id <= prev {
			t.Fatalf("NewID() = %q after %q, want increasing ids", id, prev)
		}
		prev = id
	}
}

func TestEnvelope_Validate_FullEnvelope_ReturnsNil(t *testing.T) {
	if err := fullEnvelope().Validate(); err != nil {
		t.Fatalf("Validate() = %v, want nil", err)
	}
	minimal := orchestrix.Envelope{ID: "1", Source: "s", Type: "t"}
	if err := minimal.Validate(); err != nil {
		t.Fatalf("Validate(minimal) = %v, want nil", err)
	}
}

func TestEnvelope_Validate_InvalidAttribute_ReturnsAttributeError(t *testing.T) {
	tests := []struct {
		name      string
		mutate    func(*orchestrix.Envelope)
		attribute string
	}{
		{"missing id", func(e *orchestrix.Envelope) { e.ID = "" }, "id"},
		{"blank id", func(e *orchestrix.Envelope) { e.ID = "  " }, "id"},
		{"missing source", func(e *orchestrix.Envelope) { e.Source = "" }, "source"},
		{"source not a URI reference", func(e *orchestrix.Envelope) { e.Source = "%zz" }, "source"},
		{"missing type", func(e *orchestrix.Envelope) { e.Type = "" }, "type"},
		{"wrong specversion", func(e *orchestrix.Envelope) { e.SpecVersion = "0.3" }, "specversion"},
		{"blank subject", func(e *orchestrix.Envelope) { e.Subject = "\t" }, "subject"},
		{"invalid UTF-8 subject", func(e *orchestrix.Envelope) { e.Subject = "a\xffb" }, "subject"},
		{"bad content type", func(e *orchestrix.Envelope) { e.DataContentType = "json" }, "datacontenttype"},
		{"bad content type params", func(e *orchestrix.Envelope) { e.DataContentType = "text/plain; =x" }, "datacontenttype"},
		{"relative dataschema", func(e *orchestrix.Envelope) { e.DataSchema = "/schemas/x" }, "dataschema"},
		{"negative schema version", func(e *orchestrix.Envelope) { e.SchemaVersion = -1 }, "schemaversion"},
		{"huge schema version", func(e *orchestrix.Envelope) { e.SchemaVersion = math.MaxInt32 + 1 }, "schemaversion"},
		{"year after 9999", func(e *orchestrix.Envelope) { e.Time = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC) }, "time"},
		{"invalid UTF-8 traceparent", func(e *orchestrix.Envelope) { e.TraceParent = "\xc3" }, "traceparent"},
		{"upper-case extension", func(e *orchestrix.Envelope) { e.Extensions = map[string]string{"Tenant": "x"} }, "Tenant"},
		{"empty extension name", func(e *orchestrix.Envelope) { e.Extensions = map[string]string{"": "x"} }, ""},
		{"long extension name", func(e *orchestrix.Envelope) {
			e.Extensions = map[string]string{strings.Repeat("a", 21): "x"}
		}, strings.Repeat("a", 21)},
		{"reserved extension name", func(e *orchestrix.Envelope) { e.Extensions = map[string]string{"sequence": "1"} }, "sequence"},
		{"invalid UTF-8 extension value", func(e *orchestrix.Envelope) { e.Extensions = map[string]string{"x": "\xff"} }, "x"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := fullEnvelope()
			tt.mutate(&e)
			err := e.Validate()
			if !errors.Is(err, orchestrix.ErrInvalidEnvelope) {
				t.Fatalf("Validate() = %v, want an error matching ErrInvalidEnvelope", err)
			}
			var ae *orchestrix.AttributeError
			if !errors.As(err, &ae) || ae.Attribute != tt.attribute {
				t.Fatalf("Validate() = %v, want *AttributeError for %q", err, tt.attribute)
			}
		})
	}
}

func TestEnvelope_Validate_MediaTypeWithParameters_ReturnsNil(t *testing.T) {
	e := fullEnvelope()
	e.DataContentType = "application/json; charset=utf-8"
	if err := e.Validate(); err != nil {
		t.Fatalf("Validate() = %v, want nil", err)
	}
}

func TestEnvelope_MarshalBinary_RoundTrip_ReturnsEqualEnvelope(t *testing.T) {
	minimal := orchestrix.Envelope{ID: "1", Source: "s", Type: "t"}
	local := fullEnvelope()
	local.Time = time.Date(1969, 7, 20, 20, 17, 40, 5, time.FixedZone("X", -5*3600))
	binaryData := fullEnvelope()
	binaryData.DataContentType = "application/octet-stream"
	binaryData.Data = []byte{0, 1, 2, 0xff}
	for name, in := range map[string]orchestrix.Envelope{
		"full": fullEnvelope(), "minimal": minimal, "local time before 1970": local, "binary data": binaryData,
	} {
		t.Run(name, func(t *testing.T) {
			b, err := in.MarshalBinary()
			if err != nil {
				t.Fatalf("MarshalBinary() error = %v", err)
			}
			var out orchestrix.Envelope
			if err := out.UnmarshalBinary(b); err != nil {
				t.Fatalf("UnmarshalBinary() error = %v", err)
			}
			if !envelopesEqual(in, out) {
				t.Fatalf("round trip = %+v, want %+v", out, in)
			}
			if out.SpecVersion != orchestrix.SpecVersion {
				t.Fatalf("SpecVersion = %q, want %q", out.SpecVersion, orchestrix.SpecVersion)
			}
			if out.Time.Location() != time.UTC {
				t.Fatalf("Time location = %v, want UTC", out.Time.Location())
			}
			again, err := out.MarshalBinary()
			if err != nil || !bytes.Equal(again, b) {
				t.Fatalf("re-encoding gave different bytes (err %v)", err)
			}
		})
	}
}

func TestEnvelope_UnmarshalBinary_DoesNotAliasInput(t *testing.T) {
	b, err := fullEnvelope().MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	var out orchestrix.Envelope
	if err := out.UnmarshalBinary(b); err != nil {
		t.Fatal(err)
	}
	for i := range b {
		b[i] = 0
	}
	if !envelopesEqual(out, fullEnvelope()) {
		t.Fatalf("decoded envelope changed when the input buffer was overwritten: %+v", out)
	}
}

func TestEnvelope_UnmarshalBinaryBorrowed_AliasesInputWithoutAllocating(t *testing.T) {
	b, err := typicalEnvelope().MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	var out orchestrix.Envelope
	allocs := testing.AllocsPerRun(100, func() {
		if err := out.UnmarshalBinaryBorrowed(b); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("UnmarshalBinaryBorrowed allocated %v times per call, want 0", allocs)
	}
	if !envelopesEqual(out, typicalEnvelope()) {
		t.Fatalf("UnmarshalBinaryBorrowed() = %+v, want %+v", out, typicalEnvelope())
	}
	// Overwriting the input shows through: the envelope is borrowed.
	for i := range b {
		b[i] = 'z'
	}
	if want := typicalEnvelope(); out.ID == want.ID || string(out.Data) == string(want.Data) {
		t.Fatalf("UnmarshalBinaryBorrowed copied its input: %+v", out)
	}
}

func TestEnvelope_MarshalBinary_InvalidEnvelope_ReturnsErrInvalidEnvelope(t *testing.T) {
	_, err := orchestrix.Envelope{Source: "s", Type: "t"}.MarshalBinary()
	if !errors.Is(err, orchestrix.ErrInvalidEnvelope) {
		t.Fatalf("MarshalBinary() = %v, want ErrInvalidEnvelope", err)
	}
}

func TestEnvelope_UnmarshalBinary_TruncatedInput_ReturnsErrCorrupt(t *testing.T) {
	b, err := fullEnvelope().MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	for n := range len(b) {
		var out orchestrix.Envelope
		err := out.UnmarshalBinary(b[:n])
		if !errors.Is(err, orchestrix.ErrCorrupt) {
			t.Fatalf("UnmarshalBinary(first %d of %d bytes) = %v, want ErrCorrupt", n, len(b), err)
		}
	}
}

func TestEnvelope_UnmarshalBinary_Garbage_ReturnsError(t *testing.T) {
	valid, err := fullEnvelope().MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	tests := map[string][]byte{
		"empty":            nil,
		"unknown version":  append([]byte{9}, valid[1:]...),
		"unknown flags":    append([]byte{1, 0x80}, valid[2:]...),
		"trailing bytes":   append(append([]byte{}, valid...), 0),
		"huge length":      {1, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01},
		"overlong varint":  {1, 0, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80},
		"huge ext count":   {1, 0, 1, 'a', 1, 'b', 1, 'c', 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x0f, 0},
		"duplicate ext":    {1, 0, 1, 'a', 1, 'b', 1, 'c', 0, 0, 0, 0, 0, 0, 0, 0, 2, 1, 'x', 0, 1, 'x', 0, 0},
		"nanos too large":  {1, 1, 1, 'a', 1, 'b', 1, 'c', 0, 0, 0, 0, 0, 0, 0, 0x80, 0x94, 0xeb, 0xdc, 0x03, 0, 0, 0, 0},
		"bad time varint":  {1, 1, 1, 'a', 1, 'b', 1, 'c', 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01},
		"schema too large": {1, 0, 1, 'a', 1, 'b', 1, 'c', 0, 0, 0, 0, 0, 0, 0x80, 0x80, 0x80, 0x80, 0x08, 0, 0, 0},
		"ext out of order": {1, 0, 1, 'a', 1, 'b', 1, 'c', 0, 0, 0, 0, 0, 0, 0, 0, 2, 1, 'y', 0, 1, 'x', 0, 0},
		"data too long":    {1, 0, 1, 'a', 1, 'b', 1, 'c', 0, 0, 0, 0, 0, 0, 0, 0, 0, 5, 'x'},
		"missing data len": {1, 0, 1, 'a', 1, 'b', 1, 'c', 0, 0, 0, 0, 0, 0, 0, 0, 0},
	}
	for name, b := range tests {
		t.Run(name, func(t *testing.T) {
			out := orchestrix.Envelope{ID: "keep"}
			err := out.UnmarshalBinary(b)
			if !errors.Is(err, orchestrix.ErrCorrupt) {
				t.Fatalf("UnmarshalBinary() = %v, want ErrCorrupt", err)
			}
			if out.ID != "keep" {
				t.Fatalf("UnmarshalBinary() changed the envelope on error: %+v", out)
			}
		})
	}
}

func TestEnvelope_UnmarshalBinary_WellFormedInvalidEnvelope_DecodesWithoutValidating(t *testing.T) {
	// An envelope without id, source or type: structurally sound, so it
	// decodes; Validate is the caller's business.
	b := []byte{1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}
	var out orchestrix.Envelope
	if err := out.UnmarshalBinary(b); err != nil {
		t.Fatalf("UnmarshalBinary() = %v, want nil", err)
	}
	if !envelopesEqual(out, orchestrix.Envelope{}) {
		t.Fatalf("UnmarshalBinary() = %+v, want the zero envelope", out)
	}
	if err := out.Validate(); !errors.Is(err, orchestrix.ErrInvalidEnvelope) {
		t.Fatalf("Validate() of the decoded envelope = %v, want ErrInvalidEnvelope", err)
	}
}

func TestEnvelope_AppendBinary_InvalidButEncodable_RoundTrips(t *testing.T) {
	in := orchestrix.Envelope{
		Source:        "%zz",
		Type:          " ",
		Subject:       "a\xffb",
		Time:          time.Date(12000, 1, 1, 0, 0, 0, 1, time.UTC),
		SchemaVersion: math.MaxInt32,
		Sequence:      math.MaxUint64,
		TraceParent:   "\xc3",
		Extensions:    map[string]string{"sequence": "1", "Upper": "\xff", "": "empty name"},
		Data:          []byte{0xff},
	}
	if err := in.Validate(); err == nil {
		t.Fatal("test envelope unexpectedly valid")
	}
	b, err := in.AppendBinary(nil)
	if err != nil {
		t.Fatalf("AppendBinary() error = %v, want nil", err)
	}
	var out orchestrix.Envelope
	if err := out.UnmarshalBinary(b); err != nil {
		t.Fatalf("UnmarshalBinary() error = %v", err)
	}
	if !envelopesEqual(in, out) {
		t.Fatalf("round trip = %+v, want %+v", out, in)
	}
	if _, err := in.MarshalBinary(); !errors.Is(err, orchestrix.ErrInvalidEnvelope) {
		t.Fatalf("MarshalBinary() = %v, want ErrInvalidEnvelope", err)
	}
}

func TestEnvelope_AppendBinary_Unencodable_ReturnsErrInvalidEnvelope(t *testing.T) {
	tests := map[string]func(*orchestrix.Envelope){
		"other specversion":       func(e *orchestrix.Envelope) { e.SpecVersion = "0.3" },
		"negative schema version": func(e *orchestrix.Envelope) { e.SchemaVersion = -1 },
		"huge schema version":     func(e *orchestrix.Envelope) { e.SchemaVersion = math.MaxInt32 + 1 },
	}
	for name, mutate := range tests {
		t.Run(name, func(t *testing.T) {
			e := fullEnvelope()
			mutate(&e)
			prefix := []byte("prefix")
			got, err := e.AppendBinary(prefix)
			if !errors.Is(err, orchestrix.ErrInvalidEnvelope) {
				t.Fatalf("AppendBinary() error = %v, want ErrInvalidEnvelope", err)
			}
			if string(got) != "prefix" {
				t.Fatalf("AppendBinary() = %q on error, want the buffer unchanged", got)
			}
		})
	}
}

func TestEnvelope_AppendBinary_Prefix_AppendsMarshalBinaryBytes(t *testing.T) {
	e := fullEnvelope()
	want, err := e.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 3, 1024)
	copy(buf, "abc")
	got, err := e.AppendBinary(buf)
	if err != nil {
		t.Fatalf("AppendBinary() error = %v", err)
	}
	if string(got[:3]) != "abc" || !bytes.Equal(got[3:], want) {
		t.Fatalf("AppendBinary(%q) = %q, want the prefix followed by %q", "abc", got, want)
	}
	if &got[0] != &buf[0] {
		t.Fatal("AppendBinary() reallocated a buffer that had room")
	}
}

func TestEnvelope_AppendBinary_ManyExtensions_IsDeterministic(t *testing.T) {
	e := fullEnvelope()
	e.Extensions = make(map[string]string)
	for i := range 40 {
		e.Extensions[fmt.Sprintf("ext%02d", 39-i)] = strings.Repeat("v", i)
	}
	first, err := e.AppendBinary(nil)
	if err != nil {
		t.Fatal(err)
	}
	for range 5 {
		again, err := e.AppendBinary(nil)
		if err != nil || !bytes.Equal(again, first) {
			t.Fatalf("AppendBinary() gave different bytes for the same envelope (err %v)", err)
		}
	}
	var out orchestrix.Envelope
	if err := out.UnmarshalBinary(first); err != nil {
		t.Fatalf("UnmarshalBinary() error = %v", err)
	}
	if !envelopesEqual(e, out) {
		t.Fatalf("round trip = %+v, want %+v", out, e)
	}
}

func TestEnvelope_UnmarshalBinary_WriteToData_LeavesOtherFieldsIntact(t *testing.T) {
	b, err := fullEnvelope().MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	var out orchestrix.Envelope
	if err := out.UnmarshalBinary(b); err != nil {
		t.Fatal(err)
	}
	for i := range out.Data {
		out.Data[i] = 'z'
	}
	grown := append(out.Data, "more bytes to force a reallocation"...)
	grown[0] = 'y'
	want := fullEnvelope()
	want.Data = bytes.Repeat([]byte("z"), len(want.Data))
	if !envelopesEqual(out, want) {
		t.Fatalf("writing to Data changed other fields: %+v", out)
	}
}

func BenchmarkEnvelope_MarshalBinary(b *testing.B) {
	e := fullEnvelope()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := e.MarshalBinary(); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEnvelope_UnmarshalBinary(b *testing.B) {
	data, err := fullEnvelope().MarshalBinary()
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		var e orchestrix.Envelope
		if err := e.UnmarshalBinary(data); err != nil {
			b.Fatal(err)
		}
	}
}
