package mem

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/orchestrix/orchestrix"
	"github.com/orchestrix/orchestrix/journal"
)

// ErrInjected is the error an injected fault reports when it was armed
// with a nil error. It matches orchestrix.ErrOutcomeUnknown, like the I/O
// failures it stands for.
var ErrInjected = fmt.Errorf("journal/mem: injected fault: %w", orchestrix.ErrOutcomeUnknown)

// faults holds the armed fault injections. Each kind is a queue: arming
// twice fails the next two operations of that kind.
type faults struct {
	mu         sync.Mutex
	beforeErrs []error     // appends that fail without storing
	afterErrs  []error     // appends that store, then fail
	reads      []readFault // reads that fail
	policies   []*policy   // armed AppendFaults, in arming order
}

// policy is an armed AppendFault and how many appends it still applies to.
type policy struct {
	AppendFault
	left int
}

// ErrInjectedRejection is the error of a FaultReject armed with a nil
// error: the journal refused the append and stored nothing, a definite
// outcome (it does not match orchestrix.ErrOutcomeUnknown).
// It wraps journal.ErrRejected.
var ErrInjectedRejection = fmt.Errorf("journal/mem: injected rejection: %w", journal.ErrRejected)

// FaultEffect is what an AppendFault does to a matching append.
type FaultEffect int

// The effects of an AppendFault.
const (
	// FaultFail fails the append without storing anything, as an I/O
	// error does; the default error, ErrInjected, matches
	// orchestrix.ErrOutcomeUnknown.
	FaultFail FaultEffect = iota
	// FaultReject refuses the append without storing anything, with a
	// definite error (ErrInjectedRejection by default), as a backend that
	// refuses an event it cannot take.
	FaultReject
	// FaultStoredUnknown stores the append and then reports an error
	// instead of its result (ErrInjected by default): the commit happened
	// but its acknowledgement was lost. Appends that store nothing
	// (conflicts, duplicates) leave it armed.
	FaultStoredUnknown
	// FaultDelay holds the append for Delay, measured on Clock, before it
	// proceeds; it then succeeds or fails on its own merits. An append
	// whose context ends while held fails with the context's error and
	// stores nothing.
	FaultDelay
)

// AppendFault is a fault policy for the appends that match it: each of
// the next Times appends to Stream (or to a stream of Kind, or to any
// stream) gets Effect.
type AppendFault struct {
	// Kind restricts the fault to streams of this aggregate kind
	// (journal.StreamKind); empty means any kind.
	Kind string
	// Stream restricts the fault to one stream; empty means any stream.
	Stream string
	// Times is how many matching appends the fault applies to; zero
	// means 1.
	Times int
	// Effect is what happens to a matching append.
	Effect FaultEffect
	// Err is the error reported (see each FaultEffect for the default).
	Err error
	// Delay and Clock are FaultDelay's hold time and the clock it is
	// measured on (nil means the wall clock). With a manual clock the
	// append proceeds when the test advances the clock past Delay.
	Delay time.Duration
	Clock orchestrix.Clock
}

func (f AppendFault) matches(stream string) bool {
	return (f.Stream == "" || f.Stream == stream) && (f.Kind == "" || journal.StreamKind(stream) == f.Kind)
}

// InjectAppendFault arms f. Faults armed with FailNextAppend and the other
// global methods fire first; among AppendFaults, the first armed that
// matches an append applies. An append is held by at most one FaultDelay
// and failed by at most one other fault.
func (j *Journal) InjectAppendFault(f AppendFault) {
	n := max(f.Times, 1)
	if f.Err == nil {
		if f.Effect == FaultReject {
			f.Err = ErrInjectedRejection
		} else {
			f.Err = ErrInjected
		}
	}
	j.faults.mu.Lock()
	defer j.faults.mu.Unlock()
	j.faults.policies = append(j.faults.policies, &policy{AppendFault: f, left: n})
}

// takePolicy consumes one application of the first armed policy that
// matches stream and has one of the effects, and returns it (nil if none).
func (f *faults) takePolicy(stream string, effects ...FaultEffect) *AppendFault {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i, p := range f.policies {
		ok := false
		for _, e := range effects {
			ok = ok || p.Effect == e
		}
		if !ok || !p.matches(stream) {
			continue
		}
		p.left--
		if p.left <= 0 {
			f.policies = append(f.policies[:i:i], f.policies[i+1:]...)
		}
		af := p.AppendFault
		return &af
	}
	return nil
}

// hold waits out a FaultDelay armed for stream, if any.
func (f *faults) hold(ctx context.Context, stream string) error {
	p := f.takePolicy(stream, FaultDelay)
	if p == nil {
		return nil
	}
	clock := p.Clock
	if clock == nil {
		clock = orchestrix.SystemClock{}
	}
	due := make(chan struct{})
	t := clock.AfterFunc(p.Delay, func() { close(due) })
	select {
	case <-due:
		return nil
	case <-ctx.Done():
		t.Stop()
		return fmt.Errorf("journal/mem: append to %q held by an injected delay: %w", stream, ctx.Err())
	}
}

// readFault fails one read after a number of records.
type readFault struct {
	after int   // records to yield first; negative when no fault is armed
	err   error //
}

// due reports whether the fault fires before the next record, counting
// the record down otherwise.
func (f *readFault) due() bool {
	if f.after < 0 {
		return false
	}
	if f.after == 0 {
		return true
	}
	f.after--
	return false
}

// atEnd yields the fault's error if it is armed and the read ended before
// reaching it: an armed read fault always fires.
func (f *readFault) atEnd(yield func(journal.Record, error) bool) {
	if f.after >= 0 {
		yield(journal.Record{}, f.err)
	}
}

func orInjected(err error) error {
	if err == nil {
		return ErrInjected
	}
	return err
}

// beforeAppend returns the error the current append must fail with before
// storing anything, or nil.
func (f *faults) beforeAppend(stream string) error {
	f.mu.Lock()
	if len(f.beforeErrs) > 0 {
		err := f.beforeErrs[0]
		f.beforeErrs = f.beforeErrs[1:]
		f.mu.Unlock()
		return err
	}
	f.mu.Unlock()
	if p := f.takePolicy(stream, FaultFail, FaultReject); p != nil {
		if p.Effect == FaultReject && !errors.Is(p.Err, journal.ErrRejected) {
			// A rejection is definite whatever error the test chose.
			return &rejection{p.Err}
		}
		return p.Err
	}
	return nil
}

// afterStore returns the error an append that has just stored its events
// must report instead of its result, or nil.
func (f *faults) afterStore(stream string) error {
	f.mu.Lock()
	if len(f.afterErrs) > 0 {
		err := f.afterErrs[0]
		f.afterErrs = f.afterErrs[1:]
		f.mu.Unlock()
		return err
	}
	f.mu.Unlock()
	if p := f.takePolicy(stream, FaultStoredUnknown); p != nil {
		return p.Err
	}
	return nil
}

// beforeRead returns the fault for the read that is starting; its after
// field is negative when none is armed.
func (f *faults) beforeRead() readFault {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.reads) == 0 {
		return readFault{after: -1}
	}
	r := f.reads[0]
	f.reads = f.reads[1:]
	return r
}

// FailNextAppend makes the next Append fail with err and store nothing,
// as a write that never reached the disk. The fault applies to the next
// Append that passes the argument checks (a valid stream name, at
// least one valid event) on an open journal, whatever its expected
// version. A nil err means ErrInjected. Faults queue: calling it twice
// fails the next two appends.
func (j *Journal) FailNextAppend(err error) {
	j.FailAppends(1, err)
}

// FailAppends makes each of the next n appends fail with err, as
// FailNextAppend does for one.
func (j *Journal) FailAppends(n int, err error) {
	err = orInjected(err)
	j.faults.mu.Lock()
	defer j.faults.mu.Unlock()
	for range n {
		j.faults.beforeErrs = append(j.faults.beforeErrs, err)
	}
}

// FailNextAppendAfterStore makes the next Append that stores events store
// them and then return err instead of its result, as a commit whose
// acknowledgement was lost. Use an error matching
// orchestrix.ErrOutcomeUnknown (nil means ErrInjected) to test that
// callers treat such a write as possibly durable: a retry with the same
// event ids is then recognised as a duplicate. Appends that store nothing
// (conflicts, duplicates, invalid events) leave the fault armed.
func (j *Journal) FailNextAppendAfterStore(err error) {
	err = orInjected(err)
	j.faults.mu.Lock()
	defer j.faults.mu.Unlock()
	j.faults.afterErrs = append(j.faults.afterErrs, err)
}

// FailNextRead makes the next Read or ReadAll yield err as its first and
// only element. A nil err means ErrInjected.
func (j *Journal) FailNextRead(err error) {
	j.FailNextReadAfter(0, err)
}

// FailNextReadAfter makes the next Read or ReadAll yield up to n records
// and then err, as a read that breaks off midway. If the read has fewer
// than n records, err follows the last one; if its caller stops early, the
// fault is spent. A negative n counts as zero; a nil err means
// ErrInjected.
func (j *Journal) FailNextReadAfter(n int, err error) {
	err = orInjected(err)
	j.faults.mu.Lock()
	defer j.faults.mu.Unlock()
	j.faults.reads = append(j.faults.reads, readFault{after: max(n, 0), err: err})
}

// ClearFaults disarms every injected fault that has not fired yet.
func (j *Journal) ClearFaults() {
	j.faults.mu.Lock()
	defer j.faults.mu.Unlock()
	j.faults.beforeErrs = nil
	j.faults.afterErrs = nil
	j.faults.reads = nil
	j.faults.policies = nil
}

// rejection is a FaultReject's own error made to match journal.ErrRejected
// as well, keeping its text.
type rejection struct{ err error }

func (r *rejection) Error() string   { return r.err.Error() }
func (r *rejection) Unwrap() []error { return []error{r.err, journal.ErrRejected} }
