package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/orchestrix/orchestrix"
	"github.com/orchestrix/orchestrix/internal/pgtest"
	"github.com/orchestrix/orchestrix/journal"
	"github.com/orchestrix/orchestrix/journal/journaltest"
	"github.com/orchestrix/orchestrix/journal/postgres"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

const testMaxEventSize = 64 << 10

// corrupt flips the bits of one byte of the stored record of stream at
// version, behind the journal's back.
func corrupt(dsn string) func(t *testing.T, j journal.Journal, stream string, version uint64) {
	return func(t *testing.T, j journal.Journal, stream string, version uint64) {
		t.Helper()
		ctx := context.Background()
		conn, err := pgx.Connect(ctx, dsn)
		require.NoError(t, err)
		defer conn.Close(ctx)
		table := pgx.Identifier{j.(*postgres.Journal).Schema(), "journal_events"}.Sanitize()
		tag, err := conn.Exec(ctx, `UPDATE `+table+` SET record = set_byte(record, 3, get_byte(record, 3) # 255)
			WHERE stream = $1 AND version = $2`, stream, int64(version))
		require.NoError(t, err)
		require.Equal(t, int64(1), tag.RowsAffected(), "corrupt: no record %q@%d", stream, version)
	}
}

func openJournal(t testing.TB, dsn string, opts postgres.Config) *postgres.Journal {
	t.Helper()
	j, err := postgres.Open(context.Background(), dsn, opts)
	require.NoError(t, err)
	t.Cleanup(func() { _ = j.Close() })
	return j
}

// TestJournal_Conformance runs the suite with one database and a fresh,
// named schema per case (cheaper than a database per case; the default
// schema is covered by the other tests). The schema names need quoting.
func TestJournal_Conformance(t *testing.T) {
	dsn := pgtest.DSN(t)
	var n atomic.Int64
	journaltest.Run(t, func(t *testing.T) (journal.Journal, journaltest.Features) {
		schema := fmt.Sprintf("Case %d", n.Add(1))
		j, err := postgres.Open(context.Background(), dsn, postgres.Config{Schema: schema, MaxEventSize: testMaxEventSize})
		require.NoError(t, err)
		return j, journaltest.Features{Corrupt: corrupt(dsn), MaxEventSize: testMaxEventSize}
	})
}

func newEvents(prefix string, n int) []orchestrix.Envelope {
	evs := make([]orchestrix.Envelope, n)
	for i := range evs {
		evs[i] = orchestrix.Envelope{ID: orchestrix.NewID(), Source: "/test", Type: "test.Happened", Subject: prefix,
			Data: []byte(fmt.Sprintf(`{"i":%d}`, i))}
	}
	return evs
}

func readAll(t testing.TB, j journal.Journal, from uint64) []journal.Record {
	t.Helper()
	var out []journal.Record
	for r, err := range j.ReadAll(context.Background(), from, math.MaxInt) {
		require.NoError(t, err)
		out = append(out, r)
	}
	return out
}

func TestOpen_ConcurrentOpensOfOneSchema_AllSucceed(t *testing.T) {
	dsn := pgtest.DSN(t)
	const n = 6
	errs := make([]error, n)
	js := make([]*postgres.Journal, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			js[i], errs[i] = postgres.Open(context.Background(), dsn, postgres.Config{Schema: "shared"})
		})
	}
	wg.Wait()
	for i := range n {
		require.NoError(t, errs[i], "open %d", i)
		defer js[i].Close()
	}
	// All of them see one journal.
	_, err := js[0].Append(context.Background(), "s", journal.NoStream, newEvents("s", 2))
	require.NoError(t, err)
	head, err := js[n-1].Head(context.Background(), "s")
	require.NoError(t, err)
	assert.Equal(t, uint64(2), head)
}

func TestOpen_BadDSN_ReturnsError(t *testing.T) {
	_, err := postgres.Open(context.Background(), "postgres://nobody@127.0.0.1:1/none?connect_timeout=1", postgres.Config{})
	require.Error(t, err)
	_, err = postgres.Open(context.Background(), "::not a dsn::", postgres.Config{})
	require.Error(t, err)
}

func TestConfig_Validate_Negative_ReturnsError(t *testing.T) {
	for _, o := range []postgres.Config{{MaxEventSize: -1}, {MaxBatchEvents: -1}, {WriteTimeout: -1}, {PollInterval: -1}, {MaxConns: -1}} {
		assert.Error(t, o.Validate(), "%+v", o)
	}
	assert.NoError(t, postgres.Config{}.Validate())
}

// TestJournal_Append_TwoJournalsOneSchema_ShareVersionsAndOrder runs two
// Journal values (as two processes would) on one schema: the expected
// version check holds across them, and the global order stays gap-free.
func TestJournal_Append_TwoJournalsOneSchema_ShareVersionsAndOrder(t *testing.T) {
	dsn := pgtest.DSN(t)
	a := openJournal(t, dsn, postgres.Config{})
	b := openJournal(t, dsn, postgres.Config{})
	ctx := context.Background()

	_, err := a.Append(ctx, "s", journal.NoStream, newEvents("s", 1))
	require.NoError(t, err)
	// b has never seen "s": its head cache is empty, so it must find out
	// from the database.
	_, err = b.Append(ctx, "s", journal.NoStream, newEvents("s", 1))
	require.ErrorIs(t, err, orchestrix.ErrVersionConflict)
	// b caches head 1, then a moves it on: b's append is re-planned.
	_, err = b.Append(ctx, "s", journal.Exact(1), newEvents("s", 1))
	require.NoError(t, err)
	_, err = a.Append(ctx, "s", journal.Any, newEvents("s", 1)) // a's cache says 1: stale
	require.NoError(t, err)
	_, err = b.Append(ctx, "s", journal.Exact(2), newEvents("s", 1)) // b's cache says 2: stale, really 3
	var vc *journal.VersionConflictError
	require.ErrorAs(t, err, &vc)
	assert.Equal(t, uint64(3), vc.Actual)

	// Many concurrent writers on both, one stream each and one shared.
	var wg sync.WaitGroup
	var wins atomic.Int64
	for w := range 16 {
		j := a
		if w%2 == 1 {
			j = b
		}
		wg.Go(func() {
			for i := range 20 {
				_, err := j.Append(ctx, fmt.Sprintf("w-%d", w), journal.Exact(uint64(2*i)), newEvents("w", 2))
				assert.NoError(t, err)
				if _, err := j.Append(ctx, "shared", journal.Any, newEvents("shared", 1)); err == nil {
					wins.Add(1)
				} else {
					t.Errorf("append to shared: %v", err)
				}
			}
		})
	}
	wg.Wait()
	recs := readAll(t, a, 0)
	require.Equal(t, 3+16*20*2+int(wins.Load()), len(recs))
	for i := 1; i < len(recs); i++ {
		require.Greater(t, recs[i].Position, recs[i-1].Position)
	}
	head, err := b.Head(ctx, "shared")
	require.NoError(t, err)
	assert.Equal(t, uint64(wins.Load()), head)
	lastA, err := a.LastPosition(ctx)
	require.NoError(t, err)
	assert.Equal(t, recs[len(recs)-1].Position, lastA)
}

// TestJournal_Append_StreamCreatedByOtherJournal_ReplansAndAppends has a
// cache that says a stream does not exist while another journal creates
// it: the append must not overwrite the other's head, and lands after it.
func TestJournal_Append_StreamCreatedByOtherJournal_ReplansAndAppends(t *testing.T) {
	dsn := pgtest.DSN(t)
	a := openJournal(t, dsn, postgres.Config{})
	b := openJournal(t, dsn, postgres.Config{})
	ctx := context.Background()

	// a learns (and caches) that "n" does not exist.
	_, err := a.Append(ctx, "n", journal.StreamExists, newEvents("n", 1))
	require.ErrorIs(t, err, orchestrix.ErrVersionConflict)
	_, err = b.Append(ctx, "n", journal.NoStream, newEvents("n", 2))
	require.NoError(t, err)

	res, err := a.Append(ctx, "n", journal.Any, newEvents("n", 1)) // a's cache says 0: stale
	require.NoError(t, err)
	assert.Equal(t, uint64(3), res.FirstVersion)
	head, err := b.Head(ctx, "n")
	require.NoError(t, err)
	assert.Equal(t, uint64(3), head)
	recs := readAll(t, b, 0)
	require.Len(t, recs, 3)
	for i, r := range recs {
		assert.Equal(t, uint64(i+1), r.Version)
	}
}

// TestJournal_Append_AnyRetryOfOtherJournalsAppend_IsDuplicate retries, on
// one journal, an Any append that another journal stored: whether the
// writer's cache is stale or fresh, the retry is a duplicate reporting the
// original versions and positions, and nothing is stored twice.
func TestJournal_Append_AnyRetryOfOtherJournalsAppend_IsDuplicate(t *testing.T) {
	dsn := pgtest.DSN(t)
	a := openJournal(t, dsn, postgres.Config{})
	b := openJournal(t, dsn, postgres.Config{})
	ctx := context.Background()

	_, err := a.Append(ctx, "d", journal.NoStream, newEvents("d", 1)) // a caches head 1
	require.NoError(t, err)
	evs := newEvents("d", 2)
	orig, err := b.Append(ctx, "d", journal.Any, evs)
	require.NoError(t, err)
	require.Equal(t, uint64(2), orig.FirstVersion)

	for _, name := range []string{"stale cache", "fresh cache"} {
		res, err := a.Append(ctx, "d", journal.Any, evs)
		require.NoError(t, err, name)
		assert.True(t, res.Duplicate, name)
		assert.Equal(t, orig.FirstVersion, res.FirstVersion, name)
		assert.Equal(t, orig.LastVersion, res.LastVersion, name)
		assert.Equal(t, orig.FirstPosition, res.FirstPosition, name)
		assert.Equal(t, orig.LastPosition, res.LastPosition, name)
	}
	// An id stored elsewhere in the stream, out of order: a conflict.
	_, err = a.Append(ctx, "d", journal.Any, []orchestrix.Envelope{evs[1], evs[0]})
	require.ErrorIs(t, err, orchestrix.ErrVersionConflict)
	// The same id in another stream is no duplicate.
	res, err := a.Append(ctx, "other", journal.Any, evs[:1])
	require.NoError(t, err)
	assert.False(t, res.Duplicate)
	assert.Len(t, readAll(t, a, 0), 4)
}

// TestJournal_WaitFor_CommitByOtherJournal_Wakes checks that LISTEN/NOTIFY
// carries another process's commit to a waiter.
func TestJournal_WaitFor_CommitByOtherJournal_Wakes(t *testing.T) {
	dsn := pgtest.DSN(t)
	a := openJournal(t, dsn, postgres.Config{PollInterval: time.Hour}) // only a notification can wake it
	b := openJournal(t, dsn, postgres.Config{})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	last, err := a.LastPosition(ctx)
	require.NoError(t, err)
	done := make(chan error, 1)
	var got uint64
	go func() {
		var err error
		got, err = a.WaitFor(ctx, last)
		done <- err
	}()
	res, err := b.Append(ctx, "x", journal.NoStream, newEvents("x", 3))
	require.NoError(t, err)
	require.NoError(t, <-done)
	assert.GreaterOrEqual(t, got, res.LastPosition)
}

func TestJournal_Append_ContextEndsWhileQueued_NothingStoredOrOutcomeKnown(t *testing.T) {
	dsn := pgtest.DSN(t)
	j := openJournal(t, dsn, postgres.Config{})
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	type result struct {
		id  string
		err error
	}
	results := make(chan result, 200)
	for w := range 200 {
		wg.Go(func() {
			evs := newEvents("c", 1)
			_, err := j.Append(ctx, fmt.Sprintf("c-%d", w), journal.Any, evs)
			results <- result{evs[0].ID, err}
		})
	}
	cancel()
	wg.Wait()
	close(results)
	stored := map[string]bool{}
	for _, r := range readAll(t, j, 0) {
		stored[r.Envelope.ID] = true
	}
	for r := range results {
		if r.err == nil {
			assert.True(t, stored[r.id], "acknowledged event missing")
		} else {
			require.ErrorIs(t, r.err, context.Canceled)
			assert.False(t, stored[r.id], "an append that returned the context's error was stored")
		}
	}
}

// An append that finds no server to connect to sent nothing, so it fails
// with a plain error, not an unknown outcome (the doc's promise). Each try
// goes to a stream whose head the writer has cached, so that it reaches
// the insert without a read first (a failed read is a plain error
// anyway); the first try after the kill may still find a pooled
// connection and lose it mid-call, which is unknown, and forgets only
// that stream's head.
func TestJournal_Append_NoServer_FailsWithKnownOutcome(t *testing.T) {
	srv := pgtest.Start(t)
	dsn := srv.NewDatabase(t)
	j := openJournal(t, dsn, postgres.Config{WriteTimeout: 10 * time.Second})
	ctx := context.Background()
	const tries = 5
	for i := range tries {
		stream := fmt.Sprintf("down-%d", i)
		_, err := j.Append(ctx, stream, journal.Any, newEvents(stream, 1))
		require.NoError(t, err)
	}
	require.NoError(t, srv.Kill())
	t.Cleanup(func() { _ = srv.Restart() })

	var last error
	for i := range tries {
		stream := fmt.Sprintf("down-%d", i)
		_, last = j.Append(ctx, stream, journal.Any, newEvents(stream, 1))
		require.Error(t, last)
		var ce *pgconn.ConnectError
		if errors.As(last, &ce) {
			break
		}
	}
	var ce *pgconn.ConnectError
	require.ErrorAs(t, last, &ce, "no append failed to connect in %d tries: %v", tries, last)
	require.NotErrorIs(t, last, orchestrix.ErrOutcomeUnknown, "a failed connect sent nothing: %v", last)
}

// TestJournal_Append_ServerKilled_AcknowledgedEventsSurvive crashes the
// server (SIGKILL) while many goroutines append, restarts it, and checks
// that every acknowledged event is stored exactly once, that every append
// reported as failed without ErrOutcomeUnknown stored nothing, and that
// streams and the global order have no gaps.
func TestJournal_Append_ServerKilled_AcknowledgedEventsSurvive(t *testing.T) {
	srv := pgtest.Start(t)
	dsn := srv.NewDatabase(t)
	j := openJournal(t, dsn, postgres.Config{WriteTimeout: 10 * time.Second})
	ctx := context.Background()

	type ack struct {
		stream       string
		version, pos uint64
		id           string
	}
	var (
		mu       sync.Mutex
		acks     []ack
		notStore []string // ids of appends that failed with a known outcome
		unknown  int
		failures atomic.Int64
		acked    atomic.Int64
	)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	const writers = 32
	for w := range writers {
		wg.Go(func() {
			stream := fmt.Sprintf("crash-%d", w)
			for {
				select {
				case <-stop:
					return
				default:
				}
				evs := newEvents(stream, 1+w%3)
				res, err := j.Append(ctx, stream, journal.Any, evs)
				mu.Lock()
				switch {
				case err == nil:
					for i, ev := range evs {
						acks = append(acks, ack{stream, res.FirstVersion + uint64(i), res.FirstPosition + uint64(i), ev.ID})
					}
					acked.Add(1)
				case errors.Is(err, orchestrix.ErrOutcomeUnknown):
					unknown++
					failures.Add(1)
				default:
					for _, ev := range evs {
						notStore = append(notStore, ev.ID)
					}
					failures.Add(1)
				}
				mu.Unlock()
				if err != nil {
					time.Sleep(5 * time.Millisecond) // don't spin while the server is down
				}
			}
		})
	}
	waitUntil := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(60 * time.Second) // hang guard, not a timing assertion
		for !cond() {
			require.True(t, time.Now().Before(deadline), "gave up waiting for %s", what)
			time.Sleep(time.Millisecond)
		}
	}
	waitUntil("acks before the crash", func() bool { return acked.Load() >= 300 })
	require.NoError(t, srv.Kill())
	waitUntil("failures while down", func() bool { return failures.Load() >= writers })
	before := acked.Load()
	require.NoError(t, srv.Restart())
	waitUntil("acks after the restart", func() bool { return acked.Load() >= before+300 })
	close(stop)
	wg.Wait()
	require.NoError(t, j.Close())
	t.Logf("acknowledged appends: %d, failed: %d (outcome unknown: %d)", acked.Load(), failures.Load(), unknown)

	// Reopen and check.
	j2 := openJournal(t, dsn, postgres.Config{})
	byID := map[string][]journal.Record{}
	all := readAll(t, j2, 0)
	for i, r := range all {
		byID[r.Envelope.ID] = append(byID[r.Envelope.ID], r)
		if i > 0 {
			require.Greater(t, r.Position, all[i-1].Position)
		}
	}
	for _, a := range acks {
		recs := byID[a.id]
		require.Len(t, recs, 1, "acknowledged event %s stored %d times", a.id, len(recs))
		assert.Equal(t, a.stream, recs[0].Stream)
		assert.Equal(t, a.version, recs[0].Version)
		assert.Equal(t, a.pos, recs[0].Position)
	}
	for _, id := range notStore {
		assert.Empty(t, byID[id], "an append reported as failed (outcome known) was stored")
	}
	total := 0
	for w := range writers {
		stream := fmt.Sprintf("crash-%d", w)
		head, err := j2.Head(ctx, stream)
		require.NoError(t, err)
		var versions []uint64
		for r, err := range j2.Read(ctx, stream, 1, math.MaxUint64, math.MaxInt) {
			require.NoError(t, err)
			versions = append(versions, r.Version)
		}
		require.Len(t, versions, int(head), "stream %s", stream)
		for i, v := range versions {
			require.Equal(t, uint64(i+1), v, "stream %s has a gap", stream)
		}
		total += len(versions)
	}
	assert.Len(t, all, total)
}
