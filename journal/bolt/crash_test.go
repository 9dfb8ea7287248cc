package bolt_test

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/orchestrix/orchestrix"
	"github.com/orchestrix/orchestrix/internal/crashtest"
	"github.com/orchestrix/orchestrix/journal"
	"github.com/orchestrix/orchestrix/journal/bolt"
)

var (
	crashSeed   = flag.Uint64("crash.seed", 0, "seed of TestJournal_Crash (0: derive from the clock and print it)")
	crashCycles = flag.Int("crash.cycles", 0, "kill/reopen cycles of TestJournal_Crash (0: 20, or 5 with -short)")
)

// Environment of the child process of the crash test.
const (
	envCrashChild = "ORCHESTRIX_BOLT_CRASH_CHILD"
	envCrashPath  = "ORCHESTRIX_BOLT_CRASH_PATH"
	envCrashSeed  = "ORCHESTRIX_BOLT_CRASH_SEED"
)

const (
	crashWriters = 48
	crashStreams = 96
	// crashSegment is how many kill/reopen cycles share one file.
	crashSegment = 50
)

// TestCrashChild is the child process of TestJournal_Crash: it appends to
// many streams with fsync on and prints one "ack" line per acknowledged
// append, until it is killed. Run on its own it skips.
func TestCrashChild(t *testing.T) {
	if os.Getenv(envCrashChild) != "1" {
		t.Skip("helper process of TestJournal_Crash")
	}
	seed, err := strconv.ParseUint(os.Getenv(envCrashSeed), 10, 64)
	require.NoError(t, err)
	// Small checkpoints and batches so kills land around every kind of
	// commit, including the slices of a checkpoint round (a round of up
	// to 96 streams spreads over the commits of the next 150 events), and
	// a head cache of 16 of the 96 streams, so that appends keep reading
	// evicted heads back from the file.
	j, err := bolt.Open(os.Getenv(envCrashPath), bolt.Config{IndexEvery: 300, MaxBatchEvents: 64, CachedHeads: 16})
	require.NoError(t, err)
	ctx := context.Background()
	var mu sync.Mutex
	out := bufio.NewWriter(os.Stdout)
	ack := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		fmt.Fprintf(out, format, args...)
		_ = out.Flush() // one write per line: a kill never splits an earlier line
	}
	ack(crashtest.Ready + "\n")
	var wg sync.WaitGroup
	for w := range crashWriters {
		rng := rand.New(rand.NewPCG(seed, uint64(w)))
		wg.Go(func() {
			for {
				// Writers share streams, so some appends conflict and are
				// retried with the new head: conflicts are part of the mix.
				stream := fmt.Sprintf("crash-%03d", rng.IntN(crashStreams))
				head, err := j.Head(ctx, stream)
				if err != nil {
					return
				}
				evs := make([]orchestrix.Envelope, 1+rng.IntN(3))
				ids := make([]string, len(evs))
				for i := range evs {
					evs[i] = orchestrix.Envelope{ID: orchestrix.NewID(), Source: "/crash", Type: "crash.Appended", Data: []byte(`{"w":1}`)}
					ids[i] = evs[i].ID
				}
				expected := journal.Exact(head)
				if rng.IntN(4) == 0 {
					expected = journal.Any
				}
				res, err := j.Append(ctx, stream, expected, evs)
				if err != nil {
					continue
				}
				ack("ack %s %d %s\n", stream, res.FirstVersion, strings.Join(ids, ","))
			}
		})
	}
	wg.Wait()
}

// crashAck is one acknowledged append read from the child.
type crashAck struct {
	stream string
	first  uint64
	ids    []string
}

// TestJournal_Crash_AcknowledgedEventsSurviveKill kills a child process
// that appends with fsync on at random moments, reopens the file and
// checks every invariant: each acknowledged event is there exactly once,
// versions have no gaps, positions strictly increase and every record
// passes its checksum. Reproduce a run with -crash.seed; run longer with
// -crash.cycles.
func TestJournal_Crash_AcknowledgedEventsSurviveKill(t *testing.T) {
	seed := *crashSeed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	cycles := *crashCycles
	if cycles <= 0 {
		cycles = 20
		if testing.Short() {
			cycles = 5
		}
	}
	t.Logf("crash test: -crash.seed=%d -crash.cycles=%d", seed, cycles)
	rng := rand.New(rand.NewPCG(seed, 0))
	var (
		path  string
		acked map[string]map[uint64]string // stream → version → id
	)
	total, inRound := 0, 0
	for cycle := range cycles {
		if cycle%crashSegment == 0 {
			// A fresh file every crashSegment cycles: each reopen checks
			// the whole file, so a long soak stays linear in its cycles.
			path = filepath.Join(t.TempDir(), "crash.db")
			acked = map[string]map[uint64]string{}
		}
		acks := runCrashChild(t, path, rng.Uint64(), time.Duration(10+rng.IntN(250))*time.Millisecond)
		for _, a := range acks {
			m := acked[a.stream]
			if m == nil {
				m = map[uint64]string{}
				acked[a.stream] = m
			}
			for i, id := range a.ids {
				v := a.first + uint64(i)
				if prev, ok := m[v]; ok && prev != id {
					t.Fatalf("cycle %d (seed %d): %s version %d acknowledged twice, as %s and %s", cycle, seed, a.stream, v, prev, id)
				}
				m[v] = id
			}
			total += len(a.ids)
		}
		// The file as the kill left it: a checkpoint round may have
		// flushed some of its streams (their records after the
		// checkpoint position are indexed already) and not others.
		// The check must find nothing wrong with it before Open
		// touches it.
		_, indexed, _, err := bolt.CheckpointState(path)
		require.NoError(t, err, "cycle %d (seed %d)", cycle, seed)
		if indexed > 0 {
			inRound++
		}
		rep, err := bolt.CheckFile(context.Background(), path, time.Second)
		require.NoError(t, err, "cycle %d (seed %d)", cycle, seed)
		require.True(t, rep.OK(), "cycle %d (seed %d): the killed file does not check clean:\n%s", cycle, seed, problemText(rep))
		verifyCrashJournal(t, path, acked, seed, cycle)
	}
	t.Logf("crash test: %d cycles, %d acknowledged events, all present exactly once; in %d the killed file held records after the checkpoint position that a round had already indexed (Open must skip them)", cycles, total, inRound)
	require.Positive(t, total, "the child acknowledged nothing: the test checked nothing")
}

// runCrashChild starts the child, lets it append for about d after it is
// ready, kills it with SIGKILL and returns the acknowledgements it printed.
func runCrashChild(t *testing.T, path string, seed uint64, d time.Duration) []crashAck {
	t.Helper()
	var acks []crashAck
	for _, line := range crashtest.Kill(t, "TestCrashChild", []string{envCrashChild + "=1", envCrashPath + "=" + path, envCrashSeed + "=" + strconv.FormatUint(seed, 10)}, d) {
		f := strings.Fields(line)
		if len(f) != 4 || f[0] != "ack" {
			continue
		}
		if v, err := strconv.ParseUint(f[2], 10, 64); err == nil {
			acks = append(acks, crashAck{stream: f[1], first: v, ids: strings.Split(f[3], ",")})
		}
	}
	return acks
}

// verifyCrashJournal reopens the file and checks the invariants.
func verifyCrashJournal(t *testing.T, path string, acked map[string]map[uint64]string, seed uint64, cycle int) {
	t.Helper()
	ctx := context.Background()
	j, err := bolt.Open(path, bolt.Config{NoSync: true})
	require.NoError(t, err, "cycle %d (seed %d): reopen", cycle, seed)
	defer func() { require.NoError(t, j.Close()) }()

	seenIDs := map[string]uint64{}
	byStream := map[string][]journal.Record{}
	var lastPos uint64
	for rec, err := range j.ReadAll(ctx, 0, math.MaxInt) {
		require.NoError(t, err, "cycle %d (seed %d): ReadAll after position %d", cycle, seed, lastPos)
		require.Greater(t, rec.Position, lastPos, "cycle %d (seed %d): positions must strictly increase", cycle, seed)
		lastPos = rec.Position
		if prev, dup := seenIDs[rec.Envelope.ID]; dup {
			t.Fatalf("cycle %d (seed %d): event %s stored twice, at positions %d and %d", cycle, seed, rec.Envelope.ID, prev, rec.Position)
		}
		seenIDs[rec.Envelope.ID] = rec.Position
		byStream[rec.Stream] = append(byStream[rec.Stream], rec)
	}
	for stream, recs := range byStream {
		head, err := j.Head(ctx, stream)
		require.NoError(t, err)
		for i, rec := range recs {
			require.Equal(t, uint64(i+1), rec.Version, "cycle %d (seed %d): %s has a gap", cycle, seed, stream)
			require.Equal(t, rec.Version, rec.Envelope.Sequence)
		}
		require.Equal(t, uint64(len(recs)), head, "cycle %d (seed %d): head of %s", cycle, seed, stream)
		var n int
		for rec, err := range j.Read(ctx, stream, 1, math.MaxUint64, math.MaxInt) {
			require.NoError(t, err)
			require.Equal(t, recs[n], rec, "cycle %d (seed %d): Read and ReadAll disagree on %s", cycle, seed, stream)
			n++
		}
		require.Equal(t, len(recs), n)
	}
	for stream, versions := range acked {
		recs := byStream[stream]
		for v, id := range versions {
			require.LessOrEqual(t, v, uint64(len(recs)), "cycle %d (seed %d): acknowledged %s version %d lost", cycle, seed, stream, v)
			require.Equal(t, id, recs[v-1].Envelope.ID, "cycle %d (seed %d): acknowledged %s version %d has another event", cycle, seed, stream, v)
		}
	}
}
