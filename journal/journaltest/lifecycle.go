package journaltest

import (
	"context"
	"errors"
	"math"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/orchestrix/orchestrix"
	"github.com/orchestrix/orchestrix/journal"
)

// readErr drains seq and returns its error, or nil.
func readErr(seq func(func(journal.Record, error) bool)) error {
	_, err := collect(seq)
	return err
}

func runContext(t *testing.T, newJournal Factory) {
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()

	t.Run("Append", func(t *testing.T) {
		e := newEnv(t, newJournal)
		_, err := e.j.Append(cancelled, "ctx", journal.Any, newEvents(2))
		require.ErrorIs(t, err, context.Canceled)
		assert.Equal(t, uint64(0), e.head("ctx"), "nothing appended")
		assert.Empty(t, e.readAll(0, math.MaxInt), "nothing appended")
	})

	t.Run("AppendDeadlineExceeded", func(t *testing.T) {
		e := newEnv(t, newJournal)
		ctx, cancel := context.WithDeadline(context.Background(), time.Unix(0, 0))
		defer cancel()
		_, err := e.j.Append(ctx, "ctx", journal.Any, newEvents(1))
		require.ErrorIs(t, err, context.DeadlineExceeded)
		assert.Equal(t, uint64(0), e.head("ctx"), "nothing appended")
	})

	t.Run("Read", func(t *testing.T) {
		e := newEnv(t, newJournal)
		e.fill("ctx", 3, 3)
		require.ErrorIs(t, readErr(e.j.Read(cancelled, "ctx", 1, math.MaxUint64, math.MaxInt)), context.Canceled)
	})

	t.Run("ReadAll", func(t *testing.T) {
		e := newEnv(t, newJournal)
		e.fill("ctx", 3, 3)
		require.ErrorIs(t, readErr(e.j.ReadAll(cancelled, 0, math.MaxInt)), context.Canceled)
	})

	t.Run("ReadCancelledMidway", func(t *testing.T) {
		e := newEnv(t, newJournal)
		e.fill("ctx", 5, 5)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		var err error
		n := 0
		for _, rerr := range e.j.Read(ctx, "ctx", 1, math.MaxUint64, math.MaxInt) {
			if rerr != nil {
				err = rerr
				break
			}
			n++
			cancel()
		}
		// A journal may have fetched some records before the cancel; it
		// must not return all of them without reporting the cancel.
		if n < 5 {
			require.ErrorIs(t, err, context.Canceled)
		}
	})

	t.Run("Head", func(t *testing.T) {
		e := newEnv(t, newJournal)
		e.fill("ctx", 1, 1)
		_, err := e.j.Head(cancelled, "ctx")
		require.ErrorIs(t, err, context.Canceled)
	})

	t.Run("DeleteTo", func(t *testing.T) {
		e := newEnv(t, newJournal)
		d := e.deleter()
		e.fill("ctx", 3, 3)
		require.ErrorIs(t, d.DeleteTo(cancelled, "ctx", 2), context.Canceled)
		assert.Len(t, e.read("ctx", 1, math.MaxUint64, math.MaxInt), 3, "nothing deleted")
	})

	t.Run("LastPosition", func(t *testing.T) {
		e := newEnv(t, newJournal)
		w := e.watcher()
		_, err := w.LastPosition(cancelled)
		require.ErrorIs(t, err, context.Canceled)
	})

	t.Run("WaitFor", func(t *testing.T) {
		e := newEnv(t, newJournal)
		w := e.watcher()
		_, err := w.WaitFor(cancelled, 0)
		require.ErrorIs(t, err, context.Canceled)
	})
}

func runClose(t *testing.T, newJournal Factory) {
	t.Run("EveryCallReturnsErrClosed", func(t *testing.T) {
		e := newEnv(t, newJournal)
		e.fill("closed", 2, 2)
		e.checkInvariants = false
		require.NoError(t, e.j.Close())
		ctx := context.Background()

		_, err := e.j.Append(ctx, "closed", journal.Any, newEvents(1))
		assert.ErrorIs(t, err, orchestrix.ErrClosed, "Append")
		assert.ErrorIs(t, readErr(e.j.Read(ctx, "closed", 1, math.MaxUint64, math.MaxInt)), orchestrix.ErrClosed, "Read")
		assert.ErrorIs(t, readErr(e.j.ReadAll(ctx, 0, math.MaxInt)), orchestrix.ErrClosed, "ReadAll")
		_, err = e.j.Head(ctx, "closed")
		assert.ErrorIs(t, err, orchestrix.ErrClosed, "Head")
		if d, ok := e.j.(journal.Deleter); ok {
			assert.ErrorIs(t, d.DeleteTo(ctx, "closed", 1), orchestrix.ErrClosed, "DeleteTo")
		}
		if w, ok := e.j.(journal.Watcher); ok {
			_, err = w.LastPosition(ctx)
			assert.ErrorIs(t, err, orchestrix.ErrClosed, "LastPosition")
			_, err = w.WaitFor(ctx, 0)
			assert.ErrorIs(t, err, orchestrix.ErrClosed, "WaitFor")
		}
	})

	t.Run("CloseIsIdempotent", func(t *testing.T) {
		e := newEnv(t, newJournal)
		e.checkInvariants = false
		require.NoError(t, e.j.Close())
		require.NoError(t, e.j.Close())
	})

	t.Run("CloseDuringAppends", func(t *testing.T) {
		e := newEnv(t, newJournal)
		e.checkInvariants = false
		const writers = 8
		var wg sync.WaitGroup
		errs := make(chan error, writers*50)
		start := make(chan struct{})
		for w := range writers {
			wg.Go(func() {
				<-start
				for range 50 {
					_, err := e.j.Append(e.ctx, streamName("closing", w), journal.Any, newEvents(1))
					errs <- err
					if err != nil {
						return
					}
				}
			})
		}
		close(start)
		require.NoError(t, e.j.Close())
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil && !errors.Is(err, orchestrix.ErrClosed) {
				t.Errorf("an append racing Close reported %v; want success or ErrClosed", err)
			}
		}
	})
}

func runCorruption(t *testing.T, newJournal Factory) {
	t.Run("ReadAndReadAllReportCorruptRecord", func(t *testing.T) {
		e := newEnv(t, newJournal)
		if e.features.Corrupt == nil {
			t.Skip("journaltest: Features.Corrupt not set; the backend cannot damage a record on purpose")
		}
		e.fill("corrupt", 3, 1)
		e.fill("healthy", 2, 2)
		e.checkInvariants = false
		e.features.Corrupt(t, e.j, "corrupt", 2)

		recs, err := collect(e.j.Read(e.ctx, "corrupt", 1, math.MaxUint64, math.MaxInt))
		requireCorrupt(t, err, "corrupt", "Read")
		for _, r := range recs {
			assert.Less(t, r.Version, uint64(2), "Read returned a record at or after the corrupt one")
		}

		if br, ok := e.j.(journal.BorrowedReader); ok {
			recs, err := collectBorrowed(br.ReadBorrowed(e.ctx, "corrupt", 1, math.MaxUint64, math.MaxInt))
			requireCorrupt(t, err, "corrupt", "ReadBorrowed")
			for _, r := range recs {
				assert.Less(t, r.Version, uint64(2), "ReadBorrowed returned a record at or after the corrupt one")
			}
		}

		recs, err = collect(e.j.ReadAll(e.ctx, 0, math.MaxInt))
		requireCorrupt(t, err, "corrupt", "ReadAll")
		for _, r := range recs {
			if r.Stream == "corrupt" {
				assert.Less(t, r.Version, uint64(2), "ReadAll returned a record at or after the corrupt one")
			}
		}

		// Records of other streams stay readable.
		assert.Equal(t, span(1, 2), versions(e.read("healthy", 1, math.MaxUint64, math.MaxInt)))
	})
}

func requireCorrupt(t *testing.T, err error, stream, call string) {
	t.Helper()
	require.Error(t, err, "%s must report the corrupt record, not skip it", call)
	require.ErrorIs(t, err, orchestrix.ErrCorrupt, call)
	var ce *journal.CorruptionError
	require.ErrorAs(t, err, &ce, call)
	assert.Equal(t, stream, ce.Stream, "%s: CorruptionError names the stream", call)
}

func runRoundTrip(t *testing.T, newJournal Factory) {
	t.Run("AllAttributes", func(t *testing.T) {
		e := newEnv(t, newJournal)
		full := orchestrix.Envelope{
			ID:              "0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b",
			Source:          "/orchestrix/bank",
			SpecVersion:     orchestrix.SpecVersion,
			Type:            "bank.AccountOpened",
			Subject:         "account-42",
			Time:            time.Date(2026, time.March, 4, 5, 6, 7, 891234567, time.FixedZone("CET", 3600)),
			DataContentType: "application/octet-stream",
			DataSchema:      "https://schemas.example.com/bank/account-opened/v3",
			SchemaVersion:   3,
			Sequence:        99, // the journal replaces it with the version
			CorrelationID:   "corr-1",
			CausationID:     "cmd-7",
			TraceParent:     "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
			Extensions:      map[string]string{"tenant": "acme", "region": "eu1", "v2": ""},
			Data:            []byte{0x00, 0x01, 0xfe, 0xff, '{', '"', '\n'},
		}
		minimal := orchestrix.Envelope{ID: "minimal-1", Source: "/s", Type: "t.Minimal"}
		e.fill("rt", 2, 2)
		res := e.appendOK("rt", journal.Exact(2), []orchestrix.Envelope{full, minimal})
		require.Equal(t, uint64(3), res.FirstVersion)

		fromRead := e.read("rt", 3, 4, math.MaxInt)
		fromAll := e.readAll(res.FirstPosition, 2)
		for _, recs := range [][]journal.Record{fromRead, fromAll} {
			require.Len(t, recs, 2)
			got := recs[0]
			assert.Equal(t, "rt", got.Stream)
			assert.Equal(t, uint64(3), got.Version)
			assert.Equal(t, res.FirstPosition, got.Position)
			assert.Positive(t, got.Position)
			env := got.Envelope
			assert.Equal(t, full.ID, env.ID)
			assert.Equal(t, full.Source, env.Source)
			assert.Equal(t, full.Type, env.Type)
			assert.Equal(t, full.Subject, env.Subject)
			assert.True(t, full.Time.Equal(env.Time), "Time: got %v, want %v", env.Time, full.Time)
			assert.Equal(t, full.DataContentType, env.DataContentType)
			assert.Equal(t, full.DataSchema, env.DataSchema)
			assert.Equal(t, full.SchemaVersion, env.SchemaVersion)
			assert.Equal(t, uint64(3), env.Sequence, "Sequence equals Version")
			assert.Equal(t, full.CorrelationID, env.CorrelationID)
			assert.Equal(t, full.CausationID, env.CausationID)
			assert.Equal(t, full.TraceParent, env.TraceParent)
			assert.Equal(t, full.Extensions, env.Extensions)
			assert.Equal(t, full.Data, env.Data)
			assert.Contains(t, []string{"", orchestrix.SpecVersion}, env.SpecVersion)

			got = recs[1]
			assert.Equal(t, uint64(4), got.Version)
			assert.Equal(t, res.LastPosition, got.Position)
			env = got.Envelope
			assert.Equal(t, minimal.ID, env.ID)
			assert.Equal(t, minimal.Source, env.Source)
			assert.Equal(t, minimal.Type, env.Type)
			assert.Equal(t, uint64(4), env.Sequence)
			assert.Empty(t, env.Subject)
			assert.True(t, env.Time.IsZero(), "zero Time stays zero, got %v", env.Time)
			assert.Empty(t, env.Extensions)
			assert.Empty(t, env.Data)
			assert.Empty(t, env.CorrelationID)
		}
	})

	t.Run("AppendDoesNotKeepCallerSlices", func(t *testing.T) {
		e := newEnv(t, newJournal)
		ev := newEvent()
		ev.Extensions = map[string]string{"tenant": "acme"}
		want := string(ev.Data)
		e.appendOK("rt", journal.NoStream, []orchestrix.Envelope{ev})
		for i := range ev.Data {
			ev.Data[i] = 'X'
		}
		ev.Extensions["tenant"] = "changed"
		recs := e.read("rt", 1, 1, 1)
		require.Len(t, recs, 1)
		assert.Equal(t, want, string(recs[0].Envelope.Data))
		assert.Equal(t, "acme", recs[0].Envelope.Extensions["tenant"])
	})
}
