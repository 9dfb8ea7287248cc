//go:build linux

package bolt_test

import (
	"context"
	"errors"
	"math"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/orchestrix/orchestrix"
	"github.com/orchestrix/orchestrix/journal"
	"github.com/orchestrix/orchestrix/journal/bolt"
)

const envDiskFullChild = "ORCHESTRIX_BOLT_DISKFULL_CHILD"

// TestJournal_Append_DiskFull_ReportsOutcomeUnknownAndRecovers makes real
// commits fail (a file size limit, as a full disk would) in a child
// process, so that the limit cannot affect other tests.
func TestJournal_Append_DiskFull_ReportsOutcomeUnknownAndRecovers(t *testing.T) {
	cmd := exec.Command(os.Args[0], "-test.run=^TestDiskFullChild$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), envDiskFullChild+"="+filepath.Join(t.TempDir(), "journal.db"))
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "child failed:\n%s", out)
	require.Contains(t, string(out), "--- PASS: TestDiskFullChild", "child did not run:\n%s", out)
}

// TestDiskFullChild is the child process of the disk-full test. Run on its
// own it skips.
func TestDiskFullChild(t *testing.T) {
	path := os.Getenv(envDiskFullChild)
	if path == "" {
		t.Skip("helper process of TestJournal_Append_DiskFull_ReportsOutcomeUnknownAndRecovers")
	}
	signal.Ignore(syscall.SIGXFSZ) // writes past the limit fail with EFBIG instead
	ctx := context.Background()
	j, err := bolt.Open(path, bolt.Config{})
	require.NoError(t, err)
	_, err = j.Append(ctx, "s", journal.NoStream, newEvents(3))
	require.NoError(t, err)

	var old syscall.Rlimit
	require.NoError(t, syscall.Getrlimit(syscall.RLIMIT_FSIZE, &old))
	fi, err := os.Stat(path)
	require.NoError(t, err)
	require.NoError(t, syscall.Setrlimit(syscall.RLIMIT_FSIZE, &syscall.Rlimit{Cur: uint64(fi.Size()), Max: old.Max}))

	big := newEvents(1)[0]
	big.Data = make([]byte, 256<<10)
	var failed error
	for range 200 {
		head, err := j.Head(ctx, "s")
		require.NoError(t, err)
		ev := big
		ev.ID = orchestrix.NewID()
		if _, err := j.Append(ctx, "s", journal.Exact(head), []orchestrix.Envelope{ev}); err != nil {
			failed = err
			break
		}
	}
	require.Error(t, failed, "no commit failed under the file size limit")
	t.Logf("append under the limit failed as it should: %v", failed)
	require.ErrorIs(t, failed, orchestrix.ErrOutcomeUnknown)
	require.False(t, errors.Is(failed, orchestrix.ErrVersionConflict))

	require.NoError(t, syscall.Setrlimit(syscall.RLIMIT_FSIZE, &old))
	head, err := j.Head(ctx, "s")
	require.NoError(t, err)
	res, err := j.Append(ctx, "s", journal.Exact(head), newEvents(1))
	require.NoError(t, err, "the journal works again once the disk has room")
	require.Equal(t, head+1, res.FirstVersion)
	require.NoError(t, j.Close())

	j, err = bolt.Open(path, bolt.Config{})
	require.NoError(t, err)
	defer j.Close()
	var want uint64 = 1
	for rec, err := range j.Read(ctx, "s", 1, math.MaxUint64, math.MaxInt) {
		require.NoError(t, err)
		require.Equal(t, want, rec.Version)
		want++
	}
	require.Equal(t, head+2, want, "every acknowledged event is there after reopening")
}
