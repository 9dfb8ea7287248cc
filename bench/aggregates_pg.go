package main

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/orchestrix/orchestrix"
)

// pgBaselineTable is the table both PostgreSQL baselines use: what a Go
// team would create for an event store without a framework.
const pgBaselineTable = `CREATE TABLE events (
	stream  text   NOT NULL,
	version bigint NOT NULL,
	data    bytea  NOT NULL,
	UNIQUE (stream, version)
)`

// pgBaselinePool opens a pool on a fresh schema holding the baseline
// table; drop removes the schema and closes the pool. Zero maxConns
// means pgxpool's default.
func pgBaselinePool(ctx context.Context, dsn, scenario string, maxConns int32) (*pgxpool.Pool, func(), error) {
	schema := pgSchemaName(scenario)
	pcfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, nil, err
	}
	if maxConns > 0 {
		pcfg.MaxConns = maxConns
	}
	pcfg.ConnConfig.RuntimeParams["search_path"] = schema
	pool, err := pgxpool.NewWithConfig(ctx, pcfg)
	if err != nil {
		return nil, nil, err
	}
	drop := func() {
		pool.Close()
		_ = dropSchema(context.Background(), dsn, schema)
	}
	if _, err := pool.Exec(ctx, "CREATE SCHEMA "+pgx.Identifier{schema}.Sanitize()); err != nil {
		drop()
		return nil, nil, err
	}
	if _, err := pool.Exec(ctx, pgBaselineTable); err != nil {
		drop()
		return nil, nil, err
	}
	return pool, drop, nil
}

// pgInsertBaseline is the usual design on PostgreSQL without actors: a
// mutex per aggregate, and per command one INSERT of the next version in
// its own (autocommit) transaction over a pgx pool, the UNIQUE (stream,
// version) constraint guarding against a concurrent writer. The pool has
// as many connections as the journal's default (pgxpool's default: 4 per
// core, at least 4) so that neither side gets more server backends.
func pgInsertBaseline(dsn string, serverCPU func() (time.Duration, error), aggs, senders int, d time.Duration) (aggResult, error) {
	ctx := context.Background()
	pool, drop, err := pgBaselinePool(ctx, dsn, "baseline-insert", 0)
	if err != nil {
		return aggResult{}, err
	}
	defer drop()
	return perCommandBaseline(fmt.Sprintf("baseline-pgx-insert-per-command-%d", senders), aggs, senders, d, serverCPU,
		func(stream string, version uint64, body []byte) error {
			_, err := pool.Exec(ctx, "INSERT INTO events (stream, version, data) VALUES ($1, $2, $3)", stream, int64(version), body)
			return err
		})
}

// pgReplayBaseline is the PostgreSQL counterpart of replayBaseline: the
// same events' JSON payloads in the baseline table, replayed by one query
// ordered by version whose rows are decoded with encoding/json and folded
// with the same Evolve.
type pgReplayBaseline struct {
	pool *pgxpool.Pool
	drop func()
}

func newPGReplayBaseline(ctx context.Context, dsn string, reg *orchestrix.Registry, n int) (*pgReplayBaseline, error) {
	pool, drop, err := pgBaselinePool(ctx, dsn, "baseline-replay", 2)
	if err != nil {
		return nil, err
	}
	env, err := reg.Marshal(benchDeposited{Amount: 1, Memo: memo})
	if err != nil {
		drop()
		return nil, err
	}
	i := 0
	src := pgx.CopyFromFunc(func() ([]any, error) {
		if i == n {
			return nil, nil
		}
		i++
		return []any{"acct-hot", int64(i), env.Data}, nil
	})
	if _, err := pool.CopyFrom(ctx, pgx.Identifier{"events"}, []string{"stream", "version", "data"}, src); err != nil {
		drop()
		return nil, err
	}
	return &pgReplayBaseline{pool: pool, drop: drop}, nil
}

func (b *pgReplayBaseline) Close() error { b.drop(); return nil }

func (b *pgReplayBaseline) replay(n int) (time.Duration, error) {
	ctx := context.Background()
	start := time.Now()
	rows, err := b.pool.Query(ctx, "SELECT version, data FROM events WHERE stream = $1 ORDER BY version", "acct-hot")
	if err != nil {
		return 0, err
	}
	var s benchAccount
	var version int64
	var data []byte
	for rows.Next() {
		if err := rows.Scan(&version, &data); err != nil {
			rows.Close()
			return 0, err
		}
		var e benchDeposited
		if err := json.Unmarshal(data, &e); err != nil {
			rows.Close()
			return 0, err
		}
		s = benchAccounts.Evolve(s, e)
	}
	rows.Close()
	el := time.Since(start)
	if err := rows.Err(); err != nil {
		return 0, err
	}
	if s.Balance != int64(n) || version != int64(n) {
		return 0, fmt.Errorf("baseline replayed balance %d at version %d, want %d", s.Balance, version, n)
	}
	return el, nil
}
