package cluster

import (
	"errors"

	"github.com/orchestrix/orchestrix"
	"github.com/orchestrix/orchestrix/actor"
	"github.com/orchestrix/orchestrix/aggregate"
	"github.com/orchestrix/orchestrix/cluster/internal/wire"
	"github.com/orchestrix/orchestrix/internal/clusterseam"
)

// Errors of package cluster, matched with errors.Is.
var (
	// ErrInvalidConfig: Config.Validate found a problem.
	ErrInvalidConfig = errors.New("cluster: invalid config")
	// ErrJournalNotShared: the system's journal cannot be shared by
	// several processes (it does not implement journal.Shared, e.g. bbolt
	// or the in-memory journal).
	ErrJournalNotShared = errors.New("cluster: the journal cannot be shared by several members")
	// ErrNoOwner: no member hosting the kind is known. Retried until the
	// caller's context ends.
	ErrNoOwner = errors.New("cluster: no member hosts this kind")
	// ErrNotOwner: the member asked is not the owner of the id in its own
	// view; nothing was executed. Retried until the caller's context ends.
	ErrNotOwner = errors.New("cluster: not the owner")
	// ErrUnknownKind: the member asked hosts no kind of that name.
	ErrUnknownKind = errors.New("cluster: unknown aggregate kind")
	// ErrStarted: a member is already running on this system.
	ErrStarted = errors.New("cluster: a member is already running on this system")
	// ErrStart: the member could not start (listen or provider failure).
	ErrStart = errors.New("cluster: starting the member failed")
)

// codes maps reply codes to the sentinels the caller's error matches, in
// the order an error is classified on the receiving side.
var codes = []struct {
	code wire.Code
	err  error
}{
	{wire.Code_OUTCOME_UNKNOWN, orchestrix.ErrOutcomeUnknown},
	{wire.Code_NOT_OWNER, ErrNotOwner},
	{wire.Code_UNKNOWN_KIND, ErrUnknownKind},
	{wire.Code_UNKNOWN_COMMAND_TYPE, actor.ErrUnknownCommandType},
	{wire.Code_VERSION_CONFLICT, orchestrix.ErrVersionConflict},
	{wire.Code_NOT_FOUND, orchestrix.ErrNotFound},
	{wire.Code_PANICKED, aggregate.ErrPanicked},
	{wire.Code_REJECTED, aggregate.ErrRejected},
	{wire.Code_INVALID_ID, actor.ErrInvalidID},
	{wire.Code_CLOSED, orchestrix.ErrClosed},
	{wire.Code_INVALID_ENVELOPE, orchestrix.ErrInvalidEnvelope},
	{wire.Code_TOO_LARGE, orchestrix.ErrTooLarge},
}

func codeOf(err error) wire.Code {
	if errors.Is(err, clusterseam.ErrReleased) {
		// Released here while queued: not executed, so to the caller it is
		// "not the owner" and it places the command again.
		return wire.Code_NOT_OWNER
	}
	for _, c := range codes {
		if errors.Is(err, c.err) {
			return c.code
		}
	}
	return wire.Code_FAILED
}

// remoteError is an error reported by another member: its text, and the
// sentinel of its code for errors.Is. Domain errors of a rejection match
// aggregate.ErrRejected but not their own value, which did not cross.
type remoteError struct {
	member string
	code   wire.Code
	msg    string
}

func (e *remoteError) Error() string { return "cluster: member " + e.member + ": " + e.msg }

func (e *remoteError) Is(target error) bool {
	for _, c := range codes {
		if c.code == e.code {
			return target == c.err
		}
	}
	return false
}
