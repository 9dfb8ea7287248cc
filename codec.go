package orchestrix

import (
	"context"
	"encoding/json"
)

// Codec encodes event payloads to bytes and back. A Registry uses one
// Codec for every type it knows. Implementations must be safe for
// concurrent use.
type Codec interface {
	// Encode returns the encoding of v.
	Encode(v any) ([]byte, error)
	// Decode decodes data into v, which is a non-nil pointer.
	Decode(data []byte, v any) error
	// ContentType is the media type of the encoding, recorded in
	// Envelope.DataContentType, e.g. "application/json".
	ContentType() string
}

// JSONCodec is the default Codec: encoding/json, media type
// "application/json". The zero value is ready to use.
//
// A Registry whose codec is JSONCodec decodes payloads with a single-pass
// decoder (github.com/go-json-experiment/json in its encoding/json mode)
// instead of json.Unmarshal, which validates every payload in a separate
// pass first; recovery replays about twice as fast. Results are
// encoding/json's: any payload the fast decoder rejects is decoded again
// by json.Unmarshal, whose value and error (*json.SyntaxError,
// *json.UnmarshalTypeError, message) are returned — so an UnmarshalJSON
// method may run twice for a payload that fails — and types where the
// two could accept different inputs (fields of type json.Number or with
// the ",string" option) are always decoded by json.Unmarshal. Decode
// itself is json.Unmarshal.
//
// Such a Registry also encodes without json.Marshal where it can: Register
// compiles an encoder for a type made of booleans, numbers, strings,
// structs, pointers, slices and arrays, which writes json.Marshal's bytes
// exactly (HTML escaping, float format, invalid UTF-8 as U+FFFD,
// omitempty, tag names) without reflection per call, and which
// Registry.AppendMarshalFor writes into the caller's buffer. A type with a
// MarshalJSON or MarshalText method anywhere in it, a map, an interface,
// an embedded struct field, or the ",string" or ",omitzero" tag options is
// encoded by json.Marshal, as is any value json.Marshal refuses (its error
// is returned). Encode itself is json.Marshal.
type JSONCodec struct{}

var _ Codec = JSONCodec{}

// Encode implements Codec with json.Marshal.
func (JSONCodec) Encode(v any) ([]byte, error) { return json.Marshal(v) }

// Decode implements Codec with json.Unmarshal.
func (JSONCodec) Decode(data []byte, v any) error { return json.Unmarshal(data, v) }

// ContentType implements Codec; it returns "application/json".
func (JSONCodec) ContentType() string { return "application/json" }

// SubjectCodec is a Codec whose encoding depends on the data subject the
// payload belongs to — typically the aggregate id in Envelope.Subject —
// for example a codec that encrypts personal data with a per-subject key
// (package pii). A Registry whose codec implements it encodes through
// EncodeFor in MarshalFor and decodes through DecodeFor in Unmarshal and
// UnmarshalFor, passing the envelope's Subject.
//
// Encode and Decode (the plain Codec methods) are used when no subject is
// known; an implementation may refuse to encode a payload that needs one.
// Implementations must be safe for concurrent use.
type SubjectCodec interface {
	Codec
	// EncodeFor returns the encoding of v, which belongs to subject.
	EncodeFor(ctx context.Context, subject string, v any) ([]byte, error)
	// DecodeFor decodes data, which belongs to subject, into v, a non-nil
	// pointer.
	DecodeFor(ctx context.Context, subject string, data []byte, v any) error
}

// subjectDecoder binds a SubjectCodec to one subject for Registry.decode.
type subjectDecoder struct {
	SubjectCodec
	ctx     context.Context
	subject string
}

func (d subjectDecoder) Decode(data []byte, v any) error {
	return d.DecodeFor(d.ctx, d.subject, data, v)
}
