package pgtest_test

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/orchestrix/orchestrix/internal/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func TestDSN_TwoCalls_GiveSeparateDatabases(t *testing.T) {
	ctx := context.Background()
	a, b := pgtest.DSN(t), pgtest.DSN(t)
	require.NotEqual(t, a, b)
	ca, err := pgx.Connect(ctx, a)
	require.NoError(t, err)
	defer ca.Close(ctx)
	cb, err := pgx.Connect(ctx, b)
	require.NoError(t, err)
	defer cb.Close(ctx)
	_, err = ca.Exec(ctx, "CREATE TABLE t (x int)")
	require.NoError(t, err)
	_, err = cb.Exec(ctx, "CREATE TABLE t (x int)")
	require.NoError(t, err, "databases must not share tables")
}

func TestServer_KillRestart_KeepsCommittedData(t *testing.T) {
	ctx := context.Background()
	srv := pgtest.Start(t)
	dsn := srv.NewDatabase(t)
	conn, err := pgx.Connect(ctx, dsn)
	require.NoError(t, err)
	_, err = conn.Exec(ctx, "CREATE TABLE t (x int); INSERT INTO t VALUES (42)")
	require.NoError(t, err)

	require.NoError(t, srv.Kill())
	_, err = conn.Exec(ctx, "SELECT 1")
	require.Error(t, err, "a query on a killed server must fail")
	_ = conn.Close(ctx)

	require.NoError(t, srv.Restart())
	conn, err = pgx.Connect(ctx, dsn)
	require.NoError(t, err)
	defer conn.Close(ctx)
	var x int
	require.NoError(t, conn.QueryRow(ctx, "SELECT x FROM t").Scan(&x))
	require.Equal(t, 42, x)
}

func TestServer_CPUTime_GrowsWithWorkAndFailsWhenStopped(t *testing.T) {
	ctx := context.Background()
	srv := pgtest.Start(t)
	conn, err := pgx.Connect(ctx, srv.DSN())
	require.NoError(t, err)
	defer conn.Close(ctx)
	before, err := srv.CPUTime()
	require.NoError(t, err)
	var n int64
	require.NoError(t, conn.QueryRow(ctx, "SELECT count(*) FROM generate_series(1, 3000000)").Scan(&n))
	require.Equal(t, int64(3000000), n)
	after, err := srv.CPUTime()
	require.NoError(t, err)
	require.Greater(t, after, before, "the backend's work must show in the server's CPU time")

	require.NoError(t, srv.Kill())
	_, err = srv.CPUTime()
	require.Error(t, err)
	require.NoError(t, srv.Restart())
}
