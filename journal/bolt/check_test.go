package bolt_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	bbolt "go.etcd.io/bbolt"

	"github.com/orchestrix/orchestrix"
	"github.com/orchestrix/orchestrix/journal"
	"github.com/orchestrix/orchestrix/journal/bolt"
)

func checkEvents(stream string, n int) []orchestrix.Envelope {
	evs := make([]orchestrix.Envelope, n)
	for i := range evs {
		evs[i] = orchestrix.Envelope{ID: orchestrix.NewID(), Source: "/check", Type: "check.Happened",
			Subject: stream, Data: []byte(fmt.Sprintf(`{"i":%d}`, i))}
	}
	return evs
}

// fillJournal writes streams a (5 events), b (3), c (4, deleted up to 2),
// with an index checkpoint in between, and returns the file's path and
// the open journal.
func fillJournal(t *testing.T) (string, *bolt.Journal) {
	t.Helper()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "j.db")
	j, err := bolt.Open(path, bolt.Config{NoSync: true, IndexEvery: 4})
	require.NoError(t, err)
	t.Cleanup(func() { _ = j.Close() })
	for _, s := range []struct {
		name string
		n    int
	}{{"a", 3}, {"b", 3}, {"c", 4}, {"a", 2}} {
		for _, e := range checkEvents(s.name, s.n) {
			_, err := j.Append(ctx, s.name, journal.Any, []orchestrix.Envelope{e})
			require.NoError(t, err)
		}
	}
	require.NoError(t, j.DeleteTo(ctx, "c", 2))
	return path, j
}

// editFile changes the closed journal file at path with fn.
func editFile(t *testing.T, path string, fn func(tx *bbolt.Tx) error) {
	t.Helper()
	db, err := bbolt.Open(path, 0o600, nil)
	require.NoError(t, err)
	require.NoError(t, db.Update(fn))
	require.NoError(t, db.Close())
}

// deleteIndexOf deletes every journal.index entry of the one-letter
// stream name.
func deleteIndexOf(t *testing.T, tx *bbolt.Tx, name string) {
	t.Helper()
	b := tx.Bucket([]byte("journal.index"))
	prefix := []byte{1, name[0]}
	var keys [][]byte
	c := b.Cursor()
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
		keys = append(keys, append([]byte(nil), k...))
	}
	require.NotEmpty(t, keys, "index entries of %s", name)
	for _, k := range keys {
		require.NoError(t, b.Delete(k))
	}
}

func problemText(rep journal.CheckReport) string {
	var b strings.Builder
	for _, p := range rep.Problems {
		b.WriteString(p.String())
		b.WriteByte('\n')
	}
	return b.String()
}

func TestJournal_Check_Clean(t *testing.T) {
	path, j := fillJournal(t)
	rep, err := j.Check(context.Background())
	require.NoError(t, err)
	assert.True(t, rep.OK(), problemText(rep))
	assert.Equal(t, 3, rep.Streams)
	assert.Equal(t, uint64(10), rep.Records) // 5 + 3 + 4 - 2 deleted
	assert.Equal(t, uint64(12), rep.LastPosition)

	require.NoError(t, j.Close())
	rep, err = bolt.CheckFile(context.Background(), path, time.Second)
	require.NoError(t, err)
	assert.True(t, rep.OK(), problemText(rep))
	assert.Equal(t, uint64(10), rep.Records)
}

func TestJournal_Check_CorruptRecord(t *testing.T) {
	_, j := fillJournal(t)
	require.NoError(t, bolt.CorruptRecord(j, "b", 2))
	rep, err := j.Check(context.Background())
	require.NoError(t, err)
	require.Len(t, rep.Problems, 1, problemText(rep))
	p := rep.Problems[0]
	assert.Equal(t, "b", p.Stream)
	assert.Equal(t, uint64(2), p.Version)
	assert.Equal(t, uint64(5), p.Position)
	assert.Contains(t, p.Detail, "checksum")
}

func TestJournal_Check_Closed(t *testing.T) {
	_, j := fillJournal(t)
	require.NoError(t, j.Close())
	_, err := j.Check(context.Background())
	assert.ErrorIs(t, err, orchestrix.ErrClosed)
}

func TestJournal_Check_Cancelled(t *testing.T) {
	_, j := fillJournal(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := j.Check(ctx)
	assert.ErrorIs(t, err, context.Canceled)
}

func TestCheckFile_MissingIndexEntry(t *testing.T) {
	path, j := fillJournal(t)
	require.NoError(t, j.Close()) // writes the final checkpoint
	editFile(t, path, func(tx *bbolt.Tx) error {
		deleteIndexOf(t, tx, "b")
		return nil
	})
	requireStreamProblems(t, path, "b", 1, 3, "missing from journal.index")
}

// requireStreamProblems checks the file at path and requires exactly n
// problems, on versions first…first+n-1 of stream, each with detail.
func requireStreamProblems(t *testing.T, path, stream string, first uint64, n int, detail string) {
	t.Helper()
	rep, err := bolt.CheckFile(context.Background(), path, time.Second)
	require.NoError(t, err)
	require.Len(t, rep.Problems, n, problemText(rep))
	for i, p := range rep.Problems {
		assert.Equal(t, stream, p.Stream)
		assert.Equal(t, first+uint64(i), p.Version)
		assert.Contains(t, p.Detail, detail)
	}
}

func TestCheckFile_IndexPointsElsewhere(t *testing.T) {
	path, j := fillJournal(t)
	require.NoError(t, j.Close())
	editFile(t, path, func(tx *bbolt.Tx) error {
		deleteIndexOf(t, tx, "b")
		key := append([]byte{1, 'b'}, binary.BigEndian.AppendUint64(nil, 1)...)
		// One run: versions 1..3 at positions 1..3 (which belong to a).
		return tx.Bucket([]byte("journal.index")).Put(key, []byte{1, 3})
	})
	rep, err := bolt.CheckFile(context.Background(), path, time.Second)
	require.NoError(t, err)
	require.Len(t, rep.Problems, 3, problemText(rep))
	assert.Equal(t, journal.Problem{Stream: "b", Version: 1, Position: 4,
		Detail: "journal.index maps this version to position 1, but the log stores it here"}, rep.Problems[0])
}

func TestCheckFile_HeadBelowStoredVersion(t *testing.T) {
	path, j := fillJournal(t)
	require.NoError(t, j.Close())
	editFile(t, path, func(tx *bbolt.Tx) error {
		v := make([]byte, 16)
		binary.BigEndian.PutUint64(v, 4)
		return tx.Bucket([]byte("journal.streams")).Put([]byte("a"), v)
	})
	rep, err := bolt.CheckFile(context.Background(), path, time.Second)
	require.NoError(t, err)
	require.Len(t, rep.Problems, 1, problemText(rep))
	assert.Equal(t, "a", rep.Problems[0].Stream)
	assert.Equal(t, uint64(5), rep.Problems[0].Version)
	assert.Contains(t, rep.Problems[0].Detail, "head 4")
}

func TestCheckFile_MissingRecords(t *testing.T) {
	path, j := fillJournal(t)
	require.NoError(t, j.Close())
	editFile(t, path, func(tx *bbolt.Tx) error {
		// Position 2 is a's version 2, appended alone: its own block.
		return tx.Bucket([]byte("journal.log")).Delete(binary.BigEndian.AppendUint64(nil, 2))
	})
	rep, err := bolt.CheckFile(context.Background(), path, time.Second)
	require.NoError(t, err)
	text := problemText(rep)
	assert.Contains(t, text, `stream "a" version 2 position 3: versions 2..2 are missing`)
	assert.Contains(t, text, `stream "a" version 2 position 2: journal.index maps this version to a position that holds no such record`)
}

func TestCheckFile_Locked(t *testing.T) {
	path, _ := fillJournal(t) // still open
	_, err := bolt.CheckFile(context.Background(), path, 50*time.Millisecond)
	assert.ErrorIs(t, err, bolt.ErrLocked)
}

func TestCheckFile_NotAJournal(t *testing.T) {
	path := filepath.Join(t.TempDir(), "other.db")
	db, err := bbolt.Open(path, 0o600, nil)
	require.NoError(t, err)
	require.NoError(t, db.Close())
	rep, err := bolt.CheckFile(context.Background(), path, time.Second)
	require.NoError(t, err)
	require.Len(t, rep.Problems, 1)
	assert.Contains(t, rep.Problems[0].Detail, "not a journal file")

	_, err = bolt.CheckFile(context.Background(), filepath.Join(t.TempDir(), "missing.db"), time.Second)
	assert.Error(t, err)
}

func TestJournal_Streams_ListsByName(t *testing.T) {
	_, j := fillJournal(t)
	var got []journal.StreamInfo
	for info, err := range j.Streams(context.Background()) {
		require.NoError(t, err)
		got = append(got, info)
	}
	assert.Equal(t, []journal.StreamInfo{
		{Name: "a", Head: 5}, {Name: "b", Head: 3}, {Name: "c", Head: 4, DeletedTo: 2},
	}, got)
	assert.Equal(t, uint64(2), got[2].Events())

	require.NoError(t, j.Close())
	for _, err := range j.Streams(context.Background()) {
		assert.True(t, errors.Is(err, orchestrix.ErrClosed))
	}
}
