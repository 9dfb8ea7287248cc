package bolt_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/orchestrix/orchestrix/journal"
	"github.com/orchestrix/orchestrix/journal/bolt"
)

func TestConfig_Validate_PageSizeOutOfRange_ReturnsError(t *testing.T) {
	for _, size := range []int{-4096, 1024, 4095, 12288, 128 << 10} {
		o := bolt.Config{PageSize: size}
		require.Error(t, o.Validate(), "page size %d", size)
		_, err := bolt.Open(filepath.Join(t.TempDir(), "j.db"), o)
		require.Error(t, err, "page size %d", size)
	}
	for _, size := range []int{0, 4 << 10, 16 << 10, 64 << 10} {
		require.NoError(t, bolt.Config{PageSize: size}.Validate(), "page size %d", size)
	}
}

func TestJournal_Open_ExistingFileKeepsItsPageSize(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "j.db")
	j, err := bolt.Open(path, bolt.Config{NoSync: true, PageSize: 4 << 10})
	require.NoError(t, err)
	require.Equal(t, 4<<10, j.DB().Info().PageSize)
	for v := range uint64(50) {
		_, err := j.Append(ctx, "s", journal.Exact(v), newEvents(1))
		require.NoError(t, err)
	}
	require.NoError(t, j.Close())

	j, err = bolt.Open(path, bolt.Config{NoSync: true, PageSize: 64 << 10})
	require.NoError(t, err)
	defer j.Close()
	require.Equal(t, 4<<10, j.DB().Info().PageSize)
	_, err = j.Append(ctx, "s", journal.Exact(50), newEvents(1))
	require.NoError(t, err)
	recs := readStream(t, j, "s")
	require.Len(t, recs, 51)
	for i, rec := range recs {
		require.Equal(t, uint64(i+1), rec.Version)
	}
}
