// Package bolt is a pii.KeyStore in a bbolt file of its own.
//
// The store keeps two buckets: subject → active key id, and key id → the
// 32-byte key material. Delete (or DeleteMany, for many subjects in one
// go) replaces both with one-byte tombstones (so the erased subject and its
// key ids are remembered) and then removes the old key bytes from the
// file: bbolt never overwrites a page in place, and every write of a leaf
// leaves its previous copy in a free page, so copies of a key linger in
// the file's free pages. Once the tombstones are committed no page of the
// live tree holds the erased keys, so DeleteMany reads the whole file once
// and overwrites every remaining copy of the erased keys' bytes with zeros
// (a commit first makes both meta pages refer to trees without the keys),
// then syncs the file: the cost is one read of the file and a few small
// writes per erasure, not a rewrite (see BENCHMARKS.md). The tombstone
// commit also records a mark that the last step clears; when a crash
// interrupts the pass, Open finds the mark and compacts the database into
// a fresh file holding only live data, overwrites the whole old file with
// zeros and renames the fresh file over it — each step synced, each
// crash-safe: Open finishes or discards an interrupted compaction.
//
// Keys live in a file of their own rather than in the journal's database
// because the compaction needs exclusive ownership of the file, and
// because keeping keys apart from the data they protect means a copy of
// the journal alone reveals nothing.
//
// Residual risk, which no user-space program can rule out: copies of the
// key bytes outside the file's current blocks — the operating system's
// page cache until it is reclaimed, file system journals, copy-on-write
// or snapshotting file systems, SSD wear levelling, and backups of the
// key file. Put the key file on storage where deleted blocks do not
// survive, and keep it out of long-lived backups.
package bolt

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"

	"go.etcd.io/bbolt"

	"github.com/orchestrix/orchestrix"
	"github.com/orchestrix/orchestrix/internal/boltsafe"
	"github.com/orchestrix/orchestrix/pii"
)

// Bucket names.
const (
	SubjectsBucket = "pii_subjects"
	KeysBucket     = "pii_keys"
	// MetaBucket holds the store's own bookkeeping: the mark of an
	// erasure whose removal of key bytes has not finished.
	MetaBucket = "pii_meta"
)

// scrubPendingKey, in MetaBucket, marks an erasure whose key bytes may
// still be in free pages of the file.
const scrubPendingKey = "scrub_pending"

// tombstone replaces the key id of an erased subject and the material of
// a destroyed key.
var tombstone = []byte{0}

// DefaultLockTimeout is how long Open waits for the file lock when
// Config.LockTimeout is 0.
const DefaultLockTimeout = 5 * time.Second

// Suffixes of the temporary files of a compaction (see the package
// documentation): a compaction in progress, and a finished one not yet
// renamed into place.
const (
	compactingSuffix = ".compacting"
	compactedSuffix  = ".compacted"
)

// Config configures a Store. The zero value works.
type Config struct {
	// NoSync skips every fsync. TESTS ONLY: a crash can lose keys — which
	// erases data — or resurrect destroyed ones.
	NoSync bool
	// LockTimeout bounds how long Open waits for the file lock held by
	// another open of the same file; 0 means DefaultLockTimeout.
	LockTimeout time.Duration
}

// Validate reports whether o is usable.
func (c Config) Validate() error {
	if c.LockTimeout < 0 {
		return fmt.Errorf("pii/bolt: negative LockTimeout %v", c.LockTimeout)
	}
	return nil
}

// Store is a pii.KeyStore in a bbolt file. All methods are safe for
// concurrent use; Delete and DeleteMany exclude every other call while they
// remove key bytes from the file.
type Store struct {
	path string
	opts Config

	// mu is held for reading by Get and GetOrCreate and for writing by
	// Delete and Close.
	mu     sync.RWMutex
	db     *bbolt.DB
	closed bool
	broken error // set when a failed compaction left no open database
}

var (
	_ pii.KeyStore     = (*Store)(nil)
	_ pii.BatchDeleter = (*Store)(nil)
)

// Open opens (creating if needed) the key store file at path, first
// finishing or discarding a compaction a crash interrupted.
func Open(path string, cfg Config) (*Store, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &Store{path: path, opts: cfg}
	if err := s.open(); err != nil {
		return nil, err
	}
	err := boltsafe.Update(s.db, func(tx *bbolt.Tx) error {
		for _, name := range []string{SubjectsBucket, KeysBucket, MetaBucket} {
			if _, err := tx.CreateBucketIfNotExists([]byte(name)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, errors.Join(fmt.Errorf("pii/bolt: create buckets: %w", err), s.db.Close())
	}
	var pending bool
	if err := boltsafe.View(s.db, func(tx *bbolt.Tx) error {
		pending = tx.Bucket([]byte(MetaBucket)).Get([]byte(scrubPendingKey)) != nil
		return nil
	}); err != nil {
		return nil, errors.Join(fmt.Errorf("pii/bolt: %w", err), s.db.Close())
	}
	if pending {
		// A crash interrupted an erasure's removal of key bytes.
		if err := s.compactPending(); err != nil {
			return nil, errors.Join(err, s.Close())
		}
	}
	return s, nil
}

// open recovers from an interrupted compaction and opens the database.
func (s *Store) open() error {
	compacted := s.path + compactedSuffix
	if _, err := os.Stat(compacted); err == nil {
		// A finished compaction: the old file may be partly zeroed.
		if err := os.Rename(compacted, s.path); err != nil {
			return fmt.Errorf("pii/bolt: finishing an interrupted compaction: %w", err)
		}
		if err := s.syncDir(); err != nil {
			return err
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("pii/bolt: %w", err)
	}
	if err := os.Remove(s.path + compactingSuffix); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("pii/bolt: discarding an interrupted compaction: %w", err)
	}
	timeout := s.opts.LockTimeout
	if timeout == 0 {
		timeout = DefaultLockTimeout
	}
	db, err := boltsafe.Open(s.path, 0o600, &bbolt.Options{Timeout: timeout, NoSync: s.opts.NoSync})
	if err != nil {
		return boltsafe.OpenError("pii/bolt", s.path, err)
	}
	s.db = db
	return nil
}

func (s *Store) usable(ctx context.Context) error {
	switch {
	case s.closed:
		return orchestrix.ErrClosed
	case s.broken != nil:
		return s.broken
	}
	return ctx.Err()
}

// GetOrCreate implements pii.KeyStore.
func (s *Store) GetOrCreate(ctx context.Context, subject string) (pii.Key, error) {
	if err := pii.CheckSubject(subject); err != nil {
		return pii.Key{}, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if err := s.usable(ctx); err != nil {
		return pii.Key{}, err
	}
	var k pii.Key
	var found bool
	err := boltsafe.View(s.db, func(tx *bbolt.Tx) error {
		var err error
		k, found, err = activeKey(tx, subject)
		return err
	})
	if err != nil || found {
		return k, err
	}
	err = boltsafe.Update(s.db, func(tx *bbolt.Tx) error {
		var err error
		if k, found, err = activeKey(tx, subject); err != nil || found {
			return err // created meanwhile
		}
		k = pii.NewKey()
		if err := tx.Bucket([]byte(KeysBucket)).Put([]byte(k.ID), k.Material); err != nil {
			return err
		}
		return tx.Bucket([]byte(SubjectsBucket)).Put([]byte(subject), []byte(k.ID))
	})
	if err != nil {
		return pii.Key{}, err
	}
	return k, nil
}

// activeKey returns the key of subject, found false when it has none.
func activeKey(tx *bbolt.Tx, subject string) (pii.Key, bool, error) {
	id := tx.Bucket([]byte(SubjectsBucket)).Get([]byte(subject))
	switch {
	case id == nil:
		return pii.Key{}, false, nil
	case string(id) == string(tombstone):
		return pii.Key{}, false, pii.ErrErased
	}
	k, err := keyByID(tx, string(id))
	return k, err == nil, err
}

// keyByID reads a key; the material is copied out of the transaction.
func keyByID(tx *bbolt.Tx, id string) (pii.Key, error) {
	m := tx.Bucket([]byte(KeysBucket)).Get([]byte(id))
	switch {
	case m == nil:
		return pii.Key{}, fmt.Errorf("%w: %q", pii.ErrUnknownKey, id)
	case string(m) == string(tombstone):
		return pii.Key{}, pii.ErrErased
	case len(m) != pii.KeySize:
		return pii.Key{}, fmt.Errorf("%w: pii/bolt: key %q has %d bytes", orchestrix.ErrCorrupt, id, len(m))
	}
	return pii.Key{ID: id, Material: append([]byte(nil), m...)}, nil
}

// Get implements pii.KeyStore.
func (s *Store) Get(ctx context.Context, id string) (pii.Key, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if err := s.usable(ctx); err != nil {
		return pii.Key{}, err
	}
	var k pii.Key
	err := boltsafe.View(s.db, func(tx *bbolt.Tx) error {
		var err error
		k, err = keyByID(tx, id)
		return err
	})
	return k, err
}

// Delete implements pii.KeyStore; it is DeleteMany with one subject.
func (s *Store) Delete(ctx context.Context, subject string) error {
	return s.DeleteMany(ctx, []string{subject})
}

// DeleteMany erases several subjects at once, as Delete erases one: it
// writes every tombstone in one transaction, then removes the erased key
// bytes from the file in one pass (see the package documentation). It
// returns once the erasure is durable and the key bytes are gone from the
// file. A failure after the tombstones committed is returned; the keys
// are unusable by then, and the next Delete, DeleteMany or Open of the
// file compacts it so nothing the failed pass left behind survives.
func (s *Store) DeleteMany(ctx context.Context, subjects []string) error {
	for _, subject := range subjects {
		if err := pii.CheckSubject(subject); err != nil {
			return err
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.usable(ctx); err != nil {
		return err
	}
	var materials [][]byte
	defer func() {
		for _, m := range materials {
			clear(m)
		}
	}()
	var unfinished bool
	err := boltsafe.Update(s.db, func(tx *bbolt.Tx) error {
		materials = materials[:0]
		subjectsB, keys, meta := tx.Bucket([]byte(SubjectsBucket)), tx.Bucket([]byte(KeysBucket)), tx.Bucket([]byte(MetaBucket))
		unfinished = meta.Get([]byte(scrubPendingKey)) != nil
		for _, subject := range subjects {
			if id := subjectsB.Get([]byte(subject)); id != nil && string(id) != string(tombstone) {
				id = bytes.Clone(id)
				if m := keys.Get(id); len(m) == pii.KeySize {
					materials = append(materials, bytes.Clone(m))
				}
				if err := keys.Put(id, tombstone); err != nil {
					return err
				}
			}
			if err := subjectsB.Put([]byte(subject), tombstone); err != nil {
				return err
			}
		}
		if len(materials) == 0 && !unfinished {
			return nil
		}
		return meta.Put([]byte(scrubPendingKey), tombstone)
	})
	if err != nil {
		return fmt.Errorf("pii/bolt: delete: %w", err)
	}
	switch {
	case unfinished:
		// An earlier pass did not finish: only a compaction is sure to
		// remove what it left behind.
		return s.compactPending()
	case len(materials) == 0:
		return nil
	}
	return s.scrub(materials)
}

// scrub overwrites with zeros every copy of materials left in the file:
// the erased keys are in no page of the live tree any more, so every copy
// is in a free page (bbolt never overwrites a page in place, and every
// write of a leaf leaves its old copy behind). A commit first makes both
// meta pages refer to trees that no longer hold the keys, so a fallback
// to the older meta page never reads a zeroed page; the pending mark is
// cleared last. Callers hold s.mu for writing: no transaction can read
// the free pages meanwhile.
func (s *Store) scrub(materials [][]byte) error {
	if err := boltsafe.Update(s.db, func(tx *bbolt.Tx) error {
		return tx.Bucket([]byte(MetaBucket)).Put([]byte(scrubPendingKey), []byte{1})
	}); err != nil {
		return fmt.Errorf("pii/bolt: delete: %w", err)
	}
	if err := s.zeroCopies(materials); err != nil {
		return err
	}
	if err := boltsafe.Update(s.db, func(tx *bbolt.Tx) error {
		return tx.Bucket([]byte(MetaBucket)).Delete([]byte(scrubPendingKey))
	}); err != nil {
		return fmt.Errorf("pii/bolt: delete: %w", err)
	}
	return nil
}

// compactPending compacts the file and then clears the pending mark.
func (s *Store) compactPending() error {
	if err := s.compact(); err != nil {
		return err
	}
	if err := boltsafe.Update(s.db, func(tx *bbolt.Tx) error {
		return tx.Bucket([]byte(MetaBucket)).Delete([]byte(scrubPendingKey))
	}); err != nil {
		return fmt.Errorf("pii/bolt: compact: %w", err)
	}
	return nil
}

// zeroCopies reads the whole file once and overwrites every occurrence of
// any of materials with zeros, then syncs the file.
func (s *Store) zeroCopies(materials [][]byte) error {
	f, err := os.OpenFile(s.path, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("pii/bolt: scrub: %w", err)
	}
	err = scrubFile(f, materials)
	if err == nil && !s.opts.NoSync {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("pii/bolt: scrub: %w", err)
	}
	return nil
}

// scrubChunk is how much of the file zeroCopies reads at a time.
const scrubChunk = 4 << 20

// scrubFile overwrites every occurrence of any of materials (each
// pii.KeySize bytes) in f with zeros.
func scrubFile(f *os.File, materials [][]byte) error {
	info, err := f.Stat()
	if err != nil {
		return err
	}
	find := newMatcher(materials)
	zeros := make([]byte, pii.KeySize)
	buf := make([]byte, scrubChunk+pii.KeySize-1)
	for off := int64(0); off < info.Size(); off += scrubChunk {
		n, err := f.ReadAt(buf[:min(int64(len(buf)), info.Size()-off)], off)
		if err != nil && !errors.Is(err, io.EOF) {
			return err
		}
		for _, at := range find(buf[:n]) {
			if _, err := f.WriteAt(zeros, off+int64(at)); err != nil {
				return err
			}
		}
	}
	return nil
}

// newMatcher returns a function reporting the offsets in b at which any
// of materials starts. A few materials are each found with bytes.Index;
// many are found in one pass with a table of their first two bytes.
func newMatcher(materials [][]byte) func(b []byte) []int {
	if len(materials) <= 8 {
		return func(b []byte) []int {
			var at []int
			for _, m := range materials {
				for i := 0; ; {
					j := bytes.Index(b[i:], m)
					if j < 0 {
						break
					}
					at = append(at, i+j)
					i += j + 1
				}
			}
			return at
		}
	}
	var first [1 << 16]bool
	set := make(map[[pii.KeySize]byte]struct{}, len(materials))
	for _, m := range materials {
		first[int(m[0])<<8|int(m[1])] = true
		set[[pii.KeySize]byte(m)] = struct{}{}
	}
	return func(b []byte) []int {
		var at []int
		for i := 0; i+pii.KeySize <= len(b); i++ {
			if !first[int(b[i])<<8|int(b[i+1])] {
				continue
			}
			if _, ok := set[[pii.KeySize]byte(b[i:i+pii.KeySize])]; ok {
				at = append(at, i)
			}
		}
		return at
	}
}

// compact rewrites the database into a fresh file holding only live data
// and zeroes the old file before replacing it. Callers hold s.mu for
// writing.
func (s *Store) compact() error {
	tmp := s.path + compactingSuffix
	if err := os.Remove(tmp); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("pii/bolt: compact: %w", err)
	}
	dst, err := bbolt.Open(tmp, 0o600, &bbolt.Options{NoSync: true, Timeout: time.Second})
	if err != nil {
		return fmt.Errorf("pii/bolt: compact: %w", err)
	}
	err = bbolt.Compact(dst, s.db, 0)
	err = errors.Join(err, dst.Close())
	if err == nil {
		err = s.syncFile(tmp)
	}
	if err != nil {
		return errors.Join(fmt.Errorf("pii/bolt: compact: %w", err), os.Remove(tmp))
	}
	// From here on the store has no open database until it is reopened.
	if err := s.db.Close(); err != nil {
		return s.fail(fmt.Errorf("pii/bolt: compact: close: %w", err))
	}
	if err := os.Rename(tmp, s.path+compactedSuffix); err != nil {
		return s.fail(fmt.Errorf("pii/bolt: compact: %w", err))
	}
	if err := s.syncDir(); err != nil {
		return s.fail(err)
	}
	if err := s.zero(s.path); err != nil {
		return s.fail(err)
	}
	return s.fail(nil) // open renames the compacted file into place
}

// fail reopens the database after a compaction step, recording err (or a
// reopen failure) as the reason the store is unusable when it cannot.
func (s *Store) fail(err error) error {
	if oerr := s.open(); oerr != nil {
		s.broken = fmt.Errorf("pii/bolt: key store unusable after a failed compaction, reopen it: %w", errors.Join(err, oerr))
		return s.broken
	}
	return err
}

// zero overwrites the whole file at path with zeros and syncs it.
func (s *Store) zero(path string) error {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("pii/bolt: zero old file: %w", err)
	}
	info, err := f.Stat()
	if err == nil {
		zeros := make([]byte, 64<<10)
		for off := int64(0); off < info.Size() && err == nil; off += int64(len(zeros)) {
			n := min(int64(len(zeros)), info.Size()-off)
			_, err = f.WriteAt(zeros[:n], off)
		}
	}
	if err == nil && !s.opts.NoSync {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("pii/bolt: zero old file: %w", err)
	}
	return nil
}

func (s *Store) syncFile(path string) error {
	if s.opts.NoSync {
		return nil
	}
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	return errors.Join(f.Sync(), f.Close())
}

func (s *Store) syncDir() error {
	if s.opts.NoSync {
		return nil
	}
	if err := s.syncFile(filepath.Dir(s.path)); err != nil {
		return fmt.Errorf("pii/bolt: sync directory: %w", err)
	}
	return nil
}

// Close implements pii.KeyStore.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	if s.broken != nil {
		return nil
	}
	return s.db.Close()
}
