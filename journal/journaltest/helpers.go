package journaltest

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"math"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/orchestrix/orchestrix"
	"github.com/orchestrix/orchestrix/journal"
)

// eventSeq numbers the events the suite makes, so payloads differ.
var eventSeq atomic.Uint64

// baseTime is the fixed instant the suite's events claim to have happened
// at; the suite never reads the wall clock.
var baseTime = time.Date(2026, time.November, 25, 12, 0, 0, 0, time.UTC)

// newEvent returns a valid envelope with a fresh UUIDv7 id. It is safe
// to call from any goroutine.
func newEvent() orchestrix.Envelope {
	n := eventSeq.Add(1)
	return orchestrix.Envelope{
		ID:              orchestrix.NewID(),
		Source:          "/journaltest",
		Type:            "journaltest.Happened",
		Subject:         "subject",
		Time:            baseTime.Add(time.Duration(n) * time.Millisecond),
		DataContentType: "application/json",
		SchemaVersion:   1,
		Data:            fmt.Appendf(nil, `{"n":%d}`, n),
	}
}

// newEvents returns n valid envelopes with fresh ids.
func newEvents(n int) []orchestrix.Envelope {
	evs := make([]orchestrix.Envelope, n)
	for i := range evs {
		evs[i] = newEvent()
	}
	return evs
}

// appendOK appends events and fails the test on error.
func (e *env) appendOK(stream string, expected journal.ExpectedVersion, events []orchestrix.Envelope) journal.AppendResult {
	e.t.Helper()
	res, err := e.j.Append(e.ctx, stream, expected, events)
	require.NoError(e.t, err, "append %d events to %q expecting %s", len(events), stream, expected)
	require.False(e.t, res.Duplicate, "append of new events to %q reported as duplicate", stream)
	return res
}

// fill appends n new events to stream in batches of batch events, starting
// with expected NoStream-or-exact from the current head, and returns them
// with the results of each batch.
func (e *env) fill(stream string, n, batch int) ([]orchestrix.Envelope, []journal.AppendResult) {
	e.t.Helper()
	head := e.head(stream)
	var all []orchestrix.Envelope
	var results []journal.AppendResult
	for len(all) < n {
		k := min(batch, n-len(all))
		evs := newEvents(k)
		res := e.appendOK(stream, journal.Exact(head), evs)
		require.Equal(e.t, head+1, res.FirstVersion)
		require.Equal(e.t, head+uint64(k), res.LastVersion)
		head = res.LastVersion
		all = append(all, evs...)
		results = append(results, res)
	}
	return all, results
}

// head returns Head(stream), failing the test on error.
func (e *env) head(stream string) uint64 {
	e.t.Helper()
	h, err := e.j.Head(e.ctx, stream)
	require.NoError(e.t, err, "Head(%q)", stream)
	return h
}

// read returns Read(stream, from, to, max), failing the test on error.
func (e *env) read(stream string, from, to uint64, max int) []journal.Record {
	e.t.Helper()
	recs, err := collect(e.j.Read(e.ctx, stream, from, to, max))
	require.NoError(e.t, err, "Read(%q, %d, %d, %d)", stream, from, to, max)
	return recs
}

// readAll returns ReadAll(from, max), failing the test on error.
func (e *env) readAll(from uint64, max int) []journal.Record {
	e.t.Helper()
	recs, err := collect(e.j.ReadAll(e.ctx, from, max))
	require.NoError(e.t, err, "ReadAll(%d, %d)", from, max)
	return recs
}

// collect drains seq, stopping at the first error. It reports an error if
// seq yields anything after an error (errors must come last).
func collect(seq iter.Seq2[journal.Record, error]) ([]journal.Record, error) {
	return collectWith(seq, nil)
}

var errYieldAfterError = errors.New("element after error")

// collectBorrowed is collect for journal.BorrowedReader: each record is
// copied (its envelope through the binary form) inside the loop body,
// while it is valid.
func collectBorrowed(seq iter.Seq2[journal.Record, error]) ([]journal.Record, error) {
	return collectWith(seq, copyBorrowed)
}

// collectWith is collect, passing each record through keep (when not nil)
// inside the loop body.
func collectWith(seq iter.Seq2[journal.Record, error], keep func(journal.Record) (journal.Record, error)) ([]journal.Record, error) {
	var recs []journal.Record
	var firstErr error
	for rec, err := range seq {
		if firstErr != nil {
			return recs, fmt.Errorf("journaltest: iterator yielded after its error %v: %w", firstErr, errYieldAfterError)
		}
		if err != nil {
			firstErr = err
			continue
		}
		if keep != nil {
			if rec, err = keep(rec); err != nil {
				return recs, err
			}
		}
		recs = append(recs, rec)
	}
	return recs, firstErr
}

// copyBorrowed returns a copy of rec that owns all its memory.
func copyBorrowed(rec journal.Record) (journal.Record, error) {
	b, err := rec.Envelope.AppendBinary(nil)
	if err != nil {
		return rec, fmt.Errorf("journaltest: copying borrowed record %d: %w", rec.Version, err)
	}
	seq := rec.Envelope.Sequence
	if err := rec.Envelope.UnmarshalBinary(b); err != nil {
		return rec, fmt.Errorf("journaltest: copying borrowed record %d: %w", rec.Version, err)
	}
	rec.Envelope.Sequence = seq
	rec.Stream = strings.Clone(rec.Stream)
	return rec, nil
}

// versions returns the versions of recs.
func versions(recs []journal.Record) []uint64 {
	out := make([]uint64, len(recs))
	for i, r := range recs {
		out[i] = r.Version
	}
	return out
}

// ids returns the event ids of recs.
func ids(recs []journal.Record) []string {
	out := make([]string, len(recs))
	for i, r := range recs {
		out[i] = r.Envelope.ID
	}
	return out
}

// eventIDs returns the ids of evs.
func eventIDs(evs []orchestrix.Envelope) []string {
	out := make([]string, len(evs))
	for i, ev := range evs {
		out[i] = ev.ID
	}
	return out
}

// span returns the versions from..to inclusive.
func span(from, to uint64) []uint64 {
	var out []uint64
	for v := from; v <= to; v++ {
		out = append(out, v)
	}
	return out
}

// requireConflict asserts err is a *journal.VersionConflictError matching
// orchestrix.ErrVersionConflict for stream with the given actual head, and
// returns it.
func requireConflict(t testing.TB, err error, stream string, actual uint64) *journal.VersionConflictError {
	t.Helper()
	require.Error(t, err, "expected a version conflict on %q", stream)
	require.ErrorIs(t, err, orchestrix.ErrVersionConflict)
	var vc *journal.VersionConflictError
	require.ErrorAs(t, err, &vc)
	assert.Equal(t, stream, vc.Stream, "conflict names the stream")
	assert.Equal(t, actual, vc.Actual, "conflict carries the actual head")
	return vc
}

// checkInvariants verifies, on a readable journal, that the global order
// is strictly increasing, that every stream's remaining versions are
// consecutive and end at its Head, that Envelope.Sequence equals Version,
// and that Read returns exactly what ReadAll shows of each stream.
func checkInvariants(t *testing.T, j journal.Journal) {
	t.Helper()
	ctx := context.Background()
	all, err := collect(j.ReadAll(ctx, 0, math.MaxInt))
	if err != nil {
		t.Errorf("invariants: ReadAll: %v", err)
		return
	}
	byStream := make(map[string][]journal.Record)
	var order []string
	var prev uint64
	for _, r := range all {
		if r.Position <= prev {
			t.Errorf("invariants: position %d (stream %q v%d) not above previous %d", r.Position, r.Stream, r.Version, prev)
		}
		prev = r.Position
		if r.Envelope.Sequence != r.Version {
			t.Errorf("invariants: stream %q v%d carries Sequence %d", r.Stream, r.Version, r.Envelope.Sequence)
		}
		if _, ok := byStream[r.Stream]; !ok {
			order = append(order, r.Stream)
		}
		byStream[r.Stream] = append(byStream[r.Stream], r)
	}
	for _, stream := range order {
		recs := byStream[stream]
		for i := 1; i < len(recs); i++ {
			if recs[i].Version != recs[i-1].Version+1 {
				t.Errorf("invariants: stream %q: version %d follows %d in the global order", stream, recs[i].Version, recs[i-1].Version)
			}
		}
		head, err := j.Head(ctx, stream)
		if err != nil {
			t.Errorf("invariants: Head(%q): %v", stream, err)
			continue
		}
		if last := recs[len(recs)-1].Version; last != head {
			t.Errorf("invariants: stream %q: highest stored version %d, Head %d", stream, last, head)
		}
		got, err := collect(j.Read(ctx, stream, 0, math.MaxUint64, math.MaxInt))
		if err != nil {
			t.Errorf("invariants: Read(%q): %v", stream, err)
			continue
		}
		if len(got) != len(recs) {
			t.Errorf("invariants: stream %q: Read returns %d records, ReadAll %d", stream, len(got), len(recs))
			continue
		}
		for i := range got {
			if got[i].Version != recs[i].Version || got[i].Position != recs[i].Position || got[i].Envelope.ID != recs[i].Envelope.ID {
				t.Errorf("invariants: stream %q: Read gives v%d@%d %s, ReadAll v%d@%d %s", stream,
					got[i].Version, got[i].Position, got[i].Envelope.ID, recs[i].Version, recs[i].Position, recs[i].Envelope.ID)
			}
		}
	}
}
