package orchestrix

import "errors"

// Sentinel errors shared by every package of Orchestrix. Match them with
// errors.Is; packages wrap them in typed errors when data must travel with
// the error (for example journal.VersionConflictError carries the expected
// and actual versions and matches ErrVersionConflict).
var (
	// ErrClosed is returned by every call on a journal, store or system
	// after it has been closed.
	ErrClosed = errors.New("orchestrix: closed")

	// ErrVersionConflict means an append was rejected because the stream
	// was not at the expected version. Nothing of that append was stored.
	ErrVersionConflict = errors.New("orchestrix: version conflict")

	// ErrOutcomeUnknown means a write may or may not have been stored (an
	// I/O error during commit, a lost connection). It is never reported
	// for a write known to be rejected, and a write that reports it must
	// be treated as possibly durable: read back before retrying, or retry
	// with the same event ids so the journal can deduplicate.
	ErrOutcomeUnknown = errors.New("orchestrix: outcome unknown")

	// ErrCorrupt means stored data failed its checksum or could not be
	// decoded. Corrupt data is reported, never silently skipped.
	ErrCorrupt = errors.New("orchestrix: corrupt data")

	// ErrInvalidEnvelope means an envelope is malformed: bad JSON, a
	// missing required attribute, a wrong specversion, a bad extension.
	ErrInvalidEnvelope = errors.New("orchestrix: invalid envelope")

	// ErrUnknownEventType means a type name has no registration.
	ErrUnknownEventType = errors.New("orchestrix: unknown event type")

	// ErrTooLarge means a payload exceeds a configured size limit.
	ErrTooLarge = errors.New("orchestrix: too large")

	// ErrNotFound means the addressed stream, snapshot or entity does not
	// exist.
	ErrNotFound = errors.New("orchestrix: not found")
)
