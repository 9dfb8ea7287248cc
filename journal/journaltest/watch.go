package journaltest

import (
	"context"
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/orchestrix/orchestrix"
	"github.com/orchestrix/orchestrix/journal"
)

// hangGuard bounds calls that must return, so that a broken journal fails
// the test instead of hanging it. It is never used to assert timing.
const hangGuard = 30 * time.Second

// watcher returns the journal as a journal.Watcher, or skips the test.
func (e *env) watcher() journal.Watcher {
	e.t.Helper()
	w, ok := e.j.(journal.Watcher)
	if !ok {
		e.t.Skipf("journaltest: %T does not implement journal.Watcher", e.j)
	}
	return w
}

type waitResult struct {
	pos uint64
	err error
}

// waitAsync calls WaitFor(ctx, after) in a goroutine.
func waitAsync(ctx context.Context, w journal.Watcher, after uint64) <-chan waitResult {
	ch := make(chan waitResult, 1)
	go func() {
		pos, err := w.WaitFor(ctx, after)
		ch <- waitResult{pos, err}
	}()
	return ch
}

// receive returns the result of a waitAsync, failing the test if it does
// not come within the hang guard.
func receive(t *testing.T, ch <-chan waitResult) waitResult {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(hangGuard):
		require.FailNow(t, "WaitFor did not return")
		return waitResult{}
	}
}

func runWatcher(t *testing.T, newJournal Factory) {
	t.Run("LastPosition", func(t *testing.T) {
		e := newEnv(t, newJournal)
		w := e.watcher()
		pos, err := w.LastPosition(e.ctx)
		require.NoError(t, err)
		assert.Equal(t, uint64(0), pos, "empty journal")
		e.appendOK("w", journal.NoStream, newEvents(2))
		res := e.appendOK("w2", journal.NoStream, newEvents(3))
		pos, err = w.LastPosition(e.ctx)
		require.NoError(t, err)
		assert.Equal(t, res.LastPosition, pos)
	})

	t.Run("WaitForReturnsAtOnceWhenAlreadyPast", func(t *testing.T) {
		e := newEnv(t, newJournal)
		w := e.watcher()
		e.appendOK("w", journal.NoStream, newEvents(2))
		res := e.appendOK("w", journal.Exact(2), newEvents(1))
		ctx, cancel := context.WithTimeout(e.ctx, hangGuard)
		defer cancel()
		for _, after := range []uint64{0, res.FirstPosition - 1, res.LastPosition - 1} {
			pos, err := w.WaitFor(ctx, after)
			require.NoError(t, err, "WaitFor(%d)", after)
			assert.Equal(t, res.LastPosition, pos, "WaitFor(%d) returns the newest position", after)
		}
	})

	t.Run("WaitForWakesOnCommit", func(t *testing.T) {
		e := newEnv(t, newJournal)
		w := e.watcher()
		first := e.appendOK("w", journal.NoStream, newEvents(1))
		ctx, cancel := context.WithTimeout(e.ctx, hangGuard)
		defer cancel()
		ch := waitAsync(ctx, w, first.LastPosition)
		res := e.appendOK("other", journal.NoStream, newEvents(2))
		r := receive(t, ch)
		require.NoError(t, r.err)
		assert.GreaterOrEqual(t, r.pos, res.LastPosition, "WaitFor returned before the commit it waited for")
		recs := e.readAll(first.LastPosition+1, math.MaxInt)
		require.NotEmpty(t, recs, "the commit WaitFor reported is visible to ReadAll")
		assert.Equal(t, res.FirstPosition, recs[0].Position)
	})

	t.Run("WaitForOnEmptyJournal", func(t *testing.T) {
		e := newEnv(t, newJournal)
		w := e.watcher()
		ctx, cancel := context.WithTimeout(e.ctx, hangGuard)
		defer cancel()
		ch := waitAsync(ctx, w, 0)
		res := e.appendOK("w", journal.NoStream, newEvents(1))
		r := receive(t, ch)
		require.NoError(t, r.err)
		assert.GreaterOrEqual(t, r.pos, res.LastPosition)
	})

	t.Run("WaitForHonoursCancel", func(t *testing.T) {
		e := newEnv(t, newJournal)
		w := e.watcher()
		res := e.appendOK("w", journal.NoStream, newEvents(1))
		ctx, cancel := context.WithCancel(e.ctx)
		ch := waitAsync(ctx, w, res.LastPosition)
		cancel()
		r := receive(t, ch)
		require.ErrorIs(t, r.err, context.Canceled)
	})

	t.Run("WaitForReturnsErrClosedOnClose", func(t *testing.T) {
		e := newEnv(t, newJournal)
		w := e.watcher()
		res := e.appendOK("w", journal.NoStream, newEvents(1))
		e.checkInvariants = false
		ctx, cancel := context.WithTimeout(e.ctx, hangGuard)
		defer cancel()
		ch := waitAsync(ctx, w, res.LastPosition)
		require.NoError(t, e.j.Close())
		r := receive(t, ch)
		require.ErrorIs(t, r.err, orchestrix.ErrClosed)
	})
}
