package journaltest

import (
	"math"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/orchestrix/orchestrix/journal"
)

// deleter returns the journal as a journal.Deleter, or skips the test.
func (e *env) deleter() journal.Deleter {
	e.t.Helper()
	d, ok := e.j.(journal.Deleter)
	if !ok {
		e.t.Skipf("journaltest: %T does not implement journal.Deleter", e.j)
	}
	return d
}

func (e *env) deleteTo(stream string, to uint64) {
	e.t.Helper()
	require.NoError(e.t, e.deleter().DeleteTo(e.ctx, stream, to), "DeleteTo(%q, %d)", stream, to)
}

func runDeletion(t *testing.T, newJournal Factory) {
	t.Run("DeletedEventsNotReplayed", func(t *testing.T) {
		e, _ := setupReplay(t, newJournal)
		e.deleteTo(replayStream, 3)
		assert.Equal(t, span(4, 5), versions(e.read(replayStream, 1, math.MaxUint64, math.MaxInt)))
		assert.Equal(t, []uint64{4}, versions(e.read(replayStream, 2, 4, math.MaxInt)))
		assert.Empty(t, e.read(replayStream, 1, 3, math.MaxInt))
		for _, r := range e.readAll(0, math.MaxInt) {
			if r.Stream == replayStream {
				assert.Greater(t, r.Version, uint64(3), "ReadAll returns a deleted event")
			}
		}
		// The other stream is untouched.
		assert.Equal(t, span(1, 3), versions(e.read("replay-b", 1, math.MaxUint64, math.MaxInt)))
	})

	t.Run("HighestNotResetAfterPartialDelete", func(t *testing.T) {
		e, _ := setupReplay(t, newJournal)
		e.deleteTo(replayStream, 3)
		assert.Equal(t, uint64(5), e.head(replayStream))
		res := e.appendOK(replayStream, journal.Exact(5), newEvents(1))
		assert.Equal(t, uint64(6), res.FirstVersion)
	})

	t.Run("HighestNotResetAfterDeletingAll", func(t *testing.T) {
		e, _ := setupReplay(t, newJournal)
		e.deleteTo(replayStream, 5)
		assert.Equal(t, uint64(5), e.head(replayStream))
		assert.Empty(t, e.read(replayStream, 1, math.MaxUint64, math.MaxInt))

		_, err := e.j.Append(e.ctx, replayStream, journal.NoStream, newEvents(1))
		requireConflict(t, err, replayStream, 5)
		_, err = e.j.Append(e.ctx, replayStream, journal.StreamExists, newEvents(0))
		require.Error(t, err, "an empty append is an error")

		res := e.appendOK(replayStream, journal.StreamExists, newEvents(2))
		assert.Equal(t, uint64(6), res.FirstVersion)
		assert.Equal(t, uint64(7), res.LastVersion)
		assert.Equal(t, span(6, 7), versions(e.read(replayStream, 1, math.MaxUint64, math.MaxInt)))
	})

	t.Run("DeleteAboveHeadStopsAtHead", func(t *testing.T) {
		e, _ := setupReplay(t, newJournal)
		e.deleteTo(replayStream, math.MaxUint64)
		assert.Equal(t, uint64(5), e.head(replayStream))
		e.appendOK(replayStream, journal.Any, newEvents(1))
		assert.Equal(t, []uint64{6}, versions(e.read(replayStream, 1, math.MaxUint64, math.MaxInt)),
			"events appended after the delete are not deleted")
	})

	t.Run("DeleteTwiceIsNotAnError", func(t *testing.T) {
		e, _ := setupReplay(t, newJournal)
		e.deleteTo(replayStream, 3)
		e.deleteTo(replayStream, 3)
		e.deleteTo(replayStream, 2)
		assert.Equal(t, span(4, 5), versions(e.read(replayStream, 1, math.MaxUint64, math.MaxInt)))
	})

	t.Run("DeleteToZeroDeletesNothing", func(t *testing.T) {
		e, _ := setupReplay(t, newJournal)
		e.deleteTo(replayStream, 0)
		assert.Equal(t, span(1, 5), versions(e.read(replayStream, 1, math.MaxUint64, math.MaxInt)))
	})
}
