// Package snapshot defines the snapshot store: saved aggregate states that
// let recovery start from a version instead of replaying a whole stream.
//
// # Contract
//
// Every backend (snapshot/mem, snapshot/bolt, snapshot/postgres) implements
// this contract and passes the conformance suite in snapshot/snapshottest.
//
//   - A snapshot is identified by its stream and version; saving again at
//     the same version overwrites it.
//   - Load returns the newest snapshot matching the criteria (version at or
//     below MaxVersion, time at or before MaxTime). Snapshots are optional:
//     no match is (Snapshot{}, false, nil), not an error.
//   - Stored snapshots carry a checksum. Load skips a snapshot that fails it
//     and falls back to the next older match (a caller that cannot decode
//     the payload does the same by loading again with MaxVersion below it).
//   - Every call honours its context; after Close every call returns
//     orchestrix.ErrClosed. All methods are safe for concurrent use.
package snapshot

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"
)

// ErrInvalid means a call was given an argument the contract rejects: an
// empty stream name or a snapshot version of 0. Backends wrap it with the
// detail (match it with errors.Is); nothing is stored or changed.
var ErrInvalid = errors.New("snapshot: invalid argument")

// Validate reports whether s may be saved: Stream must be non-empty and
// Version above 0. The error wraps ErrInvalid.
func (s Snapshot) Validate() error {
	if s.Stream == "" {
		return fmt.Errorf("%w: empty stream name", ErrInvalid)
	}
	if s.Version == 0 {
		return fmt.Errorf("%w: version 0 in stream %q (versions start at 1)", ErrInvalid, s.Stream)
	}
	return nil
}

// Snapshot is one saved state of a stream.
type Snapshot struct {
	// Stream is the stream the state belongs to.
	Stream string
	// Version is the stream version the state includes (all events up to
	// and including it have been applied).
	Version uint64
	// Type is the registered type name of the encoded state.
	Type string
	// SchemaVersion is the schema version of the encoded state.
	SchemaVersion int
	// Time is when the snapshot was taken (from the injected clock).
	Time time.Time
	// Data is the encoded state.
	Data []byte
}

// Criteria select snapshots of a stream. The zero value is not useful; start
// from Latest.
type Criteria struct {
	// MaxVersion is the highest version selected (inclusive).
	MaxVersion uint64
	// MaxTime is the latest time selected (inclusive); the zero time means
	// no time bound.
	MaxTime time.Time
	// MinVersion is the lowest version selected (inclusive).
	MinVersion uint64
}

// Latest selects every snapshot of a stream.
var Latest = Criteria{MaxVersion: math.MaxUint64}

// AtOrBelow selects snapshots at or below version.
func AtOrBelow(version uint64) Criteria { return Criteria{MaxVersion: version} }

// Matches reports whether s is selected by c.
func (c Criteria) Matches(s Snapshot) bool {
	if s.Version > c.MaxVersion || s.Version < c.MinVersion {
		return false
	}
	return c.MaxTime.IsZero() || !s.Time.After(c.MaxTime)
}

// Store saves and loads snapshots. See the package documentation.
type Store interface {
	// Save stores s, replacing any snapshot of the same stream and
	// version. Stream must be non-empty and Version above 0.
	Save(ctx context.Context, s Snapshot) error

	// Load returns the newest snapshot of stream matching c, skipping
	// snapshots that fail their checksum. ok is false when none matches.
	Load(ctx context.Context, stream string, c Criteria) (s Snapshot, ok bool, err error)

	// Delete removes the snapshot of stream at version; a missing one is
	// not an error.
	Delete(ctx context.Context, stream string, version uint64) error

	// DeleteMatching removes every snapshot of stream matching c.
	DeleteMatching(ctx context.Context, stream string, c Criteria) error

	// Close releases resources; every later call returns
	// orchestrix.ErrClosed. Close is idempotent.
	Close() error
}
