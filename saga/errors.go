package saga

import (
	"errors"

	"github.com/orchestrix/orchestrix"
	"github.com/orchestrix/orchestrix/actor"
	"github.com/orchestrix/orchestrix/aggregate"
)

// Errors of the package. Match them with errors.Is.
var (
	// ErrInvalidSaga means an orchestration or a Config cannot be used:
	// a bad name, no steps, a step without an action, a bad option.
	ErrInvalidSaga = errors.New("saga: invalid definition")

	// ErrInvalidID means a saga id is empty, too long, not UTF-8 or
	// contains control characters.
	ErrInvalidID = errors.New("saga: invalid saga id")

	// ErrAlreadyRegistered means a saga of the same name is already
	// registered with the runner.
	ErrAlreadyRegistered = errors.New("saga: name already registered")

	// ErrRejected marks a step failure that retrying cannot fix. Wrap a
	// custom action's error with Reject to make the saga compensate (for
	// an action) or fail (for a compensation). Errors of rejected
	// aggregate commands (aggregate.ErrRejected) count as rejections
	// without wrapping.
	ErrRejected = errors.New("saga: step rejected")

	// ErrTimeout is the cause of a step's context when its durable
	// deadline passes; the step then fails as timed out.
	ErrTimeout = errors.New("saga: step deadline passed")
)

// Reject wraps err so that the saga treats it as a rejection (see
// ErrRejected) rather than as a transient failure to retry. errors.Is and
// errors.As see through the wrapper. Reject(nil) is nil.
func Reject(err error) error {
	if err == nil {
		return nil
	}
	return &rejection{err: err}
}

type rejection struct{ err error }

func (r *rejection) Error() string { return r.err.Error() }

func (r *rejection) Unwrap() error { return r.err }

func (r *rejection) Is(target error) bool { return target == ErrRejected }

// isRejection reports whether err is a definitive refusal: retrying with
// the same command cannot succeed.
func isRejection(err error) bool {
	for _, permanent := range []error{
		ErrRejected, aggregate.ErrRejected, aggregate.ErrPanicked,
		orchestrix.ErrNotFound, actor.ErrInvalidID, orchestrix.ErrInvalidEnvelope, orchestrix.ErrTooLarge,
	} {
		if errors.Is(err, permanent) {
			return true
		}
	}
	return false
}
