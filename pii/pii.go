package pii

import (
	"errors"
	"fmt"

	"github.com/orchestrix/orchestrix"
)

// Erased is what a personal-data string field reads back as once its
// subject has been erased (a []byte field reads back as []byte(Erased),
// each element of a []string field as Erased). It is stored as is, never
// encrypted, so states and snapshots that already hold it can be encoded
// again after the erasure.
const Erased = "[erased]"

// IsErased reports whether s is the Erased marker. For a []byte field b,
// use IsErased(string(b)).
func IsErased(s string) bool { return s == Erased }

// Errors of the package. Match them with errors.Is.
var (
	// ErrErased means a subject's keys were destroyed: no personal data
	// can be encrypted for it any more. Decoding never reports it (the
	// fields read back as Erased instead).
	ErrErased = errors.New("pii: subject erased")

	// ErrUnknownKey means an encrypted field names a key id its key store
	// never issued (the wrong key store, or a damaged field). It matches
	// orchestrix.ErrCorrupt.
	ErrUnknownKey = fmt.Errorf("pii: unknown key id: %w", orchestrix.ErrCorrupt)

	// ErrCorruptField means an encrypted field is malformed or fails
	// authentication. It matches orchestrix.ErrCorrupt.
	ErrCorruptField = fmt.Errorf("pii: corrupt encrypted field: %w", orchestrix.ErrCorrupt)

	// ErrNoSubject means personal data has to be encrypted but its
	// subject is unknown: Encode without a subject (use EncodeFor or
	// orchestrix.Registry.MarshalFor), or an empty subject field.
	ErrNoSubject = errors.New("pii: personal data without a subject")

	// ErrInvalidSubject means a subject id is too long for a key store.
	ErrInvalidSubject = errors.New("pii: invalid subject")

	// ErrUnsupportedField means a type's pii struct tags cannot be
	// honoured: an unknown tag option, a field of a kind other than
	// string, []byte or []string, an unexported field, personal data
	// inside a map, or a subject field that is missing, not a string, or
	// itself personal data.
	ErrUnsupportedField = errors.New("pii: unsupported personal data field")
)
