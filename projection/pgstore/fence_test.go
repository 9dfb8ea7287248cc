package pgstore_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/orchestrix/orchestrix"
	"github.com/orchestrix/orchestrix/actor/actortest"
	"github.com/orchestrix/orchestrix/internal/pgmigrate"
	"github.com/orchestrix/orchestrix/internal/pgtest"
	"github.com/orchestrix/orchestrix/journal"
	"github.com/orchestrix/orchestrix/journal/mem"
	"github.com/orchestrix/orchestrix/projection"
	"github.com/orchestrix/orchestrix/projection/pgstore"
)

// readModel is a table of one counter per key, written by the handlers
// under test.
type readModel struct {
	t    *testing.T
	conn *pgx.Conn
}

func newReadModel(t *testing.T, dsn string) *readModel {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close(context.Background()) })
	_, err = conn.Exec(ctx, `CREATE TABLE IF NOT EXISTS rm (k text PRIMARY KEY, n bigint NOT NULL)`)
	require.NoError(t, err)
	return &readModel{t: t, conn: conn}
}

func (m *readModel) add(ctx context.Context, tx pgx.Tx, k string, n int64) error {
	_, err := tx.Exec(ctx, `INSERT INTO rm (k, n) VALUES ($1, $2) ON CONFLICT (k) DO UPDATE SET n = rm.n + excluded.n`, k, n)
	return err
}

func (m *readModel) get(k string) int64 {
	m.t.Helper()
	var n int64
	err := m.conn.QueryRow(context.Background(), `SELECT n FROM rm WHERE k = $1`, k).Scan(&n)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0
	}
	require.NoError(m.t, err)
	return n
}

func events(positions ...uint64) []projection.Event {
	var out []projection.Event
	for _, p := range positions {
		out = append(out, projection.Event{Record: journal.Record{Position: p, Envelope: orchestrix.Envelope{Subject: "k"}}})
	}
	return out
}

func assertFenced(t *testing.T, err error, epoch, stored uint64) {
	t.Helper()
	require.ErrorIs(t, err, pgstore.ErrFenced)
	var fe *pgstore.FencedError
	require.ErrorAs(t, err, &fe)
	assert.Equal(t, epoch, fe.Epoch)
	assert.Equal(t, stored, fe.Stored)
}

// An activation with a newer epoch loads (claims) the checkpoint: from
// then on every write of the older epoch is refused, its checkpoint and
// read-model writes alike, and the stored checkpoint is the new one's.
func TestStore_WithEpoch_StaleWritesRefusedAfterClaim(t *testing.T) {
	s, dsn := open(t)
	ctx := context.Background()
	rm := newReadModel(t, dsn)
	old, cur := s.WithEpoch(1), s.WithEpoch(2)

	pos, err := old.Load(ctx, "balances")
	require.NoError(t, err)
	require.Zero(t, pos)
	require.NoError(t, old.Save(ctx, "balances", 10))

	pos, err = cur.Load(ctx, "balances")
	require.NoError(t, err)
	assert.Equal(t, uint64(10), pos, "the new activation resumes where the old one saved")

	assertFenced(t, old.Save(ctx, "balances", 11), 1, 2)
	assertFenced(t, s.Save(ctx, "balances", 11), 0, 2) // unfenced writes too
	_, err = old.Load(ctx, "balances")
	assertFenced(t, err, 1, 2)

	// The stale handler's read-model write is refused with its checkpoint.
	h := old.Handler("balances", func(ctx context.Context, tx pgx.Tx, batch []projection.Event) error {
		return rm.add(ctx, tx, "k", int64(len(batch)))
	})
	assertFenced(t, h.Handle(ctx, events(11, 12)), 1, 2)
	assert.Zero(t, rm.get("k"), "a fenced batch must leave the read model untouched")

	// A stale Reset is refused too.
	assertFenced(t, old.Reset("balances", func(ctx context.Context, tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `DELETE FROM rm`)
		return err
	})(ctx), 1, 2)

	// The current epoch writes.
	hc := cur.Handler("balances", func(ctx context.Context, tx pgx.Tx, batch []projection.Event) error {
		return rm.add(ctx, tx, "k", int64(len(batch)))
	})
	require.NoError(t, hc.Handle(ctx, events(11, 12)))
	assert.Equal(t, int64(2), rm.get("k"))
	pos, err = s.Load(ctx, "balances")
	require.NoError(t, err)
	assert.Equal(t, uint64(12), pos)
}

// A stale runner's own transaction (read model + SaveTx) cannot commit:
// the fence aborts the transaction in PostgreSQL, so even a caller that
// ignores SaveTx's error and commits stores nothing. Removing the epoch
// check from projection_checkpoint_save makes this test fail.
func TestStore_SaveTx_StaleEpochAbortsTheReadModelTransaction(t *testing.T) {
	s, dsn := open(t)
	ctx := context.Background()
	rm := newReadModel(t, dsn)
	_, err := s.WithEpoch(5).Load(ctx, "model")
	require.NoError(t, err)

	tx, err := rm.conn.Begin(ctx)
	require.NoError(t, err)
	require.NoError(t, rm.add(ctx, tx, "stale", 1))
	assertFenced(t, s.WithEpoch(4).SaveTx(ctx, tx, "model", 9), 4, 5)
	err = tx.Commit(ctx) // the caller ignores the error
	assert.ErrorIs(t, err, pgx.ErrTxCommitRollback)
	assert.Zero(t, rm.get("stale"), "the stale read-model write was committed")
	pos, err := s.Load(ctx, "model")
	require.NoError(t, err)
	assert.Zero(t, pos)

	// Equal and higher epochs write.
	tx, err = rm.conn.Begin(ctx)
	require.NoError(t, err)
	require.NoError(t, rm.add(ctx, tx, "current", 1))
	require.NoError(t, s.WithEpoch(5).SaveTx(ctx, tx, "model", 9))
	require.NoError(t, tx.Commit(ctx))
	assert.Equal(t, int64(1), rm.get("current"))
	require.NoError(t, s.WithEpoch(6).Save(ctx, "model", 10))
	assertFenced(t, s.WithEpoch(5).Save(ctx, "model", 11), 5, 6)
}

// A stale batch that committed before the new activation claimed the
// checkpoint is not applied again: the handler drops events at or below
// the stored checkpoint, whoever stored it.
func TestStore_Handler_SkipsWhatIsAlreadyApplied(t *testing.T) {
	s, dsn := open(t)
	ctx := context.Background()
	rm := newReadModel(t, dsn)
	apply := func(ctx context.Context, tx pgx.Tx, batch []projection.Event) error {
		return rm.add(ctx, tx, "k", int64(len(batch)))
	}
	require.NoError(t, s.WithEpoch(1).Handler("p", apply).Handle(ctx, events(1, 2, 3)))
	// The successor was handed 2…5 (its checkpoint said 1 when it read).
	require.NoError(t, s.WithEpoch(2).Handler("p", apply).Handle(ctx, events(2, 3, 4, 5)))
	assert.Equal(t, int64(5), rm.get("k"), "events 2 and 3 applied twice")
	require.NoError(t, s.WithEpoch(2).Handler("p", apply).Handle(ctx, events(4, 5)))
	assert.Equal(t, int64(5), rm.get("k"))
}

// Unfenced use is unchanged: epoch 0 reads and writes as before epochs,
// a lower position is accepted (Rebuild), and Load claims nothing.
func TestStore_NoEpoch_BehavesAsBefore(t *testing.T) {
	s, _ := open(t)
	ctx := context.Background()
	assert.Zero(t, s.Epoch())
	require.NoError(t, s.Save(ctx, "x", 5))
	require.NoError(t, s.Save(ctx, "x", 0))
	pos, err := s.Load(ctx, "y")
	require.NoError(t, err)
	assert.Zero(t, pos)
	require.NoError(t, s.WithEpoch(1).Save(ctx, "y", 3), "Load with epoch 0 must not claim")
}

// A projection whose store is fenced stops at once (StateFailed) instead
// of retrying: the fence's error is projection.Permanent. On a manual
// clock that never advances, a retried error would stay StateRetrying.
func TestStore_Fenced_ProjectionFailsAtOnce(t *testing.T) {
	s, _ := open(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := s.WithEpoch(2).Load(ctx, "p")
	require.NoError(t, err)

	j, err := mem.New(mem.Config{})
	require.NoError(t, err)
	defer j.Close()
	reg := orchestrix.NewRegistry()
	type Noted struct{}
	require.NoError(t, orchestrix.Register[Noted](reg, "test.noted"))
	env, err := reg.Marshal(Noted{})
	require.NoError(t, err)
	env.Source, env.ID = "/test", "e1"
	_, err = j.Append(ctx, "note-1", journal.NoStream, []orchestrix.Envelope{env})
	require.NoError(t, err)

	m, err := projection.NewManager(projection.Config{Journal: j, Registry: reg, Clock: actortest.NewManualClock(time.Now())})
	require.NoError(t, err)
	defer m.Close()
	stale := s.WithEpoch(1)
	require.NoError(t, m.Add(ctx, projection.Projection{
		Name: "p", Checkpoints: stale,
		Handler: stale.Handler("p", func(context.Context, pgx.Tx, []projection.Event) error { return nil }),
	}))
	st, err := m.Wait(ctx, "p", func(st projection.Status) bool { return st.State == projection.StateFailed })
	require.NoError(t, err, "the fenced projection did not fail at once: %+v", st)
	assert.ErrorIs(t, st.LastError, pgstore.ErrFenced)
}

// A schema made by the release before epochs (migration 1 only) is
// migrated on open: its checkpoints keep their positions, at epoch 0, and
// can then be claimed.
func TestStore_Open_MigratesCheckpointsFromBeforeEpochs(t *testing.T) {
	dsn := pgtest.DSN(t)
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, dsn)
	require.NoError(t, err)
	defer pool.Close()
	require.NoError(t, pgmigrate.Apply(ctx, pool, "old", "projection_checkpoints", []pgmigrate.Migration{{Version: 1, SQL: `
	CREATE TABLE IF NOT EXISTS {{schema}}.projection_checkpoints (
		name       text        PRIMARY KEY,
		position   bigint      NOT NULL CHECK (position >= 0),
		updated_at timestamptz NOT NULL DEFAULT now()
	)`}}))
	_, err = pool.Exec(ctx, `INSERT INTO old.projection_checkpoints (name, position) VALUES ('p', 42)`)
	require.NoError(t, err)

	s, err := pgstore.Open(ctx, dsn, pgstore.Config{Schema: "old"})
	require.NoError(t, err)
	defer s.Close()
	pos, err := s.Load(ctx, "p")
	require.NoError(t, err)
	assert.Equal(t, uint64(42), pos)
	require.NoError(t, s.Save(ctx, "p", 43), "an unfenced save of a migrated checkpoint")
	pos, err = s.WithEpoch(1).Load(ctx, "p")
	require.NoError(t, err)
	assert.Equal(t, uint64(43), pos)
	assertFenced(t, s.Save(ctx, "p", 44), 0, 1)
}
