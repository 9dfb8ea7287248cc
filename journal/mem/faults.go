package mem

import (
	"fmt"
	"sync"

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
func (f *faults) beforeAppend() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.beforeErrs) == 0 {
		return nil
	}
	err := f.beforeErrs[0]
	f.beforeErrs = f.beforeErrs[1:]
	return err
}

// afterStore returns the error an append that has just stored its events
// must report instead of its result, or nil.
func (f *faults) afterStore() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.afterErrs) == 0 {
		return nil
	}
	err := f.afterErrs[0]
	f.afterErrs = f.afterErrs[1:]
	return err
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
}
