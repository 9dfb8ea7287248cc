package postgres_test

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/orchestrix/orchestrix/internal/pgtest"
	"github.com/orchestrix/orchestrix/snapshot"
	"github.com/orchestrix/orchestrix/snapshot/postgres"
	"github.com/orchestrix/orchestrix/snapshot/snapshottest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// corrupt flips the bits of the stored checksum of stream@version.
func corrupt(dsn string) func(t *testing.T, s snapshot.Store, stream string, version uint64) {
	return func(t *testing.T, _ snapshot.Store, stream string, version uint64) {
		t.Helper()
		ctx := context.Background()
		conn, err := pgx.Connect(ctx, dsn)
		require.NoError(t, err)
		defer conn.Close(ctx)
		tag, err := conn.Exec(ctx, `UPDATE snapshots SET data = data || '\x00'::bytea WHERE stream = $1 AND version = $2`,
			stream, int64(version))
		require.NoError(t, err)
		require.Equal(t, int64(1), tag.RowsAffected())
	}
}

func TestStore_Conformance(t *testing.T) {
	// One database for the whole suite: the suite's stream names are
	// unique per case.
	dsn := pgtest.DSN(t)
	snapshottest.Run(t, func(t *testing.T) (snapshot.Store, snapshottest.Features) {
		s, err := postgres.Open(context.Background(), dsn, postgres.Config{})
		require.NoError(t, err)
		return s, snapshottest.Features{Corrupt: corrupt(dsn)}
	})
}

func TestOpen_TwoStoresOneSchema_ShareSnapshots(t *testing.T) {
	dsn := pgtest.DSN(t)
	ctx := context.Background()
	a, err := postgres.Open(ctx, dsn, postgres.Config{Schema: "snaps"})
	require.NoError(t, err)
	defer a.Close()
	b, err := postgres.Open(ctx, dsn, postgres.Config{Schema: "snaps"})
	require.NoError(t, err)
	defer b.Close()
	require.NoError(t, a.Save(ctx, snapshot.Snapshot{Stream: "s", Version: 3, Type: "T", SchemaVersion: 2, Data: []byte("x")}))
	got, ok, err := b.Load(ctx, "s", snapshot.Latest)
	require.NoError(t, err)
	require.True(t, ok)
	assert.Equal(t, uint64(3), got.Version)
	assert.Equal(t, 2, got.SchemaVersion)
	assert.True(t, got.Time.IsZero())
}

func TestStore_Load_ManyCorruptNewest_FallsBackPastOnePage(t *testing.T) {
	dsn := pgtest.DSN(t)
	ctx := context.Background()
	s, err := postgres.Open(ctx, dsn, postgres.Config{})
	require.NoError(t, err)
	defer s.Close()
	for v := uint64(1); v <= 30; v++ {
		require.NoError(t, s.Save(ctx, snapshot.Snapshot{Stream: "s", Version: v, Type: "T", Data: []byte{byte(v)}}))
	}
	for v := uint64(2); v <= 30; v++ {
		corrupt(dsn)(t, s, "s", v)
	}
	got, ok, err := s.Load(ctx, "s", snapshot.Latest)
	require.NoError(t, err)
	require.True(t, ok)
	assert.Equal(t, uint64(1), got.Version)
}

func TestOptions_Validate_NegativeMaxConns_ReturnsError(t *testing.T) {
	assert.Error(t, postgres.Config{MaxConns: -1}.Validate())
	assert.NoError(t, postgres.Config{}.Validate())
}
