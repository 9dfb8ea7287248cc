package bolt_test

import (
	"context"
	"errors"
	"math"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	bbolt "go.etcd.io/bbolt"

	"github.com/orchestrix/orchestrix"
	"github.com/orchestrix/orchestrix/journal"
	"github.com/orchestrix/orchestrix/journal/bolt"
)

func TestOpenReadOnly_ReadsWithoutChangingTheFile(t *testing.T) {
	ctx := context.Background()
	path, j := fillJournal(t)
	require.NoError(t, j.Close())
	before, err := os.ReadFile(path)
	require.NoError(t, err)
	// A file the process may not write to: Open would fail, OpenReadOnly
	// must not need write access (unless the test runs as root, where
	// the mode does not stop writes and the byte comparison below does).
	require.NoError(t, os.Chmod(path, 0o400))

	ro, err := bolt.OpenReadOnly(path, bolt.Config{})
	require.NoError(t, err)
	head, err := ro.Head(ctx, "a")
	require.NoError(t, err)
	assert.Equal(t, uint64(5), head)
	n := 0
	for _, err := range ro.Read(ctx, "a", 1, math.MaxUint64, math.MaxInt) {
		require.NoError(t, err)
		n++
	}
	assert.Equal(t, 5, n)
	var names []string
	for info, err := range ro.Streams(ctx) {
		require.NoError(t, err)
		names = append(names, info.Name)
	}
	assert.Equal(t, []string{"a", "b", "c"}, names)
	rep, err := ro.Check(ctx)
	require.NoError(t, err)
	assert.True(t, rep.OK(), "%v", rep.Problems)

	// A second read-only open shares the file.
	ro2, err := bolt.OpenReadOnly(path, bolt.Config{})
	require.NoError(t, err)
	require.NoError(t, ro2.Close())

	_, err = ro.Append(ctx, "a", journal.Any, checkEvents("a", 1))
	assert.ErrorIs(t, err, bolt.ErrReadOnly)
	assert.ErrorIs(t, err, journal.ErrRejected, "a definite refusal")
	err = ro.AppendAsync(ctx, "a", journal.Any, checkEvents("a", 1), func(journal.AppendResult, error) {
		t.Error("done called for a refused append")
	})
	assert.ErrorIs(t, err, bolt.ErrReadOnly)
	assert.ErrorIs(t, ro.DeleteTo(ctx, "a", 1), bolt.ErrReadOnly)
	wctx, cancel := context.WithTimeout(ctx, 10*time.Millisecond)
	_, err = ro.WaitFor(wctx, 100)
	cancel()
	assert.ErrorIs(t, err, context.DeadlineExceeded)

	require.NoError(t, ro.Close())
	require.NoError(t, ro.Close(), "Close is idempotent")
	_, err = ro.Append(ctx, "a", journal.Any, checkEvents("a", 1))
	assert.ErrorIs(t, err, orchestrix.ErrClosed)
	_, err = ro.Head(ctx, "a")
	assert.ErrorIs(t, err, orchestrix.ErrClosed)

	after, err := os.ReadFile(path)
	require.NoError(t, err)
	assert.True(t, string(before) == string(after), "the file changed")
}

func TestOpenReadOnly_LockedByWriter(t *testing.T) {
	path, _ := fillJournal(t) // still open
	_, err := bolt.OpenReadOnly(path, bolt.Config{Timeout: 20 * time.Millisecond})
	assert.ErrorIs(t, err, bolt.ErrLocked)
}

func TestOpenReadOnly_BadFiles(t *testing.T) {
	dir := t.TempDir()
	_, err := bolt.OpenReadOnly(filepath.Join(dir, "missing.db"), bolt.Config{})
	require.Error(t, err)
	assert.True(t, errors.Is(err, os.ErrNotExist), "%v", err)
	_, err = os.Stat(filepath.Join(dir, "missing.db"))
	assert.ErrorIs(t, err, os.ErrNotExist, "OpenReadOnly must not create the file")

	// A bbolt file without the journal buckets.
	other := filepath.Join(dir, "other.db")
	editFile(t, other, func(tx *bbolt.Tx) error { _, err := tx.CreateBucket([]byte("x")); return err })
	_, err = bolt.OpenReadOnly(other, bolt.Config{})
	assert.ErrorIs(t, err, orchestrix.ErrCorrupt)
}
