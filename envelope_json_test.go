package orchestrix_test

import (
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2/event"

	"github.com/orchestrix/orchestrix"
)

func TestEnvelope_MarshalJSON_RoundTrip_ReturnsEqualEnvelope(t *testing.T) {
	textData := fullEnvelope()
	textData.DataContentType = "text/plain; charset=utf-8"
	textData.Data = []byte("hello")
	binaryData := fullEnvelope()
	binaryData.DataContentType = "application/octet-stream"
	binaryData.Data = []byte{0, 0xff, 1}
	noContentType := fullEnvelope()
	noContentType.DataContentType = ""
	notJSON := fullEnvelope()
	notJSON.Data = []byte("{not json")
	plusJSON := fullEnvelope()
	plusJSON.DataContentType = "application/vnd.orchestrix+json"
	escapes := fullEnvelope()
	escapes.Subject = "quote\" backslash\\ newline\n tab\t nul\x00 sep\u2028 é"
	for name, in := range map[string]orchestrix.Envelope{
		"full":            fullEnvelope(),
		"minimal":         {ID: "1", Source: "s", Type: "t"},
		"text data":       textData,
		"binary data":     binaryData,
		"no content type": noContentType,
		"invalid JSON":    notJSON,
		"+json":           plusJSON,
		"escapes":         escapes,
	} {
		t.Run(name, func(t *testing.T) {
			b, err := json.Marshal(in)
			if err != nil {
				t.Fatalf("Marshal() error = %v", err)
			}
			var out orchestrix.Envelope
			if err := json.Unmarshal(b, &out); err != nil {
				t.Fatalf("Unmarshal(%s) error = %v", b, err)
			}
			if !envelopesEqual(in, out) {
				t.Fatalf("round trip through %s = %+v, want %+v", b, out, in)
			}
		})
	}
}

func TestEnvelope_MarshalJSON_JSONData_WritesDataAsJSONValue(t *testing.T) {
	b, err := json.Marshal(fullEnvelope())
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	data, ok := m["data"].(map[string]any)
	if !ok || data["owner"] != "Ada" {
		t.Fatalf("data member = %#v, want the JSON object", m["data"])
	}
	if _, ok := m["data_base64"]; ok {
		t.Fatal("data_base64 written for JSON data")
	}
	if m["sequence"] != "17" || m["schemaversion"] != float64(2) || m["tenant"] != "acme" ||
		m["time"] != "2026-11-25T10:30:00.123456789Z" || m["specversion"] != "1.0" {
		t.Fatalf("attributes = %v", m)
	}
}

func TestEnvelope_MarshalJSON_BinaryData_WritesDataBase64(t *testing.T) {
	e := fullEnvelope()
	e.DataContentType = "application/octet-stream"
	e.Data = []byte{1, 2, 3}
	b, err := json.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"data_base64":"AQID"`) || strings.Contains(string(b), `"data":`) {
		t.Fatalf("Marshal() = %s, want data_base64 only", b)
	}
}

func TestEnvelope_MarshalJSON_InvalidEnvelope_ReturnsErrInvalidEnvelope(t *testing.T) {
	_, err := json.Marshal(orchestrix.Envelope{ID: "1", Type: "t"})
	if !errors.Is(err, orchestrix.ErrInvalidEnvelope) {
		t.Fatalf("Marshal() = %v, want ErrInvalidEnvelope", err)
	}
}

func TestDecodeJSON_BadInput_ReturnsErrInvalidEnvelope(t *testing.T) {
	tests := map[string]string{
		"malformed":                `{"specversion":"1.0",`,
		"not an object":            `[1,2]`,
		"null":                     `null`,
		"missing specversion":      `{"id":"1","source":"s","type":"t"}`,
		"wrong specversion":        `{"specversion":"0.3","id":"1","source":"s","type":"t"}`,
		"numeric specversion":      `{"specversion":1.0,"id":"1","source":"s","type":"t"}`,
		"missing id":               `{"specversion":"1.0","source":"s","type":"t"}`,
		"empty source":             `{"specversion":"1.0","id":"1","source":"","type":"t"}`,
		"missing type":             `{"specversion":"1.0","id":"1","source":"s"}`,
		"numeric id":               `{"specversion":"1.0","id":1,"source":"s","type":"t"}`,
		"bad time":                 `{"specversion":"1.0","id":"1","source":"s","type":"t","time":"yesterday"}`,
		"negative sequence":        `{"specversion":"1.0","id":"1","source":"s","type":"t","sequence":"-1"}`,
		"fractional schemaversion": `{"specversion":"1.0","id":"1","source":"s","type":"t","schemaversion":1.5}`,
		"huge schemaversion":       `{"specversion":"1.0","id":"1","source":"s","type":"t","schemaversion":2147483648}`,
		"object extension":         `{"specversion":"1.0","id":"1","source":"s","type":"t","ext":{}}`,
		"bad extension name":       `{"specversion":"1.0","id":"1","source":"s","type":"t","Ext":"x"}`,
		"both data members":        `{"specversion":"1.0","id":"1","source":"s","type":"t","data":1,"data_base64":"AQ=="}`,
		"bad base64":               `{"specversion":"1.0","id":"1","source":"s","type":"t","data_base64":"!!"}`,
		"repeated attribute":       `{"specversion":"1.0","id":"1","id":"2","source":"s","type":"t"}`,
		"repeated extension":       `{"specversion":"1.0","id":"1","source":"s","type":"t","x":"1","x":"2"}`,
		"trailing data":            `{"specversion":"1.0","id":"1","source":"s","type":"t"} {}`,
		"unterminated data":        `{"specversion":"1.0","id":"1","source":"s","type":"t","data":{"a":[1}`,
		"bad escape":               `{"specversion":"1.0","id":"\q","source":"s","type":"t"}`,
		"non-string text data":     `{"specversion":"1.0","id":"1","source":"s","type":"t","datacontenttype":"text/plain","data":{}}`,
	}
	for name, in := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := orchestrix.DecodeJSON([]byte(in), orchestrix.DecodeOptions{})
			if !errors.Is(err, orchestrix.ErrInvalidEnvelope) {
				t.Fatalf("DecodeJSON(%s) = %v, want ErrInvalidEnvelope", in, err)
			}
		})
	}
}

func TestDecodeJSON_MissingAttribute_NamesAttribute(t *testing.T) {
	_, err := orchestrix.DecodeJSON([]byte(`{"specversion":"1.0","id":"1","type":"t"}`), orchestrix.DecodeOptions{})
	var ae *orchestrix.AttributeError
	if !errors.As(err, &ae) || ae.Attribute != "source" {
		t.Fatalf("DecodeJSON() = %v, want *AttributeError for source", err)
	}
}

func TestDecodeJSON_DataOverLimit_ReturnsErrTooLarge(t *testing.T) {
	big := `"` + strings.Repeat("a", 100) + `"`
	tests := map[string]string{
		"json data":   `{"specversion":"1.0","id":"1","source":"s","type":"t","data":` + big + `}`,
		"text data":   `{"specversion":"1.0","id":"1","source":"s","type":"t","datacontenttype":"text/plain","data":` + big + `}`,
		"base64 data": `{"specversion":"1.0","id":"1","source":"s","type":"t","data_base64":` + big + `}`,
	}
	for name, in := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := orchestrix.DecodeJSON([]byte(in), orchestrix.DecodeOptions{MaxDataSize: 50})
			if !errors.Is(err, orchestrix.ErrTooLarge) {
				t.Fatalf("DecodeJSON() = %v, want ErrTooLarge", err)
			}
			if _, err := orchestrix.DecodeJSON([]byte(in), orchestrix.DecodeOptions{MaxDataSize: -1}); err != nil {
				t.Fatalf("DecodeJSON(no limit) = %v, want nil", err)
			}
		})
	}
}

func TestEnvelope_UnmarshalJSON_DataOverDefaultLimit_ReturnsErrTooLarge(t *testing.T) {
	e := fullEnvelope()
	e.DataContentType = "application/octet-stream"
	e.Data = make([]byte, orchestrix.DefaultMaxDataSize+1)
	b, err := json.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	var out orchestrix.Envelope
	if err := json.Unmarshal(b, &out); !errors.Is(err, orchestrix.ErrTooLarge) {
		t.Fatalf("Unmarshal() = %v, want ErrTooLarge", err)
	}
	e.Data = e.Data[:orchestrix.DefaultMaxDataSize]
	if b, err = json.Marshal(e); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatalf("Unmarshal(at the limit) = %v, want nil", err)
	}
}

func TestDecodeJSON_LenientForms_Decodes(t *testing.T) {
	in := `{"specversion":"1.0","id":"1","source":"s","type":"t","subject":null,
		"time":"2026-11-25T11:30:00+01:00","sequence":42,"schemaversion":"3",
		"flag":true,"count":7,"gone":null,"datacontenttype":"text/plain","data":"hi"}`
	e, err := orchestrix.DecodeJSON([]byte(in), orchestrix.DecodeOptions{})
	if err != nil {
		t.Fatalf("DecodeJSON() error = %v", err)
	}
	want := orchestrix.Envelope{
		ID: "1", Source: "s", SpecVersion: "1.0", Type: "t",
		Time:     time.Date(2026, 11, 25, 10, 30, 0, 0, time.UTC),
		Sequence: 42, SchemaVersion: 3, DataContentType: "text/plain",
		Extensions: map[string]string{"flag": "true", "count": "7"},
		Data:       []byte("hi"),
	}
	if !envelopesEqual(e, want) || e.Time.Location() != time.UTC {
		t.Fatalf("DecodeJSON() = %+v, want %+v", e, want)
	}
}

// TestEnvelope_MarshalJSON_SDKReadsIt checks our JSON against the official
// CloudEvents Go SDK: it must parse and validate with every attribute equal.
func TestEnvelope_MarshalJSON_SDKReadsIt(t *testing.T) {
	textData := fullEnvelope()
	textData.DataContentType = "text/plain"
	textData.Data = []byte("hello")
	binaryData := fullEnvelope()
	binaryData.DataContentType = "application/octet-stream"
	binaryData.Data = []byte{0, 0xff}
	for name, in := range map[string]orchestrix.Envelope{
		"full": fullEnvelope(), "text": textData, "binary": binaryData,
		"minimal": {ID: "1", Source: "s", Type: "t"},
	} {
		t.Run(name, func(t *testing.T) {
			b, err := json.Marshal(in)
			if err != nil {
				t.Fatal(err)
			}
			var ce cloudevents.Event
			if err := json.Unmarshal(b, &ce); err != nil {
				t.Fatalf("SDK Unmarshal(%s) error = %v", b, err)
			}
			if err := ce.Validate(); err != nil {
				t.Fatalf("SDK Validate() = %v", err)
			}
			got := fromSDK(t, ce)
			if !envelopesEqual(got, in) {
				t.Fatalf("SDK read %+v, want %+v", got, in)
			}
		})
	}
}

// TestDecodeJSON_SDKWroteIt checks that JSON written by the official
// CloudEvents Go SDK decodes with every attribute equal.
func TestDecodeJSON_SDKWroteIt(t *testing.T) {
	ce := cloudevents.New()
	ce.SetID("0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b")
	ce.SetSource("/orchestrix/bank")
	ce.SetType("bank.AccountOpened")
	ce.SetSubject("account-42")
	ce.SetTime(time.Date(2026, 11, 25, 10, 30, 0, 123456789, time.UTC))
	ce.SetDataSchema("https://schemas.example.com/v2")
	ce.SetExtension("sequence", "17")
	ce.SetExtension("schemaversion", 2)
	ce.SetExtension("correlationid", "corr-1")
	ce.SetExtension("causationid", "cmd-9")
	ce.SetExtension("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	ce.SetExtension("tenant", "acme")
	ce.SetExtension("priority", 5)
	if err := ce.SetData("application/json", map[string]any{"owner": "Ada"}); err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(ce)
	if err != nil {
		t.Fatal(err)
	}
	var got orchestrix.Envelope
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatalf("Unmarshal(%s) error = %v", b, err)
	}
	want := orchestrix.Envelope{
		ID: ce.ID(), Source: ce.Source(), SpecVersion: "1.0", Type: ce.Type(), Subject: ce.Subject(),
		Time: ce.Time(), DataContentType: "application/json", DataSchema: ce.DataSchema(),
		SchemaVersion: 2, Sequence: 17, CorrelationID: "corr-1", CausationID: "cmd-9",
		TraceParent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
		Extensions:  map[string]string{"tenant": "acme", "priority": "5"},
		Data:        ce.Data(),
	}
	if !envelopesEqual(got, want) {
		t.Fatalf("decoded %+v, want %+v", got, want)
	}

	// Binary data written by the SDK arrives in data_base64.
	if err := ce.SetData("application/octet-stream", []byte{0, 1, 0xff}); err != nil {
		t.Fatal(err)
	}
	if b, err = json.Marshal(ce); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatalf("Unmarshal(%s) error = %v", b, err)
	}
	if string(got.Data) != "\x00\x01\xff" || got.DataContentType != "application/octet-stream" {
		t.Fatalf("decoded data %q (%s), want the SDK's bytes", got.Data, got.DataContentType)
	}
}

// fromSDK converts an SDK event to an envelope, attribute by attribute.
func fromSDK(t *testing.T, ce cloudevents.Event) orchestrix.Envelope {
	t.Helper()
	e := orchestrix.Envelope{
		ID: ce.ID(), Source: ce.Source(), SpecVersion: ce.SpecVersion(), Type: ce.Type(),
		Subject: ce.Subject(), Time: ce.Time(), DataContentType: ce.DataContentType(),
		DataSchema: ce.DataSchema(), Data: ce.Data(),
	}
	for name, v := range ce.Extensions() {
		s, ok := v.(string)
		switch {
		case name == "sequence" && ok:
			n, err := strconv.ParseUint(s, 10, 64)
			if err != nil {
				t.Fatalf("sequence %q: %v", s, err)
			}
			e.Sequence = n
		case name == "schemaversion":
			n, isInt := v.(int32)
			if !isInt {
				t.Fatalf("schemaversion is %T, want int32", v)
			}
			e.SchemaVersion = int(n)
		case name == "correlationid" && ok:
			e.CorrelationID = s
		case name == "causationid" && ok:
			e.CausationID = s
		case name == "traceparent" && ok:
			e.TraceParent = s
		case ok:
			if e.Extensions == nil {
				e.Extensions = map[string]string{}
			}
			e.Extensions[name] = s
		default:
			t.Fatalf("extension %q is %T, want string", name, v)
		}
	}
	return e
}

func BenchmarkEnvelope_MarshalJSON(b *testing.B) {
	e := fullEnvelope()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := e.MarshalJSON(); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeJSON(b *testing.B) {
	data, err := json.Marshal(fullEnvelope())
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := orchestrix.DecodeJSON(data, orchestrix.DecodeOptions{}); err != nil {
			b.Fatal(err)
		}
	}
}
