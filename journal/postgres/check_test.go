package postgres_test

import (
	"context"
	"fmt"
	"strings"
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

// checkFixture is a journal with streams a (5 events), b (3) and c (4,
// deleted up to 2), and a connection to tamper with its tables.
type checkFixture struct {
	j     *postgres.Journal
	conn  *pgx.Conn
	table func(name string) string
}

func newCheckFixture(t *testing.T) checkFixture {
	t.Helper()
	ctx := context.Background()
	dsn := pgtest.DSN(t)
	j, err := postgres.Open(ctx, dsn, postgres.Config{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = j.Close() })
	at := time.Date(2025, 3, 1, 12, 0, 0, 123456000, time.UTC)
	for _, s := range []struct {
		name string
		n    int
	}{{"a", 3}, {"b", 3}, {"c", 4}, {"a", 2}} {
		for i := range s.n {
			e := orchestrix.Envelope{ID: orchestrix.NewID(), Source: "/check", Type: "check.Happened", Subject: s.name,
				Time: at.Add(time.Duration(i) * time.Second), Data: []byte(fmt.Sprintf(`{"i":%d}`, i))}
			_, err := j.Append(ctx, s.name, journal.Any, []orchestrix.Envelope{e})
			require.NoError(t, err)
		}
	}
	require.NoError(t, j.DeleteTo(ctx, "c", 2))
	conn, err := pgx.Connect(ctx, dsn)
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close(context.Background()) })
	return checkFixture{j: j, conn: conn, table: func(name string) string {
		return pgx.Identifier{j.Schema(), name}.Sanitize()
	}}
}

func (f checkFixture) exec(t *testing.T, sql string, args ...any) {
	t.Helper()
	tag, err := f.conn.Exec(context.Background(), sql, args...)
	require.NoError(t, err)
	require.Equal(t, int64(1), tag.RowsAffected(), sql)
}

func (f checkFixture) check(t *testing.T) journal.CheckReport {
	t.Helper()
	rep, err := f.j.Check(context.Background())
	require.NoError(t, err)
	return rep
}

func pgProblemText(rep journal.CheckReport) string {
	var b strings.Builder
	for _, p := range rep.Problems {
		b.WriteString(p.String() + "\n")
	}
	return b.String()
}

func TestJournal_Check_CleanJournal_NoProblems(t *testing.T) {
	f := newCheckFixture(t)
	rep := f.check(t)
	assert.True(t, rep.OK(), pgProblemText(rep))
	assert.Equal(t, 3, rep.Streams)
	assert.Equal(t, uint64(10), rep.Records)
	assert.Equal(t, uint64(12), rep.LastPosition)
}

func TestJournal_Check_CorruptRecord_ReportsIt(t *testing.T) {
	f := newCheckFixture(t)
	f.exec(t, `UPDATE `+f.table("journal_events")+` SET record = set_byte(record, 3, get_byte(record, 3) # 255)
		WHERE stream = 'b' AND version = 2`)
	rep := f.check(t)
	require.Len(t, rep.Problems, 1, pgProblemText(rep))
	p := rep.Problems[0]
	assert.Equal(t, "b", p.Stream)
	assert.Equal(t, uint64(2), p.Version)
	assert.Equal(t, uint64(5), p.Position)
	assert.Contains(t, p.Detail, "checksum mismatch")
}

func TestJournal_Check_MissingRow_ReportsGap(t *testing.T) {
	f := newCheckFixture(t)
	f.exec(t, `DELETE FROM `+f.table("journal_events")+` WHERE stream = 'a' AND version = 2`)
	f.exec(t, `DELETE FROM `+f.table("journal_events")+` WHERE stream = 'b' AND version = 3`)
	rep := f.check(t)
	assert.Equal(t, `stream "a" version 2 position 3: versions 2..2 are missing: the next stored version is 3, at position 3
stream "b" version 3: versions 3..3 are missing: the head is 3 but the highest stored version is 2
`, pgProblemText(rep))
}

func TestJournal_Check_HeadBelowVersion_ReportsIt(t *testing.T) {
	f := newCheckFixture(t)
	f.exec(t, `UPDATE `+f.table("journal_streams")+` SET head = 4 WHERE stream = 'a'`)
	rep := f.check(t)
	require.Len(t, rep.Problems, 1, pgProblemText(rep))
	assert.Equal(t, journal.Problem{Stream: "a", Version: 5, Position: 12,
		Detail: "head 4 in journal_streams is below this stored version"}, rep.Problems[0])
}

func TestJournal_Check_ColumnsDisagree_ReportsThem(t *testing.T) {
	f := newCheckFixture(t)
	f.exec(t, `UPDATE `+f.table("journal_events")+` SET event_id = 'other', type = 'x' WHERE stream = 'a' AND version = 1`)
	f.exec(t, `DELETE FROM `+f.table("journal_streams")+` WHERE stream = 'b'`)
	rep := f.check(t)
	text := pgProblemText(rep)
	require.Len(t, rep.Problems, 3, text)
	assert.Contains(t, text, `stream "a" version 1 position 1: event_id column "other" differs`)
	assert.Contains(t, text, `stream "a" version 1 position 1: type column "x" differs`)
	assert.Contains(t, text, `stream "b" version 3 position 6: stream has events but no journal_streams row`)
}

func TestJournal_Check_Closed_ReturnsErrClosed(t *testing.T) {
	f := newCheckFixture(t)
	require.NoError(t, f.j.Close())
	_, err := f.j.Check(context.Background())
	assert.ErrorIs(t, err, orchestrix.ErrClosed)
}

func TestJournal_Streams_ListsHeadsAndDeletion(t *testing.T) {
	f := newCheckFixture(t)
	var got []journal.StreamInfo
	for info, err := range f.j.Streams(context.Background()) {
		require.NoError(t, err)
		got = append(got, info)
	}
	assert.Equal(t, []journal.StreamInfo{
		{Name: "a", Head: 5}, {Name: "b", Head: 3}, {Name: "c", Head: 4, DeletedTo: 2},
	}, got)

	n, err := f.j.StorageSize(context.Background())
	require.NoError(t, err)
	assert.Positive(t, n)
}

func TestJournal_Streams_ManyPages_ListsAll(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 2500 streams")
	}
	ctx := context.Background()
	j, err := postgres.Open(ctx, pgtest.DSN(t), postgres.Config{})
	require.NoError(t, err)
	defer j.Close()
	const n = 2500
	errs := make(chan error, n)
	for i := range n {
		go func() {
			e := orchestrix.Envelope{ID: orchestrix.NewID(), Source: "/check", Type: "check.Happened"}
			_, err := j.Append(ctx, fmt.Sprintf("s-%05d", i), journal.NoStream, []orchestrix.Envelope{e})
			errs <- err
		}()
	}
	for range n {
		require.NoError(t, <-errs)
	}
	count := 0
	prev := ""
	for info, err := range j.Streams(ctx) {
		require.NoError(t, err)
		require.Greater(t, info.Name, prev)
		prev = info.Name
		count++
	}
	assert.Equal(t, n, count)
}
