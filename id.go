package orchestrix

import (
	"encoding/binary"
	"math/rand/v2"

	"github.com/google/uuid"
)

// NewID returns a new UUIDv7 in its canonical 36-character string form.
//
// UUIDv7 ids begin with a millisecond Unix timestamp, so ids created later
// sort after earlier ones (ids created within the same millisecond by one
// process are ordered too), which keeps index inserts in journals local.
// NewID is safe for concurrent use and never fails.
func NewID() string {
	id, err := uuid.NewV7()
	if err != nil {
		// crypto/rand does not fail on supported platforms (since Go 1.24
		// it aborts the program rather than return an error); should it
		// ever, fall back to the runtime's randomly seeded generator so
		// the id keeps its layout and stays unique in practice.
		id, err = uuid.NewV7FromReader(fallbackRandom{})
		if err != nil {
			return uuid.UUID{}.String()
		}
	}
	return id.String()
}

// fallbackRandom is an io.Reader over math/rand/v2's global generator.
type fallbackRandom struct{}

func (fallbackRandom) Read(p []byte) (int, error) {
	var b [8]byte
	for i := 0; i < len(p); i += len(b) {
		binary.LittleEndian.PutUint64(b[:], rand.Uint64())
		copy(p[i:], b[:])
	}
	return len(p), nil
}
