package journaltest

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/orchestrix/orchestrix/journal"
)

// streamName returns "prefix-n".
func streamName(prefix string, n int) string { return fmt.Sprintf("%s-%d", prefix, n) }

func runConcurrency(t *testing.T, newJournal Factory) {
	t.Run("OneWinnerPerVersion", func(t *testing.T) { testOneWinnerPerVersion(t, newJournal) })
	t.Run("GlobalOrderWithConcurrentWriters", func(t *testing.T) { testGlobalOrder(t, newJournal) })
	t.Run("ReadsAgreeWhileWritersCommit", func(t *testing.T) { testReadsAgree(t, newJournal) })
}

// testReadsAgree polls ReadAll in a tight loop, without waiting for
// commits, while writers append, and checks every record it gets against
// Head and Read of its stream: a record must never be visible to ReadAll
// before it is to the other reads (a follower of the global log that acts
// on a record by reading its stream would miss it).
func testReadsAgree(t *testing.T, newJournal Factory) {
	e := newEnv(t, newJournal)
	const writers = 8
	appends := 150
	if testing.Short() {
		appends = 30
	}
	var wg sync.WaitGroup
	done := make(chan struct{})
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range appends {
				if _, err := e.j.Append(e.ctx, streamName("agree", w*appends+i), journal.NoStream, newEvents(1)); err != nil {
					t.Errorf("append: %v", err)
					return
				}
			}
		}()
	}
	go func() { wg.Wait(); close(done) }()

	var last uint64
	checked := 0
	for finished := false; !finished; {
		select {
		case <-done:
			finished = true // one more pass reads the rest
		default:
		}
		for r, err := range e.j.ReadAll(e.ctx, last+1, math.MaxInt) {
			require.NoError(t, err)
			last = r.Position
			require.NoError(t, agrees(e, r))
			checked++
		}
	}
	require.Equal(t, writers*appends, checked, "records checked")
}

// testOneWinnerPerVersion lets many goroutines append at the same exact
// version, round after round: exactly one wins each round and every loser
// gets a conflict naming the winner's version.
func testOneWinnerPerVersion(t *testing.T, newJournal Factory) {
	e := newEnv(t, newJournal)
	const goroutines = 8
	rounds := 15
	if testing.Short() {
		rounds = 5
	}
	const stream = "contended"
	var winners []string
	for round := range rounds {
		expected := uint64(round)
		start := make(chan struct{})
		var wg sync.WaitGroup
		errs := make([]error, goroutines)
		evs := newEvents(goroutines)
		for g := range goroutines {
			wg.Go(func() {
				<-start
				_, errs[g] = e.j.Append(e.ctx, stream, journal.Exact(expected), evs[g:g+1])
			})
		}
		close(start)
		wg.Wait()
		wins := 0
		for g, err := range errs {
			if err == nil {
				wins++
				winners = append(winners, evs[g].ID)
				continue
			}
			vc := requireConflict(t, err, stream, expected+1)
			got, _ := vc.Expected.Exact()
			assert.Equal(t, expected, got)
		}
		require.Equal(t, 1, wins, "round %d: exactly one append at version %d wins", round, expected)
	}
	recs := e.read(stream, 1, math.MaxUint64, math.MaxInt)
	assert.Equal(t, span(1, uint64(rounds)), versions(recs), "no gaps")
	assert.Equal(t, winners, ids(recs), "the stream holds exactly the winners, in round order")
	assert.Equal(t, uint64(rounds), e.head(stream))
}

// written is one append made by the global-order test.
type written struct {
	stream string
	ids    []string
	res    journal.AppendResult
}

// testGlobalOrder runs 16 writers, each on its own stream and half of them
// also on a shared stream with Any, while a follower reads the global log
// with ReadAll and waits for commits (WaitFor, or polling when the journal
// is not a Watcher). The follower and a final ReadAll must each see every
// record exactly once, in strictly increasing position order.
func testGlobalOrder(t *testing.T, newJournal Factory) {
	e := newEnv(t, newJournal)
	const writers = 16
	batches := 40
	if testing.Short() {
		batches = 6
	}
	const shared = "shared"

	total := 0
	for w := range writers {
		for b := range batches {
			total += 1 + b%3
			if w%2 == 0 && b%4 == 0 {
				total += 2
			}
		}
	}

	// The follower.
	writersDone := make(chan struct{})
	waitCtx, stopWaiting := context.WithCancel(context.Background())
	defer stopWaiting()
	var followerSeen []journal.Record
	followerErr := make(chan error, 1)
	go func() { followerErr <- follow(e, writersDone, waitCtx, &followerSeen) }()

	// The writers.
	var wg sync.WaitGroup
	var mu sync.Mutex
	var log []written
	var failures atomic.Int64
	start := make(chan struct{})
	for w := range writers {
		wg.Go(func() {
			<-start
			own := streamName("writer", w)
			var head uint64
			for b := range batches {
				evs := newEvents(1 + b%3)
				res, err := e.j.Append(e.ctx, own, journal.Exact(head), evs)
				if err != nil {
					failures.Add(1)
					t.Errorf("writer %d batch %d: %v", w, b, err)
					return
				}
				head = res.LastVersion
				mu.Lock()
				log = append(log, written{own, eventIDs(evs), res})
				mu.Unlock()
				if w%2 == 0 && b%4 == 0 {
					evs := newEvents(2)
					res, err := e.j.Append(e.ctx, shared, journal.Any, evs)
					if err != nil {
						failures.Add(1)
						t.Errorf("writer %d shared batch %d: %v", w, b, err)
						return
					}
					mu.Lock()
					log = append(log, written{shared, eventIDs(evs), res})
					mu.Unlock()
				}
			}
		})
	}
	close(start)
	wg.Wait()
	close(writersDone)
	stopWaiting()
	require.NoError(t, <-followerErr)
	require.Zero(t, failures.Load())

	// What the writers were told.
	type placed struct {
		stream   string
		version  uint64
		position uint64 // 0 when the append result does not say (middle events)
	}
	want := make(map[string]placed, total)
	for _, w := range log {
		require.Equal(t, uint64(len(w.ids)), w.res.LastVersion-w.res.FirstVersion+1, "append of %d events to %q", len(w.ids), w.stream)
		for i, id := range w.ids {
			p := placed{stream: w.stream, version: w.res.FirstVersion + uint64(i)}
			switch i {
			case 0:
				p.position = w.res.FirstPosition
			case len(w.ids) - 1:
				p.position = w.res.LastPosition
			}
			want[id] = p
		}
	}
	require.Len(t, want, total)

	check := func(who string, recs []journal.Record) {
		t.Helper()
		seen := make(map[string]bool, len(recs))
		lastVersion := make(map[string]uint64)
		var prev uint64
		for _, r := range recs {
			id := r.Envelope.ID
			require.False(t, seen[id], "%s: event %s (stream %q v%d) seen twice", who, id, r.Stream, r.Version)
			seen[id] = true
			require.Greater(t, r.Position, prev, "%s: positions strictly increase", who)
			prev = r.Position
			p, ok := want[id]
			require.True(t, ok, "%s: unknown event %s", who, id)
			assert.Equal(t, p.stream, r.Stream, "%s: event %s stream", who, id)
			assert.Equal(t, p.version, r.Version, "%s: event %s version", who, id)
			if p.position != 0 {
				assert.Equal(t, p.position, r.Position, "%s: event %s position as the append reported", who, id)
			}
			assert.Equal(t, lastVersion[r.Stream]+1, r.Version, "%s: stream %q versions in order without gaps", who, r.Stream)
			lastVersion[r.Stream] = r.Version
		}
		require.Len(t, seen, total, "%s: every committed record exactly once", who)
	}
	check("ReadAll", e.readAll(0, math.MaxInt))
	check("follower", followerSeen)
}

// follow reads the global log from the start until the writers are done
// and a last read finds nothing new, appending what it sees to out. It
// checks as it goes that it never sees a position twice or out of order.
func follow(e *env, writersDone <-chan struct{}, waitCtx context.Context, out *[]journal.Record) error {
	watcher, _ := e.j.(journal.Watcher)
	var last uint64
	for {
		var done bool
		select {
		case <-writersDone:
			done = true
		default:
		}
		n := 0
		var newest journal.Record
		for r, err := range e.j.ReadAll(e.ctx, last+1, math.MaxInt) {
			if err != nil {
				return fmt.Errorf("follower: ReadAll(%d): %w", last+1, err)
			}
			if r.Position <= last {
				return fmt.Errorf("follower: ReadAll(%d) returned position %d", last+1, r.Position)
			}
			last = r.Position
			*out = append(*out, r)
			n++
			newest = r
		}
		if n > 0 {
			if err := agrees(e, newest); err != nil {
				return err
			}
		}
		if done && n == 0 {
			return nil
		}
		if n > 0 {
			continue
		}
		if watcher == nil {
			time.Sleep(time.Millisecond) // polling interval, not an assertion
			continue
		}
		pos, err := watcher.WaitFor(waitCtx, last)
		switch {
		case errors.Is(err, context.Canceled):
			// The writers are done: one more read picks up the rest.
		case err != nil:
			return fmt.Errorf("follower: WaitFor(%d): %w", last, err)
		case pos <= last:
			return fmt.Errorf("follower: WaitFor(%d) returned %d", last, pos)
		}
	}
}

// agrees checks that a record ReadAll returned is visible to the other
// reads: Head of its stream, LastPosition (of a Watcher) and Read of its
// stream. Its errors say "follower:", the reader that found them.
func agrees(e *env, r journal.Record) error {
	head, err := e.j.Head(e.ctx, r.Stream)
	if err != nil {
		return fmt.Errorf("follower: Head(%q): %w", r.Stream, err)
	}
	if head < r.Version {
		return fmt.Errorf("follower: ReadAll returned %q version %d at position %d, but Head is %d", r.Stream, r.Version, r.Position, head)
	}
	if w, ok := e.j.(journal.Watcher); ok {
		lastPos, err := w.LastPosition(e.ctx)
		if err != nil {
			return fmt.Errorf("follower: LastPosition: %w", err)
		}
		if lastPos < r.Position {
			return fmt.Errorf("follower: ReadAll returned position %d, but LastPosition is %d", r.Position, lastPos)
		}
	}
	found := false
	for got, err := range e.j.Read(e.ctx, r.Stream, r.Version, r.Version, 1) {
		if err != nil {
			return fmt.Errorf("follower: Read(%q, %d): %w", r.Stream, r.Version, err)
		}
		found = got.Position == r.Position
	}
	if !found {
		return fmt.Errorf("follower: ReadAll returned %q version %d at position %d, which Read of the stream does not return", r.Stream, r.Version, r.Position)
	}
	return nil
}
