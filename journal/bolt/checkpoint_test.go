package bolt_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	bbolt "go.etcd.io/bbolt"

	"github.com/orchestrix/orchestrix/journal"
	"github.com/orchestrix/orchestrix/journal/bolt"
)

// spreadModel is what a test expects a journal to hold.
type spreadModel struct {
	ids       map[string][]string // stream → ids of versions 1…head
	deletedTo map[string]uint64
}

// verifySpreadCopy checks a copy of a journal file as a crash would leave
// it: CheckFile finds nothing, and a reopened journal holds exactly what
// the model says (heads, reads of every stream, the global log).
func verifySpreadCopy(t *testing.T, path string, m spreadModel, step int) {
	t.Helper()
	ctx := context.Background()
	rep, err := bolt.CheckFile(ctx, path, time.Second)
	require.NoError(t, err)
	require.True(t, rep.OK(), "step %d: check of the committed state:\n%s", step, problemText(rep))
	j, err := bolt.Open(path, bolt.Config{NoSync: true})
	require.NoError(t, err, "step %d", step)
	defer func() { require.NoError(t, j.Close()) }()
	live := 0
	for stream, ids := range m.ids {
		head, err := j.Head(ctx, stream)
		require.NoError(t, err)
		require.Equal(t, uint64(len(ids)), head, "step %d: head of %s", step, stream)
		v := m.deletedTo[stream] + 1
		for rec, err := range j.Read(ctx, stream, 1, math.MaxUint64, math.MaxInt) {
			require.NoError(t, err, "step %d: read %s", step, stream)
			require.Equal(t, v, rec.Version, "step %d: %s", step, stream)
			require.Equal(t, ids[v-1], rec.Envelope.ID, "step %d: %s version %d", step, stream, v)
			v++
		}
		require.Equal(t, uint64(len(ids))+1, v, "step %d: %s read up to %d", step, stream, v-1)
		live += len(ids) - int(m.deletedTo[stream])
	}
	n := 0
	for _, err := range j.ReadAll(ctx, 0, math.MaxInt) {
		require.NoError(t, err)
		n++
	}
	require.Equal(t, live, n, "step %d: records in the global log", step)
}

// TestJournal_SpreadCheckpoint_EveryCommittedStateReopens appends to many
// streams one commit at a time, with a small IndexEvery so that checkpoint
// rounds spread over several commits, and some deletions. After every
// commit it copies the committed state (what a SIGKILL at that moment
// leaves on disk) and checks that the copy passes CheckFile and reopens
// with every event exactly once. It fails, for example, when a round's end
// moves the checkpoint past records of streams the round did not flush,
// when a flush leaves the current batch's runs out of the index, or when a
// deletion writes the head without indexing the stream's newer records.
func TestJournal_SpreadCheckpoint_EveryCommittedStateReopens(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	j, err := bolt.Open(filepath.Join(dir, "j.db"), bolt.Config{NoSync: true, IndexEvery: 48})
	require.NoError(t, err)
	defer func() { require.NoError(t, j.Close()) }()
	rng := rand.New(rand.NewPCG(12, 1))
	m := spreadModel{ids: map[string][]string{}, deletedTo: map[string]uint64{}}
	steps := 400
	if testing.Short() {
		steps = 150
	}
	partial := 0
	for step := range steps {
		stream := fmt.Sprintf("s-%02d", rng.IntN(40))
		head := uint64(len(m.ids[stream]))
		if head > 0 && rng.IntN(20) == 0 {
			to := m.deletedTo[stream] + 1 + rng.Uint64N(head-m.deletedTo[stream])
			require.NoError(t, j.DeleteTo(ctx, stream, to))
			m.deletedTo[stream] = to
		} else {
			evs := checkEvents(stream, 1+rng.IntN(3))
			expected := journal.Exact(head)
			if rng.IntN(3) == 0 {
				expected = journal.Any
			}
			_, err := j.Append(ctx, stream, expected, evs)
			require.NoError(t, err)
			for _, e := range evs {
				m.ids[stream] = append(m.ids[stream], e.ID)
			}
		}
		cp := filepath.Join(dir, fmt.Sprintf("copy-%d.db", step))
		require.NoError(t, j.DB().View(func(tx *bbolt.Tx) error { return tx.CopyFile(cp, 0o600) }))
		_, indexed, _, err := bolt.CheckpointState(cp)
		require.NoError(t, err)
		if indexed > 0 {
			partial++ // a round had flushed some streams but not all
		}
		verifySpreadCopy(t, cp, m, step)
	}
	t.Logf("%d of %d committed states were in the middle of a checkpoint round; %d rounds completed", partial, steps, j.Stats().Checkpoints)
	require.Positive(t, partial, "no committed state fell inside a checkpoint round: the test checked none")
	require.Positive(t, j.Stats().Checkpoints)
}

// TestOpen_Format1FileWithHeadAheadOfIndex_KeepsEveryEvent opens a file in
// the layout before spread checkpoints (format 1) whose journal.streams
// head is ahead of journal.index, as a deletion used to leave it: Open must
// take the stream's records from the log (not skip them as indexed) and
// upgrade the file so that it checks clean as format 2; a read-only open
// reads it as format 1 without changing it.
func TestOpen_Format1FileWithHeadAheadOfIndex_KeepsEveryEvent(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "j.db")
	j, err := bolt.Open(path, bolt.Config{NoSync: true, IndexEvery: 1 << 20})
	require.NoError(t, err)
	evs := checkEvents("a", 5)
	_, err = j.Append(ctx, "a", journal.NoStream, evs)
	require.NoError(t, err)
	// A copy of the committed state: nothing indexed, no checkpoint.
	old := filepath.Join(t.TempDir(), "old.db")
	require.NoError(t, j.DB().View(func(tx *bbolt.Tx) error { return tx.CopyFile(old, 0o600) }))
	require.NoError(t, j.Close())
	editFile(t, old, func(tx *bbolt.Tx) error {
		v := make([]byte, 16)
		binary.BigEndian.PutUint64(v, 5) // head 5, nothing deleted, no index entries
		return tx.Bucket([]byte("journal.streams")).Put([]byte("a"), v)
	})
	require.NoError(t, bolt.SetFormat1(old))
	f, err := bolt.FileFormat(old)
	require.NoError(t, err)
	require.Equal(t, uint64(1), f)
	rep, err := bolt.CheckFile(ctx, old, time.Second)
	require.NoError(t, err)
	require.True(t, rep.OK(), "a format 1 file with its head ahead of the index is valid:\n%s", problemText(rep))

	readAll := func(j *bolt.Journal) []string {
		var ids []string
		for rec, err := range j.Read(ctx, "a", 1, math.MaxUint64, math.MaxInt) {
			require.NoError(t, err)
			ids = append(ids, rec.Envelope.ID)
		}
		return ids
	}
	want := []string{evs[0].ID, evs[1].ID, evs[2].ID, evs[3].ID, evs[4].ID}

	ro, err := bolt.OpenReadOnly(old, bolt.Config{})
	require.NoError(t, err)
	assert.Equal(t, want, readAll(ro))
	require.NoError(t, ro.Close())

	j, err = bolt.Open(old, bolt.Config{NoSync: true})
	require.NoError(t, err)
	assert.Equal(t, want, readAll(j))
	// Not closed cleanly: the upgrade itself must leave a consistent file.
	upgraded := filepath.Join(t.TempDir(), "upgraded.db")
	require.NoError(t, j.DB().View(func(tx *bbolt.Tx) error { return tx.CopyFile(upgraded, 0o600) }))
	require.NoError(t, j.Close())
	f, err = bolt.FileFormat(upgraded)
	require.NoError(t, err)
	require.Equal(t, uint64(2), f, "Open upgrades the file")
	rep, err = bolt.CheckFile(ctx, upgraded, time.Second)
	require.NoError(t, err)
	require.True(t, rep.OK(), problemText(rep))
	j, err = bolt.Open(upgraded, bolt.Config{NoSync: true})
	require.NoError(t, err)
	defer func() { require.NoError(t, j.Close()) }()
	assert.Equal(t, want, readAll(j))
	_, err = j.Append(ctx, "a", journal.Exact(5), checkEvents("a", 1))
	require.NoError(t, err)
}

// TestCheckFile_RecordAtOrBelowHeadMissingFromIndex: after the checkpoint
// position, a record whose version is at or below its stream's stored
// head is taken from journal.index by Open; missing there it would be
// invisible, so the check reports it.
func TestCheckFile_RecordAtOrBelowHeadMissingFromIndex(t *testing.T) {
	path, j := fillJournal(t)
	require.NoError(t, j.Close())
	editFile(t, path, func(tx *bbolt.Tx) error {
		deleteIndexOf(t, tx, "b")
		// Move the checkpoint back to 0: the rule about records before
		// the checkpoint no longer applies, the head rule does.
		return resetCheckpoint(tx)
	})
	requireStreamProblems(t, path, "b", 1, 3, "at or below the head 3 in journal.streams but missing from journal.index")
}

// TestCheckFile_IndexAboveHead: a checkpoint writes a stream's index
// entries and its head together, so index entries above the stored head
// are damage (Open would take those records from both the index and the
// log).
func TestCheckFile_IndexAboveHead(t *testing.T) {
	path, j := fillJournal(t)
	require.NoError(t, j.Close())
	editFile(t, path, func(tx *bbolt.Tx) error {
		v := make([]byte, 16)
		binary.BigEndian.PutUint64(v, 1)
		if err := tx.Bucket([]byte("journal.streams")).Put([]byte("b"), v); err != nil {
			return err
		}
		return resetCheckpoint(tx)
	})
	requireStreamProblems(t, path, "b", 2, 2, "journal.index covers this version, above the head 1")
}

// resetCheckpoint moves the file's checkpoint position back to 0.
func resetCheckpoint(tx *bbolt.Tx) error {
	return tx.Bucket([]byte("journal.meta")).Put([]byte("checkpoint"), binary.BigEndian.AppendUint64(nil, 0))
}
