// Package pgstore keeps projection checkpoints in PostgreSQL, for
// projections and sagas whose journal is PostgreSQL too (journal/postgres):
// every process of a deployment then sees the same checkpoints.
//
// Checkpoints live in the table projection_checkpoints (name primary key,
// position, epoch, updated_at) of the configured schema, created and
// migrated on open with the same versioned, lock-protected migrations as
// the journal. A Save is one upsert in its own transaction (durable when
// it returns, with synchronous_commit on).
//
// # Exactly-once read models
//
// A read model in the same database can be made exactly-once by writing
// it and the checkpoint in one transaction. Store.Handler does that: each
// batch runs in one transaction that locks the checkpoint row, drops the
// events at or below the stored checkpoint (already applied), lets the
// handler write the rest through the transaction, and stores the
// checkpoint before committing. A handler of one's own can call SaveTx
// with its transaction instead.
//
// # Epoch fencing
//
// When a projection runs as a cluster singleton (package cluster), an
// activation that was replaced may still be running somewhere: a member
// that was paused, or cut off, and has not noticed yet. Each activation
// gets an epoch, a number that grows with every activation; give it to
// the store with WithEpoch and use that view for the projection's
// checkpoints, its Handler and its Reset:
//
//	cp := store.WithEpoch(act.Epoch)
//	p := projection.Projection{Name: "balances", Checkpoints: cp,
//		Handler: cp.Handler("balances", apply), Reset: cp.Reset("balances", clear)}
//
// Every checkpoint row records the epoch of its last writer. A view with
// epoch e claims the checkpoint when the projection loads it (the stored
// epoch is raised to e), and every write through it (Save, SaveTx,
// Handler, Reset) is refused when the stored epoch is above e, with an
// error matching ErrFenced. The check runs in the same transaction as the
// read model's writes and under the checkpoint row's lock, so a refused
// batch leaves the read model untouched, and once the new activation has
// loaded the checkpoint no write of an older one can commit: either the
// old batch committed before the claim (and the new activation starts
// after it), or it is refused. ErrFenced errors are projection.Permanent:
// the stale projection stops at once instead of retrying.
//
// A checkpoint name must be written under one epoch sequence (one
// singleton). The Store itself writes with epoch 0, as before epochs
// existed: in a single process nothing changes, and once a fenced view
// has written a checkpoint, unfenced writes to it are refused too.
package pgstore

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"sync/atomic"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/orchestrix/orchestrix"
	"github.com/orchestrix/orchestrix/internal/pgmigrate"
	"github.com/orchestrix/orchestrix/projection"
)

// Errors of the package, matched with errors.Is.
var (
	// ErrInvalid is returned for an empty checkpoint name, or a position
	// or epoch that PostgreSQL's bigint cannot hold.
	ErrInvalid = errors.New("projection/pgstore: invalid checkpoint")
	// ErrFenced is matched by the error of a write (or a claiming Load)
	// carrying an epoch below the one stored for the checkpoint: a newer
	// activation of the projection holds it. Nothing was written. The
	// error is a *FencedError and a projection.Permanent error.
	ErrFenced = errors.New("projection/pgstore: fenced by a newer epoch")
)

// FencedError reports a write refused by the epoch fence. It matches
// ErrFenced.
type FencedError struct {
	// Name is the checkpoint's name.
	Name string
	// Epoch is the writer's epoch, Stored the (higher) one stored.
	Epoch, Stored uint64
}

// Error implements error.
func (e *FencedError) Error() string {
	return fmt.Sprintf("projection/pgstore: checkpoint %q: epoch %d is fenced: epoch %d holds it", e.Name, e.Epoch, e.Stored)
}

// Is reports whether target is ErrFenced.
func (e *FencedError) Is(target error) bool { return target == ErrFenced }

// Config configures a Store. The zero value is usable.
type Config struct {
	// Schema holds the checkpoint table; empty means the connection's
	// current schema (usually "public").
	Schema string
}

// Store is a projection.CheckpointStore on PostgreSQL. It is safe for
// concurrent use. A Store writes with an epoch (0 unless it was made by
// WithEpoch); see the package documentation.
type Store struct {
	*shared
	epoch uint64
}

// shared is what every view of one Store shares.
type shared struct {
	pool    *pgxpool.Pool
	ownPool bool
	closed  atomic.Bool
	load    string // position and epoch of a name
	lock    string // the same, locking the row
	claim   string // raise the stored epoch, returning the position
	save    string // upsert the position, raising codeFenced under a higher epoch
}

var _ projection.CheckpointStore = (*Store)(nil)

// codeFenced is the SQLSTATE projection_checkpoint_save raises when a
// newer epoch holds the checkpoint; its DETAIL is the stored epoch.
const codeFenced = "OX101"

var migrations = []pgmigrate.Migration{{Version: 1, SQL: `
	CREATE TABLE IF NOT EXISTS {{schema}}.projection_checkpoints (
		name       text        PRIMARY KEY,
		position   bigint      NOT NULL CHECK (position >= 0),
		updated_at timestamptz NOT NULL DEFAULT now()
	)`}, {Version: 2, SQL: `
	ALTER TABLE {{schema}}.projection_checkpoints
		ADD COLUMN IF NOT EXISTS epoch bigint NOT NULL DEFAULT 0 CHECK (epoch >= 0);

	-- projection_checkpoint_save stores a checkpoint unless a higher epoch
	-- holds it, and then raises OX101: the error aborts the caller's
	-- transaction, so the read-model writes made in it cannot commit even
	-- if the caller ignored the error.
	CREATE OR REPLACE FUNCTION {{schema}}.projection_checkpoint_save(p_name text, p_position bigint, p_epoch bigint)
	RETURNS void LANGUAGE plpgsql AS $$
	DECLARE
		v_stored bigint;
	BEGIN
		INSERT INTO {{schema}}.projection_checkpoints AS c (name, position, epoch) VALUES (p_name, p_position, p_epoch)
		ON CONFLICT (name) DO UPDATE SET position = excluded.position, epoch = excluded.epoch, updated_at = now()
		WHERE c.epoch <= excluded.epoch;
		IF NOT FOUND THEN
			SELECT epoch INTO v_stored FROM {{schema}}.projection_checkpoints WHERE name = p_name;
			RAISE EXCEPTION 'checkpoint % is held by epoch %, not %', p_name, v_stored, p_epoch
				USING ERRCODE = 'OX101', DETAIL = v_stored::text;
		END IF;
	END $$`}}

// Open connects to dsn and returns a Store owning its connection pool.
func Open(ctx context.Context, dsn string, cfg Config) (*Store, error) {
	pool, err := pgmigrate.Connect(ctx, dsn, 0, nil)
	if err != nil {
		return nil, fmt.Errorf("projection/pgstore: %w", err)
	}
	s, err := New(ctx, pool, cfg)
	if err != nil {
		pool.Close()
		return nil, err
	}
	s.ownPool = true
	return s, nil
}

// New returns a Store over pool, which the caller keeps owning (Close does
// not close it).
func New(ctx context.Context, pool *pgxpool.Pool, cfg Config) (*Store, error) {
	schema, err := pgmigrate.Prepare(ctx, pool, cfg.Schema, "projection_checkpoints", migrations)
	if err != nil {
		return nil, fmt.Errorf("projection/pgstore: %w", err)
	}
	x := func(sql string) string { return pgmigrate.Expand(sql, schema) }
	return &Store{shared: &shared{
		pool: pool,
		load: x(`SELECT position, epoch FROM {{schema}}.projection_checkpoints WHERE name = $1`),
		lock: x(`SELECT position, epoch FROM {{schema}}.projection_checkpoints WHERE name = $1 FOR UPDATE`),
		claim: x(`INSERT INTO {{schema}}.projection_checkpoints AS c (name, position, epoch) VALUES ($1, 0, $2)
			ON CONFLICT (name) DO UPDATE SET epoch = excluded.epoch, updated_at = now()
			WHERE c.epoch <= excluded.epoch
			RETURNING position`),
		save: x(`SELECT {{schema}}.projection_checkpoint_save($1, $2, $3)`),
	}}, nil
}

// WithEpoch returns a view of the store that writes with epoch and claims
// each checkpoint it loads for it (see the package documentation). The
// view shares the store's pool; closing either closes both. Epoch 0 is
// the unfenced store itself.
func (s *Store) WithEpoch(epoch uint64) *Store { return &Store{shared: s.shared, epoch: epoch} }

// Epoch returns the epoch the store writes with.
func (s *Store) Epoch() uint64 { return s.epoch }

// Load returns the checkpoint saved under name, or 0 when none was. A
// store with an epoch above 0 first claims the checkpoint: it raises the
// stored epoch to its own, so that writes of older epochs are refused
// from then on, and fails with ErrFenced when a newer epoch holds it.
func (s *Store) Load(ctx context.Context, name string) (uint64, error) {
	if err := s.check(ctx, name); err != nil {
		return 0, err
	}
	var pos, stored int64
	if s.epoch > 0 {
		switch err := s.pool.QueryRow(ctx, s.claim, name, int64(s.epoch)).Scan(&pos); {
		case errors.Is(err, pgx.ErrNoRows):
			return 0, s.fenced(ctx, name)
		case err != nil:
			return 0, s.wrap(ctx, "claim", name, err)
		}
		return uint64(pos), nil
	}
	switch err := s.pool.QueryRow(ctx, s.load, name).Scan(&pos, &stored); {
	case errors.Is(err, pgx.ErrNoRows):
		return 0, nil
	case err != nil:
		return 0, s.wrap(ctx, "load", name, err)
	}
	return uint64(pos), nil
}

// Save records position as the checkpoint of name, unless a newer epoch
// holds it (ErrFenced).
func (s *Store) Save(ctx context.Context, name string, position uint64) error {
	return s.SaveTx(ctx, s.pool, name, position)
}

// Execer is what SaveTx writes through: a pgx.Tx, a connection or a pool.
type Execer interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

// SaveTx records position as the checkpoint of name through q, typically
// the transaction that also writes the read model, so that both commit or
// neither does. When a newer epoch holds the checkpoint it writes nothing
// and returns an error matching ErrFenced, and the error aborts q's
// transaction in PostgreSQL: the read model's writes made in it cannot
// commit (Commit rolls back), even if the error is ignored. The check
// holds the checkpoint row's lock until q's transaction ends.
func (s *Store) SaveTx(ctx context.Context, q Execer, name string, position uint64) error {
	if err := s.check(ctx, name); err != nil {
		return err
	}
	if position > math.MaxInt64 {
		return fmt.Errorf("%w: position %d of %q exceeds bigint", ErrInvalid, position, name)
	}
	if _, err := q.Exec(ctx, s.save, name, int64(position), int64(s.epoch)); err != nil {
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == codeFenced {
			stored, _ := strconv.ParseUint(pgErr.Detail, 10, 64)
			return projection.Permanent(&FencedError{Name: name, Epoch: s.epoch, Stored: stored})
		}
		return s.wrap(ctx, "save", name, err)
	}
	return nil
}

// TxHandler applies a batch of events to a read model through tx. It must
// do all its writes through tx and must not commit or roll it back; an
// error rolls back the whole batch.
type TxHandler func(ctx context.Context, tx pgx.Tx, batch []projection.Event) error

// Handler returns an exactly-once projection.Handler for the projection
// named name: each batch runs in one transaction that locks the
// checkpoint row, refuses the batch (ErrFenced) when a newer epoch than
// the store's holds it, drops the events at or below the stored
// checkpoint (already applied), calls fn with the rest and stores the
// checkpoint (the last event's position) before committing. The
// projection must use this store (the same view) as its checkpoint store
// and the same name.
func (s *Store) Handler(name string, fn TxHandler) projection.Handler {
	return projection.HandlerFunc(func(ctx context.Context, batch []projection.Event) error {
		if len(batch) == 0 {
			return s.check(ctx, name)
		}
		return s.inTx(ctx, name, func(tx pgx.Tx, done uint64) error {
			i := 0
			for i < len(batch) && batch[i].Position <= done {
				i++
			}
			if i == len(batch) {
				return nil
			}
			if err := fn(ctx, tx, batch[i:]); err != nil {
				return err
			}
			return s.SaveTx(ctx, tx, name, batch[len(batch)-1].Position)
		})
	})
}

// Reset returns a projection.Projection.Reset hook for the projection
// named name: in one transaction, fenced like Handler, it runs fn (which
// clears the read model through tx) and sets the checkpoint to 0.
func (s *Store) Reset(name string, fn func(ctx context.Context, tx pgx.Tx) error) func(ctx context.Context) error {
	return func(ctx context.Context) error {
		return s.inTx(ctx, name, func(tx pgx.Tx, _ uint64) error {
			if fn != nil {
				if err := fn(ctx, tx); err != nil {
					return err
				}
			}
			return s.SaveTx(ctx, tx, name, 0)
		})
	}
}

// inTx runs fn in a transaction holding the lock of name's checkpoint row
// (when it exists), after checking the fence; done is the stored
// checkpoint.
func (s *Store) inTx(ctx context.Context, name string, fn func(tx pgx.Tx, done uint64) error) error {
	if err := s.check(ctx, name); err != nil {
		return err
	}
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return s.wrap(ctx, "begin", name, err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	var pos, stored int64
	switch err := tx.QueryRow(ctx, s.lock, name).Scan(&pos, &stored); {
	case errors.Is(err, pgx.ErrNoRows):
		// No checkpoint yet: the upsert in SaveTx checks the fence.
	case err != nil:
		return s.wrap(ctx, "lock", name, err)
	case uint64(stored) > s.epoch:
		return projection.Permanent(&FencedError{Name: name, Epoch: s.epoch, Stored: uint64(stored)})
	}
	if err := fn(tx, uint64(pos)); err != nil {
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return s.wrap(ctx, "commit", name, err)
	}
	return nil
}

// fenced builds the error of a write refused by the fence, reading the
// stored epoch for its message.
func (s *Store) fenced(ctx context.Context, name string) error {
	var pos, stored int64
	_ = s.pool.QueryRow(ctx, s.load, name).Scan(&pos, &stored)
	return projection.Permanent(&FencedError{Name: name, Epoch: s.epoch, Stored: uint64(stored)})
}

// Close releases the pool if the Store owns it; later calls return
// orchestrix.ErrClosed. Close is idempotent.
func (s *Store) Close() error {
	if s.closed.Swap(true) {
		return nil
	}
	if s.ownPool {
		s.pool.Close()
	}
	return nil
}

func (s *Store) check(ctx context.Context, name string) error {
	switch {
	case s.closed.Load():
		return fmt.Errorf("projection/pgstore: %w", orchestrix.ErrClosed)
	case name == "":
		return fmt.Errorf("%w: empty name", ErrInvalid)
	case s.epoch > math.MaxInt64:
		return fmt.Errorf("%w: epoch %d exceeds bigint", ErrInvalid, s.epoch)
	}
	return ctx.Err()
}

func (s *Store) wrap(ctx context.Context, op, name string, err error) error {
	if ctxErr := ctx.Err(); ctxErr != nil {
		return fmt.Errorf("projection/pgstore: %s %q: %w", op, name, ctxErr)
	}
	return fmt.Errorf("projection/pgstore: %s %q: %w", op, name, err)
}
