package postgres_test

import (
	"context"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/orchestrix/orchestrix"
	"github.com/orchestrix/orchestrix/internal/pgtest"
	"github.com/orchestrix/orchestrix/journal"
	"github.com/orchestrix/orchestrix/journal/postgres"
)

// Two journals on one schema (two processes, in effect) draw epochs from
// one sequence: 40 concurrent NextEpoch calls get 40 different epochs,
// 1…40, and the last holder is recorded.
func TestJournal_NextEpoch_ConcurrentCallersGetDistinctEpochs(t *testing.T) {
	dsn := pgtest.DSN(t)
	a := openJournal(t, dsn, postgres.Config{Schema: "epochs"})
	b := openJournal(t, dsn, postgres.Config{Schema: "epochs"})
	var _ journal.Epochs = a
	ctx := context.Background()

	e, holder, err := a.Epoch(ctx, "sagas")
	require.NoError(t, err)
	assert.Zero(t, e, "an epoch never taken is 0")
	assert.Empty(t, holder)

	var (
		mu   sync.Mutex
		seen = map[uint64]bool{}
		wg   sync.WaitGroup
	)
	for i := range 40 {
		j := a
		if i%2 == 1 {
			j = b
		}
		wg.Go(func() {
			e, err := j.NextEpoch(ctx, "sagas", "m")
			assert.NoError(t, err)
			mu.Lock()
			defer mu.Unlock()
			assert.False(t, seen[e], "epoch %d handed out twice", e)
			seen[e] = true
		})
	}
	wg.Wait()
	for e := uint64(1); e <= 40; e++ {
		assert.True(t, seen[e], "epoch %d missing", e)
	}
	e, err = b.NextEpoch(ctx, "sagas", "member-b")
	require.NoError(t, err)
	assert.Equal(t, uint64(41), e)
	e2, holder, err := a.Epoch(ctx, "sagas")
	require.NoError(t, err)
	assert.Equal(t, uint64(41), e2)
	assert.Equal(t, "member-b", holder)

	other, err := a.NextEpoch(ctx, "projections", "m")
	require.NoError(t, err)
	assert.Equal(t, uint64(1), other, "each name has its own counter")
}

// ReleaseEpoch clears the holder only while the epoch is current: a
// predecessor releasing late does not clear its successor.
func TestJournal_ReleaseEpoch_OnlyTheCurrentHolder(t *testing.T) {
	j := openJournal(t, pgtest.DSN(t), postgres.Config{})
	ctx := context.Background()
	first, err := j.NextEpoch(ctx, "p", "old")
	require.NoError(t, err)
	second, err := j.NextEpoch(ctx, "p", "new")
	require.NoError(t, err)
	require.Greater(t, second, first)

	require.NoError(t, j.ReleaseEpoch(ctx, "p", first))
	e, holder, err := j.Epoch(ctx, "p")
	require.NoError(t, err)
	assert.Equal(t, second, e)
	assert.Equal(t, "new", holder, "a stale release must not clear the current holder")

	require.NoError(t, j.ReleaseEpoch(ctx, "p", second))
	_, holder, err = j.Epoch(ctx, "p")
	require.NoError(t, err)
	assert.Empty(t, holder)

	_, err = j.NextEpoch(ctx, "", "x")
	assert.Error(t, err)
	require.NoError(t, j.Close())
	_, err = j.NextEpoch(ctx, "p", "x")
	assert.ErrorIs(t, err, orchestrix.ErrClosed)
}
