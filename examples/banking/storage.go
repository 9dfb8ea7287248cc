package main

import (
	"context"
	"errors"
	"path/filepath"

	"github.com/orchestrix/orchestrix/examples/internal/obs"
	"github.com/orchestrix/orchestrix/journal"
	boltjournal "github.com/orchestrix/orchestrix/journal/bolt"
	pgjournal "github.com/orchestrix/orchestrix/journal/postgres"
	"github.com/orchestrix/orchestrix/projection"
	"github.com/orchestrix/orchestrix/projection/boltstore"
	"github.com/orchestrix/orchestrix/projection/pgstore"
	"github.com/orchestrix/orchestrix/snapshot"
	boltsnapshot "github.com/orchestrix/orchestrix/snapshot/bolt"
	pgsnapshot "github.com/orchestrix/orchestrix/snapshot/postgres"
)

// storage is where the bank keeps its events, snapshots and the saga
// runner's checkpoints.
type storage struct {
	journal     eventLog
	snapshots   snapshot.Store
	checkpoints projection.CheckpointStore
	close       func() error
}

// eventLog is a journal that can also tell how far it is written.
type eventLog interface {
	journal.Journal
	journal.Watcher
}

// backend opens the storage; the example calls it again to restart.
type backend func(ctx context.Context, o *obs.Obs) (*storage, error)

// boltBackend keeps everything in one bbolt file in dir: the journal, its
// snapshots and the checkpoints share it.
func boltBackend(dir string) backend {
	return func(_ context.Context, o *obs.Obs) (*storage, error) {
		j, err := boltjournal.Open(filepath.Join(dir, "bank.db"), boltjournal.Config{Metrics: o.Metrics(), TracerProvider: o.TracerProvider()})
		if err != nil {
			return nil, err
		}
		snaps, err := boltsnapshot.New(j.DB(), boltsnapshot.Config{})
		if err != nil {
			return nil, errors.Join(err, j.Close())
		}
		checkpoints, err := boltstore.New(j.DB(), boltstore.Config{})
		if err != nil {
			return nil, errors.Join(err, j.Close())
		}
		return &storage{journal: j, snapshots: snaps, checkpoints: checkpoints,
			close: func() error { return errors.Join(snaps.Close(), j.Close()) }}, nil
	}
}

// postgresBackend keeps everything in the PostgreSQL database at dsn, as a
// deployment of several processes would.
func postgresBackend(dsn string) backend {
	return func(ctx context.Context, o *obs.Obs) (*storage, error) {
		j, err := pgjournal.Open(ctx, dsn, pgjournal.Config{Metrics: o.Metrics(), TracerProvider: o.TracerProvider()})
		if err != nil {
			return nil, err
		}
		snaps, err := pgsnapshot.Open(ctx, dsn, pgsnapshot.Config{})
		if err != nil {
			return nil, errors.Join(err, j.Close())
		}
		checkpoints, err := pgstore.Open(ctx, dsn, pgstore.Config{})
		if err != nil {
			return nil, errors.Join(err, snaps.Close(), j.Close())
		}
		return &storage{journal: j, snapshots: snaps, checkpoints: checkpoints,
			close: func() error { return errors.Join(checkpoints.Close(), snaps.Close(), j.Close()) }}, nil
	}
}
