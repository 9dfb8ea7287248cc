package orchestrix

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"
	"unsafe"
)

var jsonEncodeSeed = flag.Uint64("jsonencode.seed", 0, "seed of TestCompileJSON_RandomTypes (0: from the clock)")

// encodeCompiled encodes v (any value of a covered type) with its compiled
// encoder, from a pointer to a copy of it.
func encodeCompiled(t *testing.T, v any) ([]byte, bool) {
	t.Helper()
	typ := reflect.TypeOf(v)
	enc := compileJSON(typ)
	if enc == nil {
		t.Fatalf("%v: not compiled", typ)
	}
	p := reflect.New(typ)
	p.Elem().Set(reflect.ValueOf(v))
	return enc([]byte("prefix"), p.UnsafePointer())
}

// checkSameAsMarshal fails t unless the compiled encoder of v's type
// writes what json.Marshal writes, or fails where it fails.
func checkSameAsMarshal(t *testing.T, v any) {
	t.Helper()
	want, wantErr := json.Marshal(v)
	got, ok := encodeCompiled(t, v)
	switch {
	case wantErr != nil && ok:
		t.Fatalf("%T %#v: compiled encoder wrote %s, json.Marshal failed: %v", v, v, got, wantErr)
	case wantErr != nil:
		return
	case !ok:
		t.Fatalf("%T %#v: compiled encoder failed, json.Marshal wrote %s", v, v, want)
	case !bytes.HasPrefix(got, []byte("prefix")):
		t.Fatalf("%T: the buffer's prefix was overwritten: %q", v, got)
	case !bytes.Equal(got[len("prefix"):], want):
		t.Fatalf("%T %#v:\ncompiled %s\njson     %s", v, v, got[len("prefix"):], want)
	}
}

type encPlain struct {
	Amount int64  `json:"amount"`
	Memo   string `json:"memo"`
}

type encTags struct {
	Renamed int `json:"renamed"`
	Skipped int `json:"-"`
	//lint:ignore SA5008 the "-," tag (a field named "-") is one of the cases under test
	Dash   int  `json:"-,"`
	NoName bool `json:",omitempty"`
	//lint:ignore SA5008 an invalid name (the Go name is used) is one of the cases under test
	BadName  string  `json:"bad\"name"`
	HTMLName uint8   `json:"a<b>&c"`
	Unicode  float32 `json:"été"`
	Space    int8    `json:"with space"`
	Untagged uint16
	//lint:ignore U1000 the unexported field is what the check must leave out
	unexposed int
	Punct     int32 `json:"!#$%()*+-./:;=?@[]^_{|}~"`
	Sep       int   `json:"a\u2028b"`
	BadRune   int   `json:"a\x01b"`
}

type encOmit struct {
	B   bool            `json:"b,omitempty"`
	I   int             `json:"i,omitempty"`
	I8  int8            `json:"i8,omitempty"`
	I16 int16           `json:"i16,omitempty"`
	I32 int32           `json:"i32,omitempty"`
	I64 int64           `json:"i64,omitempty"`
	U   uint            `json:"u,omitempty"`
	U8  uint8           `json:"u8,omitempty"`
	U16 uint16          `json:"u16,omitempty"`
	U32 uint32          `json:"u32,omitempty"`
	U64 uint64          `json:"u64,omitempty"`
	UP  uintptr         `json:"up,omitempty"`
	F32 float32         `json:"f32,omitempty"`
	F64 float64         `json:"f64,omitempty"`
	S   string          `json:"s,omitempty"`
	P   *int            `json:"p,omitempty"`
	Sl  []int           `json:"sl,omitempty"`
	By  []byte          `json:"by,omitempty"`
	A0  [0]int          `json:"a0,omitempty"`
	A2  [2]int          `json:"a2,omitempty"`
	St  struct{ X int } `json:"st,omitempty"`
}

// encDupType is a struct whose fields share JSON names (go vet rejects
// such tags in source): two tagged "X" (both dropped), a tagged and an
// untagged "Y" (the tagged one is written), "Z" and "z" (both written).
var encDupType = reflect.StructOf([]reflect.StructField{
	{Name: "A", Type: reflect.TypeFor[int](), Tag: `json:"X"`},
	{Name: "B", Type: reflect.TypeFor[int](), Tag: `json:"X"`},
	{Name: "C", Type: reflect.TypeFor[int](), Tag: `json:"Y"`},
	{Name: "Y", Type: reflect.TypeFor[int]()},
	{Name: "D", Type: reflect.TypeFor[int](), Tag: `json:"Z"`},
	{Name: "Z2", Type: reflect.TypeFor[int](), Tag: `json:"z"`},
})

func encDupValue() any {
	v := reflect.New(encDupType).Elem()
	for i := range v.NumField() {
		v.Field(i).SetInt(int64(i + 1))
	}
	return v.Interface()
}

type encDupUntagged struct {
	A int `json:"B,omitempty" x:"y"`
	B int `json:",omitempty"`
}

type myString string
type myBytes []byte
type myByte uint8

type encNested struct {
	Inner    encPlain
	PInner   *encPlain
	PPInt    **int
	Slice    []encPlain
	PSlice   []*encPlain
	Bytes    []byte
	MyBytes  myBytes
	MyByteS  []myByte
	ByteArr  [3]byte
	Matrix   [2][2]float64
	Strings  []string
	MyString myString
	Empty    struct{}
	NilSlice []int
}

func TestCompileJSON_Table(t *testing.T) {
	one := 1
	pone := &one
	for _, v := range []any{
		true, false,
		0, -1, math.MaxInt64, math.MinInt64,
		int8(math.MinInt8), int16(math.MaxInt16), int32(math.MinInt32), int64(7),
		uint(math.MaxUint), uint8(255), uint16(65535), uint32(math.MaxUint32), uint64(math.MaxUint64), uintptr(12),
		0.0, math.Copysign(0, -1), 1.0, -1.5, 123.456, 1e-6, 9.99e-7, 1e-7, 1e20, 1e21, 1.5e300, -2e-300,
		math.MaxFloat64, math.SmallestNonzeroFloat64, 5e-324, 1e-9, 1.2345e-10,
		float32(0), float32(1e-6), float32(9.9e-7), float32(1e20), float32(1e21), float32(3.4e38), float32(0.1), float32(-1e-45),
		math.NaN(), math.Inf(1), math.Inf(-1), float32(math.Inf(-1)),
		"", "plain", `quote " backslash \ slash /`, "<script>&amp;</script>", "\x00\x01\x07\b\f\n\r\t\x1f\x7f",
		"\u2028\u2029", "é ü 中文 🎉", "bad \xff utf8 \xc3", "\xed\xa0\x80", "truncated \xe2\x82",
		encPlain{Amount: 12345, Memo: "deposit"}, encPlain{Amount: -1, Memo: "a\"b<c>&d\u2028"},
		encTags{Renamed: 1, Skipped: 2, Dash: 3, NoName: true, BadName: "x", HTMLName: 4, Unicode: 0.5, Space: -1, Untagged: 9, unexposed: 5, Punct: 6, Sep: 7, BadRune: 8},
		encTags{},
		encOmit{},
		encOmit{B: true, I: 1, I8: 1, I16: 1, I32: 1, I64: 1, U: 1, U8: 1, U16: 1, U32: 1, U64: 1, UP: 1, F32: 1, F64: math.Copysign(0, -1),
			S: "s", P: new(int), Sl: []int{}, By: []byte{}, A2: [2]int{}},
		encOmit{Sl: []int{0}, By: []byte{0}, F32: 1e-30, P: pone},
		encDupValue(),
		encDupUntagged{A: 1, B: 2},
		encNested{},
		encNested{
			Inner: encPlain{1, "x"}, PInner: &encPlain{2, "y"}, PPInt: &pone,
			Slice: []encPlain{{3, "z"}, {}}, PSlice: []*encPlain{nil, {4, "w"}},
			Bytes: []byte("hello, world!"), MyBytes: myBytes{0xff, 0}, MyByteS: []myByte{1, 2, 3},
			ByteArr: [3]byte{1, 2, 3}, Matrix: [2][2]float64{{1, 2}, {3e-8, 4e22}},
			Strings: []string{"a", "<", ""}, MyString: "my", NilSlice: nil,
		},
		encNested{Slice: []encPlain{}, Bytes: []byte{}, Strings: []string{}},
		struct{ F []float64 }{[]float64{1, math.NaN()}},
		struct{ P *float32 }{new(float32)},
		[]int(nil), []int{}, [0]string{}, []*int{nil, pone},
		&encPlain{Amount: 5},
		(*encPlain)(nil),
	} {
		checkSameAsMarshal(t, v)
	}
}

// TestAppendMarshalString_EveryByteAtEveryOffset puts each byte value,
// and multi-byte sequences, at each position of longer ASCII text (where
// strings are checked 8 bytes at a time) and compares with json.Marshal.
func TestAppendMarshalString_EveryByteAtEveryOffset(t *testing.T) {
	inserts := []string{"\u2028", "\u2029", "é", "🎉", "\xff", "\xe2\x82", "\xed\xa0\x80"}
	for c := range 256 {
		inserts = append(inserts, string([]byte{byte(c)}))
	}
	base := "abcdefghijklmnopqrstuvwxyz0123"
	for _, in := range inserts {
		for at := 0; at <= len(base); at++ {
			s := base[:at] + in + base[at:]
			want, _ := json.Marshal(s)
			if got := appendMarshalString(nil, s); !bytes.Equal(got, want) {
				t.Fatalf("%q:\ncompiled %s\njson     %s", s, got, want)
			}
		}
	}
}

type encRecursive struct {
	Next *encRecursive
}

type encMarshaler struct{}

func (encMarshaler) MarshalJSON() ([]byte, error) { return []byte(`"m"`), nil }

type encPtrTextMarshaler struct{}

func (*encPtrTextMarshaler) MarshalText() ([]byte, error) { return []byte("t"), nil }

type encByteMarshaler uint8

func (encByteMarshaler) MarshalText() ([]byte, error) { return []byte("b"), nil }

type encEmbeddedInner struct{ X int }

func TestCompileJSON_LeavesOtherTypesToEncodingJSON(t *testing.T) {
	for _, v := range []any{
		map[string]int{},
		struct{ M map[string]int }{},
		struct{ I any }{},
		struct{ E error }{},
		time.Time{},
		struct{ T time.Time }{},
		json.RawMessage(`{}`),
		json.Number("1"),
		struct{ N json.Number }{},
		struct{ encEmbeddedInner }{},
		struct{ *encEmbeddedInner }{},
		struct {
			X int `json:"x,string"`
		}{},
		struct {
			X int `json:"x,omitzero"`
		}{},
		encRecursive{},
		encMarshaler{},
		struct{ M encMarshaler }{},
		struct{ M *encPtrTextMarshaler }{},
		encPtrTextMarshaler{},
		[]encByteMarshaler{},
		struct{ C complex128 }{},
		struct{ Ch chan int }{},
		struct{ F func() }{},
		struct{ P unsafe.Pointer }{},
	} {
		if compileJSON(reflect.TypeOf(v)) != nil {
			t.Errorf("%T: compiled, want it left to encoding/json", v)
		}
	}
}

func TestBoxedByPointer_ReadsTheBoxedValue(t *testing.T) {
	x := 7
	for _, v := range []any{
		encPlain{Amount: 3, Memo: "m"},
		int64(-9), uint8(200), true, "str", 1.5,
		struct{ A, B *int }{&x, nil},
		[2]*int{&x, &x},
		struct{ A [1]int64 }{[1]int64{42}},
		struct{}{},
	} {
		typ := reflect.TypeOf(v)
		if !boxedByPointer(typ) {
			t.Fatalf("%T: want boxed by pointer", v)
		}
		got, ok := compileJSON(typ)(nil, (*[2]unsafe.Pointer)(unsafe.Pointer(&v))[1])
		want, _ := json.Marshal(v)
		if !ok || !bytes.Equal(got, want) {
			t.Errorf("%T: from the interface's data word %s, want %s", v, got, want)
		}
	}
	for _, v := range []any{&x, struct{ P *int }{&x}, [1]*int{&x}, []int{1}[:1:1], "x"[:0]} {
		typ := reflect.TypeOf(v)
		pointerShaped := typ.Size() == unsafe.Sizeof(uintptr(0)) && !pointerFree(typ)
		if boxedByPointer(typ) == pointerShaped {
			t.Errorf("%T: boxedByPointer %v", v, boxedByPointer(typ))
		}
	}
}

// TestCompileJSON_RandomTypes generates struct types (reflect.StructOf)
// with random field kinds, tags and nesting, fills values of them at
// random and compares the compiled encoder's output with json.Marshal's.
// The seed is printed; rerun one with -jsonencode.seed.
func TestCompileJSON_RandomTypes(t *testing.T) {
	seed := *jsonEncodeSeed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Logf("seed %d (rerun with -jsonencode.seed=%d)", seed, seed)
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	types, values := 300, 20
	if testing.Short() {
		types = 60
	}
	compiled := 0
	for range types {
		typ := randomType(rng, 0)
		enc := compileJSON(typ)
		if enc == nil {
			continue
		}
		compiled++
		for range values {
			p := reflect.New(typ)
			fillRandom(rng, p.Elem(), 0)
			want, wantErr := json.Marshal(p.Elem().Interface())
			got, ok := enc(nil, p.UnsafePointer())
			if (wantErr == nil) != ok || (ok && !bytes.Equal(got, want)) {
				t.Fatalf("seed %d, type %v:\ncompiled %s (ok %v)\njson     %s (%v)", seed, typ, got, ok, want, wantErr)
			}
			if boxed := p.Elem().Interface(); boxedByPointer(typ) {
				got, ok := enc(nil, (*[2]unsafe.Pointer)(unsafe.Pointer(&boxed))[1])
				if (wantErr == nil) != ok || (ok && !bytes.Equal(got, want)) {
					t.Fatalf("seed %d, type %v, from an interface:\ncompiled %s\njson     %s", seed, typ, got, want)
				}
			}
		}
	}
	if compiled < types/2 {
		t.Fatalf("only %d of %d generated types were compiled", compiled, types)
	}
}

var randomTags = []string{
	``, ``, ``, `json:"a"`, `json:"b,omitempty"`, `json:",omitempty"`, `json:"-"`, `json:"-,"`,
	`json:"x<&>"`, `json:"dup"`, `json:"dup,omitempty"`, `json:"F1"`, `json:"F2,omitempty"`,
	`json:"été"`, `json:"bad\"q"`, `json:"sp ace"`, `json:"a\u2028"`, `json:"x,string"`, `json:"y,omitzero"`,
	`json:"z,omitempty,unknown"`, `xml:"other"`,
}

var randomLeafTypes = []reflect.Type{
	reflect.TypeFor[bool](), reflect.TypeFor[int](), reflect.TypeFor[int8](), reflect.TypeFor[int16](),
	reflect.TypeFor[int32](), reflect.TypeFor[int64](), reflect.TypeFor[uint](), reflect.TypeFor[uint8](),
	reflect.TypeFor[uint16](), reflect.TypeFor[uint32](), reflect.TypeFor[uint64](), reflect.TypeFor[uintptr](),
	reflect.TypeFor[float32](), reflect.TypeFor[float64](), reflect.TypeFor[string](), reflect.TypeFor[string](),
	reflect.TypeFor[[]byte](), reflect.TypeFor[myString](), reflect.TypeFor[myBytes](), reflect.TypeFor[myByte](),
	reflect.TypeFor[time.Time](), reflect.TypeFor[map[string]int](), reflect.TypeFor[any](), reflect.TypeFor[json.Number](),
}

// randomType returns a random type: mostly structs of leaves, pointers,
// slices, arrays and nested structs, with now and then a type the
// compiler does not cover.
func randomType(rng *rand.Rand, depth int) reflect.Type {
	if depth > 0 && (depth >= 3 || rng.IntN(3) > 0) {
		leaf := randomLeafTypes[rng.IntN(len(randomLeafTypes))]
		if rng.IntN(8) > 0 && (leaf.Kind() == reflect.Map || leaf.Kind() == reflect.Interface || leaf == reflect.TypeFor[time.Time]() || leaf == stdNumberType) {
			leaf = reflect.TypeFor[int64]() // keep most types covered
		}
		return leaf
	}
	switch rng.IntN(8) {
	case 0:
		return reflect.PointerTo(randomType(rng, depth+1))
	case 1:
		return reflect.SliceOf(randomType(rng, depth+1))
	case 2:
		return reflect.ArrayOf(rng.IntN(3), randomType(rng, depth+1))
	}
	n := rng.IntN(7)
	fields := make([]reflect.StructField, 0, n)
	for i := range n {
		f := reflect.StructField{
			Name: fmt.Sprintf("F%d", i),
			Type: randomType(rng, depth+1),
			Tag:  reflect.StructTag(randomTags[rng.IntN(len(randomTags))]),
		}
		switch rng.IntN(10) {
		case 0:
			f.Name, f.PkgPath = fmt.Sprintf("f%d", i), "github.com/orchestrix/orchestrix"
		case 1:
			f.Name = "Dup" // the same Go name is not allowed twice: see below
		}
		fields = append(fields, f)
	}
	seen := map[string]bool{}
	for i := range fields {
		if seen[fields[i].Name] {
			fields[i].Name = fmt.Sprintf("%s%d", fields[i].Name, i)
		}
		seen[fields[i].Name] = true
	}
	return reflect.StructOf(fields)
}

var randomStrings = []string{
	"", "a", "memo", "abcdefghijklmnopq", "0123456789 ABCDEF~!", strings.Repeat("m", 33), "<>&", `"\`, "\x00\n\t\x1f\x7f", "é", "中文", "🎉", "\u2028", "\u2029", "\xff", "\xc3", "\xe2\x82", "/", " ",
}

// fillRandom sets v (settable) to a random value of its type.
func fillRandom(rng *rand.Rand, v reflect.Value, depth int) {
	switch v.Kind() {
	case reflect.Bool:
		v.SetBool(rng.IntN(2) == 1)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		switch rng.IntN(4) {
		case 0:
			v.SetInt(0)
		case 1:
			v.SetInt(int64(rng.IntN(200)) - 100)
		default:
			v.SetInt(int64(rng.Uint64())) // truncated to the kind's size
		}
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		if rng.IntN(3) == 0 {
			v.SetUint(0)
		} else {
			v.SetUint(rng.Uint64())
		}
	case reflect.Float32, reflect.Float64:
		var f float64
		switch rng.IntN(10) {
		case 0:
			f = 0
		case 1:
			f = math.Copysign(0, -1)
		case 2:
			f = []float64{math.NaN(), math.Inf(1), math.Inf(-1)}[rng.IntN(3)]
		case 3:
			f = math.Float64frombits(rng.Uint64())
		case 4:
			f = float64(math.Float32frombits(rng.Uint32()))
		default:
			f = (rng.Float64() - 0.5) * math.Pow(10, float64(rng.IntN(60)-30))
		}
		if v.Kind() == reflect.Float32 && !math.IsNaN(f) && !math.IsInf(f, 0) && math.Abs(f) > math.MaxFloat32 {
			f = math.MaxFloat32
		}
		v.SetFloat(f)
	case reflect.String:
		var sb strings.Builder
		for range rng.IntN(4) {
			sb.WriteString(randomStrings[rng.IntN(len(randomStrings))])
		}
		v.SetString(sb.String())
	case reflect.Pointer:
		if rng.IntN(3) == 0 {
			return
		}
		p := reflect.New(v.Type().Elem())
		fillRandom(rng, p.Elem(), depth+1)
		v.Set(p)
	case reflect.Slice:
		switch rng.IntN(4) {
		case 0:
			return // nil
		case 1:
			v.Set(reflect.MakeSlice(v.Type(), 0, rng.IntN(2)))
		default:
			n := 1 + rng.IntN(4)
			s := reflect.MakeSlice(v.Type(), n, n)
			for i := range n {
				fillRandom(rng, s.Index(i), depth+1)
			}
			v.Set(s)
		}
	case reflect.Array:
		for i := range v.Len() {
			fillRandom(rng, v.Index(i), depth+1)
		}
	case reflect.Struct:
		if v.Type() == reflect.TypeFor[time.Time]() {
			v.Set(reflect.ValueOf(time.Unix(rng.Int64N(1e10), 0)))
			return
		}
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() && rng.IntN(5) > 0 {
				fillRandom(rng, v.Field(i), depth+1)
			}
		}
	case reflect.Map:
		if rng.IntN(2) == 0 {
			v.Set(reflect.ValueOf(map[string]int{"k": 1}))
		}
	case reflect.Interface:
		if rng.IntN(2) == 0 {
			v.Set(reflect.ValueOf("x"))
		}
	}
}
