// Package roundtrip holds the reflection helpers behind the test kit's
// serialization checks: Fill builds a value of a type with every field set
// (unexported ones too), and Diff finds the first field where two values
// differ and says why, in words a user can act on.
package roundtrip

import (
	"encoding"
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"time"
	"unsafe"
)

// SampleTime is the time Fill puts in time.Time fields: UTC, with
// nanoseconds, so that it survives every codec that keeps instants.
var SampleTime = time.Date(2026, 1, 2, 3, 4, 5, 123456789, time.UTC)

const maxDepth = 5

var (
	timeType            = reflect.TypeFor[time.Time]()
	jsonMarshalerType   = reflect.TypeFor[json.Marshaler]()
	textMarshalerType   = reflect.TypeFor[encoding.TextMarshaler]()
	binaryMarshalerType = reflect.TypeFor[encoding.BinaryMarshaler]()
)

// Fill returns an addressable value of type t with every field, element and
// key set to a non-zero value, so that a field a codec drops shows up as a
// difference. Interfaces, channels and functions stay nil (Fill cannot know
// which concrete type an interface should hold); types that marshal
// themselves (json.Marshaler, encoding.TextMarshaler,
// encoding.BinaryMarshaler), other than time.Time, stay zero because their
// invariants are unknown. Recursive types are cut off after a few levels.
func Fill(t reflect.Type) reflect.Value {
	v := reflect.New(t).Elem()
	fill(v, 0)
	return v
}

func selfMarshaling(t reflect.Type) bool {
	if t == timeType {
		return false
	}
	for _, m := range []reflect.Type{jsonMarshalerType, textMarshalerType, binaryMarshalerType} {
		if t.Implements(m) || reflect.PointerTo(t).Implements(m) {
			return true
		}
	}
	return false
}

// settable returns v, or a settable alias of v when v was reached through
// an unexported field.
func settable(v reflect.Value) reflect.Value {
	if v.CanSet() || !v.CanAddr() {
		return v
	}
	return reflect.NewAt(v.Type(), unsafe.Pointer(v.UnsafeAddr())).Elem()
}

func fill(v reflect.Value, depth int) {
	if depth > maxDepth {
		return
	}
	v = settable(v)
	if !v.CanSet() {
		return
	}
	t := v.Type()
	if t == timeType {
		v.Set(reflect.ValueOf(SampleTime))
		return
	}
	if selfMarshaling(t) {
		return
	}
	switch t.Kind() {
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		v.SetInt(int64(7 + depth))
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		v.SetUint(uint64(7 + depth))
	case reflect.Float32, reflect.Float64:
		v.SetFloat(1.25 + float64(depth))
	case reflect.Complex64, reflect.Complex128:
		v.SetComplex(complex(1, 2))
	case reflect.String:
		v.SetString(fmt.Sprintf("sample-%d", depth))
	case reflect.Array:
		for i := range v.Len() {
			fill(v.Index(i), depth+1)
		}
	case reflect.Slice:
		s := reflect.MakeSlice(t, 1, 1)
		fill(s.Index(0), depth+1)
		v.Set(s)
	case reflect.Map:
		m := reflect.MakeMapWithSize(t, 1)
		k := reflect.New(t.Key()).Elem()
		fill(k, depth+1)
		e := reflect.New(t.Elem()).Elem()
		fill(e, depth+1)
		m.SetMapIndex(k, e)
		v.Set(m)
	case reflect.Pointer:
		if depth == maxDepth {
			return
		}
		p := reflect.New(t.Elem())
		fill(p.Elem(), depth+1)
		v.Set(p)
	case reflect.Struct:
		for i := range v.NumField() {
			fill(v.Field(i), depth+1)
		}
	}
}

// NonFinite returns the path of the first NaN or infinite float in v, or
// "" when there is none.
func NonFinite(v reflect.Value) string { return nonFinite(v, "", 0) }

func nonFinite(v reflect.Value, path string, depth int) string {
	if !v.IsValid() || depth > 2*maxDepth {
		return ""
	}
	switch v.Kind() {
	case reflect.Float32, reflect.Float64:
		if f := v.Float(); math.IsNaN(f) || math.IsInf(f, 0) {
			return orRoot(path) + fmt.Sprintf(" is %v", f)
		}
	case reflect.Pointer, reflect.Interface:
		if !v.IsNil() {
			return nonFinite(v.Elem(), path, depth+1)
		}
	case reflect.Struct:
		for i := range v.NumField() {
			if p := nonFinite(v.Field(i), path+"."+v.Type().Field(i).Name, depth+1); p != "" {
				return p
			}
		}
	case reflect.Slice, reflect.Array:
		for i := range v.Len() {
			if p := nonFinite(v.Index(i), fmt.Sprintf("%s[%d]", path, i), depth+1); p != "" {
				return p
			}
		}
	case reflect.Map:
		it := v.MapRange()
		for it.Next() {
			if p := nonFinite(it.Value(), fmt.Sprintf("%s[%v]", path, it.Key()), depth+1); p != "" {
				return p
			}
		}
	}
	return ""
}

func orRoot(path string) string {
	if path == "" {
		return "the value"
	}
	return "field " + path[1:]
}

// Diff compares want (the value before a round trip) with got (after it)
// and describes the first difference: the field path from the top-level
// value and the reason, e.g. `field note (unexported; codecs see exported
// fields only): "x" became ""`. It returns "" when they are equal. Nil and
// empty slices and maps count as equal (many codecs do not keep the
// difference); NaN equals NaN; times are equal when they are the same
// instant in the same zone (a monotonic clock reading is ignored).
func Diff(want, got any) string {
	return diff(addressable(want), addressable(got), "", false, 0)
}

// addressable returns a settable copy of x, so that unexported fields can
// be read through it.
func addressable(x any) reflect.Value {
	v := reflect.ValueOf(x)
	if !v.IsValid() {
		return v
	}
	p := reflect.New(v.Type()).Elem()
	p.Set(v)
	return p
}

// iface returns v as an interface value when the reflection rules allow
// it, reading through unexported fields of addressable values.
func iface(v reflect.Value) (any, bool) {
	if v.CanInterface() {
		return v.Interface(), true
	}
	if v.CanAddr() {
		return reflect.NewAt(v.Type(), unsafe.Pointer(v.UnsafeAddr())).Elem().Interface(), true
	}
	return nil, false
}

func short(v reflect.Value) string {
	x, ok := iface(v)
	if !ok {
		return "<" + v.Type().String() + ">"
	}
	s := fmt.Sprintf("%#v", x)
	if len(s) > 80 {
		s = s[:77] + "..."
	}
	return s
}

func diff(a, b reflect.Value, path string, unexported bool, depth int) string {
	where := orRoot(path)
	if unexported {
		where += " (unexported: codecs only see exported fields)"
	}
	if !a.IsValid() || !b.IsValid() {
		if a.IsValid() != b.IsValid() {
			return fmt.Sprintf("%s: %v became %v", where, a, b)
		}
		return ""
	}
	if a.Type() != b.Type() {
		return fmt.Sprintf("%s: a %v came back as a %v", where, a.Type(), b.Type())
	}
	if depth > 4*maxDepth {
		return ""
	}
	if a.Type() == timeType {
		x, okx := iface(a)
		y, oky := iface(b)
		if okx && oky {
			return diffTime(where, x.(time.Time), y.(time.Time))
		}
	}
	switch a.Kind() {
	case reflect.Bool:
		if a.Bool() != b.Bool() {
			return fmt.Sprintf("%s: %v became %v", where, a.Bool(), b.Bool())
		}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		if a.Int() != b.Int() {
			return fmt.Sprintf("%s: %d became %d", where, a.Int(), b.Int())
		}
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		if a.Uint() != b.Uint() {
			return fmt.Sprintf("%s: %d became %d", where, a.Uint(), b.Uint())
		}
	case reflect.Float32, reflect.Float64:
		x, y := a.Float(), b.Float()
		if x != y && !(math.IsNaN(x) && math.IsNaN(y)) {
			return fmt.Sprintf("%s: %v became %v", where, x, y)
		}
	case reflect.Complex64, reflect.Complex128:
		if a.Complex() != b.Complex() {
			return fmt.Sprintf("%s: %v became %v", where, a.Complex(), b.Complex())
		}
	case reflect.String:
		if a.String() != b.String() {
			return fmt.Sprintf("%s: %q became %q", where, a.String(), b.String())
		}
	case reflect.Slice, reflect.Array:
		if a.Len() != b.Len() {
			return fmt.Sprintf("%s: %d elements became %d", where, a.Len(), b.Len())
		}
		for i := range a.Len() {
			if d := diff(a.Index(i), b.Index(i), fmt.Sprintf("%s[%d]", path, i), unexported, depth+1); d != "" {
				return d
			}
		}
	case reflect.Map:
		if a.Len() != b.Len() {
			return fmt.Sprintf("%s: %d entries became %d", where, a.Len(), b.Len())
		}
		it := a.MapRange()
		for it.Next() {
			bv := b.MapIndex(it.Key())
			p := fmt.Sprintf("%s[%v]", path, it.Key())
			if !bv.IsValid() {
				return fmt.Sprintf("%s: entry lost", orRoot(p))
			}
			if d := diff(it.Value(), bv, p, unexported, depth+1); d != "" {
				return d
			}
		}
	case reflect.Pointer:
		if a.IsNil() || b.IsNil() {
			if a.IsNil() != b.IsNil() {
				return fmt.Sprintf("%s: %s became %s", where, nilOr(a), nilOr(b))
			}
			return ""
		}
		return diff(a.Elem(), b.Elem(), path, unexported, depth+1)
	case reflect.Interface:
		if a.IsNil() || b.IsNil() {
			if a.IsNil() != b.IsNil() {
				return fmt.Sprintf("%s: %s became %s", where, nilOr(a), nilOr(b))
			}
			return ""
		}
		if a.Elem().Type() != b.Elem().Type() {
			return fmt.Sprintf("%s (interface %v): a %v came back as a %v; the codec cannot know which concrete type to decode into",
				where, a.Type(), a.Elem().Type(), b.Elem().Type())
		}
		return diff(a.Elem(), b.Elem(), path, unexported, depth+1)
	case reflect.Struct:
		for i := range a.NumField() {
			f := a.Type().Field(i)
			if d := diff(a.Field(i), b.Field(i), path+"."+f.Name, unexported || !f.IsExported(), depth+1); d != "" {
				return d
			}
		}
	case reflect.Func, reflect.Chan, reflect.UnsafePointer:
		if a.IsNil() != b.IsNil() {
			return fmt.Sprintf("%s: %s became %s", where, nilOr(a), nilOr(b))
		}
	}
	return ""
}

func nilOr(v reflect.Value) string {
	if v.IsNil() {
		return "nil"
	}
	if v.Kind() == reflect.Pointer {
		return "&" + short(v.Elem())
	}
	return short(v)
}

func diffTime(where string, x, y time.Time) string {
	if !x.Equal(y) {
		return fmt.Sprintf("%s: %v became %v", where, x, y)
	}
	_, ox := x.Zone()
	_, oy := y.Zone()
	if x.Location().String() != y.Location().String() || ox != oy {
		return fmt.Sprintf("%s: time zone %q became %q (same instant; store times in UTC, or use a codec that keeps zones)",
			where, x.Location(), y.Location())
	}
	return ""
}
