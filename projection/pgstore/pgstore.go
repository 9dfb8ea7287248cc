// Package pgstore keeps projection checkpoints in PostgreSQL, for
// projections and sagas whose journal is PostgreSQL too (journal/postgres):
// every process of a deployment then sees the same checkpoints.
//
// Checkpoints live in the table projection_checkpoints (name primary key,
// position, updated_at) of the configured schema, created and migrated on
// open with the same versioned, lock-protected migrations as the journal.
// A Save is one upsert in its own transaction (durable when it returns,
// with synchronous_commit on). A handler that writes its read model to the
// same database can make handling exactly-once by writing the read model
// and calling SaveTx in one transaction.
package pgstore

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync/atomic"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/orchestrix/orchestrix"
	"github.com/orchestrix/orchestrix/internal/pgmigrate"
	"github.com/orchestrix/orchestrix/projection"
)

// ErrInvalid is returned for an empty checkpoint name or a position that
// PostgreSQL's bigint cannot hold.
var ErrInvalid = errors.New("projection/pgstore: invalid checkpoint")

// Config configures a Store. The zero value is usable.
type Config struct {
	// Schema holds the checkpoint table; empty means the connection's
	// current schema (usually "public").
	Schema string
}

// Store is a projection.CheckpointStore on PostgreSQL. It is safe for
// concurrent use.
type Store struct {
	pool    *pgxpool.Pool
	ownPool bool
	load    string
	save    string
	closed  atomic.Bool
}

var _ projection.CheckpointStore = (*Store)(nil)

var migrations = []pgmigrate.Migration{{Version: 1, SQL: `
	CREATE TABLE IF NOT EXISTS {{schema}}.projection_checkpoints (
		name       text        PRIMARY KEY,
		position   bigint      NOT NULL CHECK (position >= 0),
		updated_at timestamptz NOT NULL DEFAULT now()
	)`}}

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
	return &Store{
		pool: pool,
		load: pgmigrate.Expand(`SELECT position FROM {{schema}}.projection_checkpoints WHERE name = $1`, schema),
		save: pgmigrate.Expand(`INSERT INTO {{schema}}.projection_checkpoints AS c (name, position) VALUES ($1, $2)
			ON CONFLICT (name) DO UPDATE SET position = excluded.position, updated_at = now()`, schema),
	}, nil
}

// Load returns the checkpoint saved under name, or 0 when none was.
func (s *Store) Load(ctx context.Context, name string) (uint64, error) {
	if err := s.check(ctx, name); err != nil {
		return 0, err
	}
	var pos int64
	switch err := s.pool.QueryRow(ctx, s.load, name).Scan(&pos); {
	case errors.Is(err, pgx.ErrNoRows):
		return 0, nil
	case err != nil:
		return 0, s.wrap(ctx, "load", name, err)
	}
	return uint64(pos), nil
}

// Save records position as the checkpoint of name.
func (s *Store) Save(ctx context.Context, name string, position uint64) error {
	return s.SaveTx(ctx, s.pool, name, position)
}

// Execer is what SaveTx writes through: a pgx.Tx, a connection or a pool.
type Execer interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

// SaveTx records position as the checkpoint of name through q, typically
// the transaction that also writes the read model, so that both commit or
// neither does.
func (s *Store) SaveTx(ctx context.Context, q Execer, name string, position uint64) error {
	if err := s.check(ctx, name); err != nil {
		return err
	}
	if position > math.MaxInt64 {
		return fmt.Errorf("%w: position %d of %q exceeds bigint", ErrInvalid, position, name)
	}
	if _, err := q.Exec(ctx, s.save, name, int64(position)); err != nil {
		return s.wrap(ctx, "save", name, err)
	}
	return nil
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
	}
	return ctx.Err()
}

func (s *Store) wrap(ctx context.Context, op, name string, err error) error {
	if ctxErr := ctx.Err(); ctxErr != nil {
		return fmt.Errorf("projection/pgstore: %s %q: %w", op, name, ctxErr)
	}
	return fmt.Errorf("projection/pgstore: %s %q: %w", op, name, err)
}
