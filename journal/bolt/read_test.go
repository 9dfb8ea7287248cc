package bolt_test

import (
	"bytes"
	"math"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/orchestrix/orchestrix"
	"github.com/orchestrix/orchestrix/journal"
	"github.com/orchestrix/orchestrix/journal/bolt"
)

// TestJournal_Read_InterleavedMultiBlockCommits_ReturnsStreamInOrder reads
// a stream whose commits span several log blocks each and alternate with
// another stream's, so a read moves within a block, to the next block and
// over blocks of the other stream.
func TestJournal_Read_InterleavedMultiBlockCommits_ReturnsStreamInOrder(t *testing.T) {
	j, _ := openTemp(t, bolt.Config{MaxEventSize: testMaxEventSize})
	ctx := t.Context()
	var ids []string
	for i := 1; len(ids) < 600; i++ {
		evs := newEvents(i%37 + 1)
		for k := range evs {
			evs[k].Data = append(evs[k].Data, bytes.Repeat([]byte{' '}, 300*(k%4))...)
			ids = append(ids, evs[k].ID)
		}
		_, err := j.Append(ctx, "a", journal.Exact(uint64(len(ids)-len(evs))), evs)
		require.NoError(t, err)
		_, err = j.Append(ctx, "b", journal.Any, newEvents(i%5+1))
		require.NoError(t, err)
	}
	check := func(from uint64, limit int) {
		t.Helper()
		next := from
		for rec, err := range j.Read(ctx, "a", from, math.MaxUint64, limit) {
			require.NoError(t, err)
			require.Equal(t, next, rec.Version)
			assert.Equal(t, "a", rec.Stream)
			assert.Equal(t, ids[next-1], rec.Envelope.ID)
			next++
		}
		want := min(uint64(len(ids))+1, from+uint64(limit))
		assert.Equal(t, want, next, "read from %d, limit %d", from, limit)
	}
	check(1, math.MaxInt)
	check(123, math.MaxInt)
	check(300, 7)

	require.NoError(t, j.DeleteTo(ctx, "a", 250))
	check(251, math.MaxInt)
	var first orchestrix.Envelope
	for rec, err := range j.Read(ctx, "a", 1, math.MaxUint64, 1) {
		require.NoError(t, err)
		first = rec.Envelope
	}
	assert.Equal(t, ids[250], first.ID)
}

// TestJournal_ReadAll_DuringPublish_ShowsNothingReadAndHeadDoNot holds a
// commit between its bbolt commit and its publication: ReadAll must not
// return the new record before Read, Head and LastPosition see it, or a
// follower of the global log (a saga driver) would act on an event that a
// read of its stream does not yet return.
func TestJournal_ReadAll_DuringPublish_ShowsNothingReadAndHeadDoNot(t *testing.T) {
	j, _ := openTemp(t, bolt.Config{MaxEventSize: testMaxEventSize})
	ctx := t.Context()
	_, err := j.Append(ctx, "a", journal.NoStream, newEvents(2))
	require.NoError(t, err)

	entered, release := make(chan struct{}), make(chan struct{})
	bolt.SetBeforePublish(j, func() {
		close(entered)
		<-release
	})
	appended := make(chan error, 1)
	go func() {
		_, err := j.Append(ctx, "b", journal.NoStream, newEvents(1))
		appended <- err
	}()
	<-entered

	positions := func() []uint64 {
		var out []uint64
		for rec, err := range j.ReadAll(ctx, 1, math.MaxInt) {
			require.NoError(t, err)
			out = append(out, rec.Position)
		}
		return out
	}
	streamLen := func(stream string) int {
		n := 0
		for _, err := range j.Read(ctx, stream, 1, math.MaxUint64, math.MaxInt) {
			require.NoError(t, err)
			n++
		}
		return n
	}
	// Committed to bbolt, not yet published: invisible to every read.
	assert.Equal(t, []uint64{1, 2}, positions())
	assert.Equal(t, 0, streamLen("b"))
	last, err := j.LastPosition(ctx)
	require.NoError(t, err)
	assert.Equal(t, uint64(2), last)

	bolt.SetBeforePublish(j, nil)
	close(release)
	require.NoError(t, <-appended)
	assert.Equal(t, []uint64{1, 2, 3}, positions())
	assert.Equal(t, 1, streamLen("b"))
}
