// Package commandtap is the narrow seam between package actor and the saga
// test kit (saga/sagatest): a Tap attached to an *actor.System sees every
// command the system's handles send (Send, Dispatch, Tell) before it
// reaches an aggregate, and may answer it instead of the aggregate. Package
// saga marks the context of each action and process handler call with its
// Origin, so the tap can tell which saga step sent a command.
//
// Nothing here is part of the public API: a production system never has a
// tap, and its cost is one atomic load per command.
//
// Package actor sets Attach when it is initialised; every package that
// accepts an *actor.System imports actor, so it is set before it can be
// called.
package commandtap

import "context"

// Command is a command as the tap sees it.
type Command struct {
	Kind, AggregateID, ID, CorrelationID string
	Body                                 any
	// Told is set for Tell: nobody waits for the answer, so the tap must
	// not block on it.
	Told bool
}

// Tap intercepts commands. Command is called on the sender's goroutine,
// concurrently for concurrent senders. It returns pass to let the command
// go on to its aggregate; otherwise err is the command's outcome (nil: it
// succeeded without events), wrapped by the handle in an
// *actor.CommandError.
type Tap interface {
	Command(ctx context.Context, c Command) (pass bool, err error)
}

// Attach installs t on the *actor.System sys (nil detaches). It fails when
// a tap is already attached.
var Attach func(sys any, t Tap) error

// Origin is what sent a command: a saga step (or its compensation) or a
// process handler call.
type Origin struct {
	// Saga is the orchestration's or process manager's name; ID the saga
	// or process id.
	Saga, ID string
	// Process is set for a process manager's handler call.
	Process bool
	// Step is the step's name, or for a process the input: the event's
	// type name, or "timeout <name>".
	Step         string
	Compensating bool
	Attempt      int
}

type originKey struct{}

// WithOrigin returns ctx marked with o.
func WithOrigin(ctx context.Context, o Origin) context.Context {
	return context.WithValue(ctx, originKey{}, o)
}

// OriginOf returns the origin ctx is marked with.
func OriginOf(ctx context.Context) (Origin, bool) {
	o, ok := ctx.Value(originKey{}).(Origin)
	return o, ok
}
