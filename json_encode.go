package orchestrix

import (
	"encoding"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"math"
	"reflect"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
	"unsafe"
)

// Compiled payload encoding for the default codec.
//
// json.Marshal looks up the type's encoder, walks the value through
// reflect, writes into a pooled buffer and copies the result into a new
// slice: for a small event that is several times the cost of writing its
// bytes. A Registry whose codec is JSONCodec therefore compiles, when a
// type is registered, an encoder for that type (compileJSON): a tree of
// plain functions over the value's memory that writes exactly what
// json.Marshal writes, appending to a caller's buffer.
//
// Only types whose encoding depends on nothing but their structure are
// compiled: booleans, integers, floats, strings, structs, pointers,
// slices (a []byte is base64) and arrays of those. Everything else leaves
// the whole type to json.Marshal: a type (or a pointer to it) with a
// MarshalJSON or MarshalText method anywhere in it, maps, interfaces,
// channels, functions, complex numbers, json.Number, embedded struct
// fields, the ",string" and ",omitzero" tag options, and recursive types.
// For the types it covers the output is byte for byte json.Marshal's (its
// HTML escaping, its float format, invalid UTF-8 as U+FFFD, omitempty,
// tag names, fields of the same name dropping each other); a value
// json.Marshal refuses (a NaN or infinite float) makes the encoder report
// failure, and the caller then asks json.Marshal for its error.
//
// Tests: json_encode_internal_test.go compares the output with
// json.Marshal over a table and over randomly generated types and values.

// jsonEncoder appends the JSON encoding of the value at p to b. It
// returns false, and b in an unspecified state, when json.Marshal would
// fail on the value.
type jsonEncoder func(b []byte, p unsafe.Pointer) ([]byte, bool)

var (
	jsonMarshalerType = reflect.TypeFor[json.Marshaler]()
	textMarshalerType = reflect.TypeFor[encoding.TextMarshaler]()
)

// compileJSON returns an encoder for values of type t, or nil when t is
// not covered (see above).
func compileJSON(t reflect.Type) jsonEncoder {
	return compileJSONType(t, make(map[reflect.Type]bool))
}

func compileJSONType(t reflect.Type, visiting map[reflect.Type]bool) jsonEncoder {
	if visiting[t] {
		return nil // recursive
	}
	if t == stdNumberType || t.Implements(jsonMarshalerType) || t.Implements(textMarshalerType) ||
		reflect.PointerTo(t).Implements(jsonMarshalerType) || reflect.PointerTo(t).Implements(textMarshalerType) {
		return nil
	}
	switch t.Kind() {
	case reflect.Bool:
		return encodeBool
	case reflect.Int:
		return encodeInt[int]
	case reflect.Int8:
		return encodeInt[int8]
	case reflect.Int16:
		return encodeInt[int16]
	case reflect.Int32:
		return encodeInt[int32]
	case reflect.Int64:
		return encodeInt[int64]
	case reflect.Uint:
		return encodeUint[uint]
	case reflect.Uint8:
		return encodeUint[uint8]
	case reflect.Uint16:
		return encodeUint[uint16]
	case reflect.Uint32:
		return encodeUint[uint32]
	case reflect.Uint64:
		return encodeUint[uint64]
	case reflect.Uintptr:
		return encodeUint[uintptr]
	case reflect.Float32:
		return encodeFloat32
	case reflect.Float64:
		return encodeFloat64
	case reflect.String:
		return encodeString
	case reflect.Struct:
		visiting[t] = true
		defer delete(visiting, t)
		return compileJSONStruct(t, visiting)
	case reflect.Pointer:
		visiting[t] = true
		defer delete(visiting, t)
		elem := compileJSONType(t.Elem(), visiting)
		if elem == nil {
			return nil
		}
		return func(b []byte, p unsafe.Pointer) ([]byte, bool) {
			q := *(*unsafe.Pointer)(p)
			if q == nil {
				return append(b, "null"...), true
			}
			return elem(b, q)
		}
	case reflect.Slice:
		visiting[t] = true
		defer delete(visiting, t)
		elem := compileJSONType(t.Elem(), visiting)
		if elem == nil {
			return nil
		}
		if t.Elem().Kind() == reflect.Uint8 {
			return encodeBytes
		}
		return compileJSONSlice(t.Elem().Size(), elem)
	case reflect.Array:
		visiting[t] = true
		defer delete(visiting, t)
		elem := compileJSONType(t.Elem(), visiting)
		if elem == nil {
			return nil
		}
		n, size := t.Len(), t.Elem().Size()
		return func(b []byte, p unsafe.Pointer) ([]byte, bool) {
			b = append(b, '[')
			for i := range n {
				if i > 0 {
					b = append(b, ',')
				}
				var ok bool
				if b, ok = elem(b, unsafe.Add(p, uintptr(i)*size)); !ok {
					return b, false
				}
			}
			return append(b, ']'), true
		}
	}
	return nil
}

// jsonField is one encoded field of a struct.
type jsonField struct {
	key    string // ,"name": — the comma is dropped for the first field written
	offset uintptr
	kind   reflect.Kind // the field's kind: basic kinds are written inline
	enc    jsonEncoder  // for the other kinds
	// omitEmpty: the field has the omitempty option; empty reports
	// emptiness as json.Marshal's isEmptyValue does.
	omitEmpty bool
	empty     func(p unsafe.Pointer) bool
	tagged    bool
	name      string
}

func compileJSONStruct(t reflect.Type, visiting map[reflect.Type]bool) jsonEncoder {
	var fields []jsonField
	for i := range t.NumField() {
		sf := t.Field(i)
		if sf.Anonymous {
			return nil // promoted fields and their dominance rules: left to encoding/json
		}
		if !sf.IsExported() {
			continue
		}
		tag := sf.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		omitEmpty := false
		for opts != "" {
			var o string
			o, opts, _ = strings.Cut(opts, ",")
			switch o {
			case "omitempty":
				omitEmpty = true
			case "string", "omitzero":
				return nil
			}
		}
		tagged := isValidJSONTag(name)
		if !tagged {
			name = sf.Name
		}
		enc := compileJSONType(sf.Type, visiting)
		if enc == nil {
			return nil
		}
		f := jsonField{
			key:       "," + string(appendJSONKey([]byte{'"'}, name)) + `":`,
			offset:    sf.Offset,
			kind:      sf.Type.Kind(),
			enc:       enc,
			omitEmpty: omitEmpty,
			tagged:    tagged,
			name:      name,
		}
		if omitEmpty {
			f.empty = jsonEmptyFunc(sf.Type)
		}
		fields = append(fields, f)
	}
	fields = dropDuplicateJSONNames(fields)
	return func(b []byte, p unsafe.Pointer) ([]byte, bool) {
		b = append(b, '{')
		first := true
		for i := range fields {
			f := &fields[i]
			fp := unsafe.Add(p, f.offset)
			if f.omitEmpty && f.empty(fp) {
				continue
			}
			if first {
				b = append(b, f.key[1:]...)
				first = false
			} else {
				b = append(b, f.key...)
			}
			switch f.kind {
			case reflect.String:
				b = appendMarshalString(b, *(*string)(fp))
			case reflect.Int64:
				b = strconv.AppendInt(b, *(*int64)(fp), 10)
			case reflect.Int:
				b = strconv.AppendInt(b, int64(*(*int)(fp)), 10)
			case reflect.Bool:
				b = strconv.AppendBool(b, *(*bool)(fp))
			default:
				var ok bool
				if b, ok = f.enc(b, fp); !ok {
					return b, false
				}
			}
		}
		return append(b, '}'), true
	}
}

// dropDuplicateJSONNames applies encoding/json's rule for fields of one
// struct (no embedding) that share a JSON name: when exactly one of them
// has the name from its tag, it is written; otherwise none is.
func dropDuplicateJSONNames(fields []jsonField) []jsonField {
	count := make(map[string]int, len(fields))
	taggedCount := make(map[string]int, len(fields))
	for _, f := range fields {
		count[f.name]++
		if f.tagged {
			taggedCount[f.name]++
		}
	}
	kept := fields[:0]
	for _, f := range fields {
		if count[f.name] == 1 || (taggedCount[f.name] == 1 && f.tagged) {
			kept = append(kept, f)
		}
	}
	return kept
}

// isValidJSONTag reports whether encoding/json accepts s as a field name
// from a tag (otherwise it uses the Go field name).
func isValidJSONTag(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		switch {
		case strings.ContainsRune("!#$%&()*+-./:;<=>?@[]^_{|}~ ", c):
		case !unicode.IsLetter(c) && !unicode.IsDigit(c):
			return false
		}
	}
	return true
}

// appendJSONKey appends a field name as encoding/json writes it between
// quotes: only <, >, &, U+2028 and U+2029 are escaped (a name has no
// quotes, backslashes or control characters).
func appendJSONKey(b []byte, name string) []byte {
	for _, c := range name {
		switch c {
		case '<', '>', '&':
			b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
		case '\u2028', '\u2029':
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[c&0xf])
		default:
			b = utf8.AppendRune(b, c)
		}
	}
	return b
}

// jsonEmptyFunc returns encoding/json's isEmptyValue for values of type t.
func jsonEmptyFunc(t reflect.Type) func(p unsafe.Pointer) bool {
	switch t.Kind() {
	case reflect.Bool:
		return func(p unsafe.Pointer) bool { return !*(*bool)(p) }
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		size := t.Size()
		return func(p unsafe.Pointer) bool {
			switch size {
			case 1:
				return *(*uint8)(p) == 0
			case 2:
				return *(*uint16)(p) == 0
			case 4:
				return *(*uint32)(p) == 0
			default:
				return *(*uint64)(p) == 0
			}
		}
	case reflect.Float32:
		return func(p unsafe.Pointer) bool { return *(*float32)(p) == 0 }
	case reflect.Float64:
		return func(p unsafe.Pointer) bool { return *(*float64)(p) == 0 }
	case reflect.String:
		return func(p unsafe.Pointer) bool { return len(*(*string)(p)) == 0 }
	case reflect.Slice:
		return func(p unsafe.Pointer) bool { return len(*(*[]struct{})(p)) == 0 }
	case reflect.Pointer:
		return func(p unsafe.Pointer) bool { return *(*unsafe.Pointer)(p) == nil }
	case reflect.Array:
		n := t.Len()
		return func(unsafe.Pointer) bool { return n == 0 }
	}
	return func(unsafe.Pointer) bool { return false } // structs are never empty
}

type jsonInt interface {
	~int | ~int8 | ~int16 | ~int32 | ~int64
}

type jsonUint interface {
	~uint | ~uint8 | ~uint16 | ~uint32 | ~uint64 | ~uintptr
}

func encodeInt[T jsonInt](b []byte, p unsafe.Pointer) ([]byte, bool) {
	return strconv.AppendInt(b, int64(*(*T)(p)), 10), true
}

func encodeUint[T jsonUint](b []byte, p unsafe.Pointer) ([]byte, bool) {
	return strconv.AppendUint(b, uint64(*(*T)(p)), 10), true
}

func encodeBool(b []byte, p unsafe.Pointer) ([]byte, bool) {
	return strconv.AppendBool(b, *(*bool)(p)), true
}

func encodeString(b []byte, p unsafe.Pointer) ([]byte, bool) {
	return appendMarshalString(b, *(*string)(p)), true
}

func encodeBytes(b []byte, p unsafe.Pointer) ([]byte, bool) {
	s := *(*[]byte)(p)
	if s == nil {
		return append(b, "null"...), true
	}
	b = append(b, '"')
	b = base64.StdEncoding.AppendEncode(b, s)
	return append(b, '"'), true
}

func encodeFloat32(b []byte, p unsafe.Pointer) ([]byte, bool) {
	return appendJSONFloat(b, float64(*(*float32)(p)), 32)
}

func encodeFloat64(b []byte, p unsafe.Pointer) ([]byte, bool) {
	return appendJSONFloat(b, *(*float64)(p), 64)
}

// appendJSONFloat writes f as encoding/json does: the shortest
// representation, in exponent form only below 1e-6 or from 1e21 on, with
// a one-digit negative exponent not padded. NaN and infinities fail.
func appendJSONFloat(b []byte, f float64, bits int) ([]byte, bool) {
	if math.IsInf(f, 0) || math.IsNaN(f) {
		return b, false
	}
	abs := math.Abs(f)
	format := byte('f')
	if abs != 0 {
		if bits == 64 && (abs < 1e-6 || abs >= 1e21) || bits == 32 && (float32(abs) < 1e-6 || float32(abs) >= 1e21) {
			format = 'e'
		}
	}
	b = strconv.AppendFloat(b, f, format, -1, bits)
	if format == 'e' {
		n := len(b)
		if n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}
	return b, true
}

func compileJSONSlice(size uintptr, elem jsonEncoder) jsonEncoder {
	return func(b []byte, p unsafe.Pointer) ([]byte, bool) {
		s := *(*[]struct{})(p) // only the header: data pointer and length
		if s == nil {
			return append(b, "null"...), true
		}
		base := unsafe.Pointer(unsafe.SliceData(s))
		b = append(b, '[')
		for i := range len(s) {
			if i > 0 {
				b = append(b, ',')
			}
			var ok bool
			if b, ok = elem(b, unsafe.Add(base, uintptr(i)*size)); !ok {
				return b, false
			}
		}
		return append(b, ']'), true
	}
}

// jsonSafe[c] is true for the ASCII bytes json.Marshal writes unescaped
// in a string (it escapes HTML's <, > and &).
var jsonSafe = func() (t [utf8.RuneSelf]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = true
	}
	for _, c := range `"\<>&` {
		t[c] = false
	}
	return t
}()

// jsonUnsafeBytes returns, for 8 bytes read as a little-endian word, a
// word whose high bit is set in some byte when one of the 8 is not a
// byte json.Marshal writes unescaped (jsonSafe): non-ASCII, below 0x20,
// a quote, a backslash, <, > or &. The high bit of (v - ones) & ^v is set
// in a byte where v's byte is zero (a borrow can set it above a zero
// byte too, but then there is a zero byte anyway); likewise with 0x20
// for bytes below 0x20.
func jsonUnsafeBytes(x uint64) uint64 {
	const ones = 0x0101010101010101
	q, bs, lt, gt, amp := x^'"'*ones, x^'\\'*ones, x^'<'*ones, x^'>'*ones, x^'&'*ones
	return x | (x-0x20*ones)&^x | (q-ones)&^q | (bs-ones)&^bs | (lt-ones)&^lt | (gt-ones)&^gt | (amp-ones)&^amp
}

// appendMarshalString writes s as a JSON string the way json.Marshal does.
func appendMarshalString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	// s viewed as bytes (read only), so that 8 of them are one load.
	bs := unsafe.Slice(unsafe.StringData(s), len(s))
	for i := 0; i < len(s); {
		for i+8 <= len(bs) && jsonUnsafeBytes(binary.LittleEndian.Uint64(bs[i:]))&0x8080808080808080 == 0 {
			i += 8
		}
		if i >= len(s) {
			break
		}
		c := s[i]
		if c < utf8.RuneSelf {
			if jsonSafe[c] {
				i++
				continue
			}
			b = appendEscapedASCII(append(b, s[start:i]...), c)
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// boxedByPointer reports whether an interface holding a value of type t
// holds a pointer to the value (payloadPointer relies on it). An
// interface is a type word and a data word; the data word is the value
// itself only for pointer-shaped types — one word long and holding a
// pointer — and points to the value for every other type.
func boxedByPointer(t reflect.Type) bool {
	return t.Size() != unsafe.Sizeof(uintptr(0)) || pointerFree(t)
}

// pointerFree reports whether values of t contain no pointers.
func pointerFree(t reflect.Type) bool {
	switch t.Kind() {
	case reflect.Bool, reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr,
		reflect.Float32, reflect.Float64, reflect.Complex64, reflect.Complex128:
		return true
	case reflect.Array:
		return t.Len() == 0 || pointerFree(t.Elem())
	case reflect.Struct:
		for i := range t.NumField() {
			if !pointerFree(t.Field(i).Type) {
				return false
			}
		}
		return true
	}
	return false
}
