package journal

import (
	"errors"
	"fmt"
	"unicode/utf8"

	"github.com/orchestrix/orchestrix"
)

// The rules every backend applies to an append before storing anything,
// defined here once so that the backends agree and a stream exported from
// one imports into any other.

// MaxStreamLen is the longest stream name, in bytes, that a journal
// accepts.
const MaxStreamLen = 4096

var (
	// ErrInvalidStream is returned (wrapped) by Append and DeleteTo for a
	// stream name that ValidateStream rejects. Nothing is stored.
	ErrInvalidStream = errors.New("journal: invalid stream name")

	// ErrRejected marks a definite refusal of an append by a backend for a
	// reason of its own (a policy, a quota, an injected rejection in
	// tests): nothing was stored, and retrying the same append gets the
	// same answer. A backend wraps its error with it so that callers, the
	// actor runtime first, report the refusal as it is and not as an
	// unknown outcome. Errors that already match a shared sentinel
	// (orchestrix.ErrVersionConflict, ErrInvalidEnvelope, ErrTooLarge,
	// ErrInvalidStream) need not wrap it.
	ErrRejected = errors.New("journal: append refused, nothing stored")

	// ErrNoEvents is returned (wrapped) by Append for an empty events
	// slice. It matches orchestrix.ErrInvalidEnvelope as well.
	ErrNoEvents = fmt.Errorf("journal: append without events: %w", orchestrix.ErrInvalidEnvelope)
)

// ValidateStream reports whether name is a valid stream name: 1 to
// MaxStreamLen bytes of valid UTF-8 without a NUL byte. The error wraps
// ErrInvalidStream.
func ValidateStream(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("%w: empty", ErrInvalidStream)
	case len(name) > MaxStreamLen:
		return fmt.Errorf("%w: %d bytes, above the limit of %d", ErrInvalidStream, len(name), MaxStreamLen)
	case !utf8.ValidString(name):
		return fmt.Errorf("%w: %q is not valid UTF-8", ErrInvalidStream, name)
	}
	for i := 0; i < len(name); i++ {
		if name[i] == 0 {
			return fmt.Errorf("%w: %q contains a NUL byte", ErrInvalidStream, name)
		}
	}
	return nil
}

// ReasonPartialMatch is the VersionConflictError.Reason of an append
// whose event ids only partly match the events stored where it would have
// gone.
const ReasonPartialMatch = "event ids partly match stored events"

// Match is the outcome of comparing an append's event ids with stored
// events (see MatchIDs).
type Match uint8

const (
	// MatchNone: no id matches; the append is not a retry.
	MatchNone Match = iota
	// MatchAll: every id matches; the append is a retry of a stored one
	// and returns the stored result with Duplicate set.
	MatchAll
	// MatchPartial: some ids match, not all; the append is a version
	// conflict with Reason ReasonPartialMatch.
	MatchPartial
)

// MatchIDs applies the idempotency rule of the package documentation to
// an append of n events: same(i) reports whether event i of the append has
// the id of the event stored at the version event i would have taken
// (false when there is none). It calls same at most n times, in order,
// and stops as soon as the outcome is known.
func MatchIDs(n int, same func(i int) bool) Match {
	matched, missed := false, false
	for i := range n {
		if same(i) {
			matched = true
		} else {
			missed = true
		}
		if matched && missed {
			return MatchPartial
		}
	}
	if matched {
		return MatchAll
	}
	return MatchNone
}
