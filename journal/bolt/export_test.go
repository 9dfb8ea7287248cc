package bolt

import (
	"encoding/binary"
	"errors"
	"fmt"

	bbolt "go.etcd.io/bbolt"
)

// CorruptRecord flips one byte of the envelope part of the stored record
// of stream at version, so that reading it fails its checksum. Test only.
func CorruptRecord(j *Journal, stream string, version uint64) error {
	s, ok := j.snapshot(stream)
	if !ok {
		return fmt.Errorf("stream %q unknown", stream)
	}
	return j.db.Update(func(tx *bbolt.Tx) error {
		var pos uint64
		found := false
		if err := scanPositions(tx, s.st, s.pending, nil, version, version, func(_, p uint64) bool {
			pos, found = p, true
			return false
		}); err != nil {
			return err
		}
		if !found {
			return fmt.Errorf("stream %q has no version %d", stream, version)
		}
		b := tx.Bucket(bucketLog)
		first, block, ok := findBlock(b.Cursor(), pos)
		if !ok || pos < first {
			return errors.New("record missing")
		}
		n, err := blockCount(block)
		if err != nil {
			return err
		}
		f, err := blockFrame(block, n, int(pos-first))
		if err != nil || len(f) == 0 {
			return fmt.Errorf("record missing: %v", err)
		}
		damaged := append([]byte(nil), block...)
		end := len(block) - len(block[blockHeader+4*n:]) + int(binary.BigEndian.Uint32(block[blockHeader+4*int(pos-first):]))
		damaged[end-1] ^= 0x5a
		return b.Put(posKey(first), damaged)
	})
}

// SetBeforeCommit installs fn to run before every commit; an error from it
// fails the commit as an I/O error would. Nil removes it. Test only.
func SetBeforeCommit(j *Journal, fn func() error) {
	if fn == nil {
		j.hooks.beforeCommit.Store(nil)
		return
	}
	j.hooks.beforeCommit.Store(&fn)
}

// SetBeforePublish installs fn to run after every successful commit,
// before its records become visible to readers. Nil removes it. Test only.
func SetBeforePublish(j *Journal, fn func()) {
	if fn == nil {
		j.hooks.beforePublish.Store(nil)
		return
	}
	j.hooks.beforePublish.Store(&fn)
}

// SetNoFreelistSync makes the next Opens use bbolt's NoFreelistSync (the
// setting before issue 12) and returns a function that restores the
// default. Benchmarks only; not safe while a test opens journals
// concurrently.
func SetNoFreelistSync(on bool) (restore func()) {
	old := noFreelistSync
	noFreelistSync = on
	return func() { noFreelistSync = old }
}
