package bolt_test

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	bbolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/orchestrix/orchestrix"
	"github.com/orchestrix/orchestrix/snapshot"
	"github.com/orchestrix/orchestrix/snapshot/bolt"
	"github.com/orchestrix/orchestrix/snapshot/snapshottest"
)

// key builds a key as the package documentation lays it out.
func key(stream string, version uint64) []byte {
	k := binary.BigEndian.AppendUint32(nil, uint32(len(stream)))
	k = append(k, stream...)
	return binary.BigEndian.AppendUint64(k, version)
}

// corrupt flips one bit of the data (or, with no data, of the time) of the
// stored snapshot, leaving its checksum as it was.
func corrupt(t *testing.T, db *bbolt.DB, stream string, version uint64) {
	t.Helper()
	require.NoError(t, db.Update(func(tx *bbolt.Tx) error {
		b := tx.Bucket([]byte(bolt.BucketName))
		if b == nil {
			return errors.New("no snapshots bucket")
		}
		v := b.Get(key(stream, version))
		if v == nil {
			return fmt.Errorf("no snapshot at %q/%d", stream, version)
		}
		damaged := append([]byte(nil), v...)
		damaged[len(damaged)-1] ^= 0x01
		return b.Put(key(stream, version), damaged)
	}))
}

// openDB opens a bbolt file the way a journal sharing it with the store
// would, without fsync (this is a test).
func openDB(t *testing.T, path string) *bbolt.DB {
	t.Helper()
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{NoSync: true, Timeout: time.Second})
	require.NoError(t, err)
	return db
}

func TestNew_Conformance(t *testing.T) {
	snapshottest.Run(t, func(t *testing.T) (snapshot.Store, snapshottest.Features) {
		db := openDB(t, filepath.Join(t.TempDir(), "shared.db"))
		t.Cleanup(func() { require.NoError(t, db.Close()) })
		s, err := bolt.New(db, bolt.Config{})
		require.NoError(t, err)
		return s, snapshottest.Features{
			Corrupt: func(t *testing.T, _ snapshot.Store, stream string, version uint64) {
				corrupt(t, db, stream, version)
			},
		}
	})
}

func TestOpen_Conformance(t *testing.T) {
	snapshottest.Run(t, func(t *testing.T) (snapshot.Store, snapshottest.Features) {
		s, err := bolt.Open(filepath.Join(t.TempDir(), "own.db"), bolt.Config{NoSync: true})
		require.NoError(t, err)
		// Corruption needs raw access to the file, which an owning store
		// does not share; TestNew_Conformance and
		// TestOpen_CorruptOnDisk_FallsBackAfterReopen cover it.
		return s, snapshottest.Features{}
	})
}

var at = time.Date(2026, time.February, 3, 4, 5, 6, 789, time.UTC)

func snap(stream string, v uint64) snapshot.Snapshot {
	return snapshot.Snapshot{Stream: stream, Version: v, Type: "test.State", SchemaVersion: 2, Time: at.Add(time.Duration(v) * time.Second), Data: fmt.Appendf(nil, "%s@%d", stream, v)}
}

func requireLoad(t *testing.T, s snapshot.Store, stream string, c snapshot.Criteria, want snapshot.Snapshot) {
	t.Helper()
	got, ok, err := s.Load(t.Context(), stream, c)
	require.NoError(t, err)
	require.True(t, ok, "no snapshot of %q", stream)
	require.Equal(t, want.Version, got.Version)
	require.Equal(t, want.Type, got.Type)
	require.Equal(t, want.SchemaVersion, got.SchemaVersion)
	require.True(t, want.Time.Equal(got.Time), "time %v, want %v", got.Time, want.Time)
	require.Equal(t, want.Data, got.Data)
}

func TestOpen_Reopen_SnapshotsPersist(t *testing.T) {
	path := filepath.Join(t.TempDir(), "snap.db")
	s, err := bolt.Open(path, bolt.Config{})
	require.NoError(t, err)
	for v := uint64(1); v <= 3; v++ {
		require.NoError(t, s.Save(t.Context(), snap("acc-1", v)))
	}
	require.NoError(t, s.Save(t.Context(), snap("acc-2", 9)))
	require.NoError(t, s.Close())

	s, err = bolt.Open(path, bolt.Config{})
	require.NoError(t, err)
	defer s.Close()
	requireLoad(t, s, "acc-1", snapshot.Latest, snap("acc-1", 3))
	requireLoad(t, s, "acc-1", snapshot.AtOrBelow(2), snap("acc-1", 2))
	requireLoad(t, s, "acc-2", snapshot.Latest, snap("acc-2", 9))
}

func TestOpen_CorruptOnDisk_FallsBackAfterReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "snap.db")
	s, err := bolt.Open(path, bolt.Config{NoSync: true})
	require.NoError(t, err)
	for v := uint64(1); v <= 3; v++ {
		require.NoError(t, s.Save(t.Context(), snap("acc", v)))
	}
	require.NoError(t, s.Close())

	db := openDB(t, path)
	corrupt(t, db, "acc", 3)
	// A value moved under another key fails its checksum as well: the
	// checksum covers the key.
	require.NoError(t, db.Update(func(tx *bbolt.Tx) error {
		b := tx.Bucket([]byte(bolt.BucketName))
		return b.Put(key("acc", 2), b.Get(key("acc", 1)))
	}))
	require.NoError(t, db.Close())

	s, err = bolt.Open(path, bolt.Config{NoSync: true})
	require.NoError(t, err)
	defer s.Close()
	requireLoad(t, s, "acc", snapshot.Latest, snap("acc", 1))
}

func TestStore_Load_GarbageValues_Skipped(t *testing.T) {
	db := openDB(t, filepath.Join(t.TempDir(), "snap.db"))
	defer db.Close()
	s, err := bolt.New(db, bolt.Config{})
	require.NoError(t, err)
	defer s.Close()
	require.NoError(t, s.Save(t.Context(), snap("acc", 1)))
	rng := rand.New(rand.NewPCG(1, 2))
	require.NoError(t, db.Update(func(tx *bbolt.Tx) error {
		b := tx.Bucket([]byte(bolt.BucketName))
		for v := uint64(2); v < 50; v++ {
			garbage := make([]byte, rng.IntN(40))
			for i := range garbage {
				garbage[i] = byte(rng.Uint32())
			}
			if err := b.Put(key("acc", v), garbage); err != nil {
				return err
			}
		}
		// A key under the stream's prefix that is not of the layout.
		return b.Put(append(key("acc", 0)[:4+3], 'x'), []byte("foreign"))
	}))
	requireLoad(t, s, "acc", snapshot.Latest, snap("acc", 1))
	require.NoError(t, s.DeleteMatching(t.Context(), "acc", snapshot.Criteria{MaxVersion: 100, MaxTime: at.Add(time.Hour)}))
	_, ok, err := s.Load(t.Context(), "acc", snapshot.Latest)
	require.NoError(t, err)
	require.False(t, ok)
}

func TestNew_Close_LeavesSharedDBOpen(t *testing.T) {
	db := openDB(t, filepath.Join(t.TempDir(), "shared.db"))
	defer db.Close()
	// The journal's buckets, which the store must leave alone.
	require.NoError(t, db.Update(func(tx *bbolt.Tx) error {
		for _, name := range []string{"log", "index", "heads", "ids", "meta"} {
			b, err := tx.CreateBucket([]byte(name))
			if err != nil {
				return err
			}
			if err := b.Put([]byte("k"), []byte(name)); err != nil {
				return err
			}
		}
		return nil
	}))
	s, err := bolt.New(db, bolt.Config{})
	require.NoError(t, err)
	require.NoError(t, s.Save(t.Context(), snap("acc", 1)))
	require.NoError(t, s.Close())
	require.NoError(t, s.Close())
	require.ErrorIs(t, s.Save(t.Context(), snap("acc", 2)), orchestrix.ErrClosed)

	var buckets []string
	require.NoError(t, db.View(func(tx *bbolt.Tx) error {
		return tx.ForEach(func(name []byte, b *bbolt.Bucket) error {
			buckets = append(buckets, string(name))
			if string(name) != bolt.BucketName {
				if got := string(b.Get([]byte("k"))); got != string(name) || b.Stats().KeyN != 1 {
					return fmt.Errorf("bucket %q changed", name)
				}
			}
			return nil
		})
	}))
	require.ElementsMatch(t, []string{"log", "index", "heads", "ids", "meta", "snapshots"}, buckets)

	// A new store on the same db sees what the first one saved.
	s2, err := bolt.New(db, bolt.Config{})
	require.NoError(t, err)
	defer s2.Close()
	requireLoad(t, s2, "acc", snapshot.Latest, snap("acc", 1))
}

func TestNew_InvalidArguments_Error(t *testing.T) {
	_, err := bolt.New(nil, bolt.Config{})
	require.Error(t, err)

	db := openDB(t, filepath.Join(t.TempDir(), "shared.db"))
	defer db.Close()
	_, err = bolt.New(db, bolt.Config{NoSync: true})
	require.ErrorContains(t, err, "NoSync")
	_, err = bolt.New(db, bolt.Config{LockTimeout: -time.Second})
	require.ErrorContains(t, err, "LockTimeout")
}

func TestOpen_FileLocked_TimesOut(t *testing.T) {
	path := filepath.Join(t.TempDir(), "snap.db")
	s, err := bolt.Open(path, bolt.Config{NoSync: true})
	require.NoError(t, err)
	defer s.Close()
	_, err = bolt.Open(path, bolt.Config{NoSync: true, LockTimeout: 50 * time.Millisecond})
	require.ErrorIs(t, err, bolterrors.ErrTimeout)
}

func TestOpen_BadPath_Error(t *testing.T) {
	_, err := bolt.Open(filepath.Join(t.TempDir(), "missing-dir", "snap.db"), bolt.Config{})
	require.Error(t, err)
}

func TestStore_Save_StreamTooLong_ErrInvalid(t *testing.T) {
	s, err := bolt.Open(filepath.Join(t.TempDir(), "snap.db"), bolt.Config{NoSync: true})
	require.NoError(t, err)
	defer s.Close()
	long := strings.Repeat("x", bolt.MaxStreamLen+1)
	require.ErrorIs(t, s.Save(t.Context(), snap(long, 1)), snapshot.ErrInvalid)
	_, _, err = s.Load(t.Context(), long, snapshot.Latest)
	require.ErrorIs(t, err, snapshot.ErrInvalid)

	longest := strings.Repeat("y", bolt.MaxStreamLen)
	require.NoError(t, s.Save(t.Context(), snap(longest, 1)))
	requireLoad(t, s, longest, snapshot.Latest, snap(longest, 1))
}

func TestStore_Save_KeyLayout_AsDocumented(t *testing.T) {
	db := openDB(t, filepath.Join(t.TempDir(), "shared.db"))
	defer db.Close()
	s, err := bolt.New(db, bolt.Config{})
	require.NoError(t, err)
	defer s.Close()
	require.NoError(t, s.Save(context.Background(), snap("ab", 258)))
	require.NoError(t, db.View(func(tx *bbolt.Tx) error {
		k, v := tx.Bucket([]byte(bolt.BucketName)).Cursor().First()
		require.Equal(t, []byte{0, 0, 0, 2, 'a', 'b', 0, 0, 0, 0, 0, 0, 1, 2}, k)
		require.Equal(t, byte(1), v[4], "format byte")
		require.True(t, strings.HasSuffix(string(v), "ab@258"), "data is the tail of the value")
		return nil
	}))
}
