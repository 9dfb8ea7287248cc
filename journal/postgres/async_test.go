package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/orchestrix/orchestrix"
	"github.com/orchestrix/orchestrix/internal/pgtest"
	"github.com/orchestrix/orchestrix/journal"
	"github.com/orchestrix/orchestrix/journal/postgres"
)

// asyncResult is one call of an AppendAsync done function.
type asyncResult struct {
	res journal.AppendResult
	err error
}

// appendAsync calls AppendAsync and returns a channel that receives every
// call of its done function.
func appendAsync(t *testing.T, j *postgres.Journal, ctx context.Context, stream string, expected journal.ExpectedVersion,
	events []orchestrix.Envelope) <-chan asyncResult {
	t.Helper()
	ch := make(chan asyncResult, 2)
	require.NoError(t, j.AppendAsync(ctx, stream, expected, events, func(res journal.AppendResult, err error) {
		ch <- asyncResult{res, err}
	}))
	return ch
}

// await returns the first result of ch; it fails t when none comes in a
// minute (the tests do not depend on how fast it comes).
func await(t *testing.T, ch <-chan asyncResult) asyncResult {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(time.Minute):
		t.Fatal("done was not called")
		return asyncResult{}
	}
}

func TestJournal_AppendAsync_Success_ReportsCommittedVersionsOnce(t *testing.T) {
	j := openJournal(t, pgtest.DSN(t), postgres.Config{})
	ctx := context.Background()
	ch := appendAsync(t, j, ctx, "s", journal.NoStream, newEvents("s", 2))
	r := await(t, ch)
	require.NoError(t, r.err)
	assert.Equal(t, journal.AppendResult{FirstVersion: 1, LastVersion: 2, FirstPosition: 1, LastPosition: 2}, r.res)
	recs := readAll(t, j, 1)
	require.Len(t, recs, 2)
	assert.Equal(t, "s", recs[1].Stream)
	assert.Equal(t, uint64(2), recs[1].Version)

	// A cancellable context that never ends does not change the outcome.
	ctx2, cancel := context.WithCancel(ctx)
	defer cancel()
	r = await(t, appendAsync(t, j, ctx2, "s", journal.Exact(2), newEvents("s", 1)))
	require.NoError(t, r.err)
	assert.Equal(t, uint64(3), r.res.LastVersion)
	select {
	case extra := <-ch:
		t.Fatalf("done called twice: %+v", extra)
	default:
	}
}

func TestJournal_AppendAsync_WrongExpectedVersion_ReportsConflict(t *testing.T) {
	j := openJournal(t, pgtest.DSN(t), postgres.Config{})
	r := await(t, appendAsync(t, j, context.Background(), "s", journal.Exact(5), newEvents("s", 1)))
	var conflict *journal.VersionConflictError
	require.ErrorAs(t, r.err, &conflict)
	assert.Equal(t, uint64(0), conflict.Actual)
	assert.Empty(t, readAll(t, j, 1))
}

func TestJournal_AppendAsync_InvalidInput_ReturnsErrorWithoutCallingDone(t *testing.T) {
	j := openJournal(t, pgtest.DSN(t), postgres.Config{})
	ctx := context.Background()
	called := false
	done := func(journal.AppendResult, error) { called = true }
	require.ErrorIs(t, j.AppendAsync(ctx, "", journal.Any, newEvents("s", 1), done), journal.ErrInvalidStream)
	require.ErrorIs(t, j.AppendAsync(ctx, "s", journal.Any, nil, done), journal.ErrNoEvents)
	require.Error(t, j.AppendAsync(ctx, "s", journal.Any, newEvents("s", 1), nil))
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	require.ErrorIs(t, j.AppendAsync(cancelled, "s", journal.Any, newEvents("s", 1), done), context.Canceled)
	require.NoError(t, j.Close())
	require.ErrorIs(t, j.AppendAsync(ctx, "s", journal.Any, newEvents("s", 1), done), orchestrix.ErrClosed)
	assert.False(t, called)
}

// TestJournal_AppendAsync_ContextEndsWhileQueued_ReportsContextErrorAndStoresNothing
// holds the position row from another connection, so that the two
// batches the writer may have in flight wait for it on the server and a
// third append stays queued; cancelling that append's context answers it
// with the context's error, and it is never stored.
func TestJournal_AppendAsync_ContextEndsWhileQueued_ReportsContextErrorAndStoresNothing(t *testing.T) {
	dsn := pgtest.DSN(t)
	j := openJournal(t, dsn, postgres.Config{})
	ctx := context.Background()
	_, err := j.Append(ctx, "warm", journal.NoStream, newEvents("warm", 1)) // creates the schema's rows
	require.NoError(t, err)

	blocker, err := pgx.Connect(ctx, dsn)
	require.NoError(t, err)
	defer blocker.Close(ctx)
	tx, err := blocker.Begin(ctx)
	require.NoError(t, err)
	_, err = tx.Exec(ctx, `SELECT last_position FROM journal_position FOR UPDATE`)
	require.NoError(t, err)

	// Wait until n batches wait for the lock on the server (asked
	// outside a transaction: pg_stat_activity is a snapshot per
	// transaction).
	watcher, err := pgx.Connect(ctx, dsn)
	require.NoError(t, err)
	defer watcher.Close(ctx)
	waitFor := func(n int) {
		require.Eventually(t, func() bool {
			var waiting int
			err := watcher.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity
				WHERE wait_event_type = 'Lock' AND datname = current_database()`).Scan(&waiting)
			return err == nil && waiting == n
		}, time.Minute, 10*time.Millisecond)
	}
	a := appendAsync(t, j, ctx, "a", journal.NoStream, newEvents("a", 1))
	waitFor(1)
	b := appendAsync(t, j, ctx, "b", journal.NoStream, newEvents("b", 1))
	waitFor(2)

	cctx, cancel := context.WithCancel(ctx)
	c := appendAsync(t, j, cctx, "c", journal.NoStream, newEvents("c", 1))
	cancel()
	rc := await(t, c)
	require.ErrorIs(t, rc.err, context.Canceled)

	require.NoError(t, tx.Commit(ctx))
	require.NoError(t, await(t, a).err)
	require.NoError(t, await(t, b).err)
	head, err := j.Head(ctx, "c")
	require.NoError(t, err)
	assert.Zero(t, head, "a cancelled append was stored")
	select {
	case extra := <-c:
		t.Fatalf("done called twice: %+v", extra)
	default:
	}
}

// TestJournal_AppendAsync_DoneQueuesTheNextAppend: done may queue further
// appends (here, each the next of one stream) without deadlocking.
func TestJournal_AppendAsync_DoneQueuesTheNextAppend(t *testing.T) {
	j := openJournal(t, pgtest.DSN(t), postgres.Config{})
	const n = 50
	finished := make(chan error, 1)
	var next func(i int) func(journal.AppendResult, error)
	next = func(i int) func(journal.AppendResult, error) {
		return func(res journal.AppendResult, err error) {
			switch {
			case err != nil:
				finished <- err
			case res.LastVersion != uint64(i):
				finished <- errors.New("unexpected version")
			case i == n:
				finished <- nil
			default:
				if err := j.AppendAsync(context.Background(), "chain", journal.Exact(uint64(i)), newEvents("chain", 1), next(i+1)); err != nil {
					finished <- err
				}
			}
		}
	}
	require.NoError(t, j.AppendAsync(context.Background(), "chain", journal.NoStream, newEvents("chain", 1), next(1)))
	select {
	case err := <-finished:
		require.NoError(t, err)
	case <-time.After(time.Minute):
		t.Fatal("the chain of appends did not finish")
	}
	assert.Len(t, readAll(t, j, 1), n)
}

// TestJournal_AppendAsync_Close_CallsEveryDoneBeforeReturning: Close
// returns only after the done function of every append queued before it
// has returned, even one that takes a while.
func TestJournal_AppendAsync_Close_CallsEveryDoneBeforeReturning(t *testing.T) {
	j := openJournal(t, pgtest.DSN(t), postgres.Config{})
	const n = 200
	var calls, failed atomic.Int64
	slow := make(chan struct{})
	go func() {
		// Correct code passes however long this takes; without the wait
		// in Close, Close returns before it and the count is short.
		time.Sleep(100 * time.Millisecond)
		close(slow)
	}()
	for i := range n {
		stream := fmt.Sprintf("s%d", i%50)
		require.NoError(t, j.AppendAsync(context.Background(), stream, journal.Any, newEvents(stream, 1), func(_ journal.AppendResult, err error) {
			if i == 0 {
				<-slow
			}
			if err != nil {
				failed.Add(1)
			}
			calls.Add(1)
		}))
	}
	require.NoError(t, j.Close())
	assert.Equal(t, int64(n), calls.Load())
	assert.Zero(t, failed.Load())
}
