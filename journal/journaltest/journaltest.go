// Package journaltest is the conformance suite for journal.Journal
// implementations. Every backend runs it from its own tests:
//
//	func TestJournal_Conformance(t *testing.T) {
//		journaltest.Run(t, func(t *testing.T) (journal.Journal, journaltest.Features) {
//			j, err := mybackend.Open(t.TempDir())
//			require.NoError(t, err)
//			return j, journaltest.Features{Corrupt: corruptOnDisk, MaxEventSize: 1 << 20}
//		})
//	}
//
// The suite covers the cases of the Akka persistence journal TCK (replay
// bounds and counts, deletion that keeps the highest version, rejection of
// one bad write among concurrent ones), KurrentDB's idempotency rules for
// retries by event id, the expected-version matrix, concurrency (one winner
// per version, a gap-free global order that a live follower never skips),
// context cancellation, Close, corruption reporting and the round trip of
// every envelope attribute. Optional capabilities are detected by type
// assertion: the deletion cases run when the journal implements
// journal.Deleter and the watch cases when it implements journal.Watcher;
// otherwise they are skipped with the reason.
//
// After each case that leaves the journal readable the suite checks the
// journal's invariants (in t.Cleanup, before the journal is closed): every
// stream's remaining versions are consecutive and end at its Head, the
// global order is strictly increasing, and Read and ReadAll agree.
package journaltest

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/orchestrix/orchestrix/journal"
)

// Features describes what the journal under test can do, beyond the
// capabilities detected by type assertion (journal.Deleter,
// journal.Watcher).
type Features struct {
	// Corrupt damages the stored record of stream at version so that
	// reading it must fail with orchestrix.ErrCorrupt. It is called on
	// the open journal returned by the factory and may fail t. Nil skips
	// the corruption case (with t.Skip and a reason).
	Corrupt func(t *testing.T, j journal.Journal, stream string, version uint64)

	// MaxEventSize is the backend's configured limit on the size of one
	// event, in bytes. When it is above zero the suite appends an event
	// whose Data alone is MaxEventSize+1 bytes and expects the append to
	// fail with an error matching orchestrix.ErrTooLarge, alone among
	// concurrent appends, and an event with MaxEventSize/2 bytes of Data
	// to be accepted (so the limit should be at least a few KiB). Zero
	// skips those cases.
	MaxEventSize int
}

// Factory returns a fresh, empty journal for one test case, and what it
// supports. The suite closes the journal in t.Cleanup (Close must therefore
// be idempotent); the factory may register its own cleanup, for example to
// remove files or drop a database, which runs after the journal is closed.
type Factory func(t *testing.T) (journal.Journal, Features)

// Run runs the whole conformance suite against journals made by
// newJournal. Each case is a subtest with its own fresh journal.
func Run(t *testing.T, newJournal Factory) {
	t.Helper()
	require.NotNil(t, newJournal, "journaltest: nil factory")

	t.Run("Replay", func(t *testing.T) { runReplay(t, newJournal) })
	t.Run("ReadAll", func(t *testing.T) { runReadAll(t, newJournal) })
	t.Run("Deletion", func(t *testing.T) { runDeletion(t, newJournal) })
	t.Run("ExpectedVersion", func(t *testing.T) { runExpectedVersion(t, newJournal) })
	t.Run("Idempotency", func(t *testing.T) { runIdempotency(t, newJournal) })
	t.Run("Rejection", func(t *testing.T) { runRejection(t, newJournal) })
	t.Run("RoundTrip", func(t *testing.T) { runRoundTrip(t, newJournal) })
	t.Run("Concurrency", func(t *testing.T) { runConcurrency(t, newJournal) })
	t.Run("Watcher", func(t *testing.T) { runWatcher(t, newJournal) })
	t.Run("Context", func(t *testing.T) { runContext(t, newJournal) })
	t.Run("Close", func(t *testing.T) { runClose(t, newJournal) })
	t.Run("Corruption", func(t *testing.T) { runCorruption(t, newJournal) })
}

// env is one test case's journal, with helpers that fail the test on
// unexpected errors.
type env struct {
	t        *testing.T
	j        journal.Journal
	features Features
	ctx      context.Context
	// checkInvariants is cleared by cases that leave the journal
	// unreadable on purpose (closed, corrupted).
	checkInvariants bool
}

// newEnv makes a fresh journal for t and registers, in this order, its
// Close and (running before it) the invariant check.
func newEnv(t *testing.T, newJournal Factory) *env {
	t.Helper()
	j, features := newJournal(t)
	require.NotNil(t, j, "journaltest: factory returned a nil journal")
	e := &env{t: t, j: j, features: features, ctx: context.Background(), checkInvariants: true}
	t.Cleanup(func() {
		if err := j.Close(); err != nil {
			t.Errorf("journaltest: Close: %v", err)
		}
	})
	t.Cleanup(func() {
		if e.checkInvariants {
			checkInvariants(t, j)
		}
	})
	return e
}
