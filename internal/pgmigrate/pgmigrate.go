// Package pgmigrate applies the versioned schema migrations of Orchestrix's
// PostgreSQL backends (journal/postgres, snapshot/postgres).
//
// Every component (for example "journal") has an ordered list of
// migrations numbered from 1. Applied migrations are recorded in the
// schema's schema_migrations table, keyed by component and version. Apply
// runs in one transaction under a transaction-scoped advisory lock derived
// from the schema name, so any number of processes may open the same
// schema at once: one applies what is missing, the others wait and then
// find nothing to do.
package pgmigrate

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Migration is one schema change. SQL may contain several statements; the
// placeholder {{schema}} is replaced by the quoted schema name.
type Migration struct {
	Version int
	SQL     string
}

// CurrentSchema returns the schema the pool's connections create objects
// in by default (the first existing schema of search_path).
func CurrentSchema(ctx context.Context, pool *pgxpool.Pool) (string, error) {
	var schema *string
	if err := pool.QueryRow(ctx, "SELECT current_schema()").Scan(&schema); err != nil {
		return "", fmt.Errorf("pgmigrate: current schema: %w", err)
	}
	if schema == nil || *schema == "" {
		return "public", nil
	}
	return *schema, nil
}

// Expand replaces {{schema}} in sql by the quoted schema name.
func Expand(sql, schema string) string {
	return strings.ReplaceAll(sql, "{{schema}}", pgx.Identifier{schema}.Sanitize())
}

// Apply creates schema if needed and applies the migrations of component
// that are not recorded yet, in version order, in one transaction. Versions
// must be 1, 2, 3, … in order.
func Apply(ctx context.Context, pool *pgxpool.Pool, schema, component string, migrations []Migration) error {
	for i, m := range migrations {
		if m.Version != i+1 {
			return fmt.Errorf("pgmigrate: %s migration %d has version %d, want %d", component, i, m.Version, i+1)
		}
	}
	tx, err := pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("pgmigrate: begin: %w", err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()

	if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock(hashtextextended('orchestrix.migrate.' || $1, 0))", schema); err != nil {
		return fmt.Errorf("pgmigrate: lock: %w", err)
	}
	ddl := Expand(`
		CREATE SCHEMA IF NOT EXISTS {{schema}};
		CREATE TABLE IF NOT EXISTS {{schema}}.schema_migrations (
			component  text        NOT NULL,
			version    integer     NOT NULL,
			applied_at timestamptz NOT NULL DEFAULT now(),
			PRIMARY KEY (component, version)
		)`, schema)
	if _, err := tx.Exec(ctx, ddl); err != nil {
		return fmt.Errorf("pgmigrate: create schema_migrations: %w", err)
	}
	var current int
	q := Expand("SELECT coalesce(max(version), 0) FROM {{schema}}.schema_migrations WHERE component = $1", schema)
	if err := tx.QueryRow(ctx, q, component).Scan(&current); err != nil {
		return fmt.Errorf("pgmigrate: read applied migrations: %w", err)
	}
	if current > len(migrations) {
		return fmt.Errorf("pgmigrate: schema %q has %s migration %d applied, this code knows only %d (downgrade?)",
			schema, component, current, len(migrations))
	}
	ins := Expand("INSERT INTO {{schema}}.schema_migrations (component, version) VALUES ($1, $2)", schema)
	for _, m := range migrations[current:] {
		if _, err := tx.Exec(ctx, Expand(m.SQL, schema)); err != nil {
			return fmt.Errorf("pgmigrate: %s migration %d: %w", component, m.Version, err)
		}
		if _, err := tx.Exec(ctx, ins, component, m.Version); err != nil {
			return fmt.Errorf("pgmigrate: record %s migration %d: %w", component, m.Version, err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("pgmigrate: commit: %w", err)
	}
	return nil
}

// Prepare resolves schema (empty means the pool's current schema) and
// applies the migrations of component there; it returns the schema used.
func Prepare(ctx context.Context, pool *pgxpool.Pool, schema, component string, migrations []Migration) (string, error) {
	if schema == "" {
		var err error
		if schema, err = CurrentSchema(ctx, pool); err != nil {
			return "", err
		}
	}
	if err := Apply(ctx, pool, schema, component, migrations); err != nil {
		return "", err
	}
	return schema, nil
}

// Connect opens a pool to dsn with at most maxConns connections (pgxpool's
// default when maxConns <= 0) and the given runtime parameters on every
// connection.
func Connect(ctx context.Context, dsn string, maxConns int32, params map[string]string) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("parse DSN: %w", err)
	}
	if maxConns > 0 {
		cfg.MaxConns = maxConns
	}
	for k, v := range params {
		cfg.ConnConfig.RuntimeParams[k] = v
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connect: %w", err)
	}
	return pool, nil
}
