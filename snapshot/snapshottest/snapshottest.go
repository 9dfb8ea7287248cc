// Package snapshottest is the conformance suite for snapshot.Store. Every
// backend runs it from its own tests:
//
//	func TestStore_Conformance(t *testing.T) {
//		snapshottest.Run(t, func(t *testing.T) (snapshot.Store, snapshottest.Features) {
//			s := mybackend.New(...)
//			return s, snapshottest.Features{Corrupt: corruptHook}
//		})
//	}
//
// The cases cover the snapshot-store part of the Akka persistence plugin
// TCK (selection by version and time bounds, deletion by version and by
// criteria, overwriting, a 10,000-byte snapshot) plus the rest of the
// contract in package snapshot: checksum fallback, MinVersion, field
// round-trips, stream isolation, invalid input, context cancellation,
// Close, and concurrent use (run it under -race).
//
// # What a backend must provide
//
//   - Factory is called once per case with that case's *testing.T and must
//     return an open store. Run closes the store when the case ends; the
//     factory may register its own t.Cleanup (removing files, dropping a
//     schema), which runs after that Close.
//   - Every case uses stream names unique to the run, so a factory may
//     return stores over one shared database.
//   - Times used by the suite are whole microseconds (the precision of a
//     PostgreSQL timestamptz); a backend must keep at least that precision
//     and return a time equal (time.Time.Equal) to the saved one. The zero
//     time must round-trip as the zero time.
//   - Invalid input (an empty stream name for any method, version 0 for
//     Save) must return an error matching snapshot.ErrInvalid.
package snapshottest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/orchestrix/orchestrix"
	"github.com/orchestrix/orchestrix/snapshot"
)

// Factory returns a fresh, open store for one case, and the optional
// capabilities the backend offers for testing.
type Factory func(t *testing.T) (snapshot.Store, Features)

// Features are backend hooks the suite needs for some cases. A nil hook
// skips the cases that need it, with the reason in the test log.
type Features struct {
	// Corrupt damages the stored snapshot of stream at version so that its
	// checksum no longer matches (flip a byte of the payload or the stored
	// checksum). The snapshot exists when Corrupt is called. It must fail
	// t on error.
	Corrupt func(t *testing.T, s snapshot.Store, stream string, version uint64)
}

// Run runs the conformance suite against the stores newStore returns. Each
// case is a subtest of t.
func Run(t *testing.T, newStore Factory) {
	t.Helper()
	cases := []struct {
		name string
		fn   func(h *harness)
	}{
		// The Akka persistence TCK (SnapshotStoreSpec) cases.
		{"Load_UnknownStream_NotFound", testLoadUnknownStream},
		{"Load_NonMatchingTime_NotFound", testLoadNonMatchingTime},
		{"Load_NonMatchingVersion_NotFound", testLoadNonMatchingVersion},
		{"Load_Latest_MostRecent", testLoadMostRecent},
		{"Load_UpperVersionBound_MostRecentMatching", testLoadUpperVersionBound},
		{"Load_UpperVersionAndTimeBounds_MostRecentMatching", testLoadUpperVersionAndTimeBounds},
		{"Delete_SingleVersion_FallsBackToOlder", testDeleteSingle},
		{"DeleteMatching_UpperVersionAndTimeBounds_DeletesAllMatching", testDeleteMatchingBounds},
		{"DeleteMatching_NonMatchingTime_KeepsSnapshot", testDeleteMatchingNonMatchingTime},
		{"Save_SameVersion_Overwrites", testSaveOverwrite},
		{"Save_10000Bytes_RoundTrips", testSaveLarge},
		// The rest of the contract.
		{"Load_CorruptNewest_FallsBackToPrevious", testCorruptFallsBack},
		{"Load_MinVersion_Bounds", testMinVersion},
		{"DeleteMatching_MinVersion_KeepsOutsideRange", testDeleteMatchingMinVersion},
		{"Load_AllFields_RoundTrip", testRoundTrip},
		{"Load_ZeroTimeAndEmptyData_RoundTrip", testZeroTimeEmptyData},
		{"SaveLoad_Data_IsCopied", testDataCopied},
		{"Streams_PrefixNames_Isolated", testStreamsIsolated},
		{"Calls_InvalidInput_ErrInvalid", testInvalidInput},
		{"Calls_CancelledContext_ContextError", testCancelledContext},
		{"Calls_AfterClose_ErrClosed", testClosed},
		{"Calls_ManyGoroutines_Consistent", testConcurrent},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			c.fn(newHarness(t, newStore))
		})
	}
}

// base is the time of the first fixture snapshot. Every time the suite uses
// is a whole microsecond.
var base = time.Date(2026, time.March, 14, 15, 9, 26, 535897000, time.UTC)

type harness struct {
	t      *testing.T
	store  snapshot.Store
	feat   Features
	ctx    context.Context
	prefix string
}

func newHarness(t *testing.T, newStore Factory) *harness {
	t.Helper()
	store, feat := newStore(t)
	require.NotNil(t, store, "factory returned a nil store")
	t.Cleanup(func() { _ = store.Close() })
	return &harness{
		t:      t,
		store:  store,
		feat:   feat,
		ctx:    t.Context(),
		prefix: fmt.Sprintf("snapshottest-%016x-", rand.Uint64()),
	}
}

// stream returns a stream name unique to this run.
func (h *harness) stream(name string) string { return h.prefix + name }

func (h *harness) save(s snapshot.Snapshot) {
	h.t.Helper()
	require.NoError(h.t, h.store.Save(h.ctx, s), "Save(%q, %d)", s.Stream, s.Version)
}

// requireLoad loads stream with c and requires the result to equal want in
// every field.
func (h *harness) requireLoad(stream string, c snapshot.Criteria, want snapshot.Snapshot) {
	h.t.Helper()
	got, ok, err := h.store.Load(h.ctx, stream, c)
	require.NoError(h.t, err, "Load(%q, %+v)", stream, c)
	require.True(h.t, ok, "Load(%q, %+v) found nothing, want version %d", stream, c, want.Version)
	requireEqualSnapshot(h.t, want, got)
}

// requireNone requires that stream has no snapshot matching c.
func (h *harness) requireNone(stream string, c snapshot.Criteria) {
	h.t.Helper()
	got, ok, err := h.store.Load(h.ctx, stream, c)
	require.NoError(h.t, err, "Load(%q, %+v)", stream, c)
	require.False(h.t, ok, "Load(%q, %+v) returned version %d, want none", stream, c, got.Version)
	require.Equal(h.t, snapshot.Snapshot{}, got, "Load without a match must return the zero Snapshot")
}

func requireEqualSnapshot(t *testing.T, want, got snapshot.Snapshot) {
	t.Helper()
	require.Equal(t, want.Stream, got.Stream, "Stream")
	require.Equal(t, want.Version, got.Version, "Version")
	require.Equal(t, want.Type, got.Type, "Type of version %d", want.Version)
	require.Equal(t, want.SchemaVersion, got.SchemaVersion, "SchemaVersion of version %d", want.Version)
	require.True(t, want.Time.Equal(got.Time), "Time of version %d: got %v, want %v", want.Version, got.Time, want.Time)
	require.True(t, bytes.Equal(want.Data, got.Data), "Data of version %d: got %q, want %q", want.Version, got.Data, want.Data)
}

// fixture saves five snapshots of stream at versions 10, 20, 30, 40, 50,
// taken one minute apart from base, and returns them oldest first.
func (h *harness) fixture(stream string) []snapshot.Snapshot {
	h.t.Helper()
	out := make([]snapshot.Snapshot, 5)
	for i := range out {
		v := uint64(i+1) * 10
		out[i] = snapshot.Snapshot{
			Stream:        stream,
			Version:       v,
			Type:          "snapshottest.Counter",
			SchemaVersion: 1,
			Time:          base.Add(time.Duration(i) * time.Minute),
			Data:          fmt.Appendf(nil, `{"stream":%q,"version":%d}`, stream, v),
		}
		h.save(out[i])
	}
	return out
}

func upTo(version uint64, at time.Time) snapshot.Criteria {
	return snapshot.Criteria{MaxVersion: version, MaxTime: at}
}

func testLoadUnknownStream(h *harness) {
	h.fixture(h.stream("known"))
	h.requireNone(h.stream("unknown"), snapshot.Latest)
}

func testLoadNonMatchingTime(h *harness) {
	s := h.stream("s")
	md := h.fixture(s)
	h.requireNone(s, upTo(math.MaxUint64, md[0].Time.Add(-time.Microsecond)))
}

func testLoadNonMatchingVersion(h *harness) {
	s := h.stream("s")
	md := h.fixture(s)
	h.requireNone(s, snapshot.AtOrBelow(md[0].Version-1))
	h.requireNone(s, snapshot.AtOrBelow(0))
}

func testLoadMostRecent(h *harness) {
	s := h.stream("s")
	md := h.fixture(s)
	h.requireLoad(s, snapshot.Latest, md[4])
}

func testLoadUpperVersionBound(h *harness) {
	s := h.stream("s")
	md := h.fixture(s)
	h.requireLoad(s, snapshot.AtOrBelow(md[2].Version), md[2])
	h.requireLoad(s, upTo(md[2].Version, base.Add(24*time.Hour)), md[2])
	// A bound between two snapshots selects the older one.
	h.requireLoad(s, snapshot.AtOrBelow(md[2].Version+5), md[2])
	h.requireLoad(s, snapshot.AtOrBelow(md[3].Version-1), md[2])
}

func testLoadUpperVersionAndTimeBounds(h *harness) {
	s := h.stream("s")
	md := h.fixture(s)
	h.requireLoad(s, upTo(md[3].Version, md[1].Time), md[1])
	// The time bound is inclusive and may fall between two snapshots.
	h.requireLoad(s, upTo(math.MaxUint64, md[2].Time.Add(time.Second)), md[2])
}

func testDeleteSingle(h *harness) {
	s := h.stream("s")
	md := h.fixture(s)
	require.NoError(h.t, h.store.Delete(h.ctx, s, md[1].Version))
	h.requireLoad(s, upTo(md[1].Version, md[1].Time), md[0])
	h.requireLoad(s, snapshot.Latest, md[4])
	// Deleting a missing snapshot, or one of an unknown stream, is not an
	// error.
	require.NoError(h.t, h.store.Delete(h.ctx, s, md[1].Version))
	require.NoError(h.t, h.store.Delete(h.ctx, s, md[1].Version+1))
	require.NoError(h.t, h.store.Delete(h.ctx, h.stream("unknown"), 1))
	h.requireLoad(s, snapshot.AtOrBelow(md[2].Version), md[2])
}

func testDeleteMatchingBounds(h *harness) {
	s := h.stream("s")
	md := h.fixture(s)
	require.NoError(h.t, h.store.DeleteMatching(h.ctx, s, upTo(md[1].Version, md[1].Time)))
	h.requireNone(s, upTo(md[1].Version, md[1].Time))
	h.requireLoad(s, snapshot.AtOrBelow(md[2].Version), md[2])
	h.requireLoad(s, snapshot.Latest, md[4])
	// Deleting again, or in an unknown stream, is not an error.
	require.NoError(h.t, h.store.DeleteMatching(h.ctx, s, upTo(md[1].Version, md[1].Time)))
	require.NoError(h.t, h.store.DeleteMatching(h.ctx, h.stream("unknown"), snapshot.Latest))
	// Latest deletes everything.
	require.NoError(h.t, h.store.DeleteMatching(h.ctx, s, snapshot.Latest))
	h.requireNone(s, snapshot.Latest)
}

func testDeleteMatchingNonMatchingTime(h *harness) {
	s := h.stream("s")
	md := h.fixture(s)
	// Version bound selects md[0..2]; the time bound excludes md[2].
	require.NoError(h.t, h.store.DeleteMatching(h.ctx, s, upTo(md[2].Version, md[2].Time.Add(-time.Microsecond))))
	h.requireLoad(s, upTo(md[2].Version, md[2].Time), md[2])
	h.requireNone(s, snapshot.AtOrBelow(md[1].Version))
	h.requireLoad(s, snapshot.Latest, md[4])
}

func testSaveOverwrite(h *harness) {
	s := h.stream("s")
	md := h.fixture(s)
	replaced := snapshot.Snapshot{
		Stream:        s,
		Version:       md[3].Version,
		Type:          "snapshottest.CounterV2",
		SchemaVersion: 2,
		Time:          md[3].Time.Add(30 * time.Second),
		Data:          []byte("overwritten"),
	}
	h.save(replaced)
	h.requireLoad(s, snapshot.AtOrBelow(md[3].Version), replaced)
	h.requireLoad(s, snapshot.Latest, md[4])
	h.requireLoad(s, snapshot.AtOrBelow(md[2].Version), md[2])
	// Saving an identical snapshot again is fine too.
	h.save(replaced)
	h.requireLoad(s, snapshot.AtOrBelow(md[3].Version), replaced)
}

func testSaveLarge(h *harness) {
	s := h.stream("s")
	data := make([]byte, 10_000)
	for i := range data {
		data[i] = byte(i*7 + i/251)
	}
	want := snapshot.Snapshot{Stream: s, Version: 100, Type: "snapshottest.Big", SchemaVersion: 1, Time: base, Data: data}
	h.save(want)
	h.requireLoad(s, snapshot.Latest, want)
}

func testCorruptFallsBack(h *harness) {
	if h.feat.Corrupt == nil {
		h.t.Skip("backend provides no Features.Corrupt hook: checksum fallback not tested here")
	}
	s := h.stream("s")
	md := h.fixture(s)
	h.feat.Corrupt(h.t, h.store, s, md[4].Version)
	h.requireLoad(s, snapshot.Latest, md[3])
	h.feat.Corrupt(h.t, h.store, s, md[3].Version)
	h.requireLoad(s, snapshot.Latest, md[2])
	// Fallback respects the other criteria too.
	h.requireLoad(s, upTo(math.MaxUint64, md[1].Time), md[1])
	h.requireNone(s, snapshot.Criteria{MaxVersion: math.MaxUint64, MinVersion: md[3].Version})
	// A healthy snapshot saved over a corrupt one is loaded again.
	h.save(md[4])
	h.requireLoad(s, snapshot.Latest, md[4])
	// A corrupt snapshot can still be deleted.
	require.NoError(h.t, h.store.Delete(h.ctx, s, md[3].Version))
	h.requireLoad(s, snapshot.AtOrBelow(md[3].Version), md[2])
	// When every match is corrupt, there is no snapshot (and no error).
	for _, m := range md[:3] {
		h.feat.Corrupt(h.t, h.store, s, m.Version)
	}
	h.requireNone(s, snapshot.AtOrBelow(md[3].Version))
	h.requireLoad(s, snapshot.Latest, md[4])
}

func testMinVersion(h *harness) {
	s := h.stream("s")
	md := h.fixture(s)
	h.requireLoad(s, snapshot.Criteria{MaxVersion: math.MaxUint64, MinVersion: md[2].Version}, md[4])
	h.requireLoad(s, snapshot.Criteria{MaxVersion: md[3].Version, MinVersion: md[3].Version}, md[3])
	h.requireLoad(s, snapshot.Criteria{MaxVersion: md[3].Version, MinVersion: md[1].Version + 1}, md[3])
	h.requireNone(s, snapshot.Criteria{MaxVersion: md[3].Version - 1, MinVersion: md[2].Version + 1})
	h.requireNone(s, snapshot.Criteria{MaxVersion: md[1].Version, MinVersion: md[2].Version})
	h.requireNone(s, snapshot.Criteria{MaxVersion: math.MaxUint64, MinVersion: md[4].Version + 1})
	// A time bound that excludes everything at or above MinVersion must not
	// fall back to a snapshot below MinVersion.
	h.requireNone(s, snapshot.Criteria{MaxVersion: math.MaxUint64, MinVersion: md[2].Version, MaxTime: md[1].Time})
}

func testDeleteMatchingMinVersion(h *harness) {
	s := h.stream("s")
	md := h.fixture(s)
	require.NoError(h.t, h.store.DeleteMatching(h.ctx, s, snapshot.Criteria{MaxVersion: md[3].Version, MinVersion: md[1].Version}))
	h.requireLoad(s, snapshot.Latest, md[4])
	h.requireLoad(s, snapshot.AtOrBelow(md[3].Version), md[0])
}

func testRoundTrip(h *harness) {
	s := h.stream("fields")
	zone := time.FixedZone("UTC+05:30", 5*3600+30*60)
	want := []snapshot.Snapshot{
		{
			Stream:        s,
			Version:       7,
			Type:          "bank.Account/v3 ünïcödé",
			SchemaVersion: 3,
			Time:          time.Date(2031, time.December, 31, 23, 59, 59, 999999000, zone),
			Data:          []byte{0, 1, 2, 0xff, 0xfe, '\n', 0, 'x'},
		},
		{
			Stream:        s,
			Version:       math.MaxInt64,
			Type:          "t",
			SchemaVersion: 0,
			Time:          time.Date(1969, time.July, 20, 20, 17, 40, 1000, time.UTC),
			Data:          []byte("high version"),
		},
	}
	for _, w := range want {
		h.save(w)
	}
	h.requireLoad(s, snapshot.AtOrBelow(7), want[0])
	h.requireLoad(s, snapshot.Latest, want[1])
}

func testZeroTimeEmptyData(h *harness) {
	s := h.stream("zero")
	h.save(snapshot.Snapshot{Stream: s, Version: 1, Type: "empty"})
	got, ok, err := h.store.Load(h.ctx, s, snapshot.Latest)
	require.NoError(h.t, err)
	require.True(h.t, ok)
	require.Equal(h.t, s, got.Stream)
	require.Equal(h.t, uint64(1), got.Version)
	require.Equal(h.t, "empty", got.Type)
	require.Zero(h.t, got.SchemaVersion)
	require.True(h.t, got.Time.IsZero(), "Time: got %v, want the zero time", got.Time)
	require.Empty(h.t, got.Data)
	// The zero time is at or before every time bound.
	_, ok, err = h.store.Load(h.ctx, s, upTo(math.MaxUint64, base))
	require.NoError(h.t, err)
	require.True(h.t, ok, "a snapshot with the zero time must match any MaxTime")
}

func testDataCopied(h *harness) {
	s := h.stream("copy")
	data := []byte("original")
	h.save(snapshot.Snapshot{Stream: s, Version: 1, Type: "t", Time: base, Data: data})
	copy(data, "XXXXXXXX")
	got, ok, err := h.store.Load(h.ctx, s, snapshot.Latest)
	require.NoError(h.t, err)
	require.True(h.t, ok)
	require.Equal(h.t, "original", string(got.Data), "Save must not keep the caller's slice")
	copy(got.Data, "YYYYYYYY")
	again, ok, err := h.store.Load(h.ctx, s, snapshot.Latest)
	require.NoError(h.t, err)
	require.True(h.t, ok)
	require.Equal(h.t, "original", string(again.Data), "Load must return a slice the caller owns")
}

func testStreamsIsolated(h *harness) {
	snap := func(stream string, v uint64) snapshot.Snapshot {
		return snapshot.Snapshot{Stream: stream, Version: v, Type: "t", SchemaVersion: 1, Time: base, Data: []byte(stream)}
	}
	a, ab, b := h.stream("a"), h.stream("ab"), h.stream("b")
	aSlash := h.stream("a/1")
	wa, wab, wb, wslash := snap(a, 5), snap(ab, 3), snap(b, 9), snap(aSlash, 4)
	for _, s := range []snapshot.Snapshot{wa, wab, wb, wslash} {
		h.save(s)
	}
	h.requireLoad(a, snapshot.Latest, wa)
	h.requireLoad(ab, snapshot.Latest, wab)
	h.requireLoad(aSlash, snapshot.Latest, wslash)
	h.requireNone(a, snapshot.AtOrBelow(4))
	h.requireNone(ab, snapshot.AtOrBelow(2))
	h.requireNone(h.stream(""), snapshot.Latest)
	h.requireNone(h.stream("a/"), snapshot.Latest)
	h.requireNone(h.stream("a/10"), snapshot.Latest)

	require.NoError(h.t, h.store.DeleteMatching(h.ctx, a, snapshot.Latest))
	h.requireNone(a, snapshot.Latest)
	h.requireLoad(ab, snapshot.Latest, wab)
	h.requireLoad(aSlash, snapshot.Latest, wslash)
	h.requireLoad(b, snapshot.Latest, wb)
	require.NoError(h.t, h.store.Delete(h.ctx, ab, 5))
	require.NoError(h.t, h.store.Delete(h.ctx, b, 3))
	h.requireLoad(ab, snapshot.Latest, wab)
	h.requireLoad(b, snapshot.Latest, wb)
}

func testInvalidInput(h *harness) {
	s := h.stream("s")
	valid := snapshot.Snapshot{Stream: s, Version: 1, Type: "t", Time: base, Data: []byte("x")}

	noStream := valid
	noStream.Stream = ""
	err := h.store.Save(h.ctx, noStream)
	require.ErrorIs(h.t, err, snapshot.ErrInvalid, "Save with an empty stream")

	noVersion := valid
	noVersion.Version = 0
	err = h.store.Save(h.ctx, noVersion)
	require.ErrorIs(h.t, err, snapshot.ErrInvalid, "Save with version 0")
	h.requireNone(s, snapshot.Latest)

	_, ok, err := h.store.Load(h.ctx, "", snapshot.Latest)
	require.ErrorIs(h.t, err, snapshot.ErrInvalid, "Load with an empty stream")
	require.False(h.t, ok)
	require.ErrorIs(h.t, h.store.Delete(h.ctx, "", 1), snapshot.ErrInvalid, "Delete with an empty stream")
	require.ErrorIs(h.t, h.store.DeleteMatching(h.ctx, "", snapshot.Latest), snapshot.ErrInvalid, "DeleteMatching with an empty stream")

	// The store still works after rejecting input.
	h.save(valid)
	h.requireLoad(s, snapshot.Latest, valid)
}

func testCancelledContext(h *harness) {
	s := h.stream("s")
	md := h.fixture(s)
	ctx, cancel := context.WithCancel(h.ctx)
	cancel()

	extra := md[4]
	extra.Version = 60
	require.ErrorIs(h.t, h.store.Save(ctx, extra), context.Canceled, "Save")
	_, ok, err := h.store.Load(ctx, s, snapshot.Latest)
	require.ErrorIs(h.t, err, context.Canceled, "Load")
	require.False(h.t, ok)
	require.ErrorIs(h.t, h.store.Delete(ctx, s, md[4].Version), context.Canceled, "Delete")
	require.ErrorIs(h.t, h.store.DeleteMatching(ctx, s, snapshot.Latest), context.Canceled, "DeleteMatching")

	// Nothing changed.
	h.requireLoad(s, snapshot.Latest, md[4])
	h.requireLoad(s, snapshot.AtOrBelow(md[0].Version), md[0])

	// A deadline that has passed is reported as such.
	dctx, dcancel := context.WithDeadline(h.ctx, time.Unix(0, 0))
	defer dcancel()
	_, _, err = h.store.Load(dctx, s, snapshot.Latest)
	require.ErrorIs(h.t, err, context.DeadlineExceeded, "Load with an expired deadline")
}

func testClosed(h *harness) {
	s := h.stream("s")
	md := h.fixture(s)
	require.NoError(h.t, h.store.Close())
	require.NoError(h.t, h.store.Close(), "a second Close must be a no-op")

	require.ErrorIs(h.t, h.store.Save(h.ctx, md[0]), orchestrix.ErrClosed, "Save")
	_, ok, err := h.store.Load(h.ctx, s, snapshot.Latest)
	require.ErrorIs(h.t, err, orchestrix.ErrClosed, "Load")
	require.False(h.t, ok)
	require.ErrorIs(h.t, h.store.Delete(h.ctx, s, md[0].Version), orchestrix.ErrClosed, "Delete")
	require.ErrorIs(h.t, h.store.DeleteMatching(h.ctx, s, snapshot.Latest), orchestrix.ErrClosed, "DeleteMatching")
}

// concurrentData is the payload the concurrency case stores at version v, so
// a reader can tell a torn or misplaced snapshot from a good one.
func concurrentData(stream string, v uint64) []byte {
	return fmt.Appendf(nil, "%s@%d", stream, v)
}

func testConcurrent(h *harness) {
	const (
		workers = 8
		rounds  = 25
	)
	shared := h.stream("shared")
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	fail := func(err error) {
		mu.Lock()
		errs = append(errs, err)
		mu.Unlock()
	}
	check := func(s snapshot.Snapshot, ok bool, err error, stream string) error {
		switch {
		case err != nil:
			return fmt.Errorf("Load(%q): %w", stream, err)
		case !ok:
			return fmt.Errorf("Load(%q): nothing found after a successful Save", stream)
		case s.Stream != stream:
			return fmt.Errorf("Load(%q): got stream %q", stream, s.Stream)
		case !bytes.Equal(s.Data, concurrentData(stream, s.Version)):
			return fmt.Errorf("Load(%q): version %d carries data %q", stream, s.Version, s.Data)
		}
		return nil
	}
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			own := h.stream(fmt.Sprintf("worker-%d", w))
			for i := range uint64(rounds) {
				v := i + 1
				if err := h.store.Save(h.ctx, snapshot.Snapshot{Stream: own, Version: v, Type: "t", Time: base, Data: concurrentData(own, v)}); err != nil {
					fail(fmt.Errorf("Save(%q, %d): %w", own, v, err))
					return
				}
				sv := uint64(w)*1000 + v
				if err := h.store.Save(h.ctx, snapshot.Snapshot{Stream: shared, Version: sv, Type: "t", Time: base, Data: concurrentData(shared, sv)}); err != nil {
					fail(fmt.Errorf("Save(%q, %d): %w", shared, sv, err))
					return
				}
				got, ok, err := h.store.Load(h.ctx, own, snapshot.Latest)
				if err := check(got, ok, err, own); err != nil {
					fail(err)
					return
				}
				if got.Version != v {
					fail(fmt.Errorf("Load(%q): got version %d, want %d (its own latest save)", own, got.Version, v))
					return
				}
				got, ok, err = h.store.Load(h.ctx, shared, snapshot.Latest)
				if err := check(got, ok, err, shared); err != nil {
					fail(err)
					return
				}
				if got.Version < sv {
					fail(fmt.Errorf("Load(%q): got version %d, below the %d this worker saved", shared, got.Version, sv))
					return
				}
				if i%5 == 4 {
					// Drop this worker's older snapshots while others write.
					if err := h.store.DeleteMatching(h.ctx, own, snapshot.AtOrBelow(v-1)); err != nil {
						fail(fmt.Errorf("DeleteMatching(%q): %w", own, err))
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	require.NoError(h.t, errors.Join(errs...))

	for w := range workers {
		own := h.stream(fmt.Sprintf("worker-%d", w))
		h.requireLoad(own, snapshot.Latest, snapshot.Snapshot{Stream: own, Version: rounds, Type: "t", Time: base, Data: concurrentData(own, rounds)})
		// The last round deleted every older version.
		h.requireNone(own, snapshot.AtOrBelow(rounds-1))
	}
	last := uint64(workers-1)*1000 + rounds
	h.requireLoad(shared, snapshot.Latest, snapshot.Snapshot{Stream: shared, Version: last, Type: "t", Time: base, Data: concurrentData(shared, last)})
}
