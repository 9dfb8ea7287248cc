package actortest

import (
	"time"

	memjournal "github.com/orchestrix/orchestrix/journal/mem"
)

// Appends selects the appends a journal fault applies to: those to Stream
// (journal.StreamName(kind, id), or actor.Handle.Stream), those to any
// stream of aggregate Kind, or, when both are empty, every append.
type Appends struct {
	Kind   string
	Stream string
}

// AllAppends selects every append.
var AllAppends = Appends{}

// KindAppends selects the appends of aggregate kind.
func KindAppends(kind string) Appends { return Appends{Kind: kind} }

// StreamAppends selects the appends to stream.
func StreamAppends(stream string) Appends { return Appends{Stream: stream} }

func (e *Env) inject(f memjournal.AppendFault) {
	e.t.Helper()
	if e.Journal == nil {
		e.t.Fatalf("actortest: journal faults need the in-memory journal (the system runs on a backend given WithBackend)")
		return
	}
	e.Journal.InjectAppendFault(f)
}

// FailAppends makes each of the next n appends selected by to fail
// without storing anything, as an I/O error does: the command that caused
// it sees an error matching orchestrix.ErrOutcomeUnknown.
func (e *Env) FailAppends(n int, to Appends) {
	e.t.Helper()
	e.inject(memjournal.AppendFault{Kind: to.Kind, Stream: to.Stream, Times: max(n, 1), Effect: memjournal.FaultFail})
}

// RejectAppends makes each of the next n appends selected by to be
// refused with err (memjournal.ErrInjectedRejection when nil), storing
// nothing: a definite failure the command's caller sees.
func (e *Env) RejectAppends(n int, to Appends, err error) {
	e.t.Helper()
	e.inject(memjournal.AppendFault{Kind: to.Kind, Stream: to.Stream, Times: max(n, 1), Effect: memjournal.FaultReject, Err: err})
}

// StoreButReportUnknown makes each of the next n appends selected by to
// store its events and then report an error matching
// orchestrix.ErrOutcomeUnknown, as a commit whose acknowledgement was
// lost. Retrying the command with the same command id must not store its
// events twice.
func (e *Env) StoreButReportUnknown(n int, to Appends) {
	e.t.Helper()
	e.inject(memjournal.AppendFault{Kind: to.Kind, Stream: to.Stream, Times: max(n, 1), Effect: memjournal.FaultStoredUnknown})
}

// DelayAppends holds each of the next n appends selected by to until the
// test advances the environment's manual clock by d (Env.Clock): the
// command stays in flight, deterministically, until then.
func (e *Env) DelayAppends(n int, to Appends, d time.Duration) {
	e.t.Helper()
	e.inject(memjournal.AppendFault{Kind: to.Kind, Stream: to.Stream, Times: max(n, 1), Effect: memjournal.FaultDelay, Delay: d, Clock: e.Clock})
}
