package journaltest

import (
	"math"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/orchestrix/orchestrix"
	"github.com/orchestrix/orchestrix/journal"
)

const replayStream = "replay-a"

// setupReplay writes five events to replayStream (in appends of 2, 2 and
// 1) interleaved with appends to a second stream, so that the stream's
// global positions are not consecutive.
func setupReplay(t *testing.T, newJournal Factory) (*env, []orchestrix.Envelope) {
	t.Helper()
	e := newEnv(t, newJournal)
	var evs []orchestrix.Envelope
	var head uint64
	for _, k := range []int{2, 2, 1} {
		batch := newEvents(k)
		res := e.appendOK(replayStream, journal.Exact(head), batch)
		head = res.LastVersion
		evs = append(evs, batch...)
		e.appendOK("replay-b", journal.Any, newEvents(1))
	}
	require.Equal(t, uint64(5), head)
	return e, evs
}

func runReplay(t *testing.T, newJournal Factory) {
	cases := []struct {
		name     string
		from, to uint64
		max      int
		want     []uint64
	}{
		{"AllEvents", 1, math.MaxUint64, math.MaxInt, span(1, 5)},
		{"FromZeroAsFromOne", 0, math.MaxUint64, math.MaxInt, span(1, 5)},
		{"LowerBound", 3, math.MaxUint64, math.MaxInt, span(3, 5)},
		{"UpperBound", 1, 3, math.MaxInt, span(1, 3)},
		{"CountLimit", 1, math.MaxUint64, 3, span(1, 3)},
		{"LowerAndUpperBound", 2, 3, math.MaxInt, span(2, 3)},
		{"LowerUpperAndCount", 2, 5, 3, span(2, 4)},
		{"SingleWhenLowerEqualsUpper", 2, 2, math.MaxInt, []uint64{2}},
		{"SingleWhenMaxIsOne", 2, math.MaxUint64, 1, []uint64{2}},
		{"NothingWhenMaxIsZero", 1, math.MaxUint64, 0, nil},
		{"NothingWhenMaxIsNegative", 1, math.MaxUint64, -1, nil},
		{"NothingWhenLowerAboveUpper", 3, 2, math.MaxInt, nil},
		{"NothingAboveHead", 6, math.MaxUint64, math.MaxInt, nil},
		{"UpperBoundAboveHead", 4, 100, math.MaxInt, span(4, 5)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e, evs := setupReplay(t, newJournal)
			got := e.read(replayStream, tc.from, tc.to, tc.max)
			assert.Equal(t, tc.want, nilIfEmpty(versions(got)))
			for _, r := range got {
				assert.Equal(t, replayStream, r.Stream)
				assert.Equal(t, evs[r.Version-1].ID, r.Envelope.ID, "v%d carries the event appended at that version", r.Version)
			}
			if br, ok := e.j.(journal.BorrowedReader); ok {
				borrowed, err := collectBorrowed(br.ReadBorrowed(e.ctx, replayStream, tc.from, tc.to, tc.max))
				require.NoError(t, err)
				assert.Equal(t, got, borrowed, "ReadBorrowed returns what Read returns")
			}
		})
	}

	t.Run("BorrowedLongStreamAndStopEarly", func(t *testing.T) {
		e := newEnv(t, newJournal)
		br, ok := e.j.(journal.BorrowedReader)
		if !ok {
			t.Skip("journaltest: the journal is not a journal.BorrowedReader")
		}
		// Long enough to span several queries or transactions of a
		// backend that reads in chunks.
		const n = 10000
		e.fill("borrowed-long", n, 1000)
		want := e.read("borrowed-long", 1, math.MaxUint64, math.MaxInt)
		got, err := collectBorrowed(br.ReadBorrowed(e.ctx, "borrowed-long", 1, math.MaxUint64, math.MaxInt))
		require.NoError(t, err)
		require.Equal(t, len(want), len(got))
		assert.Equal(t, want, got)
		got, err = collectBorrowed(br.ReadBorrowed(e.ctx, "borrowed-long", 4000, 9000, 4500))
		require.NoError(t, err)
		assert.Equal(t, want[3999:8499], got)

		var seen []uint64
		for r, err := range br.ReadBorrowed(e.ctx, "borrowed-long", 1, math.MaxUint64, math.MaxInt) {
			require.NoError(t, err)
			if seen = append(seen, r.Version); len(seen) == 3 {
				break
			}
		}
		assert.Equal(t, []uint64{1, 2, 3}, seen)
		// The journal stays usable after an abandoned iteration.
		e.appendOK("borrowed-long", journal.Exact(n), newEvents(1))
		assert.Equal(t, uint64(n+1), e.head("borrowed-long"))
	})

	t.Run("VersionsAndPositionsIncrease", func(t *testing.T) {
		e, _ := setupReplay(t, newJournal)
		got := e.read(replayStream, 1, math.MaxUint64, math.MaxInt)
		require.Len(t, got, 5)
		for i := 1; i < len(got); i++ {
			assert.Greater(t, got[i].Position, got[i-1].Position)
		}
	})

	t.Run("UnknownStreamHasHeadZeroAndNoEvents", func(t *testing.T) {
		e, _ := setupReplay(t, newJournal)
		assert.Equal(t, uint64(0), e.head("no-such-stream"))
		assert.Empty(t, e.read("no-such-stream", 1, math.MaxUint64, math.MaxInt))
	})

	t.Run("HeadWithoutReplay", func(t *testing.T) {
		e, _ := setupReplay(t, newJournal)
		assert.Equal(t, uint64(5), e.head(replayStream))
		assert.Equal(t, uint64(3), e.head("replay-b"))
	})

	t.Run("StopEarly", func(t *testing.T) {
		e, _ := setupReplay(t, newJournal)
		var seen []uint64
		for r, err := range e.j.Read(e.ctx, replayStream, 1, math.MaxUint64, math.MaxInt) {
			require.NoError(t, err)
			seen = append(seen, r.Version)
			if len(seen) == 2 {
				break
			}
		}
		assert.Equal(t, []uint64{1, 2}, seen)
		// The journal stays usable after an abandoned iteration.
		e.appendOK(replayStream, journal.Exact(5), newEvents(1))
	})

	t.Run("RecordsBelongToCaller", func(t *testing.T) {
		e, _ := setupReplay(t, newJournal)
		first := e.read(replayStream, 1, 1, 1)
		require.Len(t, first, 1)
		want := string(first[0].Envelope.Data)
		for i := range first[0].Envelope.Data {
			first[0].Envelope.Data[i] = 'X'
		}
		if first[0].Envelope.Extensions != nil {
			first[0].Envelope.Extensions["mutated"] = "yes"
		}
		again := e.read(replayStream, 1, 1, 1)
		require.Len(t, again, 1)
		assert.Equal(t, want, string(again[0].Envelope.Data), "changing a returned record must not change the stored one")
		assert.NotContains(t, again[0].Envelope.Extensions, "mutated")
	})
}

func runReadAll(t *testing.T, newJournal Factory) {
	t.Run("EmptyJournal", func(t *testing.T) {
		e := newEnv(t, newJournal)
		assert.Empty(t, e.readAll(0, math.MaxInt))
	})

	t.Run("CommitOrder", func(t *testing.T) {
		e, _ := setupReplay(t, newJournal)
		all := e.readAll(0, math.MaxInt)
		require.Len(t, all, 8)
		wantStreams := []string{replayStream, replayStream, "replay-b", replayStream, replayStream, "replay-b", replayStream, "replay-b"}
		gotStreams := make([]string, len(all))
		for i, r := range all {
			gotStreams[i] = r.Stream
			assert.Positive(t, r.Position)
			if i > 0 {
				assert.Greater(t, r.Position, all[i-1].Position)
			}
		}
		assert.Equal(t, wantStreams, gotStreams)
	})

	t.Run("FromAndMax", func(t *testing.T) {
		e, _ := setupReplay(t, newJournal)
		all := e.readAll(0, math.MaxInt)
		require.Len(t, all, 8)
		got := e.readAll(all[3].Position, 3)
		assert.Equal(t, positions(all[3:6]), positions(got))
		got = e.readAll(all[3].Position+1, math.MaxInt)
		assert.Equal(t, positions(all[4:]), positions(got))
		assert.Empty(t, e.readAll(all[7].Position+1, math.MaxInt), "nothing after the last record")
		assert.Empty(t, e.readAll(0, 0), "max 0")
		assert.Empty(t, e.readAll(0, -5), "negative max")
	})

	t.Run("AppendResultPositions", func(t *testing.T) {
		e := newEnv(t, newJournal)
		res := e.appendOK("pos", journal.NoStream, newEvents(3))
		assert.Positive(t, res.FirstPosition)
		assert.Less(t, res.FirstPosition, res.LastPosition)
		recs := e.read("pos", 1, math.MaxUint64, math.MaxInt)
		require.Len(t, recs, 3)
		assert.Equal(t, res.FirstPosition, recs[0].Position)
		assert.Equal(t, res.LastPosition, recs[2].Position)
		res2 := e.appendOK("pos2", journal.NoStream, newEvents(1))
		assert.Greater(t, res2.FirstPosition, res.LastPosition)
		assert.Equal(t, res2.FirstPosition, res2.LastPosition)
	})

	t.Run("StopEarly", func(t *testing.T) {
		e, _ := setupReplay(t, newJournal)
		n := 0
		for _, err := range e.j.ReadAll(e.ctx, 0, math.MaxInt) {
			require.NoError(t, err)
			n++
			if n == 3 {
				break
			}
		}
		assert.Equal(t, 3, n)
		e.appendOK("replay-c", journal.NoStream, newEvents(1))
	})
}

// positions returns the global positions of recs.
func positions(recs []journal.Record) []uint64 {
	out := make([]uint64, len(recs))
	for i, r := range recs {
		out[i] = r.Position
	}
	return out
}

// nilIfEmpty maps an empty slice to nil so that equality with nil holds.
func nilIfEmpty(v []uint64) []uint64 {
	if len(v) == 0 {
		return nil
	}
	return v
}
