package mem_test

import (
	"context"
	"errors"
	"math"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/orchestrix/orchestrix"
	"github.com/orchestrix/orchestrix/journal"
	"github.com/orchestrix/orchestrix/journal/journaltest"
	"github.com/orchestrix/orchestrix/journal/mem"
)

const testMaxEventSize = 4 << 10

func newJournal(t *testing.T) *mem.Journal {
	t.Helper()
	j, err := mem.New(mem.Config{MaxEventSize: testMaxEventSize})
	require.NoError(t, err)
	t.Cleanup(func() { _ = j.Close() })
	return j
}

func TestJournal_Conformance(t *testing.T) {
	journaltest.Run(t, func(t *testing.T) (journal.Journal, journaltest.Features) {
		j, err := mem.New(mem.Config{MaxEventSize: testMaxEventSize})
		require.NoError(t, err)
		return j, journaltest.Features{
			MaxEventSize: testMaxEventSize,
			Corrupt: func(t *testing.T, jj journal.Journal, stream string, version uint64) {
				require.NoError(t, jj.(*mem.Journal).CorruptRecord(stream, version))
			},
		}
	})
}

func event(id string) orchestrix.Envelope {
	return orchestrix.Envelope{ID: id, Source: "/test", Type: "test.Happened", Data: []byte(`{}`)}
}

func readAll(t *testing.T, j *mem.Journal) ([]journal.Record, error) {
	t.Helper()
	var recs []journal.Record
	for r, err := range j.ReadAll(context.Background(), 0, math.MaxInt) {
		if err != nil {
			return recs, err
		}
		recs = append(recs, r)
	}
	return recs, nil
}

func readStream(t *testing.T, j *mem.Journal, stream string) ([]journal.Record, error) {
	t.Helper()
	var recs []journal.Record
	for r, err := range j.Read(context.Background(), stream, 1, math.MaxUint64, math.MaxInt) {
		if err != nil {
			return recs, err
		}
		recs = append(recs, r)
	}
	return recs, nil
}

func TestNew_NegativeMaxEventSize_ReturnsError(t *testing.T) {
	_, err := mem.New(mem.Config{MaxEventSize: -1})
	require.Error(t, err)
}

func TestJournal_Append_DefaultMaxEventSize_RejectsAboveOneMiB(t *testing.T) {
	j, err := mem.New(mem.Config{})
	require.NoError(t, err)
	defer j.Close()
	ctx := context.Background()
	ev := event("big")
	ev.Data = make([]byte, mem.DefaultMaxEventSize)
	_, err = j.Append(ctx, "s", journal.NoStream, []orchestrix.Envelope{ev})
	require.ErrorIs(t, err, orchestrix.ErrTooLarge)
	ev.Data = make([]byte, mem.DefaultMaxEventSize-1024)
	_, err = j.Append(ctx, "s", journal.NoStream, []orchestrix.Envelope{ev})
	require.NoError(t, err)
}

func TestJournal_FailNextAppend_StoresNothing(t *testing.T) {
	j := newJournal(t)
	ctx := context.Background()
	boom := errors.New("disk on fire")
	j.FailNextAppend(boom)

	_, err := j.Append(ctx, "s", journal.NoStream, []orchestrix.Envelope{event("a")})
	require.ErrorIs(t, err, boom)
	head, err := j.Head(ctx, "s")
	require.NoError(t, err)
	assert.Equal(t, uint64(0), head)

	// The fault fired once: the retry succeeds as a new append.
	res, err := j.Append(ctx, "s", journal.NoStream, []orchestrix.Envelope{event("a")})
	require.NoError(t, err)
	assert.False(t, res.Duplicate)
	assert.Equal(t, uint64(1), res.LastVersion)
}

func TestJournal_FailNextAppend_NilErrorIsOutcomeUnknown(t *testing.T) {
	j := newJournal(t)
	j.FailNextAppend(nil)
	_, err := j.Append(context.Background(), "s", journal.Any, []orchestrix.Envelope{event("a")})
	require.ErrorIs(t, err, mem.ErrInjected)
	require.ErrorIs(t, err, orchestrix.ErrOutcomeUnknown)
}

func TestJournal_FailNextAppend_InvalidAppendDoesNotSpendFault(t *testing.T) {
	j := newJournal(t)
	ctx := context.Background()
	j.FailNextAppend(nil)
	_, err := j.Append(ctx, "s", journal.Any, []orchestrix.Envelope{{ID: "x"}})
	require.ErrorIs(t, err, orchestrix.ErrInvalidEnvelope)
	_, err = j.Append(ctx, "s", journal.Any, []orchestrix.Envelope{event("a")})
	require.ErrorIs(t, err, mem.ErrInjected)
}

func TestJournal_FailAppends_FailsEachOfTheNextN(t *testing.T) {
	j := newJournal(t)
	ctx := context.Background()
	j.FailAppends(3, nil)
	for i := range 3 {
		_, err := j.Append(ctx, "s", journal.Any, []orchestrix.Envelope{event("a")})
		require.ErrorIs(t, err, mem.ErrInjected, "append %d", i)
	}
	res, err := j.Append(ctx, "s", journal.Any, []orchestrix.Envelope{event("a")})
	require.NoError(t, err)
	assert.Equal(t, uint64(1), res.FirstVersion)
}

func TestJournal_FailNextAppendAfterStore_StoresAndRetryIsDuplicate(t *testing.T) {
	j := newJournal(t)
	ctx := context.Background()
	_, err := j.Append(ctx, "s", journal.NoStream, []orchestrix.Envelope{event("a")})
	require.NoError(t, err)

	j.FailNextAppendAfterStore(nil)
	batch := []orchestrix.Envelope{event("b"), event("c")}
	_, err = j.Append(ctx, "s", journal.Exact(1), batch)
	require.ErrorIs(t, err, orchestrix.ErrOutcomeUnknown)

	// The events are stored although the append reported failure ...
	head, err := j.Head(ctx, "s")
	require.NoError(t, err)
	assert.Equal(t, uint64(3), head)
	recs, err := readStream(t, j, "s")
	require.NoError(t, err)
	require.Len(t, recs, 3)
	assert.Equal(t, "c", recs[2].Envelope.ID)

	// ... and a retry with the same ids and expected version is a duplicate.
	res, err := j.Append(ctx, "s", journal.Exact(1), batch)
	require.NoError(t, err)
	assert.True(t, res.Duplicate)
	assert.Equal(t, uint64(2), res.FirstVersion)
	assert.Equal(t, uint64(3), res.LastVersion)
	assert.Equal(t, recs[1].Position, res.FirstPosition)
	assert.Equal(t, recs[2].Position, res.LastPosition)
}

func TestJournal_FailNextAppendAfterStore_ConflictLeavesFaultArmed(t *testing.T) {
	j := newJournal(t)
	ctx := context.Background()
	j.FailNextAppendAfterStore(nil)
	_, err := j.Append(ctx, "s", journal.StreamExists, []orchestrix.Envelope{event("a")})
	require.ErrorIs(t, err, orchestrix.ErrVersionConflict)
	_, err = j.Append(ctx, "s", journal.NoStream, []orchestrix.Envelope{event("a")})
	require.ErrorIs(t, err, mem.ErrInjected)
	res, err := j.Append(ctx, "s", journal.NoStream, []orchestrix.Envelope{event("a")})
	require.NoError(t, err)
	assert.True(t, res.Duplicate)
}

func TestJournal_FailNextRead_FailsOneReadOrReadAll(t *testing.T) {
	j := newJournal(t)
	ctx := context.Background()
	_, err := j.Append(ctx, "s", journal.NoStream, []orchestrix.Envelope{event("a"), event("b")})
	require.NoError(t, err)
	boom := errors.New("read failed")

	j.FailNextRead(boom)
	recs, err := readStream(t, j, "s")
	require.ErrorIs(t, err, boom)
	assert.Empty(t, recs)
	recs, err = readStream(t, j, "s")
	require.NoError(t, err)
	assert.Len(t, recs, 2)

	j.FailNextRead(boom)
	recs, err = readAll(t, j)
	require.ErrorIs(t, err, boom)
	assert.Empty(t, recs)
	recs, err = readAll(t, j)
	require.NoError(t, err)
	assert.Len(t, recs, 2)
}

func TestJournal_FailNextReadAfter_YieldsRecordsThenError(t *testing.T) {
	j := newJournal(t)
	ctx := context.Background()
	_, err := j.Append(ctx, "s", journal.NoStream, []orchestrix.Envelope{event("a"), event("b"), event("c")})
	require.NoError(t, err)

	j.FailNextReadAfter(2, nil)
	recs, err := readStream(t, j, "s")
	require.ErrorIs(t, err, mem.ErrInjected)
	require.Len(t, recs, 2)
	assert.Equal(t, "b", recs[1].Envelope.ID)

	// Fewer records than n: the error follows the last one.
	j.FailNextReadAfter(10, nil)
	recs, err = readAll(t, j)
	require.ErrorIs(t, err, mem.ErrInjected)
	assert.Len(t, recs, 3)
}

func TestJournal_ClearFaults_DisarmsEverything(t *testing.T) {
	j := newJournal(t)
	ctx := context.Background()
	j.FailAppends(2, nil)
	j.FailNextAppendAfterStore(nil)
	j.FailNextRead(nil)
	j.ClearFaults()
	_, err := j.Append(ctx, "s", journal.NoStream, []orchestrix.Envelope{event("a")})
	require.NoError(t, err)
	_, err = readAll(t, j)
	require.NoError(t, err)
}

func TestJournal_CorruptRecord_ReadReportsCorruptionError(t *testing.T) {
	j := newJournal(t)
	ctx := context.Background()
	_, err := j.Append(ctx, "s", journal.NoStream, []orchestrix.Envelope{event("a"), event("b")})
	require.NoError(t, err)
	require.NoError(t, j.CorruptRecord("s", 2))

	recs, err := readStream(t, j, "s")
	require.Len(t, recs, 1)
	var ce *journal.CorruptionError
	require.ErrorAs(t, err, &ce)
	assert.Equal(t, "s", ce.Stream)
	assert.Equal(t, uint64(2), ce.Version)
	assert.Equal(t, uint64(2), ce.Position)
}

func TestJournal_CorruptRecord_MissingRecord_ReturnsErrNotFound(t *testing.T) {
	j := newJournal(t)
	ctx := context.Background()
	_, err := j.Append(ctx, "s", journal.NoStream, []orchestrix.Envelope{event("a"), event("b")})
	require.NoError(t, err)
	require.NoError(t, j.DeleteTo(ctx, "s", 1))

	for _, tc := range []struct {
		stream  string
		version uint64
	}{{"nope", 1}, {"s", 0}, {"s", 1}, {"s", 3}} {
		err := j.CorruptRecord(tc.stream, tc.version)
		assert.ErrorIs(t, err, orchestrix.ErrNotFound, "%s v%d", tc.stream, tc.version)
	}
}

func TestJournal_Append_RetryOfDeletedEventsIsDuplicate(t *testing.T) {
	j := newJournal(t)
	ctx := context.Background()
	batch := []orchestrix.Envelope{event("a"), event("b")}
	first, err := j.Append(ctx, "s", journal.NoStream, batch)
	require.NoError(t, err)
	require.NoError(t, j.DeleteTo(ctx, "s", 2))
	res, err := j.Append(ctx, "s", journal.NoStream, batch)
	require.NoError(t, err)
	first.Duplicate = true
	assert.Equal(t, first, res)
}

func TestJournal_Append_AnyWithLaterIDStoredConflicts(t *testing.T) {
	j := newJournal(t)
	ctx := context.Background()
	_, err := j.Append(ctx, "s", journal.NoStream, []orchestrix.Envelope{event("a"), event("b")})
	require.NoError(t, err)
	_, err = j.Append(ctx, "s", journal.Any, []orchestrix.Envelope{event("new"), event("b")})
	var vc *journal.VersionConflictError
	require.ErrorAs(t, err, &vc)
	assert.NotEmpty(t, vc.Reason)
	assert.Equal(t, uint64(2), vc.Actual)
}

func TestJournal_Read_CallsJournalFromLoopBody(t *testing.T) {
	j := newJournal(t)
	ctx := context.Background()
	_, err := j.Append(ctx, "s", journal.NoStream, []orchestrix.Envelope{event("a"), event("b")})
	require.NoError(t, err)
	n := 0
	for _, err := range j.Read(ctx, "s", 1, math.MaxUint64, math.MaxInt) {
		require.NoError(t, err)
		// Appending while iterating must not deadlock.
		_, err := j.Append(ctx, "other", journal.Any, []orchestrix.Envelope{event(orchestrix.NewID())})
		require.NoError(t, err)
		n++
	}
	assert.Equal(t, 2, n)
}

func BenchmarkJournal_Append(b *testing.B) {
	j, err := mem.New(mem.Config{})
	require.NoError(b, err)
	defer j.Close()
	ctx := context.Background()
	ev := event("")
	ev.Data = make([]byte, 200)
	var head uint64
	b.ReportAllocs()
	for b.Loop() {
		ev.ID = orchestrix.NewID()
		res, err := j.Append(ctx, "bench", journal.Exact(head), []orchestrix.Envelope{ev})
		if err != nil {
			b.Fatal(err)
		}
		head = res.LastVersion
	}
}

func BenchmarkJournal_Read(b *testing.B) {
	j, err := mem.New(mem.Config{})
	require.NoError(b, err)
	defer j.Close()
	ctx := context.Background()
	const n = 1000
	evs := make([]orchestrix.Envelope, n)
	for i := range evs {
		evs[i] = event(orchestrix.NewID())
		evs[i].Data = make([]byte, 200)
	}
	_, err = j.Append(ctx, "bench", journal.NoStream, evs)
	require.NoError(b, err)
	b.ReportAllocs()
	for b.Loop() {
		for _, err := range j.Read(ctx, "bench", 1, math.MaxUint64, math.MaxInt) {
			if err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64(b.N*n)/b.Elapsed().Seconds(), "events/s")
}
