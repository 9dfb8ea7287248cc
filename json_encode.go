package orchestrix

import (
	"bytes"
	"encoding/json"
	"sync"
	"unsafe"
)

// Encoding an event with the default codec and default ids in one
// allocation.
//
// Registry.Marshal with JSONCodec and NewID needs two strings of bytes per
// event: the envelope's 36-byte id and the payload json.Marshal returns
// (json.Marshal encodes into a pooled buffer and then copies the result
// out). marshalJSONWithID encodes into a pooled buffer too, and then
// makes one allocation holding the id followed by the payload: the id is
// a string over its first 36 bytes, Data the rest, with its capacity cut
// at its end so that an append to Data never writes past it. The bytes
// are never written again once returned (strings and Data are
// immutable to every reader, as they were).
//
// The payload is exactly json.Marshal's: a json.Encoder with its default
// settings escapes HTML as json.Marshal does, calls the same Marshaler
// methods and returns the same errors; it only adds a newline, which is
// dropped.

// jsonScratch is a pooled encoder writing into its own buffer.
type jsonScratch struct {
	buf bytes.Buffer
	enc *json.Encoder
}

var jsonScratches = sync.Pool{New: func() any {
	s := new(jsonScratch)
	s.enc = json.NewEncoder(&s.buf)
	return s
}}

// maxPooledJSON is the largest buffer returned to the pool: one huge
// payload must not keep its buffer alive.
const maxPooledJSON = 64 << 10

// marshalJSONWithID returns a new UUIDv7 (NewID) and json.Marshal(v),
// sharing one allocation.
func marshalJSONWithID(v any) (id string, data []byte, err error) {
	s := jsonScratches.Get().(*jsonScratch)
	s.buf.Reset()
	if err := s.enc.Encode(v); err != nil {
		putScratch(s)
		return "", nil, err
	}
	enc := s.buf.Bytes()
	enc = enc[:len(enc)-1] // Encode's newline
	const idLen = 36
	out := make([]byte, idLen+len(enc))
	putNewID((*[idLen]byte)(out[:idLen]))
	n := copy(out[idLen:], enc)
	putScratch(s)
	return unsafe.String(&out[0], idLen), out[idLen : idLen+n : idLen+n], nil
}

func putScratch(s *jsonScratch) {
	if s.buf.Cap() <= maxPooledJSON {
		jsonScratches.Put(s)
	}
}
