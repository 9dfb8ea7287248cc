package actor

import (
	"errors"
	"fmt"

	"github.com/orchestrix/orchestrix"
	"github.com/orchestrix/orchestrix/aggregate"
	"github.com/orchestrix/orchestrix/journal"
	"github.com/orchestrix/orchestrix/telemetry"
)

// Errors of the runtime. Besides these, command errors match the shared
// sentinels of package orchestrix:
//
//   - orchestrix.ErrNotFound: the definition has Creates and the aggregate
//     has no events (and the command does not create it).
//   - orchestrix.ErrVersionConflict: another writer appended to the stream
//     first (for example a second activation of the same aggregate); the
//     aggregate restarts from the journal and the command may be retried.
//   - orchestrix.ErrOutcomeUnknown: the events may or may not be stored;
//     retry with the same command id, which is deduplicated.
//   - orchestrix.ErrClosed: the system is shut down.
//   - journal.ErrRejected (and the journal's other definite refusals:
//     ErrInvalidEnvelope, ErrTooLarge, journal.ErrInvalidStream): the
//     journal refused the append and stored nothing; the error does not
//     match ErrOutcomeUnknown. Commands decided after it, against the
//     state it would have produced, fail with ErrAborted.
//   - context.DeadlineExceeded / context.Canceled: the caller's context
//     ended. When it ended before the reply, the error also matches
//     ErrOutcomeUnknown, since the command may still execute. When it
//     had already ended as Send was called, nothing was sent: the error
//     matches the context's error only, and the command never executes.
//   - aggregate.ErrRejected: Decide refused the command; the error also
//     unwraps to the domain error Decide returned.
//   - aggregate.ErrPanicked: user code panicked; the aggregate's state is
//     as it was before the command.
//
// Every error returned by Send is a *CommandError naming the aggregate and
// command.
var (
	// ErrInvalidConfig means a Config failed Validate.
	ErrInvalidConfig = errors.New("actor: invalid config")

	// ErrInvalidID means an aggregate or command id is empty, too long,
	// not UTF-8 or contains control characters.
	ErrInvalidID = errors.New("actor: invalid id")

	// ErrAlreadyRegistered means a definition of the same kind is already
	// registered with the system.
	ErrAlreadyRegistered = errors.New("actor: kind already registered")

	// ErrAborted means the command was decided against state that an
	// earlier, failed append would have produced, so it was not stored.
	// It also matches orchestrix.ErrOutcomeUnknown and unwraps to the
	// earlier failure: callers treat it like an unknown outcome and retry
	// with the same command id.
	ErrAborted = errors.New("actor: command aborted after an earlier append failed")

	// ErrRecovery means the aggregate could not be recovered from the
	// journal (a read error, a corrupt or undecodable event, a panic in
	// Evolve). It wraps the cause; the next command tries again.
	ErrRecovery = errors.New("actor: recovery failed")
)

// CommandError is the error of a command sent to an aggregate. It unwraps to
// the cause, which matches one of the errors listed above.
type CommandError struct {
	Kind        string
	AggregateID string
	CommandID   string
	Err         error
}

func (e *CommandError) Error() string {
	return fmt.Sprintf("actor: %s %q command %s: %v", e.Kind, e.AggregateID, e.CommandID, e.Err)
}

// Unwrap returns the cause.
func (e *CommandError) Unwrap() error { return e.Err }

// abortedError is the error of commands queued behind a failed append.
type abortedError struct{ cause error }

func (e *abortedError) Error() string { return ErrAborted.Error() + ": " + e.cause.Error() }
func (e *abortedError) Is(target error) bool {
	return target == ErrAborted || target == orchestrix.ErrOutcomeUnknown
}
func (e *abortedError) Unwrap() error { return e.cause }

// unknownOutcomeError marks an append failure whose outcome is unknown.
type unknownOutcomeError struct{ cause error }

func (e *unknownOutcomeError) Error() string {
	return orchestrix.ErrOutcomeUnknown.Error() + ": " + e.cause.Error()
}
func (e *unknownOutcomeError) Is(target error) bool { return target == orchestrix.ErrOutcomeUnknown }
func (e *unknownOutcomeError) Unwrap() error        { return e.cause }

// classifyAppendError keeps errors that prove nothing was stored and marks
// every other append failure as an unknown outcome.
func classifyAppendError(err error) error {
	for _, known := range []error{
		orchestrix.ErrOutcomeUnknown, orchestrix.ErrVersionConflict, orchestrix.ErrInvalidEnvelope,
		orchestrix.ErrTooLarge, orchestrix.ErrClosed, journal.ErrRejected, journal.ErrInvalidStream,
	} {
		if errors.Is(err, known) {
			return err
		}
	}
	return &unknownOutcomeError{cause: err}
}

// recoveryError wraps a recovery failure so it matches ErrRecovery and its
// cause.
type recoveryError struct{ cause error }

func (e *recoveryError) Error() string        { return ErrRecovery.Error() + ": " + e.cause.Error() }
func (e *recoveryError) Is(target error) bool { return target == ErrRecovery }
func (e *recoveryError) Unwrap() error        { return e.cause }

// outcomeOf classifies a command's error for metrics and spans: the
// runtime's own errors first, then telemetry.OutcomeOf's shared sentinels.
func outcomeOf(err error) telemetry.Outcome {
	switch {
	case err == nil:
		return telemetry.OutcomeOK
	case errors.Is(err, aggregate.ErrPanicked):
		return telemetry.OutcomePanic
	case errors.Is(err, aggregate.ErrRejected):
		return telemetry.OutcomeRejected
	case errors.Is(err, ErrInvalidID):
		return telemetry.OutcomeInvalid
	}
	return telemetry.OutcomeOf(err)
}
