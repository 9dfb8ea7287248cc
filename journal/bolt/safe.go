package bolt

import (
	bbolt "go.etcd.io/bbolt"

	"github.com/orchestrix/orchestrix/internal/boltsafe"
)

// view runs fn in a read transaction of db and turns a panic that bbolt
// raises on a damaged page into an error matching orchestrix.ErrCorrupt
// that names the file (see package internal/boltsafe).
func view(db *bbolt.DB, fn func(*bbolt.Tx) error) error { return boltsafe.View(db, fn) }

// update is view for a read-write transaction.
func update(db *bbolt.DB, fn func(*bbolt.Tx) error) error { return boltsafe.Update(db, fn) }
