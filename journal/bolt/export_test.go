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
	s, ok, err := j.snapshot(stream)
	if err != nil {
		return err
	}
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

// CheckpointState reads the closed (or crashed) journal file at path and
// returns its checkpoint position, the number of records after it that a
// checkpoint round already indexed (version at or below the stream's head
// in journal.streams: a round was in progress) and the number not yet
// indexed. Test only.
func CheckpointState(path string) (checkpoint uint64, indexed, unindexed int, err error) {
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{ReadOnly: true})
	if err != nil {
		return 0, 0, 0, err
	}
	defer db.Close()
	err = db.View(func(tx *bbolt.Tx) error {
		if v := tx.Bucket(bucketMeta).Get(metaCheckpoint); len(v) == 8 {
			checkpoint = binary.BigEndian.Uint64(v)
		}
		strB := tx.Bucket(bucketStreams)
		c := tx.Bucket(bucketLog).Cursor()
		first, block, ok := findBlock(c, checkpoint+1)
		for ; ok; ok = block != nil {
			n, err := blockCount(block)
			if err != nil {
				return err
			}
			for i := range n {
				f, err := blockFrame(block, n, i)
				if err != nil {
					return err
				}
				if len(f) == 0 || first+uint64(i) <= checkpoint {
					continue
				}
				fv, err := parseFrame(f)
				if err != nil {
					return err
				}
				if v := strB.Get(fv.stream); len(v) == 16 && fv.version <= binary.BigEndian.Uint64(v) {
					indexed++
				} else {
					unindexed++
				}
			}
			var k []byte
			if k, block = c.Next(); k != nil {
				first = binary.BigEndian.Uint64(k)
			}
		}
		return nil
	})
	return checkpoint, indexed, unindexed, err
}

// SetFormat1 rewrites the format of the closed journal file at path to
// version 1 (the layout before spread checkpoints). Test only.
func SetFormat1(path string) error {
	db, err := bbolt.Open(path, 0o600, nil)
	if err != nil {
		return err
	}
	defer db.Close()
	return db.Update(func(tx *bbolt.Tx) error {
		return tx.Bucket(bucketMeta).Put(metaFormat, binary.BigEndian.AppendUint64(nil, formatVersion1))
	})
}

// FileFormat returns the layout version of the closed journal file at
// path. Test only.
func FileFormat(path string) (uint64, error) {
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{ReadOnly: true})
	if err != nil {
		return 0, err
	}
	defer db.Close()
	var f uint64
	err = db.View(func(tx *bbolt.Tx) error {
		var err error
		f, err = fileFormat(tx.Bucket(bucketMeta))
		return err
	})
	return f, err
}

// CachedStreams returns how many stream states the journal keeps in
// memory. Test only.
func CachedStreams(j *Journal) int {
	j.mu.RLock()
	defer j.mu.RUnlock()
	return len(j.streams)
}

// IsCached reports whether stream's state is in memory. Test only.
func IsCached(j *Journal, stream string) bool {
	j.mu.RLock()
	defer j.mu.RUnlock()
	return j.streams[stream] != nil
}
