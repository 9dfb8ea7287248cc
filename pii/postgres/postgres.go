// Package postgres is the shared key store: a pii.KeyStore in a PostgreSQL
// table, for deployments in which several processes (cluster members,
// instances of a service on one journal/postgres database) encrypt and
// decrypt with the same keys. It passes the conformance suite in
// pii/piitest.
//
// # Schema
//
// Open creates and migrates its table in Config.Schema (default: the
// connection's current schema), recorded in the schema's
// schema_migrations table as component "pii", under the advisory lock of
// internal/pgmigrate, so any number of processes may open the same store
// at once. The schema may be shared with journal/postgres.
//
//	pii_keys  key_id      text PRIMARY KEY     the key's id (pii.Key.ID)
//	          subject     bytea UNIQUE         the data subject, as given
//	          material    bytea                the 32 key bytes; NULL once erased
//	          created_at  timestamptz
//	          erased_at   timestamptz          NULL while the key lives
//
// One row per subject, ever: an erased subject keeps its row with NULL
// material, so later GetOrCreate calls and Get calls for its key id
// report pii.ErrErased. Deleting a subject that never had a key inserts
// such a row with a fresh, unused key id.
//
// # Several stores, one database
//
// GetOrCreate creates a subject's key with INSERT … ON CONFLICT (subject)
// DO NOTHING: when several stores race for a new subject, the database
// lets exactly one insert win and the others read the winner's row, so
// every store encrypts the subject's data with the same key.
//
// The store keeps no cache: every Get and GetOrCreate reads the table (a
// primary-key lookup, one round trip). So an erasure is visible to every
// store the moment it commits — a Get or GetOrCreate that starts after
// Delete returned, on any store, reports pii.ErrErased — with no window
// and nothing to invalidate. A cache with LISTEN/NOTIFY invalidation would
// save that round trip, but a notification arrives some time after the
// commit and is lost while a listener reconnects, so such a cache would
// decrypt with an erased key for a while (bounded only by its lifetime);
// we chose the guarantee over the round trip. The cost: decoding a
// payload with personal data costs one query, which bounds replay of
// such events to the database's point-lookup rate.
//
// # Durability
//
// Creating a key and erasing one commit with synchronous_commit on (set
// for the transaction, whatever the session's setting), so a key is never
// used before it is durable (a lost key would erase data) and an
// acknowledged erasure survives a crash of the server.
//
// # Residual copies
//
// PostgreSQL never overwrites a row in place: the erasure writes a new
// row version with NULL material and leaves the old one, key bytes
// included, as a dead tuple in the table's file. Unless Config.SkipVacuum
// is set, Delete then runs VACUUM on the keys table, which prunes dead
// tuples no open transaction can still see (it skips pages that have not
// changed since the last VACUUM, so it is cheap on a large table). Even
// so, copies of the key bytes can survive outside the store's reach:
//
//   - dead tuples a VACUUM could not remove yet, because a transaction
//     older than the erasure was still open (a long transaction, a stale
//     replication slot, or hot_standby_feedback from a replica);
//   - the freed space of a pruned page, which PostgreSQL does not promise
//     to overwrite (on PostgreSQL 15 we found the bytes gone from the
//     raw page after the VACUUM, as pruning compacts the page, but that
//     is an observation, not a contract);
//   - the write-ahead log: the key was written to WAL when it was created,
//     and the segments live until a checkpoint recycles them — and
//     forever in a WAL archive (archive_command, pgBackRest, Barman);
//   - base backups and file-system snapshots taken while the key lived;
//   - streaming replicas, which hold the same dead tuples and WAL, and
//     logical replicas or CDC consumers that received the row;
//   - the operating system's page cache, file-system journals and SSD
//     blocks, as for any file.
//
// What the operator must do: keep the keys in a database (or at least a
// cluster) of their own when possible, so journal backups never contain
// them; give the keys' WAL archive and base backups a retention shorter
// than the erasure deadline you promise (GDPR: without undue delay, at
// most a month), or exclude the keys database from long-lived backups;
// avoid long-running transactions on it; and after restoring a backup,
// replay the erasures recorded since (pii.Eraser records each as a
// SubjectErased event in the journal) before serving reads.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/orchestrix/orchestrix"
	"github.com/orchestrix/orchestrix/internal/pgmigrate"
	"github.com/orchestrix/orchestrix/pii"
)

// Table is the name of the keys table in Config.Schema.
const Table = "pii_keys"

// Config configures a Store. The zero value works.
type Config struct {
	// Schema is the PostgreSQL schema holding the keys table; it is
	// created if missing. Empty means the connection's current schema.
	Schema string

	// MaxConns is the size of the pool Open creates (ignored by New).
	// Zero means pgxpool's default.
	MaxConns int32

	// SkipVacuum leaves the dead row versions an erasure creates to
	// autovacuum or the operator's own VACUUM schedule instead of
	// running VACUUM on the keys table after every Delete (see
	// "Residual copies" in the package documentation). Set it when
	// erasures come in bursts and a scheduled VACUUM follows them.
	SkipVacuum bool
}

// Validate reports whether c is usable.
func (c Config) Validate() error {
	if c.MaxConns < 0 {
		return errors.New("pii/postgres: Config.MaxConns is negative")
	}
	return nil
}

var migrations = []pgmigrate.Migration{
	{Version: 1, SQL: `
CREATE TABLE {{schema}}.pii_keys (
	key_id     text        PRIMARY KEY CHECK (key_id ~ '^[A-Za-z0-9_-]{1,64}$'),
	subject    bytea       NOT NULL UNIQUE CHECK (octet_length(subject) BETWEEN 1 AND 1024),
	material   bytea       CHECK (material IS NULL OR octet_length(material) = 32),
	created_at timestamptz NOT NULL DEFAULT now(),
	erased_at  timestamptz,
	CHECK ((material IS NULL) = (erased_at IS NOT NULL))
);`},
}

const (
	sqlBySubject = `SELECT key_id, material FROM {{schema}}.pii_keys WHERE subject = $1`
	sqlByID      = `SELECT material FROM {{schema}}.pii_keys WHERE key_id = $1`
	sqlCreate    = `INSERT INTO {{schema}}.pii_keys (key_id, subject, material) VALUES ($1, $2, $3)
		ON CONFLICT (subject) DO NOTHING RETURNING key_id`
	sqlErase = `INSERT INTO {{schema}}.pii_keys (key_id, subject, material, erased_at) VALUES ($1, $2, NULL, now())
		ON CONFLICT (subject) DO UPDATE SET material = NULL, erased_at = now()
		WHERE {{schema}}.pii_keys.material IS NOT NULL`
	sqlVacuum = `VACUUM {{schema}}.pii_keys`
)

// Store is a pii.KeyStore in PostgreSQL, safe for concurrent use by any
// number of goroutines and processes.
type Store struct {
	pool    *pgxpool.Pool
	ownPool bool
	cfg     Config
	schema  string
	closed  atomic.Bool

	bySubject, byID, create, erase, vacuum string
}

var (
	_ pii.KeyStore     = (*Store)(nil)
	_ pii.BatchDeleter = (*Store)(nil)
)

// Open connects to the database at dsn, creates or migrates the keys
// table and returns the store. Close closes the pool it creates.
func Open(ctx context.Context, dsn string, cfg Config) (*Store, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	pool, err := pgmigrate.Connect(ctx, dsn, cfg.MaxConns, nil)
	if err != nil {
		return nil, fmt.Errorf("pii/postgres: %w", err)
	}
	s, err := newStore(ctx, pool, cfg, true)
	if err != nil {
		pool.Close()
		return nil, err
	}
	return s, nil
}

// New returns a store over an existing pool (for example the one of
// journal/postgres), creating or migrating its table. Close does not
// close the pool.
func New(ctx context.Context, pool *pgxpool.Pool, cfg Config) (*Store, error) {
	if pool == nil {
		return nil, errors.New("pii/postgres: nil pool")
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return newStore(ctx, pool, cfg, false)
}

func newStore(ctx context.Context, pool *pgxpool.Pool, cfg Config, ownPool bool) (*Store, error) {
	schema, err := pgmigrate.Prepare(ctx, pool, cfg.Schema, "pii", migrations)
	if err != nil {
		return nil, fmt.Errorf("pii/postgres: %w", err)
	}
	x := func(q string) string { return pgmigrate.Expand(q, schema) }
	return &Store{
		pool: pool, ownPool: ownPool, cfg: cfg, schema: schema,
		bySubject: x(sqlBySubject), byID: x(sqlByID), create: x(sqlCreate), erase: x(sqlErase), vacuum: x(sqlVacuum),
	}, nil
}

// Schema returns the schema holding the keys table.
func (s *Store) Schema() string { return s.schema }

func (s *Store) check(ctx context.Context) error {
	if s.closed.Load() {
		return orchestrix.ErrClosed
	}
	return ctx.Err()
}

// wrap describes a failed database call, preferring the reason the
// caller can act on: its context ended, or the store was closed.
func (s *Store) wrap(ctx context.Context, op string, err error) error {
	if cerr := ctx.Err(); cerr != nil {
		return fmt.Errorf("pii/postgres: %s: %w", op, cerr)
	}
	if s.closed.Load() {
		return fmt.Errorf("pii/postgres: %s: %w", op, orchestrix.ErrClosed)
	}
	return fmt.Errorf("pii/postgres: %s: %w", op, err)
}

// key checks a material column read from the table.
func key(id string, material []byte) (pii.Key, error) {
	switch {
	case material == nil:
		return pii.Key{}, pii.ErrErased
	case len(material) != pii.KeySize:
		return pii.Key{}, fmt.Errorf("%w: pii/postgres: key %q has %d bytes", orchestrix.ErrCorrupt, id, len(material))
	}
	return pii.Key{ID: id, Material: material}, nil
}

// GetOrCreate implements pii.KeyStore. A new key is committed durably
// before it is returned; when stores race for a new subject, one insert
// wins and every caller returns its key.
func (s *Store) GetOrCreate(ctx context.Context, subject string) (pii.Key, error) {
	if err := pii.CheckSubject(subject); err != nil {
		return pii.Key{}, err
	}
	if err := s.check(ctx); err != nil {
		return pii.Key{}, err
	}
	k, found, err := s.lookupSubject(ctx, subject)
	if err != nil || found {
		return k, err
	}
	k = pii.NewKey()
	var won bool
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SET LOCAL synchronous_commit = on"); err != nil {
			return err
		}
		var id string
		switch err := tx.QueryRow(ctx, s.create, k.ID, []byte(subject), k.Material).Scan(&id); {
		case err == nil:
			won = true
		case !errors.Is(err, pgx.ErrNoRows):
			return err
		}
		return nil
	})
	if err != nil {
		return pii.Key{}, s.wrap(ctx, "create key", err)
	}
	if won {
		return k, nil
	}
	// Another store created the subject's key (or erased it) first; its
	// row is committed, so this new statement sees it.
	clear(k.Material)
	k, found, err = s.lookupSubject(ctx, subject)
	if err == nil && !found {
		err = fmt.Errorf("%w: pii/postgres: subject's row vanished", orchestrix.ErrCorrupt)
	}
	return k, err
}

// lookupSubject reads subject's row; found is false when it has none.
func (s *Store) lookupSubject(ctx context.Context, subject string) (pii.Key, bool, error) {
	var id string
	var material []byte
	switch err := s.pool.QueryRow(ctx, s.bySubject, []byte(subject)).Scan(&id, &material); {
	case errors.Is(err, pgx.ErrNoRows):
		return pii.Key{}, false, nil
	case err != nil:
		return pii.Key{}, false, s.wrap(ctx, "read key", err)
	}
	k, err := key(id, material)
	return k, true, err
}

// Get implements pii.KeyStore. It reads the table every time, so a key
// erased by any store is reported as pii.ErrErased from the moment the
// erasure committed.
func (s *Store) Get(ctx context.Context, id string) (pii.Key, error) {
	if err := s.check(ctx); err != nil {
		return pii.Key{}, err
	}
	if !pii.ValidKeyID(id) {
		return pii.Key{}, fmt.Errorf("%w: %q", pii.ErrUnknownKey, id)
	}
	var material []byte
	switch err := s.pool.QueryRow(ctx, s.byID, id).Scan(&material); {
	case errors.Is(err, pgx.ErrNoRows):
		return pii.Key{}, fmt.Errorf("%w: %q", pii.ErrUnknownKey, id)
	case err != nil:
		return pii.Key{}, s.wrap(ctx, "read key", err)
	}
	return key(id, material)
}

// Delete implements pii.KeyStore: it sets the subject's key material to
// NULL (inserting an erased row for a subject without a key) in a
// transaction committed with synchronous_commit on, then, unless
// Config.SkipVacuum is set, runs VACUUM on the keys table so the dead row
// version holding the key bytes is pruned. The erasure is committed even
// when the VACUUM fails; the error is returned, and calling Delete again
// runs the VACUUM again.
func (s *Store) Delete(ctx context.Context, subject string) error {
	return s.DeleteMany(ctx, []string{subject})
}

// DeleteMany implements pii.BatchDeleter: Delete for every subject in one
// transaction, followed by one VACUUM.
func (s *Store) DeleteMany(ctx context.Context, subjects []string) error {
	for _, subject := range subjects {
		if err := pii.CheckSubject(subject); err != nil {
			return err
		}
	}
	if err := s.check(ctx); err != nil {
		return err
	}
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SET LOCAL synchronous_commit = on"); err != nil {
			return err
		}
		b := &pgx.Batch{}
		for _, subject := range subjects {
			b.Queue(s.erase, pii.NewKey().ID, []byte(subject))
		}
		return tx.SendBatch(ctx, b).Close()
	})
	if err != nil {
		return s.wrap(ctx, "erase", err)
	}
	if s.cfg.SkipVacuum || len(subjects) == 0 {
		return nil
	}
	if _, err := s.pool.Exec(ctx, s.vacuum); err != nil {
		return s.wrap(ctx, "vacuum after erasure (the erasure is committed)", err)
	}
	return nil
}

// Close implements pii.KeyStore. It closes the pool when Open created it.
// Close is idempotent.
func (s *Store) Close() error {
	if s.closed.Swap(true) {
		return nil
	}
	if s.ownPool {
		s.pool.Close()
	}
	return nil
}
