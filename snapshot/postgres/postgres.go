// Package postgres is the shared snapshot store: a snapshot.Store kept in
// a PostgreSQL table, for deployments whose journal is journal/postgres.
// It passes the conformance suite in snapshot/snapshottest.
//
// # Schema
//
// Open creates and migrates its table in Config.Schema (default: the
// connection's current schema). Migrations are numbered and recorded in
// the schema's schema_migrations table (component "snapshot") and run under
// a transaction-scoped advisory lock, so several processes may open the
// same store at once. The schema may be shared with journal/postgres.
//
//	snapshots  stream, version   PRIMARY KEY
//	           type, schema_version
//	           time_s, time_ns    Snapshot.Time as Unix seconds and
//	                              nanoseconds, so it round-trips exactly
//	                              (the zero time included)
//	           data               the encoded state
//	           crc                CRC-32C (Castagnoli) over every other
//	                              column
//
// Load reads the matching snapshots newest first and returns the first
// whose checksum holds; a snapshot that fails it is logged and skipped, as
// the snapshot contract requires.
package postgres

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"log/slog"
	"math"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/orchestrix/orchestrix"
	"github.com/orchestrix/orchestrix/internal/pgmigrate"
	"github.com/orchestrix/orchestrix/snapshot"
)

// Config configures a Store. The zero value works.
type Config struct {
	// Schema is the PostgreSQL schema holding the snapshots table; it is
	// created if missing. Empty means the connection's current schema.
	Schema string

	// MaxConns is the size of the pool Open creates (ignored by New).
	// Zero means pgxpool's default.
	MaxConns int32

	// Logger receives a warning for every snapshot skipped because it
	// failed its checksum. Nil discards.
	Logger *slog.Logger
}

// Validate reports whether o is usable.
func (c Config) Validate() error {
	if c.MaxConns < 0 {
		return errors.New("snapshot/postgres: Config.MaxConns is negative")
	}
	return nil
}

var migrations = []pgmigrate.Migration{
	{Version: 1, SQL: `
CREATE TABLE {{schema}}.snapshots (
	stream         text    NOT NULL,
	version        bigint  NOT NULL CHECK (version > 0),
	type           text    NOT NULL,
	schema_version bigint  NOT NULL,
	time_s         bigint  NOT NULL,
	time_ns        integer NOT NULL,
	data           bytea   NOT NULL,
	crc            bigint  NOT NULL,
	PRIMARY KEY (stream, version)
);`},
}

const (
	sqlSave = `INSERT INTO {{schema}}.snapshots (stream, version, type, schema_version, time_s, time_ns, data, crc)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
		ON CONFLICT (stream, version) DO UPDATE SET type = EXCLUDED.type, schema_version = EXCLUDED.schema_version,
			time_s = EXCLUDED.time_s, time_ns = EXCLUDED.time_ns, data = EXCLUDED.data, crc = EXCLUDED.crc`

	// criteria: $1 stream, $2 min version, $3 max version, $4 no time
	// bound, $5/$6 max time.
	sqlCriteria = `stream = $1 AND version BETWEEN $2 AND $3 AND ($4 OR (time_s, time_ns) <= ($5, $6))`

	sqlLoad = `SELECT version, type, schema_version, time_s, time_ns, data, crc FROM {{schema}}.snapshots
		WHERE ` + sqlCriteria + ` ORDER BY version DESC LIMIT $7`

	sqlDelete = `DELETE FROM {{schema}}.snapshots WHERE stream = $1 AND version = $2`

	sqlDeleteMatching = `DELETE FROM {{schema}}.snapshots WHERE ` + sqlCriteria
)

// loadPage is how many candidates one query of Load reads.
const loadPage = 8

// Store is a snapshot.Store in PostgreSQL, safe for concurrent use.
type Store struct {
	pool    *pgxpool.Pool
	ownPool bool
	log     *slog.Logger
	closed  atomic.Bool

	save, load, del, delMatching string
}

var _ snapshot.Store = (*Store)(nil)

// Open connects to the database at dsn, creates or migrates the snapshots
// table and returns the store. Close closes the pool it creates.
func Open(ctx context.Context, dsn string, cfg Config) (*Store, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	pool, err := pgmigrate.Connect(ctx, dsn, cfg.MaxConns, nil)
	if err != nil {
		return nil, fmt.Errorf("snapshot/postgres: %w", err)
	}
	s, err := newStore(ctx, pool, cfg, true)
	if err != nil {
		pool.Close()
		return nil, err
	}
	return s, nil
}

// New returns a store over an existing pool, creating or migrating its
// table. Close does not close the pool.
func New(ctx context.Context, pool *pgxpool.Pool, cfg Config) (*Store, error) {
	if pool == nil {
		return nil, errors.New("snapshot/postgres: nil pool")
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return newStore(ctx, pool, cfg, false)
}

func newStore(ctx context.Context, pool *pgxpool.Pool, cfg Config, ownPool bool) (*Store, error) {
	schema, err := pgmigrate.Prepare(ctx, pool, cfg.Schema, "snapshot", migrations)
	if err != nil {
		return nil, fmt.Errorf("snapshot/postgres: %w", err)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	x := func(q string) string { return pgmigrate.Expand(q, schema) }
	return &Store{
		pool: pool, ownPool: ownPool, log: log,
		save: x(sqlSave), load: x(sqlLoad), del: x(sqlDelete), delMatching: x(sqlDeleteMatching),
	}, nil
}

// begin checks what every call checks first: closed, context, stream.
func (s *Store) begin(ctx context.Context, stream string) error {
	if s.closed.Load() {
		return orchestrix.ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if stream == "" {
		return fmt.Errorf("%w: empty stream name", snapshot.ErrInvalid)
	}
	if !validText(stream) {
		return fmt.Errorf("%w: stream name is not UTF-8 without NUL: %q", snapshot.ErrInvalid, stream)
	}
	return nil
}

func (s *Store) wrap(ctx context.Context, op string, err error) error {
	if cerr := ctx.Err(); cerr != nil {
		return fmt.Errorf("snapshot/postgres: %s: %w", op, cerr)
	}
	if s.closed.Load() {
		return fmt.Errorf("snapshot/postgres: %s: %w", op, orchestrix.ErrClosed)
	}
	return fmt.Errorf("snapshot/postgres: %s: %w", op, err)
}

// Save stores snap, replacing any snapshot of the same stream and version.
func (s *Store) Save(ctx context.Context, snap snapshot.Snapshot) error {
	if err := s.begin(ctx, snap.Stream); err != nil {
		return err
	}
	if err := snap.Validate(); err != nil {
		return err
	}
	if snap.Version > math.MaxInt64 {
		return fmt.Errorf("%w: version %d above the largest storable version", snapshot.ErrInvalid, snap.Version)
	}
	if !validText(snap.Type) {
		return fmt.Errorf("%w: type name is not UTF-8 without NUL: %q", snapshot.ErrInvalid, snap.Type)
	}
	data := snap.Data
	if data == nil {
		data = []byte{}
	}
	sec, nsec := snap.Time.Unix(), int32(snap.Time.Nanosecond())
	crc := checksum(snap.Stream, snap.Version, snap.Type, int64(snap.SchemaVersion), sec, nsec, data)
	if _, err := s.pool.Exec(ctx, s.save, snap.Stream, int64(snap.Version), snap.Type,
		int64(snap.SchemaVersion), sec, nsec, data, crc); err != nil {
		return s.wrap(ctx, "save", err)
	}
	return nil
}

// criteriaArgs returns the query arguments of c after stream, and false
// when c can match nothing storable.
func criteriaArgs(c snapshot.Criteria) ([]any, bool) {
	if c.MinVersion > math.MaxInt64 || c.MinVersion > c.MaxVersion {
		return nil, false
	}
	maxV := c.MaxVersion
	if maxV > math.MaxInt64 {
		maxV = math.MaxInt64
	}
	noTime := c.MaxTime.IsZero()
	return []any{int64(c.MinVersion), int64(maxV), noTime, c.MaxTime.Unix(), int32(c.MaxTime.Nanosecond())}, true
}

// Load returns the newest snapshot of stream matching c whose checksum
// holds, skipping (and logging) corrupt ones.
func (s *Store) Load(ctx context.Context, stream string, c snapshot.Criteria) (snapshot.Snapshot, bool, error) {
	if err := s.begin(ctx, stream); err != nil {
		return snapshot.Snapshot{}, false, err
	}
	args, ok := criteriaArgs(c)
	if !ok {
		return snapshot.Snapshot{}, false, nil
	}
	for {
		rows, err := s.pool.Query(ctx, s.load, append([]any{stream}, append(args, loadPage)...)...)
		if err != nil {
			return snapshot.Snapshot{}, false, s.wrap(ctx, "load", err)
		}
		var (
			n     int
			found snapshot.Snapshot
			ok    bool
			lowV  int64
		)
		for rows.Next() {
			var (
				version, schemaVersion, sec, crc int64
				nsec                             int32
				typ                              string
				data                             []byte
			)
			if err := rows.Scan(&version, &typ, &schemaVersion, &sec, &nsec, &data, &crc); err != nil {
				rows.Close()
				return snapshot.Snapshot{}, false, s.wrap(ctx, "load", err)
			}
			n++
			lowV = version
			if ok {
				continue
			}
			if checksum(stream, uint64(version), typ, schemaVersion, sec, nsec, data) != crc {
				s.log.Warn("snapshot/postgres: skipping corrupt snapshot",
					slog.String("stream", stream), slog.Int64("version", version), slog.Any("err", orchestrix.ErrCorrupt))
				continue
			}
			found, ok = snapshot.Snapshot{
				Stream: stream, Version: uint64(version), Type: typ, SchemaVersion: int(schemaVersion),
				Time: fromUnix(sec, nsec), Data: data,
			}, true
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return snapshot.Snapshot{}, false, s.wrap(ctx, "load", err)
		}
		if ok {
			return found, true, nil
		}
		if n < loadPage || lowV <= 1 {
			return snapshot.Snapshot{}, false, nil
		}
		args[1] = lowV - 1 // the next page: below every candidate seen
	}
}

// fromUnix is the inverse of (t.Unix(), t.Nanosecond()), mapping the zero
// time's encoding back to the zero time.
func fromUnix(sec int64, nsec int32) time.Time {
	t := time.Unix(sec, int64(nsec)).UTC()
	if t.Equal(time.Time{}) {
		return time.Time{}
	}
	return t
}

// Delete removes the snapshot of stream at version; a missing one is not
// an error.
func (s *Store) Delete(ctx context.Context, stream string, version uint64) error {
	if err := s.begin(ctx, stream); err != nil {
		return err
	}
	if version == 0 || version > math.MaxInt64 {
		return nil
	}
	if _, err := s.pool.Exec(ctx, s.del, stream, int64(version)); err != nil {
		return s.wrap(ctx, "delete", err)
	}
	return nil
}

// DeleteMatching removes every snapshot of stream matching c, corrupt or
// not.
func (s *Store) DeleteMatching(ctx context.Context, stream string, c snapshot.Criteria) error {
	if err := s.begin(ctx, stream); err != nil {
		return err
	}
	args, ok := criteriaArgs(c)
	if !ok {
		return nil
	}
	if _, err := s.pool.Exec(ctx, s.delMatching, append([]any{stream}, args...)...); err != nil {
		return s.wrap(ctx, "delete matching", err)
	}
	return nil
}

// Close makes every later call return orchestrix.ErrClosed and closes the
// pool if Open created it. It is idempotent.
func (s *Store) Close() error {
	if s.closed.CompareAndSwap(false, true) && s.ownPool {
		s.pool.Close()
	}
	return nil
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// checksum is the CRC-32C over every stored field, each length-prefixed
// or fixed-size so that no two snapshots encode alike.
func checksum(stream string, version uint64, typ string, schemaVersion, sec int64, nsec int32, data []byte) int64 {
	var b [8]byte
	c := uint32(0)
	put := func(v uint64) {
		binary.BigEndian.PutUint64(b[:], v)
		c = crc32.Update(c, castagnoli, b[:])
	}
	put(uint64(len(stream)))
	c = crc32.Update(c, castagnoli, []byte(stream))
	put(version)
	put(uint64(len(typ)))
	c = crc32.Update(c, castagnoli, []byte(typ))
	put(uint64(schemaVersion))
	put(uint64(sec))
	put(uint64(nsec))
	c = crc32.Update(c, castagnoli, data)
	return int64(c)
}

func validText(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] == 0 {
			return false
		}
	}
	return true
}
