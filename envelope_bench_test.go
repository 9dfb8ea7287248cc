package orchestrix_test

import (
	"strings"
	"testing"
	"time"

	"github.com/orchestrix/orchestrix"
)

// typicalEnvelope returns the envelope a command handler typically
// produces: every commonly set attribute and a 200-byte JSON payload.
func typicalEnvelope() orchestrix.Envelope {
	return orchestrix.Envelope{
		ID:              "0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b",
		Source:          "/orchestrix/bank",
		Type:            "bank.MoneyDeposited",
		Subject:         "account-42",
		Time:            time.Date(2026, 11, 25, 10, 30, 0, 123456789, time.UTC),
		DataContentType: "application/json",
		SchemaVersion:   1,
		Sequence:        1234,
		CausationID:     "0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5c",
		CorrelationID:   "0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5d",
		Data:            []byte(`{"account":"account-42","amount":100,"memo":"` + strings.Repeat("x", 200-48) + `"}`),
	}
}

func BenchmarkEnvelope_MarshalBinary_Typical(b *testing.B) {
	e := typicalEnvelope()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := e.MarshalBinary(); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEnvelope_UnmarshalBinary_Typical(b *testing.B) {
	data, err := typicalEnvelope().MarshalBinary()
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

func BenchmarkEnvelope_Validate_Typical(b *testing.B) {
	e := typicalEnvelope()
	b.ReportAllocs()
	for b.Loop() {
		if err := e.Validate(); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEnvelope_Validate_Full(b *testing.B) {
	e := fullEnvelope()
	b.ReportAllocs()
	for b.Loop() {
		if err := e.Validate(); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEnvelope_AppendBinary_Typical(b *testing.B) {
	e := typicalEnvelope()
	buf := make([]byte, 0, 1024)
	b.ReportAllocs()
	for b.Loop() {
		var err error
		if buf, err = e.AppendBinary(buf[:0]); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEnvelope_AppendBinary_Full(b *testing.B) {
	e := fullEnvelope()
	buf := make([]byte, 0, 1024)
	b.ReportAllocs()
	for b.Loop() {
		var err error
		if buf, err = e.AppendBinary(buf[:0]); err != nil {
			b.Fatal(err)
		}
	}
}
