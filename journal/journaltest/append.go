package journaltest

import (
	"math"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/orchestrix/orchestrix"
	"github.com/orchestrix/orchestrix/journal"
)

func runExpectedVersion(t *testing.T, newJournal Factory) {
	t.Run("NoStreamOnNewStreamAppends", func(t *testing.T) {
		e := newEnv(t, newJournal)
		res := e.appendOK("ev", journal.NoStream, newEvents(3))
		assert.Equal(t, uint64(1), res.FirstVersion)
		assert.Equal(t, uint64(3), res.LastVersion)
		assert.Equal(t, uint64(3), e.head("ev"))
	})

	t.Run("ExactZeroIsNoStream", func(t *testing.T) {
		e := newEnv(t, newJournal)
		res := e.appendOK("ev", journal.Exact(0), newEvents(1))
		assert.Equal(t, uint64(1), res.FirstVersion)
		_, err := e.j.Append(e.ctx, "ev", journal.Exact(0), newEvents(1))
		requireConflict(t, err, "ev", 1)
	})

	t.Run("NoStreamOnExistingStreamConflicts", func(t *testing.T) {
		e := newEnv(t, newJournal)
		e.fill("ev", 2, 2)
		_, err := e.j.Append(e.ctx, "ev", journal.NoStream, newEvents(1))
		vc := requireConflict(t, err, "ev", 2)
		assert.True(t, vc.Expected.IsNoStream(), "Expected is NoStream, got %s", vc.Expected)
		assert.Equal(t, uint64(2), e.head("ev"))
	})

	t.Run("StreamExistsOnNewStreamConflicts", func(t *testing.T) {
		e := newEnv(t, newJournal)
		_, err := e.j.Append(e.ctx, "ev", journal.StreamExists, newEvents(1))
		vc := requireConflict(t, err, "ev", 0)
		assert.True(t, vc.Expected.IsStreamExists(), "Expected is StreamExists, got %s", vc.Expected)
		assert.Equal(t, uint64(0), e.head("ev"))
		assert.Empty(t, e.readAll(0, math.MaxInt))
	})

	t.Run("StreamExistsOnExistingStreamAppends", func(t *testing.T) {
		e := newEnv(t, newJournal)
		e.fill("ev", 2, 1)
		res := e.appendOK("ev", journal.StreamExists, newEvents(2))
		assert.Equal(t, uint64(3), res.FirstVersion)
		assert.Equal(t, uint64(4), res.LastVersion)
	})

	t.Run("AnyAppendsToNewAndExistingStreams", func(t *testing.T) {
		e := newEnv(t, newJournal)
		res := e.appendOK("ev", journal.Any, newEvents(1))
		assert.Equal(t, uint64(1), res.FirstVersion)
		res = e.appendOK("ev", journal.Any, newEvents(2))
		assert.Equal(t, uint64(2), res.FirstVersion)
		assert.Equal(t, uint64(3), res.LastVersion)
	})

	t.Run("ExactMatchingHeadAppends", func(t *testing.T) {
		e := newEnv(t, newJournal)
		e.fill("ev", 3, 2)
		res := e.appendOK("ev", journal.Exact(3), newEvents(1))
		assert.Equal(t, uint64(4), res.FirstVersion)
	})

	for _, tc := range []struct {
		name     string
		existing int
		expected uint64
	}{
		{"ExactBelowHeadConflicts", 3, 2},
		{"ExactAboveHeadConflicts", 3, 4},
		{"ExactOnNewStreamConflicts", 0, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, newJournal)
			if tc.existing > 0 {
				e.fill("ev", tc.existing, 1)
			}
			before := len(e.readAll(0, math.MaxInt))
			_, err := e.j.Append(e.ctx, "ev", journal.Exact(tc.expected), newEvents(2))
			vc := requireConflict(t, err, "ev", uint64(tc.existing))
			got, ok := vc.Expected.Exact()
			assert.True(t, ok, "Expected is exact, got %s", vc.Expected)
			assert.Equal(t, tc.expected, got)
			assert.Equal(t, uint64(tc.existing), e.head("ev"), "a conflict stores nothing")
			assert.Len(t, e.readAll(0, math.MaxInt), before, "a conflict stores nothing")
		})
	}
}

// setupIdempotency writes a1..a5 to stream "idem" in appends [a1 a2],
// [a3 a4], [a5], and one event to another stream in between.
func setupIdempotency(t *testing.T, newJournal Factory) (*env, []orchestrix.Envelope, []journal.AppendResult) {
	t.Helper()
	e := newEnv(t, newJournal)
	var evs []orchestrix.Envelope
	var results []journal.AppendResult
	var head uint64
	for _, k := range []int{2, 2, 1} {
		batch := newEvents(k)
		res := e.appendOK("idem", journal.Exact(head), batch)
		head = res.LastVersion
		evs = append(evs, batch...)
		results = append(results, res)
		e.appendOK("idem-other", journal.Any, newEvents(1))
	}
	return e, evs, results
}

// requireDuplicate checks that appending evs again is recognised as a
// retry that took versions first..last at the given positions, and that
// nothing new was stored.
func (e *env) requireDuplicate(stream string, expected journal.ExpectedVersion, evs []orchestrix.Envelope, want journal.AppendResult) {
	e.t.Helper()
	beforeHead := e.head(stream)
	beforeAll := len(e.readAll(0, math.MaxInt))
	res, err := e.j.Append(e.ctx, stream, expected, evs)
	require.NoError(e.t, err, "retry of stored events expecting %s", expected)
	assert.True(e.t, res.Duplicate, "retry expecting %s is reported as Duplicate", expected)
	want.Duplicate = true
	assert.Equal(e.t, want, res, "retry expecting %s returns the original result", expected)
	assert.Equal(e.t, beforeHead, e.head(stream), "a duplicate stores nothing")
	assert.Len(e.t, e.readAll(0, math.MaxInt), beforeAll, "a duplicate stores nothing")
}

// requireRejectedRetry checks that appending evs expecting expected is a
// version conflict that stores nothing.
func (e *env) requireRejectedRetry(stream string, expected journal.ExpectedVersion, evs []orchestrix.Envelope) {
	e.t.Helper()
	beforeHead := e.head(stream)
	beforeAll := len(e.readAll(0, math.MaxInt))
	_, err := e.j.Append(e.ctx, stream, expected, evs)
	requireConflict(e.t, err, stream, beforeHead)
	assert.Equal(e.t, beforeHead, e.head(stream), "a conflict stores nothing")
	assert.Len(e.t, e.readAll(0, math.MaxInt), beforeAll, "a conflict stores nothing")
}

func runIdempotency(t *testing.T, newJournal Factory) {
	whole := []struct {
		name     string
		expected journal.ExpectedVersion
	}{
		{"NoStream", journal.NoStream},
		{"Any", journal.Any},
		{"StreamExists", journal.StreamExists},
		{"ExactZero", journal.Exact(0)},
	}
	for _, tc := range whole {
		t.Run("SameIDsAgain/"+tc.name, func(t *testing.T) {
			e := newEnv(t, newJournal)
			evs := newEvents(3)
			first := e.appendOK("idem", journal.NoStream, evs)
			e.requireDuplicate("idem", tc.expected, evs, first)
			// The stream still takes new events after the retry.
			res := e.appendOK("idem", journal.Exact(3), newEvents(1))
			assert.Equal(t, uint64(4), res.FirstVersion)
		})
	}

	t.Run("ExactBelowHeadWithMatchingIDs", func(t *testing.T) {
		e, evs, results := setupIdempotency(t, newJournal)
		e.requireDuplicate("idem", journal.Exact(2), evs[2:4], results[1])
		e.requireDuplicate("idem", journal.Exact(0), evs[0:2], results[0])
		e.requireDuplicate("idem", journal.Exact(4), evs[4:5], results[2])
	})

	t.Run("ExactBelowHeadAcrossAppends", func(t *testing.T) {
		e, evs, results := setupIdempotency(t, newJournal)
		want := journal.AppendResult{
			FirstVersion: 2, LastVersion: 3,
			FirstPosition: results[0].LastPosition, LastPosition: results[1].FirstPosition,
		}
		e.requireDuplicate("idem", journal.Exact(1), evs[1:3], want)
	})

	t.Run("NoStreamWithPrefixOfStream", func(t *testing.T) {
		e, evs, results := setupIdempotency(t, newJournal)
		want := journal.AppendResult{FirstVersion: 1, LastVersion: 3, FirstPosition: results[0].FirstPosition, LastPosition: results[1].FirstPosition}
		e.requireDuplicate("idem", journal.NoStream, evs[0:3], want)
	})

	t.Run("AnyWithEarlierAppend", func(t *testing.T) {
		e, evs, results := setupIdempotency(t, newJournal)
		e.requireDuplicate("idem", journal.Any, evs[0:2], results[0])
		e.requireDuplicate("idem", journal.StreamExists, evs[2:4], results[1])
	})

	t.Run("PartialOverlapLaterIDsDiffer", func(t *testing.T) {
		e, evs, _ := setupIdempotency(t, newJournal)
		e.requireRejectedRetry("idem", journal.Exact(2), []orchestrix.Envelope{evs[2], newEvent()})
		e.requireRejectedRetry("idem", journal.NoStream, append(evs[0:2:2], newEvent()))
		e.requireRejectedRetry("idem", journal.Any, []orchestrix.Envelope{evs[0], newEvent()})
		e.requireRejectedRetry("idem", journal.StreamExists, []orchestrix.Envelope{evs[2], newEvent()})
	})

	t.Run("PartialOverlapExtendsPastHead", func(t *testing.T) {
		e, evs, _ := setupIdempotency(t, newJournal)
		e.requireRejectedRetry("idem", journal.Exact(4), []orchestrix.Envelope{evs[4], newEvent()})
		e.requireRejectedRetry("idem", journal.NoStream, append(evs[0:5:5], newEvent()))
		e.requireRejectedRetry("idem", journal.Any, append(evs[3:5:5], newEvent()))
	})

	t.Run("DifferentIDsWithStaleExactVersion", func(t *testing.T) {
		e, _, _ := setupIdempotency(t, newJournal)
		e.requireRejectedRetry("idem", journal.Exact(2), newEvents(2))
		e.requireRejectedRetry("idem", journal.NoStream, newEvents(1))
	})

	t.Run("ExactHeadWithNewIDsAppends", func(t *testing.T) {
		e, _, _ := setupIdempotency(t, newJournal)
		res := e.appendOK("idem", journal.Exact(5), newEvents(2))
		assert.Equal(t, uint64(6), res.FirstVersion)
		assert.Equal(t, uint64(7), res.LastVersion)
	})

	t.Run("SameIDsInAnotherStreamAreNew", func(t *testing.T) {
		e, evs, _ := setupIdempotency(t, newJournal)
		res := e.appendOK("idem-copy", journal.NoStream, evs[0:2])
		assert.Equal(t, uint64(1), res.FirstVersion)
		assert.Equal(t, uint64(2), res.LastVersion)
	})
}

func runRejection(t *testing.T, newJournal Factory) {
	t.Run("EmptyAppend", func(t *testing.T) {
		e := newEnv(t, newJournal)
		_, err := e.j.Append(e.ctx, "rej", journal.Any, nil)
		require.ErrorIs(t, err, journal.ErrNoEvents)
		_, err = e.j.Append(e.ctx, "rej", journal.NoStream, []orchestrix.Envelope{})
		require.ErrorIs(t, err, journal.ErrNoEvents)
		assert.ErrorIs(t, err, orchestrix.ErrInvalidEnvelope)
		assert.Equal(t, uint64(0), e.head("rej"))
		assert.Empty(t, e.readAll(0, math.MaxInt))
	})

	// The stream-name rule is journal.ValidateStream on every backend, so
	// that a stream stored by one can be imported into any other.
	for _, tc := range []struct{ name, stream string }{
		{"Empty", ""},
		{"TooLong", strings.Repeat("s", journal.MaxStreamLen+1)},
		{"InvalidUTF8", "order-\xff"},
		{"NUL", "order-\x00-1"},
	} {
		t.Run("InvalidStreamName/"+tc.name, func(t *testing.T) {
			e := newEnv(t, newJournal)
			_, err := e.j.Append(e.ctx, tc.stream, journal.Any, newEvents(1))
			require.ErrorIs(t, err, journal.ErrInvalidStream)
			assert.Empty(t, e.readAll(0, math.MaxInt))
		})
	}

	t.Run("LongestStreamNameAppends", func(t *testing.T) {
		e := newEnv(t, newJournal)
		name := strings.Repeat("s", journal.MaxStreamLen)
		res := e.appendOK(name, journal.NoStream, newEvents(1))
		assert.Equal(t, uint64(1), res.LastVersion)
		assert.Equal(t, uint64(1), e.head(name))
	})

	for _, tc := range invalidEvents() {
		t.Run("InvalidEvent/"+tc.name, func(t *testing.T) {
			e := newEnv(t, newJournal)
			e.fill("rej", 1, 1)
			evs := newEvents(3)
			tc.spoil(&evs[1])
			_, err := e.j.Append(e.ctx, "rej", journal.Exact(1), evs)
			require.Error(t, err)
			assert.ErrorIs(t, err, orchestrix.ErrInvalidEnvelope)
			assert.NotErrorIs(t, err, orchestrix.ErrVersionConflict)
			assert.Equal(t, uint64(1), e.head("rej"), "no event of a rejected append is stored")
			assert.Len(t, e.readAll(0, math.MaxInt), 1, "no event of a rejected append is stored")
		})
	}

	t.Run("TooLarge", func(t *testing.T) {
		e := newEnv(t, newJournal)
		if e.features.MaxEventSize <= 0 {
			t.Skip("journaltest: Features.MaxEventSize not set")
		}
		evs := newEvents(2)
		evs[1].Data = make([]byte, e.features.MaxEventSize+1)
		_, err := e.j.Append(e.ctx, "big", journal.NoStream, evs)
		require.ErrorIs(t, err, orchestrix.ErrTooLarge)
		assert.Equal(t, uint64(0), e.head("big"))
		// An event well within the limit is accepted.
		ok := newEvent()
		ok.Data = make([]byte, e.features.MaxEventSize/2)
		e.appendOK("big", journal.NoStream, []orchestrix.Envelope{ok})
	})

	t.Run("BadEventAmongConcurrentAppends", func(t *testing.T) {
		e := newEnv(t, newJournal)
		const writers = 8
		const rounds = 5
		bad := invalidEvents()
		for round := range rounds {
			var wg sync.WaitGroup
			errs := make([]error, writers)
			start := make(chan struct{})
			for w := range writers {
				evs := newEvents(2)
				switch w {
				case 3:
					bad[round%len(bad)].spoil(&evs[1])
				case 6:
					if e.features.MaxEventSize > 0 {
						evs[0].Data = make([]byte, e.features.MaxEventSize+1)
					}
				}
				wg.Go(func() {
					<-start
					_, errs[w] = e.j.Append(e.ctx, streamName("batch", w), journal.Exact(uint64(2*round)), evs)
				})
			}
			close(start)
			wg.Wait()
			for w, err := range errs {
				switch {
				case w == 3:
					assert.ErrorIs(t, err, orchestrix.ErrInvalidEnvelope, "round %d writer %d", round, w)
				case w == 6 && e.features.MaxEventSize > 0:
					assert.ErrorIs(t, err, orchestrix.ErrTooLarge, "round %d writer %d", round, w)
				default:
					assert.NoError(t, err, "round %d writer %d: a bad event must only reject its own append", round, w)
				}
			}
			// Keep the rejected writers' streams in step so every round
			// expects the same version everywhere.
			e.appendOK(streamName("batch", 3), journal.Exact(uint64(2*round)), newEvents(2))
			if e.features.MaxEventSize > 0 {
				e.appendOK(streamName("batch", 6), journal.Exact(uint64(2*round)), newEvents(2))
			}
		}
		for w := range writers {
			assert.Equal(t, uint64(2*rounds), e.head(streamName("batch", w)))
		}
	})
}

type invalidEvent struct {
	name  string
	spoil func(*orchestrix.Envelope)
}

// invalidEvents lists ways to make an envelope fail Validate.
func invalidEvents() []invalidEvent {
	return []invalidEvent{
		{"EmptyType", func(ev *orchestrix.Envelope) { ev.Type = "" }},
		{"EmptyID", func(ev *orchestrix.Envelope) { ev.ID = "" }},
		{"EmptySource", func(ev *orchestrix.Envelope) { ev.Source = "" }},
		{"WrongSpecVersion", func(ev *orchestrix.Envelope) { ev.SpecVersion = "0.3" }},
		{"UpperCaseExtensionName", func(ev *orchestrix.Envelope) { ev.Extensions = map[string]string{"Tenant": "acme"} }},
		{"ExtensionNameWithDash", func(ev *orchestrix.Envelope) { ev.Extensions = map[string]string{"ten-ant": "acme"} }},
		{"ExtensionNameTooLong", func(ev *orchestrix.Envelope) {
			ev.Extensions = map[string]string{"abcdefghijklmnopqrstu": "x"}
		}},
		{"EmptyExtensionName", func(ev *orchestrix.Envelope) { ev.Extensions = map[string]string{"": "x"} }},
	}
}
