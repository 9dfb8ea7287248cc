package bolt_test

import (
	"context"
	"math"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/orchestrix/orchestrix/internal/boltsafe"
	"github.com/orchestrix/orchestrix/journal"
	"github.com/orchestrix/orchestrix/journal/bolt"
)

// A file written before the free list was persisted (NoFreelistSync) is
// scanned once by the next Open, which persists the free list from then
// on; every event is still there, once.
func TestOpen_FileWithoutPersistedFreelist_IsUpgradedAndKeepsEveryEvent(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "journal.db")

	restore := bolt.SetNoFreelistSync(true)
	j, err := bolt.Open(path, bolt.Config{NoSync: true, IndexEvery: 7})
	require.NoError(t, err)
	for i := range 20 {
		_, err := j.Append(ctx, "order-1", journal.Exact(uint64(3*i)), newEvents(3))
		require.NoError(t, err)
	}
	require.NoError(t, j.Close())
	restore()
	m, err := boltsafe.Verify(path)
	require.NoError(t, err)
	require.False(t, m.FreelistSynced(), "the old setting persisted the free list")

	j, err = bolt.Open(path, bolt.Config{NoSync: true, IndexEvery: 7})
	require.NoError(t, err)
	_, err = j.Append(ctx, "order-1", journal.Exact(60), newEvents(1))
	require.NoError(t, err)
	require.NoError(t, j.Close())
	m, err = boltsafe.Verify(path)
	require.NoError(t, err)
	require.True(t, m.FreelistSynced(), "Open did not persist the free list")

	j, err = bolt.Open(path, bolt.Config{NoSync: true})
	require.NoError(t, err)
	defer j.Close()
	var versions []uint64
	for r, err := range j.Read(ctx, "order-1", 0, math.MaxUint64, math.MaxInt) {
		require.NoError(t, err)
		versions = append(versions, r.Version)
	}
	require.Len(t, versions, 61)
	for i, v := range versions {
		require.Equal(t, uint64(i+1), v)
	}
	rep, err := j.Check(ctx)
	require.NoError(t, err)
	require.True(t, rep.OK(), "%+v", rep)
}
