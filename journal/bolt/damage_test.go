package bolt_test

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/orchestrix/orchestrix"
	"github.com/orchestrix/orchestrix/internal/boltsafe"
	"github.com/orchestrix/orchestrix/journal"
	"github.com/orchestrix/orchestrix/journal/bolt"
)

// oneEventJournal writes a closed journal of one event (16 KiB pages)
// and returns its path and bytes.
func oneEventJournal(t *testing.T) (string, []byte) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "journal.db")
	j, err := bolt.Open(path, bolt.Config{NoSync: true})
	require.NoError(t, err)
	_, err = j.Append(context.Background(), "order-1", journal.NoStream, newEvents(1))
	require.NoError(t, err)
	require.NoError(t, j.Close())
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	return path, b
}

// openCheckRead runs everything a user runs on a file: CheckFile, Open,
// and a full read. It returns the first error; a panic fails the test.
func openCheckRead(path string) error {
	ctx := context.Background()
	rep, cerr := bolt.CheckFile(ctx, path, time.Second)
	j, err := bolt.Open(path, bolt.Config{NoSync: true, Timeout: time.Second})
	if err != nil {
		return err
	}
	defer j.Close()
	for _, err := range j.ReadAll(ctx, 0, math.MaxInt) {
		if err != nil {
			return err
		}
	}
	for info, err := range j.Streams(ctx) {
		if err != nil {
			return err
		}
		for _, err := range j.Read(ctx, info.Name, 0, math.MaxUint64, math.MaxInt) {
			if err != nil {
				return err
			}
		}
	}
	if cerr != nil {
		return cerr
	}
	if !rep.OK() {
		return orchestrix.ErrCorrupt
	}
	return nil
}

// The three cases of issue 13: one byte of the root bucket's page (page 3
// when the free list was not persisted) of a one-event journal. Each crashed Open, check or events with a panic.
func TestOpen_DamagedRootPage_ReturnsErrCorrupt(t *testing.T) {
	const pageSize = 16 << 10
	for _, tc := range []struct {
		name   string
		offset int
		value  byte
	}{
		{"value size field", 31, 0xa8},
		{"page id field", 5, 0x76},
		{"bucket name", -1, 'z'}, // journal.meta becomes journal.zeta: keys out of order
	} {
		t.Run(tc.name, func(t *testing.T) {
			path, b := oneEventJournal(t)
			// The root bucket's page: page 3 while the free list was not
			// persisted; wherever the meta page says since it is.
			m, err := boltsafe.Verify(path)
			require.NoError(t, err)
			root := int(m.Root)
			at := root*pageSize + tc.offset
			if tc.offset < 0 {
				at = root*pageSize + bytes.Index(b[root*pageSize:(root+1)*pageSize], []byte("journal.meta")) + len("journal.")
			}
			b[at] = tc.value
			require.NoError(t, os.WriteFile(path, b, 0o600))

			_, err = bolt.Open(path, bolt.Config{NoSync: true, Timeout: time.Second})
			require.ErrorIs(t, err, orchestrix.ErrCorrupt)
			require.ErrorContains(t, err, path)
			require.ErrorContains(t, err, fmt.Sprintf("page %d", root))

			rep, err := bolt.CheckFile(context.Background(), path, time.Second)
			if err == nil {
				require.False(t, rep.OK(), "check reports a damaged file as fine")
			} else {
				require.ErrorIs(t, err, orchestrix.ErrCorrupt)
			}
		})
	}
}

func TestSalvageFile_DamagedLogPage_ReturnsTheRestAndReportsSkips(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "journal.db")
	j, err := bolt.Open(path, bolt.Config{NoSync: true, PageSize: 4 << 10, MaxBatchEvents: 1})
	require.NoError(t, err)
	for range 200 {
		_, err := j.Append(ctx, "order-1", journal.Any, newEvents(1))
		require.NoError(t, err)
	}
	require.NoError(t, j.Close())

	var clean []journal.Record
	rep, err := bolt.SalvageFile(ctx, path, func(r journal.Record) error { clean = append(clean, r); return nil })
	require.NoError(t, err)
	require.Empty(t, rep.Skipped)
	require.Len(t, clean, 200)
	for i, r := range clean {
		require.Equal(t, uint64(i+1), r.Version)
	}

	// Damage the page holding the record at position 100: the id field
	// of its header.
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	at := bytes.Index(b, []byte(clean[99].Envelope.ID))
	require.Positive(t, at)
	page := at / (4 << 10)
	b[page*(4<<10)] ^= 0xff
	require.NoError(t, os.WriteFile(path, b, 0o600))

	_, err = bolt.Open(path, bolt.Config{NoSync: true, Timeout: time.Second})
	require.ErrorIs(t, err, orchestrix.ErrCorrupt)

	var got []journal.Record
	rep, err = bolt.SalvageFile(ctx, path, func(r journal.Record) error { got = append(got, r); return nil })
	require.NoError(t, err)
	require.Len(t, rep.Skipped, 1)
	require.Contains(t, rep.Skipped[0], fmt.Sprintf("page %d", page))
	require.Less(t, len(got), 200)
	require.Greater(t, len(got), 100) // only one leaf of the log is lost
	require.EqualValues(t, len(got), rep.Records)
	for _, r := range got {
		require.NotEqual(t, clean[99].Envelope.ID, r.Envelope.ID)
		require.Equal(t, clean[r.Version-1].Envelope.ID, r.Envelope.ID)
	}
}
