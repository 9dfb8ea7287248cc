package mem_test

import (
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/orchestrix/orchestrix"
	"github.com/orchestrix/orchestrix/snapshot"
	"github.com/orchestrix/orchestrix/snapshot/mem"
	"github.com/orchestrix/orchestrix/snapshot/snapshottest"
)

func TestStore_Conformance(t *testing.T) {
	snapshottest.Run(t, func(t *testing.T) (snapshot.Store, snapshottest.Features) {
		return mem.New(mem.Config{}), snapshottest.Features{
			Corrupt: func(t *testing.T, s snapshot.Store, stream string, version uint64) {
				t.Helper()
				require.NoError(t, s.(*mem.Store).CorruptForTest(stream, version))
			},
		}
	})
}

var at = time.Date(2026, time.January, 2, 3, 4, 5, 0, time.UTC)

func TestStore_FailNextSave_FailsOnceAndStoresNothing(t *testing.T) {
	ctx := t.Context()
	s := mem.New(mem.Config{})
	boom := errors.New("disk full")
	s.FailNextSave(boom)

	// Invalid input is reported as such and does not consume the failure.
	require.ErrorIs(t, s.Save(ctx, snapshot.Snapshot{Stream: "a"}), snapshot.ErrInvalid)

	snap := snapshot.Snapshot{Stream: "a", Version: 1, Type: "t", Time: at, Data: []byte("x")}
	require.ErrorIs(t, s.Save(ctx, snap), boom)
	_, ok, err := s.Load(ctx, "a", snapshot.Latest)
	require.NoError(t, err)
	require.False(t, ok, "a failed Save must store nothing")

	require.NoError(t, s.Save(ctx, snap), "the failure is armed for one Save only")
	_, ok, err = s.Load(ctx, "a", snapshot.Latest)
	require.NoError(t, err)
	require.True(t, ok)
}

func TestStore_FailNextSave_NilDisarms(t *testing.T) {
	s := mem.New(mem.Config{})
	s.FailNextSave(errors.New("boom"))
	s.FailNextSave(nil)
	require.NoError(t, s.Save(t.Context(), snapshot.Snapshot{Stream: "a", Version: 1}))
}

func TestStore_FailNextLoad_FailsOnce(t *testing.T) {
	ctx := t.Context()
	s := mem.New(mem.Config{})
	snap := snapshot.Snapshot{Stream: "a", Version: 3, Type: "t", Time: at, Data: []byte("x")}
	require.NoError(t, s.Save(ctx, snap))
	boom := errors.New("read error")
	s.FailNextLoad(boom)

	got, ok, err := s.Load(ctx, "a", snapshot.Latest)
	require.ErrorIs(t, err, boom)
	require.False(t, ok)
	require.Equal(t, snapshot.Snapshot{}, got)

	got, ok, err = s.Load(ctx, "a", snapshot.Latest)
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, uint64(3), got.Version)
}

func TestStore_CorruptForTest_MissingSnapshot_ErrNotFound(t *testing.T) {
	s := mem.New(mem.Config{})
	require.NoError(t, s.Save(t.Context(), snapshot.Snapshot{Stream: "a", Version: 1}))
	require.ErrorIs(t, s.CorruptForTest("a", 2), orchestrix.ErrNotFound)
	require.ErrorIs(t, s.CorruptForTest("b", 1), orchestrix.ErrNotFound)
	require.NoError(t, s.Close())
	require.ErrorIs(t, s.CorruptForTest("a", 1), orchestrix.ErrClosed)
}
