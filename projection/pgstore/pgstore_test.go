package pgstore_test

import (
	"context"
	"fmt"
	"math"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/orchestrix/orchestrix"
	"github.com/orchestrix/orchestrix/internal/pgtest"
	"github.com/orchestrix/orchestrix/projection/pgstore"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func open(t *testing.T) (*pgstore.Store, string) {
	t.Helper()
	dsn := pgtest.DSN(t)
	s, err := pgstore.Open(context.Background(), dsn, pgstore.Config{Schema: "checkpoints"})
	require.NoError(t, err)
	t.Cleanup(func() { s.Close() })
	return s, dsn
}

func TestStore_LoadSave_RoundTripAndOverwrite(t *testing.T) {
	s, dsn := open(t)
	ctx := context.Background()
	pos, err := s.Load(ctx, "balances")
	require.NoError(t, err)
	assert.Zero(t, pos, "a checkpoint never saved is 0")

	require.NoError(t, s.Save(ctx, "balances", 42))
	require.NoError(t, s.Save(ctx, "other", 7))
	pos, err = s.Load(ctx, "balances")
	require.NoError(t, err)
	assert.Equal(t, uint64(42), pos)

	require.NoError(t, s.Save(ctx, "balances", 0), "a rebuild saves a lower position")
	require.NoError(t, s.Save(ctx, "balances", math.MaxInt64))

	// Another process opening the same schema sees the same checkpoints.
	s2, err := pgstore.Open(ctx, dsn, pgstore.Config{Schema: "checkpoints"})
	require.NoError(t, err)
	defer s2.Close()
	pos, err = s2.Load(ctx, "balances")
	require.NoError(t, err)
	assert.Equal(t, uint64(math.MaxInt64), pos)
	pos, err = s2.Load(ctx, "other")
	require.NoError(t, err)
	assert.Equal(t, uint64(7), pos)
}

func TestStore_SaveTx_CommitsWithTheReadModelOrNotAtAll(t *testing.T) {
	s, dsn := open(t)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	require.NoError(t, err)
	defer conn.Close(ctx)

	tx, err := conn.Begin(ctx)
	require.NoError(t, err)
	require.NoError(t, s.SaveTx(ctx, tx, "model", 9))
	require.NoError(t, tx.Rollback(ctx))
	pos, err := s.Load(ctx, "model")
	require.NoError(t, err)
	assert.Zero(t, pos, "a rolled-back transaction saves nothing")

	tx, err = conn.Begin(ctx)
	require.NoError(t, err)
	require.NoError(t, s.SaveTx(ctx, tx, "model", 9))
	require.NoError(t, tx.Commit(ctx))
	pos, err = s.Load(ctx, "model")
	require.NoError(t, err)
	assert.Equal(t, uint64(9), pos)
}

func TestStore_BadInput_ClearErrors(t *testing.T) {
	s, _ := open(t)
	ctx := context.Background()
	require.ErrorIs(t, s.Save(ctx, "", 1), pgstore.ErrInvalid)
	_, err := s.Load(ctx, "")
	require.ErrorIs(t, err, pgstore.ErrInvalid)
	require.ErrorIs(t, s.Save(ctx, "x", math.MaxUint64), pgstore.ErrInvalid)

	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	require.ErrorIs(t, s.Save(cancelled, "x", 1), context.Canceled)
	_, err = s.Load(cancelled, "x")
	require.ErrorIs(t, err, context.Canceled)

	require.NoError(t, s.Close())
	require.NoError(t, s.Close())
	require.ErrorIs(t, s.Save(ctx, "x", 1), orchestrix.ErrClosed)
	_, err = s.Load(ctx, "x")
	require.ErrorIs(t, err, orchestrix.ErrClosed)
}

func TestStore_ConcurrentSavers_EachNameKeepsItsLastValue(t *testing.T) {
	s, _ := open(t)
	ctx := context.Background()
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for p := uint64(1); p <= 25; p++ {
				assert.NoError(t, s.Save(ctx, fmt.Sprint("p", w), p))
			}
		})
	}
	wg.Wait()
	for w := range 8 {
		pos, err := s.Load(ctx, fmt.Sprint("p", w))
		require.NoError(t, err)
		assert.Equal(t, uint64(25), pos)
	}
}
