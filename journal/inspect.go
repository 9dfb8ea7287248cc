package journal

import (
	"context"
	"fmt"
	"iter"
)

// StreamInfo describes one stream of a journal.
type StreamInfo struct {
	// Name is the stream's name.
	Name string
	// Head is the highest version ever stored in the stream (what
	// Journal.Head returns).
	Head uint64
	// DeletedTo is the version up to which the stream's events have been
	// deleted (0 when none were). The stream holds the events
	// DeletedTo+1 … Head.
	DeletedTo uint64
}

// Events returns the number of events the stream holds.
func (s StreamInfo) Events() uint64 {
	if s.DeletedTo >= s.Head {
		return 0
	}
	return s.Head - s.DeletedTo
}

// StreamLister is implemented by journals that can list their streams.
type StreamLister interface {
	// Streams returns every stream that has ever been written, in
	// ascending order of name (byte-wise), with its head as committed when
	// the iteration reaches it. Errors are yielded as the last element.
	// It is safe to call concurrently with appends; a stream created
	// during the iteration may or may not be listed.
	Streams(ctx context.Context) iter.Seq2[StreamInfo, error]
}

// Checker is implemented by journals that can verify their stored data.
type Checker interface {
	// Check reads every stored record and verifies, on one consistent
	// view of the journal: each record's checksum and encoding, that each
	// stream's versions run from its deletion point to its head without
	// gaps or duplicates, that each head is at least the highest version
	// stored, and that the backend's secondary structures (indexes,
	// position counters) agree with the records. It changes nothing.
	//
	// The problems found are in the report; the error is only for a check
	// that could not run (I/O error, cancelled context, closed journal).
	Check(ctx context.Context) (CheckReport, error)
}

// MaxCheckProblems is the most problems a CheckReport lists; further ones
// are only counted in CheckReport.Omitted.
const MaxCheckProblems = 1000

// CheckReport is the result of Checker.Check.
type CheckReport struct {
	// Streams is the number of streams found.
	Streams int
	// Records is the number of stored records verified.
	Records uint64
	// LastPosition is the highest global position ever assigned.
	LastPosition uint64
	// Problems lists what is wrong, in the order found (at most
	// MaxCheckProblems).
	Problems []Problem
	// Omitted counts problems found beyond MaxCheckProblems.
	Omitted int
}

// OK reports whether the check found no problem.
func (r CheckReport) OK() bool { return len(r.Problems) == 0 && r.Omitted == 0 }

// Add records a problem, counting it in Omitted once the report holds
// MaxCheckProblems.
func (r *CheckReport) Add(p Problem) {
	if len(r.Problems) >= MaxCheckProblems {
		r.Omitted++
		return
	}
	r.Problems = append(r.Problems, p)
}

// Problem is one inconsistency found by Checker.Check. Stream, Version and
// Position are zero where they are unknown or do not apply.
type Problem struct {
	Stream   string
	Version  uint64
	Position uint64
	// Detail says what is wrong.
	Detail string
}

// String formats the problem as "stream "s" version 3 position 17: …",
// leaving out what is unknown.
func (p Problem) String() string {
	var s string
	if p.Stream != "" {
		s = fmt.Sprintf("stream %q ", p.Stream)
	}
	if p.Version != 0 {
		s += fmt.Sprintf("version %d ", p.Version)
	}
	if p.Position != 0 {
		s += fmt.Sprintf("position %d ", p.Position)
	}
	if s == "" {
		return p.Detail
	}
	return s[:len(s)-1] + ": " + p.Detail
}
