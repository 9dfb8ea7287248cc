package orchestrix

import "encoding/json"

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
type JSONCodec struct{}

var _ Codec = JSONCodec{}

// Encode implements Codec with json.Marshal.
func (JSONCodec) Encode(v any) ([]byte, error) { return json.Marshal(v) }

// Decode implements Codec with json.Unmarshal.
func (JSONCodec) Decode(data []byte, v any) error { return json.Unmarshal(data, v) }

// ContentType implements Codec; it returns "application/json".
func (JSONCodec) ContentType() string { return "application/json" }
