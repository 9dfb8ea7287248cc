// Package bolt is a snapshot.Store on bbolt, the embedded key/value store.
//
// A Store either owns its file (Open) or shares a *bbolt.DB opened by
// someone else, typically the bbolt journal, so that events and snapshots
// live in one file (New). Either way it uses one top-level bucket,
// "snapshots", and nothing else.
//
// # Layout
//
// Key (one per snapshot):
//
//	uint32 big-endian  len(stream)
//	[]byte             stream
//	uint64 big-endian  version
//
// The length prefix keeps streams apart: stream "a" and stream "ab" have
// different prefixes, so the keys of one stream are contiguous and sorted by
// version, and Load is a reverse cursor seek from (stream, MaxVersion) that
// stops at MinVersion or at the end of the stream's prefix.
//
// Value:
//
//	uint32 big-endian  CRC-32C (Castagnoli) of the key followed by the rest of the value
//	byte               format, 1
//	uvarint            len(type)
//	[]byte             type
//	varint             schema version
//	int64 big-endian   time, seconds since the Unix epoch
//	uint32 big-endian  time, nanoseconds within the second
//	[]byte             data (the rest of the value)
//
// Time is stored as seconds and nanoseconds rather than UnixNano, whose range
// (years 1678 to 2262) excludes the zero time; it is loaded in UTC. The
// checksum covers the key, so a value found under the wrong key also fails
// it. A snapshot that fails its checksum or cannot be decoded is skipped by
// Load (with a warning on Config.Logger) and removed by DeleteMatching like
// any snapshot in its version range.
//
// # Durability
//
// Every Save, Delete and DeleteMatching is one bbolt read-write transaction,
// which is durable (fsync) when it returns unless the file was opened with
// Config.NoSync. A commit that fails is reported as an error matching
// orchestrix.ErrOutcomeUnknown: the write may or may not be on disk.
package bolt

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"log/slog"
	"math"
	"sync"
	"time"

	bbolt "go.etcd.io/bbolt"

	"github.com/orchestrix/orchestrix"
	"github.com/orchestrix/orchestrix/internal/boltsafe"
	"github.com/orchestrix/orchestrix/snapshot"
)

// BucketName is the top-level bucket holding every snapshot.
const BucketName = "snapshots"

// DefaultLockTimeout is how long Open waits for the file lock when
// Config.LockTimeout is 0.
const DefaultLockTimeout = 5 * time.Second

// Config configures a Store. The zero value works.
type Config struct {
	// NoSync skips the fsync at the end of every write. TESTS ONLY: a crash
	// can lose or corrupt recent snapshots, or the whole file. It applies
	// only to Open; New returns an error when it is set, because a shared
	// database keeps its owner's setting.
	NoSync bool

	// LockTimeout bounds how long Open waits for the file lock held by
	// another open of the same file; 0 means DefaultLockTimeout. Open
	// returns an error wrapping bbolt.ErrTimeout when it expires.
	LockTimeout time.Duration

	// Logger receives a warning for every snapshot Load skips because it
	// failed its checksum or could not be decoded. Nil discards them.
	Logger *slog.Logger
}

// Validate reports whether o is usable.
func (c Config) Validate() error {
	if c.LockTimeout < 0 {
		return fmt.Errorf("snapshot/bolt: negative LockTimeout %v", c.LockTimeout)
	}
	return nil
}

// Store is a snapshot.Store in a bbolt database. All methods are safe for
// concurrent use.
type Store struct {
	db     *bbolt.DB
	owned  bool
	log    *slog.Logger
	bucket []byte

	// mu is held for reading by every call for its whole duration and for
	// writing by Close, so Close waits for calls in flight and no call
	// touches the database after Close.
	mu     sync.RWMutex
	closed bool
}

var _ snapshot.Store = (*Store)(nil)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

const (
	formatV1 = 1
	// lenPrefix and versionLen are the fixed parts of a key.
	lenPrefix  = 4
	versionLen = 8
	// MaxStreamLen is the longest stream name a key can hold.
	MaxStreamLen = bbolt.MaxKeySize - lenPrefix - versionLen
	// ctxEvery is how many cursor steps run between context checks.
	ctxEvery = 64
)

// Open opens (creating if needed) the bbolt file at path and returns a store
// that owns it: Close closes the file.
func Open(path string, cfg Config) (*Store, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	timeout := cfg.LockTimeout
	if timeout == 0 {
		timeout = DefaultLockTimeout
	}
	db, err := boltsafe.Open(path, 0o600, &bbolt.Options{Timeout: timeout, NoSync: cfg.NoSync})
	if err != nil {
		return nil, boltsafe.OpenError("snapshot/bolt", path, err)
	}
	s, err := newStore(db, cfg, true)
	if err != nil {
		return nil, errors.Join(err, db.Close())
	}
	return s, nil
}

// New returns a store in db, which stays owned by the caller: Close does not
// close db, and the caller must not close db before closing the store. New
// creates the "snapshots" bucket if it is missing and touches no other
// bucket. Config.NoSync must be false (db's own setting applies).
func New(db *bbolt.DB, cfg Config) (*Store, error) {
	if db == nil {
		return nil, errors.New("snapshot/bolt: nil *bbolt.DB")
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.NoSync {
		return nil, errors.New("snapshot/bolt: Config.NoSync is only for Open; a shared database keeps its owner's sync setting")
	}
	return newStore(db, cfg, false)
}

func newStore(db *bbolt.DB, cfg Config, owned bool) (*Store, error) {
	bucket := []byte(BucketName)
	err := boltsafe.Update(db, func(tx *bbolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists(bucket)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("snapshot/bolt: create bucket %q: %w", BucketName, err)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Store{db: db, owned: owned, log: log, bucket: bucket}, nil
}

// begin holds s.mu for reading and checks, in order: closed, context, stream
// name. On success the caller must call s.mu.RUnlock.
func (s *Store) begin(ctx context.Context, stream string) error {
	s.mu.RLock()
	err := func() error {
		if s.closed {
			return orchestrix.ErrClosed
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		return checkStream(stream)
	}()
	if err != nil {
		s.mu.RUnlock()
	}
	return err
}

func checkStream(stream string) error {
	if stream == "" {
		return fmt.Errorf("%w: empty stream name", snapshot.ErrInvalid)
	}
	if len(stream) > MaxStreamLen {
		return fmt.Errorf("%w: stream name of %d bytes exceeds %d", snapshot.ErrInvalid, len(stream), MaxStreamLen)
	}
	return nil
}

// update runs fn in a read-write transaction. An error from fn is returned
// as is (nothing was written); an error from the commit matches
// orchestrix.ErrOutcomeUnknown.
func (s *Store) update(fn func(b *bbolt.Bucket) error) error {
	var fnErr error
	err := boltsafe.Update(s.db, func(tx *bbolt.Tx) error {
		b := tx.Bucket(s.bucket)
		if b == nil {
			fnErr = fmt.Errorf("snapshot/bolt: bucket %q is missing", BucketName)
		} else {
			fnErr = fn(b)
		}
		return fnErr
	})
	if err != nil && fnErr == nil {
		return fmt.Errorf("%w: snapshot/bolt: commit: %w", orchestrix.ErrOutcomeUnknown, err)
	}
	return err
}

// Save stores snap, replacing any snapshot of the same stream and version,
// in one transaction.
func (s *Store) Save(ctx context.Context, snap snapshot.Snapshot) error {
	if err := s.begin(ctx, snap.Stream); err != nil {
		return err
	}
	defer s.mu.RUnlock()
	if err := snap.Validate(); err != nil {
		return err
	}
	key := encodeKey(snap.Stream, snap.Version)
	value := encodeValue(key, snap)
	if len(value) > bbolt.MaxValueSize {
		return fmt.Errorf("%w: snapshot of stream %q at version %d encodes to %d bytes, above bbolt's %d",
			orchestrix.ErrTooLarge, snap.Stream, snap.Version, len(value), bbolt.MaxValueSize)
	}
	return s.update(func(b *bbolt.Bucket) error { return b.Put(key, value) })
}

// Load returns the newest snapshot of stream matching c whose checksum
// holds; see snapshot.Store. The returned Data belongs to the caller.
func (s *Store) Load(ctx context.Context, stream string, c snapshot.Criteria) (snapshot.Snapshot, bool, error) {
	if err := s.begin(ctx, stream); err != nil {
		return snapshot.Snapshot{}, false, err
	}
	defer s.mu.RUnlock()
	if c.MinVersion > c.MaxVersion {
		return snapshot.Snapshot{}, false, nil
	}
	var (
		out   snapshot.Snapshot
		found bool
	)
	err := boltsafe.View(s.db, func(tx *bbolt.Tx) error {
		b := tx.Bucket(s.bucket)
		if b == nil {
			return fmt.Errorf("snapshot/bolt: bucket %q is missing", BucketName)
		}
		prefix := encodeKey(stream, 0)[:lenPrefix+len(stream)]
		seek := encodeKey(stream, c.MaxVersion)
		cur := b.Cursor()
		k, v := cur.Seek(seek)
		switch {
		case k == nil:
			k, v = cur.Last()
		case !bytes.Equal(k, seek):
			k, v = cur.Prev()
		}
		for steps := 1; k != nil && bytes.HasPrefix(k, prefix); k, v = cur.Prev() {
			if steps%ctxEvery == 0 {
				if err := ctx.Err(); err != nil {
					return err
				}
			}
			steps++
			if len(k) != len(prefix)+versionLen {
				continue // not a key of this store's layout
			}
			version := binary.BigEndian.Uint64(k[len(prefix):])
			if version < c.MinVersion {
				return nil
			}
			snap, err := decodeValue(k, v)
			if err != nil {
				s.log.Warn("snapshot/bolt: skipping unreadable snapshot",
					"stream", stream, "version", version, "error", err)
				continue
			}
			snap.Stream = stream
			snap.Version = version
			if !c.Matches(snap) {
				continue
			}
			snap.Data = bytes.Clone(snap.Data) // v is only valid inside the transaction
			out, found = snap, true
			return nil
		}
		return nil
	})
	if err != nil {
		return snapshot.Snapshot{}, false, err
	}
	return out, found, nil
}

// Delete removes the snapshot of stream at version, if there is one, in one
// transaction.
func (s *Store) Delete(ctx context.Context, stream string, version uint64) error {
	if err := s.begin(ctx, stream); err != nil {
		return err
	}
	defer s.mu.RUnlock()
	key := encodeKey(stream, version)
	return s.update(func(b *bbolt.Bucket) error { return b.Delete(key) })
}

// DeleteMatching removes every snapshot of stream matching c in one
// transaction. With a time bound, snapshots in the version range that fail
// their checksum are removed too: their time is unknown and Load can never
// return them.
func (s *Store) DeleteMatching(ctx context.Context, stream string, c snapshot.Criteria) error {
	if err := s.begin(ctx, stream); err != nil {
		return err
	}
	defer s.mu.RUnlock()
	if c.MinVersion > c.MaxVersion {
		return nil
	}
	return s.update(func(b *bbolt.Bucket) error {
		prefix := encodeKey(stream, 0)[:lenPrefix+len(stream)]
		var doomed [][]byte
		cur := b.Cursor()
		steps := 0
		for k, v := cur.Seek(encodeKey(stream, c.MinVersion)); k != nil && bytes.HasPrefix(k, prefix); k, v = cur.Next() {
			steps++
			if steps%ctxEvery == 0 {
				if err := ctx.Err(); err != nil {
					return err
				}
			}
			if len(k) != len(prefix)+versionLen {
				continue
			}
			if binary.BigEndian.Uint64(k[len(prefix):]) > c.MaxVersion {
				break
			}
			if !c.MaxTime.IsZero() {
				snap, err := decodeValue(k, v)
				if err == nil && snap.Time.After(c.MaxTime) {
					continue
				}
			}
			doomed = append(doomed, bytes.Clone(k))
		}
		// Deleting behind a live cursor can make it skip keys; delete after.
		for _, k := range doomed {
			if err := b.Delete(k); err != nil {
				return err
			}
		}
		return nil
	})
}

// Close waits for calls in flight, then makes every later call return
// orchestrix.ErrClosed. A store from Open closes its file; a store from New
// leaves the database open. Close is idempotent; only the first call can
// return an error (from closing the file).
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	if s.owned {
		if err := s.db.Close(); err != nil {
			return fmt.Errorf("snapshot/bolt: close: %w", err)
		}
	}
	return nil
}

func encodeKey(stream string, version uint64) []byte {
	key := make([]byte, 0, lenPrefix+len(stream)+versionLen)
	key = binary.BigEndian.AppendUint32(key, uint32(len(stream)))
	key = append(key, stream...)
	return binary.BigEndian.AppendUint64(key, version)
}

func encodeValue(key []byte, s snapshot.Snapshot) []byte {
	n := 4 + 1 + binary.MaxVarintLen64 + len(s.Type) + binary.MaxVarintLen64 + 8 + 4 + len(s.Data)
	v := make([]byte, 4, n)
	v = append(v, formatV1)
	v = binary.AppendUvarint(v, uint64(len(s.Type)))
	v = append(v, s.Type...)
	v = binary.AppendVarint(v, int64(s.SchemaVersion))
	v = binary.BigEndian.AppendUint64(v, uint64(s.Time.Unix()))
	v = binary.BigEndian.AppendUint32(v, uint32(s.Time.Nanosecond()))
	v = append(v, s.Data...)
	binary.BigEndian.PutUint32(v, crc32.Update(crc32.Checksum(key, castagnoli), castagnoli, v[4:]))
	return v
}

// decodeValue checks and decodes the value stored under key. The returned
// Data aliases v. The error matches orchestrix.ErrCorrupt.
func decodeValue(key, v []byte) (snapshot.Snapshot, error) {
	var s snapshot.Snapshot
	if len(v) < 5 {
		return s, fmt.Errorf("%w: value of %d bytes is too short", orchestrix.ErrCorrupt, len(v))
	}
	want := binary.BigEndian.Uint32(v)
	if got := crc32.Update(crc32.Checksum(key, castagnoli), castagnoli, v[4:]); got != want {
		return s, fmt.Errorf("%w: checksum %08x, stored %08x", orchestrix.ErrCorrupt, got, want)
	}
	if v[4] != formatV1 {
		return s, fmt.Errorf("%w: unknown format %d", orchestrix.ErrCorrupt, v[4])
	}
	rest := v[5:]
	typeLen, n := binary.Uvarint(rest)
	if n <= 0 || typeLen > uint64(len(rest)-n) {
		return s, fmt.Errorf("%w: bad type length", orchestrix.ErrCorrupt)
	}
	rest = rest[n:]
	s.Type = string(rest[:typeLen])
	rest = rest[typeLen:]
	schema, n := binary.Varint(rest)
	if n <= 0 || schema < math.MinInt || schema > math.MaxInt {
		return s, fmt.Errorf("%w: bad schema version", orchestrix.ErrCorrupt)
	}
	s.SchemaVersion = int(schema)
	rest = rest[n:]
	if len(rest) < 12 {
		return s, fmt.Errorf("%w: truncated time", orchestrix.ErrCorrupt)
	}
	sec := int64(binary.BigEndian.Uint64(rest))
	nsec := binary.BigEndian.Uint32(rest[8:])
	if nsec >= 1e9 {
		return s, fmt.Errorf("%w: bad nanoseconds %d", orchestrix.ErrCorrupt, nsec)
	}
	s.Time = time.Unix(sec, int64(nsec)).UTC()
	s.Data = rest[12:]
	return s, nil
}
