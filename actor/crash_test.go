package actor_test

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
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
	"github.com/orchestrix/orchestrix/actor"
	"github.com/orchestrix/orchestrix/internal/banktest"
	"github.com/orchestrix/orchestrix/internal/crashtest"
	"github.com/orchestrix/orchestrix/journal/bolt"
	snapbolt "github.com/orchestrix/orchestrix/snapshot/bolt"
)

var (
	runtimeCrashSeed   = flag.Uint64("runtimecrash.seed", 0, "seed of TestRuntime_Crash (0: derive from the clock and print it)")
	runtimeCrashCycles = flag.Int("runtimecrash.cycles", 0, "kill/restart cycles of TestRuntime_Crash (0: 10, or 3 with -short)")
)

// Environment of the child process of the runtime crash test.
const (
	envRuntimeChild   = "ORCHESTRIX_RUNTIME_CRASH_CHILD"
	envRuntimeDir     = "ORCHESTRIX_RUNTIME_CRASH_DIR"
	envRuntimeSeed    = "ORCHESTRIX_RUNTIME_CRASH_SEED"
	envRuntimeCycle   = "ORCHESTRIX_RUNTIME_CRASH_CYCLE"
	envRuntimeRetries = "ORCHESTRIX_RUNTIME_CRASH_RETRIES"
)

const (
	runtimeSenders  = 64
	runtimeAccounts = 48
	// Snapshots every few events, so kills land around snapshot writes
	// and recoveries start from snapshots.
	runtimeSnapshotEvery = 7
	// runtimeSegment is how many kill/restart cycles share one set of files.
	runtimeSegment = 50
)

// openRuntime opens the runtime the crash child uses over dir: a bbolt
// journal and a bbolt snapshot store, fsync on unless noSync.
func openRuntime(t *testing.T, dir string, noSync bool) (*bolt.Journal, *accountHandle, func()) {
	t.Helper()
	j, err := bolt.Open(filepath.Join(dir, "journal.db"), bolt.Config{NoSync: noSync})
	require.NoError(t, err)
	snaps, err := snapbolt.Open(filepath.Join(dir, "snapshots.db"), snapbolt.Config{NoSync: noSync})
	require.NoError(t, err)
	sys, err := actor.NewSystem(actor.Config{Journal: j, Snapshots: snaps, Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	def := banktest.Accounts()
	def.SnapshotEvery = runtimeSnapshotEvery
	h, err := actor.Register(sys, def)
	require.NoError(t, err)
	return j, h, func() {
		sys.Shutdown(context.Background())
		_ = snaps.Close()
		_ = j.Close()
	}
}

// TestRuntimeCrashChild is the child process of TestRuntime_Crash: it
// sends deposits with command ids from many goroutines through the real
// runtime (bbolt journal and snapshots, fsync on) and prints one "ack"
// line per acknowledged command, until it is killed. Run on its own it
// skips.
func TestRuntimeCrashChild(t *testing.T) {
	if os.Getenv(envRuntimeChild) != "1" {
		t.Skip("helper process of TestRuntime_Crash")
	}
	seed, err := strconv.ParseUint(os.Getenv(envRuntimeSeed), 10, 64)
	require.NoError(t, err)
	cycle := os.Getenv(envRuntimeCycle)
	_, h, _ := openRuntime(t, os.Getenv(envRuntimeDir), false)
	ctx := context.Background()

	var mu sync.Mutex
	out := bufio.NewWriter(os.Stdout)
	say := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		fmt.Fprintf(out, format, args...)
		_ = out.Flush() // one write per line: a kill never splits an earlier line
	}
	for a := range runtimeAccounts {
		acc := fmt.Sprintf("acc%02d", a)
		_, err := h.Send(ctx, acc, banktest.OpenAccount{Owner: acc}, actor.WithCommandID("open-"+acc))
		if err != nil && !errors.Is(err, banktest.ErrAlreadyOpen) {
			t.Fatalf("open %s: %v", acc, err)
		}
	}
	// Commands acknowledged just before the previous kill, sent again
	// with the same ids: the runtime must answer them as duplicates.
	if retries := os.Getenv(envRuntimeRetries); retries != "" {
		for _, r := range strings.Split(retries, ";") {
			id, acc, _ := strings.Cut(r, " ")
			res, err := h.Send(ctx, acc, banktest.Deposit{Amount: 1}, actor.WithCommandID(id))
			switch {
			case err != nil:
				say("retryerr %s %v\n", id, strings.ReplaceAll(err.Error(), "\n", " "))
			case res.Duplicate:
				say("dup %s %d\n", id, res.Version)
			default:
				say("redo %s %d\n", id, res.Version)
			}
		}
	}
	say(crashtest.Ready + "\n")
	var wg sync.WaitGroup
	for w := range runtimeSenders {
		rng := rand.New(rand.NewPCG(seed, uint64(w)))
		wg.Go(func() {
			for n := 0; ; n++ {
				acc := fmt.Sprintf("acc%02d", rng.IntN(runtimeAccounts))
				id := fmt.Sprintf("c%s-w%d-%d", cycle, w, n)
				// An outcome-unknown answer is retried with the same id,
				// as a caller would: the retry must not store it twice.
				for attempt := 0; attempt < 3; attempt++ {
					res, err := h.Send(ctx, acc, banktest.Deposit{Amount: 1}, actor.WithCommandID(id))
					if err == nil {
						say("ack %s %s %d\n", id, acc, res.Version)
						break
					}
					if !errors.Is(err, orchestrix.ErrOutcomeUnknown) {
						break
					}
				}
			}
		})
	}
	wg.Wait()
}

// runtimeAck is one acknowledged command read from the child.
type runtimeAck struct {
	id, account string
	version     uint64
}

// TestRuntime_Crash_AcknowledgedCommandsSurviveKill kills a child process
// that sends commands through the runtime at random moments, then checks
// the journal and a fresh runtime over the same files: every
// acknowledged command is stored exactly once at the version it was
// acknowledged with, no command id is stored twice, the commands
// acknowledged last are answered as duplicates when sent again after the
// restart, and each account's state recovered from snapshots and events
// equals the events in its stream. Reproduce a run with
// -runtimecrash.seed; run longer with -runtimecrash.cycles (make soak).
func TestRuntime_Crash_AcknowledgedCommandsSurviveKill(t *testing.T) {
	seed := *runtimeCrashSeed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	cycles := *runtimeCrashCycles
	if cycles <= 0 {
		cycles = 10
		if testing.Short() {
			cycles = 3
		}
	}
	t.Logf("runtime crash test: -runtimecrash.seed=%d -runtimecrash.cycles=%d", seed, cycles)
	rng := rand.New(rand.NewPCG(seed, 1))
	var (
		dir     string
		acked   map[string]runtimeAck // command id → ack
		retries []runtimeAck
	)
	total, dups := 0, 0
	for cycle := range cycles {
		if cycle%runtimeSegment == 0 {
			// Fresh files every runtimeSegment cycles: each cycle reads
			// the whole journal, so a long soak stays linear in its cycles.
			dir, acked, retries = t.TempDir(), map[string]runtimeAck{}, nil
		}
		out := runRuntimeChild(t, dir, rng.Uint64(), cycle, retries, time.Duration(20+rng.IntN(300))*time.Millisecond)
		for _, r := range retries {
			switch out.retried[r.id] {
			case "dup":
				dups++
			case "":
				t.Fatalf("cycle %d (seed %d): the retry of %s got no answer", cycle, seed, r.id)
			default:
				t.Fatalf("cycle %d (seed %d): the retry of %s acknowledged before the kill: %s (want a duplicate)", cycle, seed, r.id, out.retried[r.id])
			}
		}
		for _, a := range out.acks {
			if prev, ok := acked[a.id]; ok {
				t.Fatalf("cycle %d (seed %d): command %s acknowledged twice (%+v, %+v)", cycle, seed, a.id, prev, a)
			}
			acked[a.id] = a
		}
		total += len(out.acks)
		verifyRuntimeCrash(t, dir, acked, seed, cycle)
		// The last acknowledgements of this cycle are sent again at the
		// start of the next one.
		retries = out.acks[max(0, len(out.acks)-16):]
	}
	t.Logf("runtime crash test: %d cycles, %d acknowledged commands, all stored exactly once; %d retries after a restart answered as duplicates", cycles, total, dups)
	require.Positive(t, total, "the child acknowledged nothing: the test checked nothing")
}

// runtimeChildOutput is what one child printed.
type runtimeChildOutput struct {
	acks    []runtimeAck
	retried map[string]string // command id → "dup" | "redo …" | "retryerr …"
}

// runRuntimeChild starts the child, lets it send for about d after it
// is ready, kills it with SIGKILL and returns what it printed.
func runRuntimeChild(t *testing.T, dir string, seed uint64, cycle int, retries []runtimeAck, d time.Duration) runtimeChildOutput {
	t.Helper()
	var rs []string
	for _, r := range retries {
		rs = append(rs, r.id+" "+r.account)
	}
	env := []string{envRuntimeChild + "=1", envRuntimeDir + "=" + dir,
		envRuntimeSeed + "=" + strconv.FormatUint(seed, 10), envRuntimeCycle + "=" + strconv.Itoa(cycle),
		envRuntimeRetries + "=" + strings.Join(rs, ";")}
	out := runtimeChildOutput{retried: map[string]string{}}
	for _, line := range crashtest.Kill(t, "TestRuntimeCrashChild", env, d) {
		f := strings.Fields(line)
		switch {
		case len(f) == 4 && f[0] == "ack":
			if v, err := strconv.ParseUint(f[3], 10, 64); err == nil {
				out.acks = append(out.acks, runtimeAck{id: f[1], account: f[2], version: v})
			}
		case len(f) >= 2 && f[0] == "dup":
			out.retried[f[1]] = "dup"
		case len(f) >= 2 && (f[0] == "redo" || f[0] == "retryerr"):
			out.retried[f[1]] = line
		}
	}
	return out
}

// verifyRuntimeCrash checks the journal and the recovered state.
func verifyRuntimeCrash(t *testing.T, dir string, acked map[string]runtimeAck, seed uint64, cycle int) {
	t.Helper()
	ctx := context.Background()
	j, h, closeAll := openRuntime(t, dir, true)
	defer closeAll()
	deposits := map[string]int64{}
	stored := map[string]string{} // command id → "stream@version"
	for rec, err := range j.ReadAll(ctx, 0, math.MaxInt) {
		require.NoError(t, err, "cycle %d (seed %d)", cycle, seed)
		id := rec.Envelope.CausationID
		at := fmt.Sprintf("%s@%d", rec.Stream, rec.Version)
		if prev, dup := stored[id]; dup {
			t.Fatalf("cycle %d (seed %d): command %s stored twice, at %s and %s", cycle, seed, id, prev, at)
		}
		stored[id] = at
		if rec.Envelope.Type == "test.account.deposited" {
			deposits[rec.Stream]++
		}
	}
	for id, a := range acked {
		want := fmt.Sprintf("account-%s@%d", a.account, a.version)
		require.Equal(t, want, stored[id], "cycle %d (seed %d): acknowledged command %s", cycle, seed, id)
	}
	for a := range runtimeAccounts {
		acc := fmt.Sprintf("acc%02d", a)
		st, _, err := h.State(ctx, acc)
		require.NoError(t, err, "cycle %d (seed %d): state of %s", cycle, seed, acc)
		require.Equal(t, deposits["account-"+acc], st.Balance, "cycle %d (seed %d): %s recovered from snapshots and events", cycle, seed, acc)
	}
}
