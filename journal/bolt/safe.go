package bolt

import (
	bbolt "go.etcd.io/bbolt"

	"github.com/orchestrix/orchestrix/internal/boltsafe"
)

// verifyFile checks the structure of the bbolt file at path before bbolt
// reads it (see package internal/boltsafe): the meta pages and the
// persisted free list always, and every reachable page when the file has
// no persisted free list, because bbolt.Open then scans every page on a
// goroutine of its own, where a damaged page would crash the process.
// It returns an error matching orchestrix.ErrCorrupt that names the page.
func verifyFile(path string) error {
	m, err := boltsafe.Verify(path, boltsafe.Options{})
	if err != nil || m.PageSize == 0 || m.FreelistSynced() {
		return err
	}
	_, err = boltsafe.Verify(path, boltsafe.Options{Full: true})
	return err
}

// view runs fn in a read transaction of db and turns a panic that bbolt
// raises on a damaged page into an error matching orchestrix.ErrCorrupt.
func view(db *bbolt.DB, fn func(*bbolt.Tx) error) error {
	return boltsafe.Do(db.Path(), func() error { return db.View(fn) })
}

// update is view for a read-write transaction.
func update(db *bbolt.DB, fn func(*bbolt.Tx) error) error {
	return boltsafe.Do(db.Path(), func() error { return db.Update(fn) })
}
