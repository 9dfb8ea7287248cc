package orchestrix

// These tests hold the Registry's fast JSON payload decoder to
// encoding/json: for every input and type below, decodeFastJSON must give
// the value json.Unmarshal gives into a fresh zero value, or the very
// same error.

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	jsonv1 "github.com/go-json-experiment/json/v1"
)

type fjUpper string

// UnmarshalJSON upper-cases a JSON string and rejects anything else.
func (u *fjUpper) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("fjUpper: %w", err)
	}
	*u = fjUpper(strings.ToUpper(s))
	return nil
}

// fjRaw records the raw bytes UnmarshalJSON is given, including null.
type fjRaw struct{ Seen string }

func (r *fjRaw) UnmarshalJSON(b []byte) error {
	r.Seen = "raw:" + string(b)
	return nil
}

// fjValueRecv has a value-receiver UnmarshalJSON (never called usefully).
type fjValueRecv struct{ N int }

func (fjValueRecv) UnmarshalJSON([]byte) error { return nil }

// fjText is a TextUnmarshaler, usable as a map key.
type fjText struct{ A, B string }

func (t *fjText) UnmarshalText(b []byte) error {
	a, bb, ok := strings.Cut(string(b), ":")
	if !ok {
		return errors.New("fjText: want a:b")
	}
	t.A, t.B = a, bb
	return nil
}

type fjBoth struct{ From string }

func (b *fjBoth) UnmarshalJSON(raw []byte) error { b.From = "json " + string(raw); return nil }
func (b *fjBoth) UnmarshalText(raw []byte) error { b.From = "text " + string(raw); return nil }

type fjInner struct {
	X     int
	Y     string `json:"y,omitempty"`
	Inner *fjInner
}

type fjEmbedded struct {
	E1 int
	Y  string // shadowed by fjKitchen.Y
}

type fjEmbedded2 struct {
	E2 string
	Z  int // conflicts with fjEmbedded3.Z at the same depth: dropped
}

type fjEmbedded3 struct {
	Z  int
	E3 bool
}

type fjunexported struct {
	U int
}

type fjKitchen struct {
	fjEmbedded
	*fjEmbedded2
	fjEmbedded3
	fjunexported
	Name string `json:"name"`
	Y    string `json:"Y"`
	Skip string `json:"-"`
	//lint:ignore SA5008 the "-," tag (a field named "-") is one of the cases under test
	Dash    string             `json:"-,"`
	U8      uint8              `json:"u8"`
	I       int                `json:"i"`
	F32     float32            `json:"f32"`
	F       float64            `json:"f"`
	P       *int               `json:"p"`
	PP      **string           `json:"pp"`
	S       []int              `json:"s"`
	A       [2]int             `json:"a"`
	BA      [3]byte            `json:"ba"`
	B       []byte             `json:"b"`
	M       map[string]int     `json:"m"`
	MI      map[int]string     `json:"mi"`
	MU      map[uint8]bool     `json:"mu"`
	MT      map[fjText]int     `json:"mt"`
	Any     any                `json:"any"`
	MA      map[string]any     `json:"ma"`
	Raw     json.RawMessage    `json:"raw"`
	T       time.Time          `json:"t"`
	TP      *time.Time         `json:"tp"`
	D       time.Duration      `json:"d"`
	Up      fjUpper            `json:"up"`
	Ups     []fjUpper          `json:"ups"`
	UpMap   map[string]fjUpper `json:"upmap"`
	RawRec  fjRaw              `json:"rawrec"`
	RawRecP *fjRaw             `json:"rawrecp"`
	ValRecv fjValueRecv        `json:"valrecv"`
	Text    fjText             `json:"text"`
	TextP   *fjText            `json:"textp"`
	Both    fjBoth             `json:"both"`
	Inner   fjInner            `json:"inner"`
	Inners  []fjInner          `json:"inners"`
	Iface   fmt.Stringer       `json:"iface"`
	//lint:ignore U1000 an unexported field is one of the cases under test
	private int
	Unicode string `json:"naïve"`
	Kelvin  int    `json:"k"`
	LongS   int    `json:"s_long"`
	Empty   struct{}
}

// fjStringOpts uses the ",string" option, which the fast path leaves to
// encoding/json: the engines read quoted numbers by different rules.
type fjStringOpts struct {
	IntStr   int64   `json:"intstr,string"`
	BoolStr  bool    `json:"boolstr,string"`
	FloatStr float64 `json:"floatstr,string"`
	StrStr   string  `json:"strstr,string"`
}

// fjInputs are payloads for fjKitchen and the other types: valid,
// unusual, and broken.
var fjInputs = []string{
	`{}`,
	`null`,
	` {"name":"a"} `,
	`{"name":"a","NAME":"b"}`,
	`{"Name":"c"}`,
	`{"nAmE":"d","unknown":[1,{"x":null}],"more":{"a":"b"}}`,
	`{"E1":1,"E2":"two","E3":true,"Z":9,"U":4}`,
	`{"Y":"outer","y":"lower"}`,
	`{"Skip":"no","-":"dash"}`,
	`{"intstr":"42","boolstr":"true","floatstr":"1.5","strstr":"\"q\""}`,
	`{"intstr":42}`,
	`{"intstr":"x"}`,
	`{"boolstr":"maybe"}`,
	`{"strstr":"x"}`,
	`{"intstr":"null"}`,
	`{"intstr":null}`,
	`{"u8":255}`,
	`{"u8":256}`,
	`{"u8":-1}`,
	`{"i":1.5}`,
	`{"i":1e2}`,
	`{"i":"1"}`,
	`{"f32":3.4e39}`,
	`{"f":1e400}`,
	`{"f":-0}`,
	`{"f":0.1,"i":-9223372036854775808}`,
	`{"i":9223372036854775808}`,
	`{"p":5,"pp":"x"}`,
	`{"p":null,"pp":null}`,
	`{"s":[1,2,3],"s":[4]}`,
	`{"s":null}`,
	`{"s":{}}`,
	`{"a":[1]}`,
	`{"a":[1,2,3]}`,
	`{"ba":[1,2,3]}`,
	`{"ba":"AQID"}`,
	`{"b":"AQID"}`,
	`{"b":"AQ\nID"}`,
	`{"b":"AQI"}`,
	`{"b":"AQI="}`,
	`{"b":"!!"}`,
	`{"b":[1,2]}`,
	`{"b":null}`,
	`{"m":{"a":1,"b":2},"m":{"c":3}}`,
	`{"m":{"a":1,"a":2}}`,
	`{"mi":{"1":"a","-2":"b"}}`,
	`{"mi":{"x":"a"}}`,
	`{"mi":{"01":"a"}}`,
	`{"mu":{"255":true,"256":false}}`,
	`{"mt":{"a:b":1}}`,
	`{"mt":{"ab":1}}`,
	`{"any":{"a":[1,"x",true,null,{"b":1.5}]}}`,
	`{"any":12345678901234567890}`,
	`{"ma":{"n":1,"s":"x","l":[],"o":{}}}`,
	`{"raw":{"a" : [1, 2]}}`,
	`{"raw":null}`,
	`{"t":"2026-12-07T10:00:00.123456789+01:00"}`,
	`{"t":"2026-12-07T10:00:00Z","tp":"2026-01-01T00:00:00Z"}`,
	`{"t":"2026-12-07"}`,
	`{"t":null,"tp":null}`,
	`{"t":12}`,
	`{"d":1500000000}`,
	`{"d":"1s"}`,
	`{"up":"abc","ups":["x","y"],"upmap":{"k":"v"}}`,
	`{"up":1}`,
	`{"up":null}`,
	`{"rawrec":null,"rawrecp":null}`,
	`{"rawrec":{"any":  1},"rawrecp":[1, 2]}`,
	`{"valrecv":{"N":3}}`,
	`{"text":"a:b","textp":"c:d"}`,
	`{"text":"ab"}`,
	`{"text":1}`,
	`{"text":null}`,
	`{"both":"s","both":{"o":1}}`,
	`{"inner":{"X":1,"y":"z","Inner":{"X":2,"Inner":null}}}`,
	`{"inner":{"X":1},"inner":{"y":"merged"}}`,
	`{"inners":[{"X":1},{"X":2}]}`,
	`{"iface":null}`,
	`{"iface":"x"}`,
	`{"private":1}`,
	`{"naïve":"u","NAÏVE":"U"}`,
	"{\"\u212a\":7}",
	"{\"s_\u017fong\":8}",
	"{\"name\":\"bad \xff utf8 \xc3\"}",
	"{\"na\xffme\":\"x\"}",
	`{"name":"\ud800 lone, \udc00 lone, \ud83d\ude00 pair"}`,
	`{"name":"\u0000\t\""}`,
	`{"Empty":{"a":1}}`,
	`{"Empty":[]}`,
	`{"name":"a"}x`,
	`{"name":"a"} {}`,
	`{"name":"a",}`,
	`{"name":'a'}`,
	`{"name":"a"`,
	`{name:"a"}`,
	`[1,2]`,
	`"str"`,
	`1`,
	``,
	`   `,
	`{"i":01}`,
	`{"i":1.}`,
	`{"i":.5}`,
	`{"i":+1}`,
	`{"i":NaN}`,
	`{"name":"a\x01"}`,
	"{\"name\":\"tab\there\"}",
	`{"s":[1,2,]}`,
	`{"u8":300,"name":"later"}`,
	`{"i":"x","name":"after a type error"}`,
	`{"inner":{"X":"bad"},"name":"n"}`,
	`{"ups":["ok",1,"late"]}`,
	`{"E2":"two","E2":null}`,
	`{"any":` + strings.Repeat(`[`, 10001) + strings.Repeat(`]`, 10001) + `}`,
	`{"any":` + strings.Repeat(`[`, 500) + strings.Repeat(`]`, 500) + `}`,
}

// fjNumber holds an encoding/json.Number, which the fast path leaves to
// encoding/json.
type fjNumber struct {
	N json.Number `json:"n"`
}

// fjRecursive refers to itself through a slice and a map.
type fjRecursive struct {
	Kids []fjRecursive
	ByID map[string]*fjRecursive
	Num  *fjNumberDeep
}

type fjNumberDeep struct{ In []map[string]json.Number }

// fjV1Number holds the fast decoder's own Number, which implements its
// UnmarshalerFrom: left to encoding/json too.
type fjV1Number struct{ N jsonv1.Number }

// checkSameAsStd decodes in with decodeFastJSON and with json.Unmarshal
// into fresh values of type T, which must be one the Registry decodes
// with decodeFastJSON, and fails when value or error differ.
func checkSameAsStd[T any](t *testing.T, in string) {
	t.Helper()
	if !fastJSONSafe(reflect.TypeFor[T]()) {
		t.Fatalf("%v does not take the fast path", reflect.TypeFor[T]())
	}
	var got, want T
	gotErr := decodeFastJSON([]byte(in), &got)
	wantErr := json.Unmarshal([]byte(in), &want)
	if (gotErr == nil) != (wantErr == nil) {
		t.Fatalf("%T %q: error %v, encoding/json says %v", want, in, gotErr, wantErr)
	}
	if gotErr != nil {
		if gotErr.Error() != wantErr.Error() || reflect.TypeOf(gotErr) != reflect.TypeOf(wantErr) {
			t.Fatalf("%T %q: error %T %q, encoding/json says %T %q", want, in, gotErr, gotErr, wantErr, wantErr)
		}
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%T %q:\n got  %#v\n want %#v", want, in, got, want)
	}
}

func TestDecodeFastJSON_MatchesEncodingJSON(t *testing.T) {
	for _, in := range fjInputs {
		checkSameAsStd[fjKitchen](t, in)
		checkSameAsStd[*fjKitchen](t, in)
		checkSameAsStd[map[string]any](t, in)
		checkSameAsStd[any](t, in)
		checkSameAsStd[fjInner](t, in)
		checkSameAsStd[[]any](t, in)
		checkSameAsStd[string](t, in)
		checkSameAsStd[fjUpper](t, in)
		checkSameAsStd[fjText](t, in)
	}
	for _, in := range []string{`1`, `-1`, `255`, `"x"`, `null`, `1.5`, `true`, `[1]`, `{}`, `2e2`} {
		checkSameAsStd[uint8](t, in)
		checkSameAsStd[int](t, in)
		checkSameAsStd[float64](t, in)
		checkSameAsStd[bool](t, in)
		checkSameAsStd[*int](t, in)
		checkSameAsStd[[]byte](t, in)
		checkSameAsStd[time.Duration](t, in)
	}
}

func TestFastJSONSafe(t *testing.T) {
	for _, c := range []struct {
		typ  reflect.Type
		want bool
	}{
		{reflect.TypeFor[fjKitchen](), true},
		{reflect.TypeFor[fjInner](), true},
		{reflect.TypeFor[map[string]any](), true},
		{reflect.TypeFor[int](), true},
		{reflect.TypeFor[json.Number](), false},
		{reflect.TypeFor[fjNumber](), false},
		{reflect.TypeFor[*fjNumber](), false},
		{reflect.TypeFor[[]map[int]fjNumber](), false},
		{reflect.TypeFor[fjRecursive](), false},
		{reflect.TypeFor[fjV1Number](), false},
		{reflect.TypeFor[fjStringOpts](), false},
		{reflect.TypeFor[map[string][]fjStringOpts](), false},
		{reflect.TypeFor[struct {
			A int `json:"a,omitempty,string"`
		}](), false},
		{reflect.TypeFor[struct {
			A int `json:"string"`
		}](), true},
	} {
		if got := fastJSONSafe(c.typ); got != c.want {
			t.Errorf("fastJSONSafe(%v) = %v, want %v", c.typ, got, c.want)
		}
	}
}

// stdOnlyCodec is JSONCodec under another type: the Registry does not
// recognise it as the default codec and decodes with encoding/json.
type stdOnlyCodec struct{ JSONCodec }

// TestRegistry_Unmarshal_TakesFastJSONPath checks the Registry decodes
// with the fast decoder when its codec is JSONCodec (the fast decoder
// allocates less than encoding/json for the same payload), and not for
// types that reach json.Number.
func TestRegistry_Unmarshal_TakesFastJSONPath(t *testing.T) {
	type payload struct {
		Amount int64  `json:"amount"`
		Memo   string `json:"memo"`
	}
	type numbered struct {
		Amount json.Number `json:"amount"`
	}
	// Which path a registration takes is decided by fastJSON, the one
	// check its decode function makes; counting allocations told the
	// paths apart too, but not reliably under -race (sync.Pool drops
	// items at random there).
	r := NewRegistry()
	if err := Register[payload](r, "p"); err != nil {
		t.Fatal(err)
	}
	if err := Register[numbered](r, "n"); err != nil {
		t.Fatal(err)
	}
	p, n := r.byName["p"], r.byName["n"]
	for _, c := range []struct {
		what string
		reg  *registration
		c    Codec
		want bool
	}{
		{"JSONCodec", p, JSONCodec{}, true},
		{"*JSONCodec", p, &JSONCodec{}, true},
		{"another codec", p, stdOnlyCodec{}, false},
		{"json.Number payload", n, JSONCodec{}, false},
	} {
		if got := c.reg.fastJSON(c.c); got != c.want {
			t.Errorf("%s: fast path %v, want %v", c.what, got, c.want)
		}
	}
	// And the decoded value is the one encoding/json gives.
	env, err := r.Marshal(payload{Amount: 1, Memo: strings.Repeat("m", 100)})
	if err != nil {
		t.Fatal(err)
	}
	got, err := r.Unmarshal(env)
	if err != nil || got != (payload{Amount: 1, Memo: strings.Repeat("m", 100)}) {
		t.Fatalf("Unmarshal = %+v, %v", got, err)
	}
}

// TestRegistry_Unmarshal_FastJSONErrors checks a payload the fast decoder
// rejects reports encoding/json's own error, through the Registry.
func TestRegistry_Unmarshal_FastJSONErrors(t *testing.T) {
	type payload struct {
		N uint8 `json:"n"`
	}
	r := NewRegistry()
	if err := Register[payload](r, "p"); err != nil {
		t.Fatal(err)
	}
	for _, in := range []string{`{"n":300}`, `{"n":"x"}`, `{"n":1`, `[`} {
		_, err := r.Unmarshal(Envelope{Type: "p", Data: []byte(in)})
		want := json.Unmarshal([]byte(in), new(payload))
		if err == nil || !errors.Is(err, ErrInvalidEnvelope) || !strings.HasSuffix(err.Error(), ": "+want.Error()) {
			t.Errorf("%q: error %v, want ErrInvalidEnvelope ending in %q", in, err, want)
		}
		var typeErr *json.UnmarshalTypeError
		var syntaxErr *json.SyntaxError
		if errors.As(want, &typeErr) != errors.As(err, &typeErr) || errors.As(want, &syntaxErr) != errors.As(err, &syntaxErr) {
			t.Errorf("%q: error %T, encoding/json gives %T", in, errors.Unwrap(err), want)
		}
	}
}

// TestRegistry_Unmarshal_StringOptionLikeEncodingJSON checks quoted
// numbers under ",string" that classic encoding/json rejects (and the
// fast decoder accepts) decode through the Registry as json.Unmarshal
// decodes them.
func TestRegistry_Unmarshal_StringOptionLikeEncodingJSON(t *testing.T) {
	r := NewRegistry()
	if err := Register[fjStringOpts](r, "s"); err != nil {
		t.Fatal(err)
	}
	for _, in := range []string{`{"floatstr":"+0"}`, `{"intstr":"+1"}`} {
		v, err := r.Unmarshal(Envelope{Type: "s", Data: []byte(in)})
		var want fjStringOpts
		wantErr := json.Unmarshal([]byte(in), &want)
		if (err == nil) != (wantErr == nil) || (err == nil && v != want) {
			t.Errorf("%q decoded to %+v, %v; encoding/json gives %+v, %v", in, v, err, want, wantErr)
		}
		if !stdJSONIsV2 && err == nil {
			t.Errorf("%q decoded; classic encoding/json rejects it", in)
		}
	}
	if v, err := r.Unmarshal(Envelope{Type: "s", Data: []byte(`{"floatstr":"1.5","intstr":"-2"}`)}); err != nil || v != (fjStringOpts{FloatStr: 1.5, IntStr: -2}) {
		t.Errorf("got %+v, %v", v, err)
	}
}

func FuzzDecodeFastJSON(f *testing.F) {
	for _, in := range fjInputs {
		f.Add(in)
	}
	f.Fuzz(func(t *testing.T, in string) {
		checkSameAsStd[fjKitchen](t, in)
		checkSameAsStd[any](t, in)
		checkSameAsStd[fjInner](t, in)
		checkSameAsStd[map[string]fjUpper](t, in)
		checkSameAsStd[[]fjText](t, in)
		checkSameAsStd[map[fjText][]*int](t, in)
	})
}
