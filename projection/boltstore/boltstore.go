// Package boltstore keeps projection checkpoints in a bbolt database and
// makes read models in the same database exactly-once: a handler built
// with Store.Handler receives the *bbolt.Tx of the batch, and the
// projection's checkpoint is written in that same transaction, so after a
// crash either both the read model's writes and the checkpoint are there,
// or neither is. No event is applied twice, even though the journal
// delivers at least once.
//
// Use the same Store as the projection's CheckpointStore
// (projection.Projection.Checkpoints) and give Handler and Reset the
// projection's name:
//
//	store, _ := boltstore.New(db, boltstore.Config{})
//	p := projection.Projection{
//		Name:        "balances",
//		Checkpoints: store,
//		Handler:     store.Handler("balances", applyInTx),
//		Reset:       store.Reset("balances", clearBuckets),
//	}
package boltstore

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/orchestrix/orchestrix/internal/boltsafe"
	"github.com/orchestrix/orchestrix/projection"
	bolt "go.etcd.io/bbolt"
)

// DefaultBucket is the name of the bucket checkpoints are kept in when
// Config.Bucket is empty.
const DefaultBucket = "orchestrix.projection.checkpoints"

// ErrBadCheckpoint is returned when a stored checkpoint is not an 8-byte
// big-endian position (the bucket holds something else).
var ErrBadCheckpoint = errors.New("projection/boltstore: malformed checkpoint value")

// Config configures a Store. The zero value is ready to use.
type Config struct {
	// Bucket is the top-level bucket holding checkpoints, one key per
	// projection name. Empty means DefaultBucket.
	Bucket string
}

// Store is a projection.CheckpointStore in a bbolt database, and the
// source of exactly-once handlers. It does not own the database: closing
// it is the caller's business. Safe for concurrent use.
type Store struct {
	db     *bolt.DB
	bucket []byte
}

var _ projection.CheckpointStore = (*Store)(nil)

// New returns a Store keeping checkpoints in db, creating the bucket if
// needed.
func New(db *bolt.DB, cfg Config) (*Store, error) {
	if db == nil {
		return nil, errors.New("projection/boltstore: nil database")
	}
	bucket := DefaultBucket
	if cfg.Bucket != "" {
		bucket = cfg.Bucket
	}
	s := &Store{db: db, bucket: []byte(bucket)}
	if err := boltsafe.Update(db, func(tx *bolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists(s.bucket)
		return err
	}); err != nil {
		return nil, fmt.Errorf("projection/boltstore: creating bucket %q: %w", bucket, err)
	}
	return s, nil
}

// Checkpoint returns the checkpoint of name as seen by tx (0 when none).
// Use it to read the checkpoint consistently with a read model.
func (s *Store) Checkpoint(tx *bolt.Tx, name string) (uint64, error) {
	b := tx.Bucket(s.bucket)
	if b == nil {
		return 0, fmt.Errorf("projection/boltstore: bucket %q is missing", s.bucket)
	}
	v := b.Get([]byte(name))
	if v == nil {
		return 0, nil
	}
	if len(v) != 8 {
		return 0, fmt.Errorf("%w: %q is %d bytes", ErrBadCheckpoint, name, len(v))
	}
	return binary.BigEndian.Uint64(v), nil
}

// SetCheckpoint writes the checkpoint of name in tx.
func (s *Store) SetCheckpoint(tx *bolt.Tx, name string, position uint64) error {
	b := tx.Bucket(s.bucket)
	if b == nil {
		return fmt.Errorf("projection/boltstore: bucket %q is missing", s.bucket)
	}
	return b.Put([]byte(name), binary.BigEndian.AppendUint64(nil, position))
}

// Load implements projection.CheckpointStore.
func (s *Store) Load(ctx context.Context, name string) (uint64, error) {
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("projection/boltstore: loading checkpoint %q: %w", name, err)
	}
	var pos uint64
	err := boltsafe.View(s.db, func(tx *bolt.Tx) error {
		var err error
		pos, err = s.Checkpoint(tx, name)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("projection/boltstore: loading checkpoint %q: %w", name, err)
	}
	return pos, nil
}

// Save implements projection.CheckpointStore. A save that would not
// change the stored checkpoint writes nothing, so saving after an
// exactly-once batch, which already stored it, costs no commit.
func (s *Store) Save(ctx context.Context, name string, position uint64) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("projection/boltstore: saving checkpoint %q: %w", name, err)
	}
	var unchanged bool
	if err := boltsafe.View(s.db, func(tx *bolt.Tx) error {
		if b := tx.Bucket(s.bucket); b != nil {
			v := b.Get([]byte(name))
			unchanged = len(v) == 8 && binary.BigEndian.Uint64(v) == position
		}
		return nil
	}); err == nil && unchanged {
		return nil
	}
	if err := boltsafe.Update(s.db, func(tx *bolt.Tx) error { return s.SetCheckpoint(tx, name, position) }); err != nil {
		return fmt.Errorf("projection/boltstore: saving checkpoint %q: %w", name, err)
	}
	return nil
}

// TxHandler applies a batch of events to a read model inside tx. It must
// do all its writes through tx and must not commit or roll it back; an
// error rolls back the whole batch.
type TxHandler func(tx *bolt.Tx, batch []projection.Event) error

// Handler returns an exactly-once projection.Handler for the projection
// named name: each batch runs in one bbolt read-write transaction that
// first drops the events at or below the checkpoint stored in it (already
// applied, whatever the caller's own bookkeeping says), calls fn with the
// rest, and writes the checkpoint (the last event's position) before
// committing. The projection must use this Store as its checkpoint store
// and the same name.
func (s *Store) Handler(name string, fn TxHandler) projection.Handler {
	return projection.HandlerFunc(func(ctx context.Context, batch []projection.Event) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		if len(batch) == 0 {
			return nil
		}
		return boltsafe.Update(s.db, func(tx *bolt.Tx) error {
			done, err := s.Checkpoint(tx, name)
			if err != nil {
				return err
			}
			i := 0
			for i < len(batch) && batch[i].Position <= done {
				i++
			}
			if i == len(batch) {
				return nil
			}
			if err := fn(tx, batch[i:]); err != nil {
				return err
			}
			return s.SetCheckpoint(tx, name, batch[len(batch)-1].Position)
		})
	})
}

// Reset returns a projection.Projection.Reset hook for the projection
// named name: it runs fn (which clears the read model through tx) and
// sets the checkpoint to 0 in one transaction.
func (s *Store) Reset(name string, fn func(tx *bolt.Tx) error) func(ctx context.Context) error {
	return func(ctx context.Context) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		return boltsafe.Update(s.db, func(tx *bolt.Tx) error {
			if fn != nil {
				if err := fn(tx); err != nil {
					return err
				}
			}
			return s.SetCheckpoint(tx, name, 0)
		})
	}
}
