package bolt_test

import (
	"context"
	"errors"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/orchestrix/orchestrix"
	"github.com/orchestrix/orchestrix/journal"
	"github.com/orchestrix/orchestrix/journal/bolt"
)

type asyncOutcome struct {
	res journal.AppendResult
	err error
}

// appendAsync calls AppendAsync and returns a channel that receives its
// outcome; the channel has room for more than one call of done, so that a
// second call would be seen.
func appendAsync(t *testing.T, j *bolt.Journal, ctx context.Context, stream string, expected journal.ExpectedVersion, events []orchestrix.Envelope) (<-chan asyncOutcome, error) {
	t.Helper()
	out := make(chan asyncOutcome, 2)
	err := j.AppendAsync(ctx, stream, expected, events, func(res journal.AppendResult, err error) {
		out <- asyncOutcome{res, err}
	})
	return out, err
}

func TestJournal_AppendAsync_Success_ReportsCommittedVersionsOnce(t *testing.T) {
	ctx := context.Background()
	j, _ := openTemp(t, bolt.Options{})
	defer j.Close()
	out, err := appendAsync(t, j, ctx, "s", journal.NoStream, newEvents(3))
	require.NoError(t, err)
	o := <-out
	require.NoError(t, o.err)
	require.Equal(t, uint64(1), o.res.FirstVersion)
	require.Equal(t, uint64(3), o.res.LastVersion)
	require.Equal(t, o.res.FirstPosition+2, o.res.LastPosition)

	// The events are durable and visible once done has been called.
	head, err := j.Head(ctx, "s")
	require.NoError(t, err)
	require.Equal(t, uint64(3), head)
	require.Len(t, readStream(t, j, "s"), 3)

	// Close completes everything; done was called exactly once.
	require.NoError(t, j.Close())
	require.Empty(t, out)
}

func TestJournal_AppendAsync_WrongExpectedVersion_ReportsConflict(t *testing.T) {
	ctx := context.Background()
	j, _ := openTemp(t, bolt.Options{})
	defer j.Close()
	_, err := j.Append(ctx, "s", journal.NoStream, newEvents(1))
	require.NoError(t, err)
	out, err := appendAsync(t, j, ctx, "s", journal.Exact(5), newEvents(1))
	require.NoError(t, err)
	o := <-out
	require.ErrorIs(t, o.err, orchestrix.ErrVersionConflict)
}

func TestJournal_AppendAsync_InvalidInput_ReturnsErrorWithoutCallingDone(t *testing.T) {
	ctx := context.Background()
	j, _ := openTemp(t, bolt.Options{})
	defer j.Close()

	out, err := appendAsync(t, j, ctx, "s", journal.Any, nil)
	require.ErrorIs(t, err, journal.ErrNoEvents)
	require.Empty(t, out)

	bad := newEvents(1)
	bad[0].Type = ""
	out, err = appendAsync(t, j, ctx, "s", journal.Any, bad)
	require.ErrorIs(t, err, orchestrix.ErrInvalidEnvelope)
	require.Empty(t, out)

	out, err = appendAsync(t, j, ctx, "", journal.Any, newEvents(1))
	require.ErrorIs(t, err, journal.ErrInvalidStream)
	require.Empty(t, out)

	err = j.AppendAsync(ctx, "s", journal.Any, newEvents(1), nil)
	require.Error(t, err)
	head, err := j.Head(ctx, "s")
	require.NoError(t, err)
	require.Zero(t, head, "nothing was stored")
}

func TestJournal_AppendAsync_ClosedJournal_ReturnsErrClosed(t *testing.T) {
	j, _ := openTemp(t, bolt.Options{})
	require.NoError(t, j.Close())
	out, err := appendAsync(t, j, context.Background(), "s", journal.Any, newEvents(1))
	require.ErrorIs(t, err, orchestrix.ErrClosed)
	require.Empty(t, out)
}

func TestJournal_AppendAsync_FailedCommit_ReportsOutcomeUnknown(t *testing.T) {
	ctx := context.Background()
	j, _ := openTemp(t, bolt.Options{})
	defer j.Close()
	errDisk := errors.New("injected: disk full")
	bolt.SetBeforeCommit(j, func() error { return errDisk })
	out, err := appendAsync(t, j, ctx, "s", journal.NoStream, newEvents(1))
	require.NoError(t, err)
	o := <-out
	require.ErrorIs(t, o.err, orchestrix.ErrOutcomeUnknown)
	require.ErrorIs(t, o.err, errDisk)
	bolt.SetBeforeCommit(j, nil)
	head, err := j.Head(ctx, "s")
	require.NoError(t, err)
	require.Zero(t, head)
}
