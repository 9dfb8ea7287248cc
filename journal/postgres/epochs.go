package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/orchestrix/orchestrix/internal/pgmigrate"
	"github.com/orchestrix/orchestrix/journal"
)

var _ journal.Epochs = (*Journal)(nil)

// epochsComponent is the name the epochs table's migrations are recorded
// under; it is created on the first use of an Epochs method, so a
// deployment that never uses them never has the table.
const epochsComponent = "epochs"

var epochsMigrations = []pgmigrate.Migration{{Version: 1, SQL: `
	CREATE TABLE IF NOT EXISTS {{schema}}.epochs (
		name       text        PRIMARY KEY,
		epoch      bigint      NOT NULL CHECK (epoch > 0),
		holder     text        NOT NULL,
		updated_at timestamptz NOT NULL DEFAULT now()
	)`}}

// epochsReady creates the epochs table once per Journal.
func (j *Journal) epochsReady(ctx context.Context) error {
	j.epochsMu.Lock()
	defer j.epochsMu.Unlock()
	if j.epochsDone {
		return nil
	}
	if err := pgmigrate.Apply(ctx, j.pool, j.schema, epochsComponent, epochsMigrations); err != nil {
		return j.wrapDB(ctx, "epochs table", err)
	}
	j.epochsDone = true
	return nil
}

// NextEpoch raises the epoch of name and returns it; see journal.Epochs.
// It is one upsert in its own transaction: the row lock serialises
// concurrent callers.
func (j *Journal) NextEpoch(ctx context.Context, name, holder string) (uint64, error) {
	if err := j.epochArgs(ctx, name, holder); err != nil {
		return 0, err
	}
	var epoch int64
	err := j.pool.QueryRow(ctx, pgmigrate.Expand(`
		INSERT INTO {{schema}}.epochs AS e (name, epoch, holder) VALUES ($1, 1, $2)
		ON CONFLICT (name) DO UPDATE SET epoch = e.epoch + 1, holder = excluded.holder, updated_at = now()
		RETURNING epoch`, j.schema), name, holder).Scan(&epoch)
	if err != nil {
		return 0, j.wrapDB(ctx, fmt.Sprintf("next epoch of %q", name), err)
	}
	return uint64(epoch), nil
}

// Epoch returns the current epoch of name and its holder; see
// journal.Epochs.
func (j *Journal) Epoch(ctx context.Context, name string) (uint64, string, error) {
	if err := j.epochArgs(ctx, name, ""); err != nil {
		return 0, "", err
	}
	var (
		epoch  int64
		holder string
	)
	err := j.pool.QueryRow(ctx, pgmigrate.Expand(`SELECT epoch, holder FROM {{schema}}.epochs WHERE name = $1`, j.schema),
		name).Scan(&epoch, &holder)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return 0, "", nil
	case err != nil:
		return 0, "", j.wrapDB(ctx, fmt.Sprintf("epoch of %q", name), err)
	}
	return uint64(epoch), holder, nil
}

// ReleaseEpoch clears the holder of name if its epoch is still epoch; see
// journal.Epochs.
func (j *Journal) ReleaseEpoch(ctx context.Context, name string, epoch uint64) error {
	if err := j.epochArgs(ctx, name, ""); err != nil {
		return err
	}
	if epoch == 0 || epoch > 1<<63-1 {
		return nil // no epoch of name can be that one
	}
	_, err := j.pool.Exec(ctx, pgmigrate.Expand(`
		UPDATE {{schema}}.epochs SET holder = '', updated_at = now() WHERE name = $1 AND epoch = $2`, j.schema),
		name, int64(epoch))
	if err != nil {
		return j.wrapDB(ctx, fmt.Sprintf("release epoch %d of %q", epoch, name), err)
	}
	return nil
}

func (j *Journal) epochArgs(ctx context.Context, name, holder string) error {
	if err := j.check(ctx); err != nil {
		return err
	}
	if name == "" || !validText(name) || !validText(holder) {
		return fmt.Errorf("journal/postgres: epoch name %q or holder %q is empty or not storable text", name, holder)
	}
	return j.epochsReady(ctx)
}
