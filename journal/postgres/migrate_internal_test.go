package postgres

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/orchestrix/orchestrix"
	"github.com/orchestrix/orchestrix/internal/pgmigrate"
	"github.com/orchestrix/orchestrix/internal/pgtest"
	"github.com/orchestrix/orchestrix/journal"
)

// TestOpen_SchemaAtVersion1_MigratesAndKeepsWorking stores an event with
// the version 1 schema and journal_append, then opens the journal (which
// migrates to the latest version): the event reads back, a retry of it is
// a duplicate (the id check uses the new index), and appends continue at
// the stored head.
func TestOpen_SchemaAtVersion1_MigratesAndKeepsWorking(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second) // hang guard
	defer cancel()
	dsn := pgtest.DSN(t)
	pool, err := pgxpool.New(ctx, dsn)
	require.NoError(t, err)
	defer pool.Close()
	require.NoError(t, pgmigrate.Apply(ctx, pool, "public", component, migrations[:1]))

	ev := testEvents(1)[0]
	rec, err := ev.MarshalBinary()
	require.NoError(t, err)
	var first int64
	require.NoError(t, pool.QueryRow(ctx, pgmigrate.Expand(sqlAppend, "public"), "ch",
		[]string{"s"}, []int64{0}, []int64{1}, []string{}, []string{},
		[]string{"s"}, []int64{1}, []string{ev.ID}, []string{ev.Type}, []*time.Time{nil},
		[][]byte{rec}, []int64{checksum("s", 1, rec)}).Scan(&first))
	require.Equal(t, int64(1), first)

	j, err := Open(ctx, dsn, Config{})
	require.NoError(t, err)
	defer j.Close()

	var indexes []string
	rows, err := pool.Query(ctx, `SELECT indexname FROM pg_indexes WHERE schemaname = 'public' AND tablename = 'journal_events' ORDER BY indexname`)
	require.NoError(t, err)
	for rows.Next() {
		var name string
		require.NoError(t, rows.Scan(&name))
		indexes = append(indexes, name)
	}
	require.NoError(t, rows.Err())
	assert.Equal(t, []string{"journal_events_event_id", "journal_events_pkey", "journal_events_stream_version"}, indexes)

	var got []journal.Record
	for r, err := range j.Read(ctx, "s", 1, 10, 10) {
		require.NoError(t, err)
		got = append(got, r)
	}
	require.Len(t, got, 1)
	assert.Equal(t, ev.ID, got[0].Envelope.ID)

	res, err := j.Append(ctx, "s", journal.Any, []orchestrix.Envelope{ev})
	require.NoError(t, err)
	assert.True(t, res.Duplicate)
	assert.Equal(t, journal.AppendResult{FirstVersion: 1, LastVersion: 1, FirstPosition: 1, LastPosition: 1, Duplicate: true}, res)

	res, err = j.Append(ctx, "s", journal.Exact(1), testEvents(2))
	require.NoError(t, err)
	assert.Equal(t, journal.AppendResult{FirstVersion: 2, LastVersion: 3, FirstPosition: 2, LastPosition: 3}, res)
	res, err = j.Append(ctx, "t", journal.NoStream, testEvents(1))
	require.NoError(t, err)
	assert.Equal(t, journal.AppendResult{FirstVersion: 1, LastVersion: 1, FirstPosition: 4, LastPosition: 4}, res)
}
