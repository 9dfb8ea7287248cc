package saga

import (
	"fmt"
	"unicode"
	"unicode/utf8"

	"github.com/google/uuid"
)

// MaxIDLength is the longest saga (correlation) id accepted, in bytes.
const MaxIDLength = 200

// validateID checks a saga id.
func validateID(id string) error {
	bad := func(reason string) error { return fmt.Errorf("%w %q: %s", ErrInvalidID, id, reason) }
	switch {
	case id == "":
		return bad("empty")
	case len(id) > MaxIDLength:
		return bad(fmt.Sprintf("longer than %d bytes", MaxIDLength))
	case !utf8.ValidString(id):
		return bad("not valid UTF-8")
	}
	for _, r := range id {
		if unicode.IsControl(r) {
			return bad("contains a control character")
		}
	}
	return nil
}

// idSpace is the UUIDv5 namespace of the ids the package derives.
var idSpace = uuid.MustParse("6f1d8c2e-5a7b-4c3d-9e8f-0a1b2c3d4e5f")

// commandID derives a UUIDv5 from the saga stream, step, phase and name.
func commandID(stream, step, phase, name string) string {
	return uuid.NewSHA1(idSpace, []byte(stream+"\x00"+step+"\x00"+phase+"\x00"+name)).String()
}

// eventID derives the id of the saga stream's event at version, so that an
// append retried after an unknown outcome is recognised by the journal.
func eventID(stream string, version uint64) string {
	return uuid.NewSHA1(idSpace, fmt.Appendf([]byte(stream+"\x00event\x00"), "%d", version)).String()
}
