package orchestrix

import (
	"encoding/json"
	"reflect"
	"strings"

	jsonv2 "github.com/go-json-experiment/json"
	jsonv1 "github.com/go-json-experiment/json/v1"
)

// Fast payload decoding for the default codec.
//
// encoding/json.Unmarshal reads every payload twice: a validation pass
// (checkValid) and then the decoding pass. Replay spends most of its CPU
// there, so a Registry whose codec is JSONCodec decodes payloads with the
// single-pass engine of github.com/go-json-experiment/json, configured
// with that module's v1 options (DefaultOptionsV1): the options that make
// it behave as encoding/json — the same engine and options that back
// encoding/json in the Go distribution under GOEXPERIMENT=jsonv2.
// Field names match case-insensitively, unknown fields are ignored,
// duplicate names are allowed (the last wins, objects merge), invalid
// UTF-8 becomes U+FFFD, UnmarshalJSON and UnmarshalText methods are
// called as encoding/json calls them, time.Time and []byte read as
// before.
//
// Where the two could still differ, encoding/json decides:
//
//   - When the fast decoder reports any error, the payload is decoded
//     again from a fresh zero value by encoding/json, and its result and
//     error (its *json.SyntaxError or *json.UnmarshalTypeError, its
//     message) are what the caller sees. Errors are therefore exactly as
//     before; the cost is the second decode, on the error path only. A
//     custom UnmarshalJSON method may then run twice for one payload.
//   - Types where the two engines are known to accept different inputs
//     never take the fast path (fastJSONSafe): encoding/json.Number is a
//     plain string to the other engine; a type with an UnmarshalJSONFrom
//     method for that module's jsontext.Decoder would be decoded through
//     a method encoding/json does not know; and a struct field with the
//     ",string" option reads quoted numbers by other rules (the other
//     engine accepts "+0", found by FuzzDecodeFastJSON).
//
// JSONCodec.Decode itself is unchanged (it decodes into values the caller
// may have filled, where a retry from zero would not be the same); only
// the Registry, which decodes into a fresh zero value of the registered
// type, takes the fast path.

// fastJSONOptions are the options that make the v2 engine decode as
// encoding/json does, computed once (DefaultOptionsV1 builds them on
// every call) — except ReportErrorsWithLegacySemantics. That option only
// shapes errors (which the encoding/json retry reports instead) and,
// to report syntax errors before type errors as encoding/json does,
// validates the whole input before decoding it: the second pass this
// path exists to avoid. Without it the engine still checks every byte it
// reads or skips, so input that encoding/json rejects as invalid JSON
// fails here too.
var fastJSONOptions = jsonv2.JoinOptions(jsonv1.DefaultOptionsV1(), jsonv1.ReportErrorsWithLegacySemantics(false))

var (
	stdNumberType       = reflect.TypeFor[json.Number]()
	unmarshalerFromType = reflect.TypeFor[jsonv2.UnmarshalerFrom]()
)

// fastJSONSafe reports whether values of type t decode the same with the
// fast decoder as with encoding/json on success, as far as the type
// decides it: t reaches no encoding/json.Number and no type implementing
// the fast decoder's own UnmarshalerFrom, and no struct field with the
// ",string" option. Interface-typed parts decode to the generic JSON
// values (map[string]any, []any, float64, string, bool, nil) in both.
func fastJSONSafe(t reflect.Type) bool {
	return fastJSONWalk(t, make(map[reflect.Type]bool))
}

func fastJSONWalk(t reflect.Type, seen map[reflect.Type]bool) bool {
	if seen[t] {
		return true // checked, or being checked higher up (recursive type)
	}
	seen[t] = true
	if t == stdNumberType || t.Implements(unmarshalerFromType) || reflect.PointerTo(t).Implements(unmarshalerFromType) {
		return false
	}
	switch t.Kind() {
	case reflect.Pointer, reflect.Slice, reflect.Array:
		return fastJSONWalk(t.Elem(), seen)
	case reflect.Map:
		return fastJSONWalk(t.Key(), seen) && fastJSONWalk(t.Elem(), seen)
	case reflect.Struct:
		for i := range t.NumField() {
			f := t.Field(i)
			if hasStringOption(f.Tag.Get("json")) || !fastJSONWalk(f.Type, seen) {
				return false
			}
		}
	}
	return true
}

// hasStringOption reports whether a json struct tag carries the ",string"
// option.
func hasStringOption(tag string) bool {
	_, opts, _ := strings.Cut(tag, ",")
	for opts != "" {
		var o string
		o, opts, _ = strings.Cut(opts, ",")
		if o == "string" {
			return true
		}
	}
	return false
}

// decodeFastJSON decodes data into the zero value *v with the fast
// decoder, falling back to encoding/json (from zero again) when the fast
// decoder reports an error, so that errors are encoding/json's own.
func decodeFastJSON[T any](data []byte, v *T) error {
	if err := jsonv2.Unmarshal(data, v, fastJSONOptions); err == nil {
		return nil
	}
	var zero T
	*v = zero
	return json.Unmarshal(data, v)
}

// isJSONCodec reports whether c is the default JSON codec, whose Decode is
// encoding/json.Unmarshal.
func isJSONCodec(c Codec) bool {
	switch c.(type) {
	case JSONCodec, *JSONCodec:
		return true
	}
	return false
}
