// Package clusterseam is the narrow seam between package actor and package
// cluster: cluster attaches a Router to an *actor.System, and from then on
// the system's handles ask the router to run their commands and state
// reads on the owner of each id; cluster in turn serves requests from other
// members through the Kind values actor exposes. Neither side's public API
// mentions the other, and nothing above actor holds a PID.
//
// Package actor sets the functions below when it is initialised; every
// package that accepts an *actor.System imports actor, so they are set
// before they can be called.
package clusterseam

import (
	"context"
	"errors"

	"github.com/orchestrix/orchestrix/journal"
)

// Router places commands and state reads on the owner of an id.
type Router interface {
	// Command runs a command on the owner of kind/id. When this member is
	// the owner it calls local (which runs the command on this member's
	// local path and keeps its typed result) and returns local's error with
	// ranLocally set; otherwise it sends cmd (binary envelope bytes) to the
	// owner and returns its reply.
	Command(ctx context.Context, kind, id, commandID string, cmd []byte,
		local func(context.Context) error) (reply CommandReply, ranLocally bool, err error)

	// State reads the state of kind/id on its owner, like Command: at false
	// is the current state, at true the state at version.
	State(ctx context.Context, kind, id string, at bool, version uint64,
		local func(context.Context) error) (reply StateReply, ranLocally bool, err error)
}

// Admitter is an optional interface of a Router. While a router that
// implements it is attached, the system asks Admit before it routes a
// command or state read to an aggregate's activation (spawning it if
// absent), under the same lock under which Kind.Release sends its stops.
// So a router that changes its answer and then calls Release knows that
// every message routed after Release's scan was admitted under the new
// answer, and every message routed before it is drained by Release.
//
// Admit must be fast and must not block (it runs under a routing lock);
// it may be called concurrently. A non-nil error is returned to the
// caller unchanged and must match ErrReleased (nothing was executed: the
// router places the command again).
type Admitter interface {
	Admit(kind, id string) error
}

// CommandReply is a command's result as it crosses members.
type CommandReply struct {
	Events            [][]byte // committed events, binary envelope form
	Version, Position uint64
	Duplicate         bool
}

// StateReply is a state as it crosses members.
type StateReply struct {
	State   []byte // encoded as the definition encodes snapshots
	Version uint64
}

// Kind serves the requests of other members for one registered kind.
type Kind interface {
	// ServeCommand decodes and runs a command on this member's local path.
	// data is the caller's own buffer (the wire decoder's), never modified
	// afterwards: the decoded command may keep pointing into it.
	ServeCommand(ctx context.Context, data []byte) (CommandReply, error)
	// ServeState reads a state on this member's local path.
	ServeState(ctx context.Context, id string, at bool, version uint64) (StateReply, error)
	// Release stops every activation of the kind on this member whose id
	// keep reports false for (nil keep: every activation), and waits until
	// each has finished its in-flight appends, saved its final snapshot
	// and stopped, or until ctx ends. Commands still queued for a released
	// activation are not executed: they fail with ErrReleased. It returns
	// how many activations it stopped.
	Release(ctx context.Context, keep func(id string) bool) (int, error)
}

// AsyncKind is an optional interface of a Kind (package actor's kinds
// implement it): it serves a command without a goroutine waiting for it.
type AsyncKind interface {
	// ServeCommandAsync decodes and runs a command on this member's local
	// path, as ServeCommand does, and calls done exactly once when its
	// outcome is known: on the calling goroutine when it is known at once
	// (a decoding error, a refusal, a command decided without events run
	// inline), otherwise later, on the goroutine that answered it (the
	// aggregate's or the journal's). done must therefore not block nor
	// route a command; it gets the outcome as a function, to be called
	// once, elsewhere, which encodes the reply. Nothing bounds the wait
	// but the local path itself (journal timeouts, the system's Close, a
	// Release). data is owned as ServeCommand's is.
	ServeCommandAsync(data []byte, done func(Outcome))
}

// Outcome returns a served command's reply, or its error, as
// Kind.ServeCommand would have.
type Outcome func() (CommandReply, error)

// ErrReleased: the command reached an activation this member was
// releasing (it no longer owns the id, or it is leaving or fenced), and
// was not executed. The router places it again.
var ErrReleased = errors.New("cluster: the activation was released by this member (the command was not executed)")

var (
	// Attach installs r on the *actor.System sys (nil detaches). It fails
	// when a router is already attached.
	Attach func(sys any, r Router) error
	// Kinds returns the kinds registered on sys, by name.
	Kinds func(sys any) map[string]Kind
	// Journal returns the journal of sys.
	Journal func(sys any) journal.Journal
)
