package bolt_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	bbolt "go.etcd.io/bbolt"

	"github.com/orchestrix/orchestrix"

	"github.com/orchestrix/orchestrix/journal"
	"github.com/orchestrix/orchestrix/journal/bolt"
	"github.com/orchestrix/orchestrix/journal/journaltest"
)

const testMaxEventSize = 64 << 10

// openTemp opens a fresh journal in a temporary directory. NoSync keeps
// the suite fast; durability is what the crash test checks, with fsync on.
func openTemp(t *testing.T, opts bolt.Config) (*bolt.Journal, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "journal.db")
	opts.NoSync = true
	j, err := bolt.Open(path, opts)
	require.NoError(t, err)
	return j, path
}

func corrupt(t *testing.T, j journal.Journal, stream string, version uint64) {
	t.Helper()
	require.NoError(t, bolt.CorruptRecord(j.(*bolt.Journal), stream, version))
}

func TestJournal_Conformance(t *testing.T) {
	journaltest.Run(t, func(t *testing.T) (journal.Journal, journaltest.Features) {
		j, _ := openTemp(t, bolt.Config{MaxEventSize: testMaxEventSize})
		return j, journaltest.Features{Corrupt: corrupt, MaxEventSize: testMaxEventSize}
	})
}

// TestJournal_Conformance_SmallBatchesAndCheckpoints runs the suite with
// tiny batches and a checkpoint after almost every commit, so that reads
// cross the persisted index and the in-memory runs.
func TestJournal_Conformance_SmallBatchesAndCheckpoints(t *testing.T) {
	journaltest.Run(t, func(t *testing.T) (journal.Journal, journaltest.Features) {
		j, _ := openTemp(t, bolt.Config{MaxEventSize: testMaxEventSize, MaxBatchEvents: 3, IndexEvery: 2, IdempotencyWindow: 8})
		return j, journaltest.Features{Corrupt: corrupt, MaxEventSize: testMaxEventSize}
	})
}

func newEvents(n int) []orchestrix.Envelope {
	evs := make([]orchestrix.Envelope, n)
	for i := range evs {
		evs[i] = orchestrix.Envelope{
			ID:     orchestrix.NewID(),
			Source: "/bolt-test",
			Type:   "test.Happened",
			Data:   fmt.Appendf(nil, `{"i":%d}`, i),
		}
	}
	return evs
}

func readStream(t *testing.T, j journal.Journal, stream string) []journal.Record {
	t.Helper()
	var out []journal.Record
	for rec, err := range j.Read(context.Background(), stream, 0, math.MaxUint64, math.MaxInt) {
		require.NoError(t, err)
		out = append(out, rec)
	}
	return out
}

func readAll(t *testing.T, j journal.Journal) []journal.Record {
	t.Helper()
	var out []journal.Record
	for rec, err := range j.ReadAll(context.Background(), 0, math.MaxInt) {
		require.NoError(t, err)
		out = append(out, rec)
	}
	return out
}

func TestOpen_FileLockedByAnotherOpen_ReturnsErrLocked(t *testing.T) {
	j, path := openTemp(t, bolt.Config{})
	defer j.Close()

	_, err := bolt.Open(path, bolt.Config{Timeout: 50 * time.Millisecond})

	require.ErrorIs(t, err, bolt.ErrLocked)
	require.Contains(t, err.Error(), path)
}

func TestOptions_Validate_RejectsNegativeValues(t *testing.T) {
	for name, o := range map[string]bolt.Config{
		"MaxEventSize":      {MaxEventSize: -1},
		"MaxBatchEvents":    {MaxBatchEvents: -1},
		"MaxBatchBytes":     {MaxBatchBytes: -1},
		"IndexEvery":        {IndexEvery: -1},
		"IdempotencyWindow": {IdempotencyWindow: -1},
		"Timeout":           {Timeout: -time.Second},
	} {
		t.Run(name, func(t *testing.T) {
			require.Error(t, o.Validate())
			_, err := bolt.Open(filepath.Join(t.TempDir(), "j.db"), o)
			require.Error(t, err)
		})
	}
	require.NoError(t, bolt.Config{}.Validate())
}

func TestJournal_Append_InvalidStreamName_ReturnsErrInvalidStream(t *testing.T) {
	j, _ := openTemp(t, bolt.Config{})
	defer j.Close()
	ctx := context.Background()

	_, err := j.Append(ctx, "", journal.Any, newEvents(1))
	require.ErrorIs(t, err, journal.ErrInvalidStream)
	_, err = j.Append(ctx, strings.Repeat("s", 4097), journal.Any, newEvents(1))
	require.ErrorIs(t, err, journal.ErrInvalidStream)
	_, err = j.Append(ctx, "s", journal.Any, nil)
	require.ErrorIs(t, err, journal.ErrNoEvents)
	require.ErrorIs(t, err, orchestrix.ErrInvalidEnvelope)
}

// TestJournal_Reopen_KeepsEverything appends across several checkpoints
// (IndexEvery is tiny), deletes, closes and reopens, and checks that the
// reopened journal reads exactly the same and continues after it.
func TestJournal_Reopen_KeepsEverything(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "journal.db")
	opts := bolt.Config{NoSync: true, IndexEvery: 7, MaxBatchEvents: 5}
	j, err := bolt.Open(path, opts)
	require.NoError(t, err)
	streams := []string{"a", "ab", "b", "a\x01b", "order-1"}
	for round := range 12 {
		for i, s := range streams {
			head, err := j.Head(ctx, s)
			require.NoError(t, err)
			_, err = j.Append(ctx, s, journal.Exact(head), newEvents(1+(round+i)%3))
			require.NoError(t, err)
		}
	}
	require.NoError(t, j.DeleteTo(ctx, "ab", 5))
	before := map[string][]journal.Record{}
	heads := map[string]uint64{}
	for _, s := range streams {
		before[s] = readStream(t, j, s)
		heads[s], err = j.Head(ctx, s)
		require.NoError(t, err)
	}
	all := readAll(t, j)
	last, err := j.LastPosition(ctx)
	require.NoError(t, err)
	require.NoError(t, j.Close())

	j, err = bolt.Open(path, opts)
	require.NoError(t, err)
	defer j.Close()
	for _, s := range streams {
		require.Equal(t, before[s], readStream(t, j, s), "stream %q", s)
		h, err := j.Head(ctx, s)
		require.NoError(t, err)
		require.Equal(t, heads[s], h, "head of %q", s)
	}
	require.Equal(t, all, readAll(t, j))
	l2, err := j.LastPosition(ctx)
	require.NoError(t, err)
	require.Equal(t, last, l2)
	require.Equal(t, uint64(6), before["ab"][0].Version)

	res, err := j.Append(ctx, "ab", journal.Exact(heads["ab"]), newEvents(2))
	require.NoError(t, err)
	require.Equal(t, heads["ab"]+1, res.FirstVersion)
	require.Greater(t, res.FirstPosition, last)
}

// TestJournal_Reopen_DeletedTailKeepsPositionsUnique deletes the newest
// records and checks that positions are not reused after a reopen.
func TestJournal_Reopen_DeletedTailKeepsPositionsUnique(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "journal.db")
	j, err := bolt.Open(path, bolt.Config{NoSync: true})
	require.NoError(t, err)
	res, err := j.Append(ctx, "s", journal.NoStream, newEvents(3))
	require.NoError(t, err)
	require.NoError(t, j.DeleteTo(ctx, "s", math.MaxUint64))
	require.NoError(t, j.Close())

	j, err = bolt.Open(path, bolt.Config{NoSync: true})
	require.NoError(t, err)
	defer j.Close()
	require.Empty(t, readAll(t, j))
	head, err := j.Head(ctx, "s")
	require.NoError(t, err)
	require.Equal(t, uint64(3), head)
	res2, err := j.Append(ctx, "t", journal.NoStream, newEvents(1))
	require.NoError(t, err)
	require.Greater(t, res2.FirstPosition, res.LastPosition)
}

func TestJournal_Append_RetryWithAnyAfterReopen_IsDuplicate(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "journal.db")
	j, err := bolt.Open(path, bolt.Config{NoSync: true})
	require.NoError(t, err)
	evs := newEvents(2)
	first, err := j.Append(ctx, "s", journal.Any, evs)
	require.NoError(t, err)
	_, err = j.Append(ctx, "s", journal.Any, newEvents(3))
	require.NoError(t, err)
	require.NoError(t, j.Close())

	j, err = bolt.Open(path, bolt.Config{NoSync: true})
	require.NoError(t, err)
	defer j.Close()
	again, err := j.Append(ctx, "s", journal.Any, evs)
	require.NoError(t, err)
	require.True(t, again.Duplicate)
	first.Duplicate = true
	require.Equal(t, first, again)
	head, err := j.Head(ctx, "s")
	require.NoError(t, err)
	require.Equal(t, uint64(5), head)

	// Only the first id matching is a conflict, not a new append.
	_, err = j.Append(ctx, "s", journal.Any, []orchestrix.Envelope{evs[0], newEvents(1)[0]})
	var vc *journal.VersionConflictError
	require.ErrorAs(t, err, &vc)
	require.NotEmpty(t, vc.Reason)
}

func TestJournal_Append_FailedCommit_ReportsOutcomeUnknownAndRecovers(t *testing.T) {
	ctx := context.Background()
	j, _ := openTemp(t, bolt.Config{})
	defer j.Close()
	_, err := j.Append(ctx, "s", journal.NoStream, newEvents(2))
	require.NoError(t, err)

	errDisk := errors.New("injected: disk full")
	bolt.SetBeforeCommit(j, func() error { return errDisk })
	var wg sync.WaitGroup
	errs := make([]error, 8)
	for i := range errs {
		wg.Go(func() {
			_, errs[i] = j.Append(ctx, fmt.Sprintf("other-%d", i), journal.NoStream, newEvents(1))
		})
	}
	_, err = j.Append(ctx, "s", journal.Exact(2), newEvents(1))
	wg.Wait()
	require.ErrorIs(t, err, orchestrix.ErrOutcomeUnknown)
	require.ErrorIs(t, err, errDisk)
	for _, err := range errs {
		require.ErrorIs(t, err, orchestrix.ErrOutcomeUnknown)
	}
	// A rejection in a failing batch is still a rejection.
	_, err = j.Append(ctx, "s", journal.Exact(7), newEvents(1))
	require.ErrorIs(t, err, orchestrix.ErrVersionConflict)

	bolt.SetBeforeCommit(j, nil)
	head, err := j.Head(ctx, "s")
	require.NoError(t, err)
	require.Equal(t, uint64(2), head, "the failed append is not visible")
	res, err := j.Append(ctx, "s", journal.Exact(2), newEvents(1))
	require.NoError(t, err)
	require.Equal(t, uint64(3), res.FirstVersion)
	recs := readAll(t, j)
	require.Len(t, recs, 3)
	require.Equal(t, recs[1].Position+1, recs[2].Position, "positions of the failed batch are not burnt")
}

func TestJournal_DeleteTo_FailedCommit_ReportsOutcomeUnknown(t *testing.T) {
	ctx := context.Background()
	j, _ := openTemp(t, bolt.Config{})
	defer j.Close()
	_, err := j.Append(ctx, "s", journal.NoStream, newEvents(3))
	require.NoError(t, err)
	bolt.SetBeforeCommit(j, func() error { return errors.New("injected") })
	require.ErrorIs(t, j.DeleteTo(ctx, "s", 2), orchestrix.ErrOutcomeUnknown)
	bolt.SetBeforeCommit(j, nil)
	require.Len(t, readStream(t, j, "s"), 3)
}

func TestJournal_DB_SharesFileWithOtherBuckets(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "journal.db")
	j, err := bolt.Open(path, bolt.Config{NoSync: true})
	require.NoError(t, err)
	require.NoError(t, j.DB().Update(func(tx *bbolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists([]byte("snapshots"))
		if err != nil {
			return err
		}
		return b.Put([]byte("k"), []byte("v"))
	}))
	_, err = j.Append(ctx, "s", journal.NoStream, newEvents(1))
	require.NoError(t, err)
	require.NoError(t, j.Close())

	j, err = bolt.Open(path, bolt.Config{NoSync: true})
	require.NoError(t, err)
	defer j.Close()
	require.NoError(t, j.DB().View(func(tx *bbolt.Tx) error {
		require.Equal(t, []byte("v"), tx.Bucket([]byte("snapshots")).Get([]byte("k")))
		return nil
	}))
	require.Len(t, readStream(t, j, "s"), 1)
}

func TestJournal_Stats_CountsGroupCommits(t *testing.T) {
	ctx := context.Background()
	j, _ := openTemp(t, bolt.Config{})
	defer j.Close()
	var wg sync.WaitGroup
	for i := range 50 {
		wg.Go(func() {
			_, err := j.Append(ctx, fmt.Sprintf("s-%d", i), journal.NoStream, newEvents(2))
			assert.NoError(t, err)
		})
	}
	wg.Wait()
	s := j.Stats()
	require.Equal(t, uint64(100), s.Events)
	require.GreaterOrEqual(t, s.Commits, uint64(1))
	require.LessOrEqual(t, s.Commits, uint64(50))
}

// TestJournal_Stats_AttributesWriterTime injects known delays into the
// build phase (the beforeCommit hook) and into the answer phase (a
// completion function) and checks that each lands in its total (lower
// bounds only: nothing here depends on how fast the machine is).
func TestJournal_Stats_AttributesWriterTime(t *testing.T) {
	const delay = 20 * time.Millisecond
	ctx := context.Background()
	j, _ := openTemp(t, bolt.Config{})
	defer j.Close()
	bolt.SetBeforeCommit(j, func() error { time.Sleep(delay); return nil })
	_, err := j.Append(ctx, "a", journal.NoStream, newEvents(1))
	require.NoError(t, err)
	s := j.Stats()
	require.GreaterOrEqual(t, s.BuildTime, delay)
	require.Positive(t, s.CommitTime)

	bolt.SetBeforeCommit(j, nil)
	done := make(chan struct{})
	require.NoError(t, j.AppendAsync(ctx, "b", journal.NoStream, newEvents(1), func(journal.AppendResult, error) {
		time.Sleep(delay)
		close(done)
	}))
	<-done
	require.NoError(t, j.Close()) // the writer has finished the batch
	s2 := j.Stats()
	require.GreaterOrEqual(t, s2.AnswerTime-s.AnswerTime, delay)
	require.Equal(t, uint64(2), s2.Commits)
}

func TestJournal_Read_CorruptRecordAfterReopen_ReportsCorruption(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "journal.db")
	j, err := bolt.Open(path, bolt.Config{NoSync: true})
	require.NoError(t, err)
	_, err = j.Append(ctx, "s", journal.NoStream, newEvents(3))
	require.NoError(t, err)
	require.NoError(t, bolt.CorruptRecord(j, "s", 2))
	require.NoError(t, j.Close())

	j, err = bolt.Open(path, bolt.Config{NoSync: true})
	require.NoError(t, err)
	defer j.Close()
	var got []uint64
	var readErr error
	for rec, err := range j.Read(ctx, "s", 1, math.MaxUint64, math.MaxInt) {
		if err != nil {
			readErr = err
			break
		}
		got = append(got, rec.Version)
	}
	require.Equal(t, []uint64{1}, got)
	var ce *journal.CorruptionError
	require.ErrorAs(t, readErr, &ce)
	require.Equal(t, "s", ce.Stream)
	require.Equal(t, uint64(2), ce.Version)
	require.NotZero(t, ce.Position)
}
