package actor_test

import (
	"context"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/orchestrix/orchestrix"
	"github.com/orchestrix/orchestrix/actor"
	"github.com/orchestrix/orchestrix/journal"
	boltjournal "github.com/orchestrix/orchestrix/journal/bolt"
)

// countingJournal wraps a journal.AsyncAppender and counts which append
// path the runtime takes.
type countingJournal struct {
	journal.AsyncAppender
	appends, asyncAppends atomic.Int64
}

func (c *countingJournal) Append(ctx context.Context, stream string, exp journal.ExpectedVersion, events []orchestrix.Envelope) (journal.AppendResult, error) {
	c.appends.Add(1)
	return c.AsyncAppender.Append(ctx, stream, exp, events)
}

func (c *countingJournal) AppendAsync(ctx context.Context, stream string, exp journal.ExpectedVersion, events []orchestrix.Envelope, done func(journal.AppendResult, error)) error {
	c.asyncAppends.Add(1)
	return c.AsyncAppender.AppendAsync(ctx, stream, exp, events, done)
}

// TestRuntime_BoltJournal_TakesAsyncAppendPath fails when journal/bolt stops
// implementing journal.AsyncAppender (a signature drift included) or when
// the runtime stops using it: either would silently fall back to a
// goroutine and a blocking Append per batch.
func TestRuntime_BoltJournal_TakesAsyncAppendPath(t *testing.T) {
	bj, err := boltjournal.Open(filepath.Join(t.TempDir(), "j.db"), boltjournal.Options{NoSync: true})
	require.NoError(t, err)
	t.Cleanup(func() { bj.Close() })
	var j journal.Journal = bj
	aj, ok := j.(journal.AsyncAppender)
	require.True(t, ok, "journal/bolt implements journal.AsyncAppender")

	cj := &countingJournal{AsyncAppender: aj}
	sys, err := actor.NewSystem(actor.Config{Journal: cj})
	require.NoError(t, err)
	t.Cleanup(func() { sys.Shutdown(context.Background()) })
	h, err := actor.Register(sys, accounts())
	require.NoError(t, err)

	ctx := ctxT(t)
	const commands = 5
	_, err = h.Send(ctx, "acc", OpenAccount{Owner: "owner"})
	require.NoError(t, err)
	for d := 1; d < commands; d++ {
		_, err := h.Send(ctx, "acc", Deposit{Amount: int64(d)}, actor.WithCommandID(fmt.Sprint("dep-", d)))
		require.NoError(t, err)
	}
	assert.Equal(t, int64(commands), cj.asyncAppends.Load(), "one AppendAsync per sequential command")
	assert.Zero(t, cj.appends.Load(), "no blocking Append")
	head, err := bj.Head(ctx, h.Stream("acc"))
	require.NoError(t, err)
	assert.Equal(t, uint64(commands), head)
}

// TestRuntime_AppendTimeout_UsesBlockingAppend: with an AppendTimeout the
// runtime needs a context per append and calls Append instead.
func TestRuntime_AppendTimeout_UsesBlockingAppend(t *testing.T) {
	bj, err := boltjournal.Open(filepath.Join(t.TempDir(), "j.db"), boltjournal.Options{NoSync: true})
	require.NoError(t, err)
	t.Cleanup(func() { bj.Close() })
	cj := &countingJournal{AsyncAppender: bj}
	sys, err := actor.NewSystem(actor.Config{Journal: cj, AppendTimeout: time.Minute})
	require.NoError(t, err)
	t.Cleanup(func() { sys.Shutdown(context.Background()) })
	h, err := actor.Register(sys, accounts())
	require.NoError(t, err)
	_, err = h.Send(ctxT(t), "acc", OpenAccount{Owner: "owner"})
	require.NoError(t, err)
	assert.Equal(t, int64(1), cj.appends.Load())
	assert.Zero(t, cj.asyncAppends.Load())
}
