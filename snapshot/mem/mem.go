// Package mem is the reference in-memory snapshot.Store. It is NOT FOR
// PRODUCTION: nothing survives the process. It exists to make the contract
// of package snapshot concrete, to back tests of the runtime, and to inject
// faults those tests need (FailNextSave, FailNextLoad, CorruptForTest).
//
// Like the durable backends, it keeps a CRC-32C checksum with every
// snapshot and verifies it on Load, so corruption fallback behaves the
// same way.
package mem

import (
	"context"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"log/slog"
	"sync"

	"github.com/orchestrix/orchestrix"
	"github.com/orchestrix/orchestrix/snapshot"
)

// Config configures a Store. The zero value works.
type Config struct {
	// Logger receives a warning for every snapshot Load skips because it
	// failed its checksum. Nil discards them.
	Logger *slog.Logger
}

// Store is an in-memory snapshot.Store. All methods are safe for concurrent
// use. Create one with New.
type Store struct {
	log *slog.Logger

	mu       sync.RWMutex
	closed   bool
	streams  map[string]map[uint64]entry
	failSave error
	failLoad error
}

// entry is one stored snapshot with the checksum computed when it was saved.
type entry struct {
	snap snapshot.Snapshot
	sum  uint32
}

var _ snapshot.Store = (*Store)(nil)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// New returns an empty store.
func New(cfg Config) *Store {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Store{log: log, streams: make(map[string]map[uint64]entry)}
}

// checksum covers every field of s, so a change to any of them is caught.
func checksum(s snapshot.Snapshot) uint32 {
	var buf []byte
	buf = binary.AppendUvarint(buf, uint64(len(s.Stream)))
	buf = append(buf, s.Stream...)
	buf = binary.BigEndian.AppendUint64(buf, s.Version)
	buf = binary.AppendUvarint(buf, uint64(len(s.Type)))
	buf = append(buf, s.Type...)
	buf = binary.AppendVarint(buf, int64(s.SchemaVersion))
	buf = binary.BigEndian.AppendUint64(buf, uint64(s.Time.Unix()))
	buf = binary.BigEndian.AppendUint32(buf, uint32(s.Time.Nanosecond()))
	return crc32.Update(crc32.Checksum(buf, castagnoli), castagnoli, s.Data)
}

// clone returns s with its own copy of Data and no monotonic clock reading.
func clone(s snapshot.Snapshot) snapshot.Snapshot {
	s.Time = s.Time.Round(0)
	if s.Data != nil {
		s.Data = append([]byte(nil), s.Data...)
	}
	return s
}

// begin checks the conditions every call shares, in this order: closed,
// context, stream name.
func (s *Store) begin(ctx context.Context, stream string) error {
	if s.closed {
		return orchestrix.ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if stream == "" {
		return fmt.Errorf("%w: empty stream name", snapshot.ErrInvalid)
	}
	return nil
}

// Save stores a copy of snap, replacing any snapshot of the same stream and
// version. A failure armed with FailNextSave is returned (once) after the
// input has been validated, and nothing is stored.
func (s *Store) Save(ctx context.Context, snap snapshot.Snapshot) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.begin(ctx, snap.Stream); err != nil {
		return err
	}
	if err := snap.Validate(); err != nil {
		return err
	}
	if err := s.failSave; err != nil {
		s.failSave = nil
		return err
	}
	snap = clone(snap)
	versions := s.streams[snap.Stream]
	if versions == nil {
		versions = make(map[uint64]entry)
		s.streams[snap.Stream] = versions
	}
	versions[snap.Version] = entry{snap: snap, sum: checksum(snap)}
	return nil
}

// Load returns a copy of the newest snapshot of stream matching c whose
// checksum holds; see snapshot.Store. A failure armed with FailNextLoad is
// returned (once) after the input has been validated.
func (s *Store) Load(ctx context.Context, stream string, c snapshot.Criteria) (snapshot.Snapshot, bool, error) {
	// A write lock, because an armed failure is consumed here.
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.begin(ctx, stream); err != nil {
		return snapshot.Snapshot{}, false, err
	}
	if err := s.failLoad; err != nil {
		s.failLoad = nil
		return snapshot.Snapshot{}, false, err
	}
	var (
		best  entry
		found bool
	)
	for _, e := range s.streams[stream] {
		if !c.Matches(e.snap) || (found && e.snap.Version < best.snap.Version) {
			continue
		}
		if checksum(e.snap) != e.sum {
			s.log.Warn("skipping corrupt snapshot", "stream", stream, "version", e.snap.Version, "error", orchestrix.ErrCorrupt)
			continue
		}
		best, found = e, true
	}
	if !found {
		return snapshot.Snapshot{}, false, nil
	}
	return clone(best.snap), true, nil
}

// Delete removes the snapshot of stream at version, if there is one.
func (s *Store) Delete(ctx context.Context, stream string, version uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.begin(ctx, stream); err != nil {
		return err
	}
	if versions := s.streams[stream]; versions != nil {
		delete(versions, version)
		if len(versions) == 0 {
			delete(s.streams, stream)
		}
	}
	return nil
}

// DeleteMatching removes every snapshot of stream matching c, corrupt or
// not.
func (s *Store) DeleteMatching(ctx context.Context, stream string, c snapshot.Criteria) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.begin(ctx, stream); err != nil {
		return err
	}
	versions := s.streams[stream]
	for v, e := range versions {
		if c.Matches(e.snap) {
			delete(versions, v)
		}
	}
	if versions != nil && len(versions) == 0 {
		delete(s.streams, stream)
	}
	return nil
}

// Close drops every snapshot; later calls return orchestrix.ErrClosed.
// Close is idempotent and always returns nil.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	s.streams = nil
	return nil
}

// FailNextSave makes the next Save that passes validation return err
// without storing anything. A nil err disarms it.
func (s *Store) FailNextSave(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failSave = err
}

// FailNextLoad makes the next Load that passes validation return err. A nil
// err disarms it.
func (s *Store) FailNextLoad(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failLoad = err
}

// CorruptForTest damages the stored snapshot of stream at version so that
// it fails its checksum, as a torn write or a flipped bit on disk would.
// It returns an error matching orchestrix.ErrNotFound when there is no
// such snapshot, and orchestrix.ErrClosed after Close.
func (s *Store) CorruptForTest(stream string, version uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return orchestrix.ErrClosed
	}
	e, ok := s.streams[stream][version]
	if !ok {
		return fmt.Errorf("%w: no snapshot of stream %q at version %d", orchestrix.ErrNotFound, stream, version)
	}
	e.sum = ^e.sum
	s.streams[stream][version] = e
	return nil
}
