package postgres

import (
	"context"
	"fmt"
	"math"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/orchestrix/orchestrix"
	"github.com/orchestrix/orchestrix/internal/pgtest"
	"github.com/orchestrix/orchestrix/journal"
)

func testEvents(n int) []orchestrix.Envelope {
	evs := make([]orchestrix.Envelope, n)
	for i := range evs {
		evs[i] = orchestrix.Envelope{ID: orchestrix.NewID(), Source: "/test", Type: "test.Happened"}
	}
	return evs
}

// TestJournal_ReadAll_OpenTransactionHoldsPositions_FollowerNeverSkips
// plays another process that has called journal_append (taken positions)
// but not committed yet, while this journal's appenders commit: they must
// wait behind it, so a follower reading "position > last" sees the held
// batch's positions before any later one and never skips a record.
func TestJournal_ReadAll_OpenTransactionHoldsPositions_FollowerNeverSkips(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second) // hang guard
	defer cancel()
	dsn := pgtest.DSN(t)
	j, err := Open(ctx, dsn, Config{})
	require.NoError(t, err)
	defer j.Close()
	_, err = j.Append(ctx, "before", journal.NoStream, testEvents(3))
	require.NoError(t, err)

	// The other "process": an open transaction inside journal_append.
	conn, err := pgx.Connect(ctx, dsn)
	require.NoError(t, err)
	defer conn.Close(context.Background())
	tx, err := conn.Begin(ctx)
	require.NoError(t, err)
	ev := testEvents(1)[0]
	rec, err := ev.MarshalBinary()
	require.NoError(t, err)
	var heldFirst int64
	require.NoError(t, tx.QueryRow(ctx, j.sql.append, j.channel,
		[]string{"held"}, []int64{0}, []int64{1}, []string(nil), []string(nil),
		[]string{"held"}, []int64{1}, []string{ev.ID}, []string{ev.Type}, []*time.Time{nil},
		[][]byte{rec}, []int64{checksum("held", 1, rec)}).Scan(&heldFirst))
	require.Equal(t, int64(4), heldFirst)

	// The follower: reads from the last position it saw, waiting for more.
	const writers, perWriter = 16, 5
	total := 3 + 1 + writers*perWriter
	var followed []uint64
	followerDone := make(chan error, 1)
	go func() {
		var last uint64
		for len(followed) < total {
			for r, err := range j.ReadAll(ctx, last+1, math.MaxInt) {
				if err != nil {
					followerDone <- err
					return
				}
				followed = append(followed, r.Position)
				last = r.Position
			}
			if len(followed) < total {
				if _, err := j.WaitFor(ctx, last); err != nil {
					followerDone <- err
					return
				}
			}
		}
		followerDone <- nil
	}()

	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range perWriter {
				_, err := j.Append(ctx, fmt.Sprintf("w-%d", w), journal.Exact(uint64(i)), testEvents(1))
				assert.NoError(t, err)
			}
		})
	}
	// Wait until this journal's writer is blocked behind the open
	// transaction (a condition, not a duration). Asked on another
	// connection: inside a transaction pg_stat_activity is a snapshot.
	watcher, err := pgx.Connect(ctx, dsn)
	require.NoError(t, err)
	defer watcher.Close(context.Background())
	for {
		var waiting int
		require.NoError(t, watcher.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity
			WHERE wait_event_type = 'Lock' AND datname = current_database()`).Scan(&waiting))
		if waiting > 0 {
			break
		}
		require.NoError(t, ctx.Err())
		time.Sleep(5 * time.Millisecond)
	}
	// Nothing after the held positions is visible while they are held.
	var visible []journal.Record
	for r, err := range j.ReadAll(ctx, 0, math.MaxInt) {
		require.NoError(t, err)
		visible = append(visible, r)
	}
	require.Len(t, visible, 3, "records committed behind an open batch became visible")

	require.NoError(t, tx.Commit(ctx))
	wg.Wait()
	require.NoError(t, <-followerDone)

	var all []uint64
	for r, err := range j.ReadAll(ctx, 0, math.MaxInt) {
		require.NoError(t, err)
		all = append(all, r.Position)
	}
	require.Len(t, all, total)
	assert.Equal(t, all, followed, "the follower saw a different sequence than the final log")
	assert.Equal(t, uint64(4), all[3], "the held batch keeps the position it took")
	for i := 1; i < len(all); i++ {
		require.Equal(t, all[i-1]+1, all[i], "positions have no holes without deletions")
	}
}
