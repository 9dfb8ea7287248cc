package cluster_test

// Chaos tests over three member processes and a PostgreSQL server of the
// test's own (internal/pgtest.Start), which one of them kills: many
// writers racing on one aggregate, and the database crashing mid-load.
// Each ends in an invariant check over the journal: every acknowledged
// command stored exactly once at the version it was acknowledged with,
// every stream gap-free, no command id stored twice.

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/orchestrix/orchestrix/internal/pgtest"
	"github.com/orchestrix/orchestrix/journal/postgres"
)

var chaosSeed = flag.Uint64("chaos.seed", 0, "seed of TestChaos (0: derive from the clock and print it)")

// outcome is what the caller learnt of one command id (possibly sent
// more than once).
type outcome struct {
	id      string // aggregate id
	cmdID   string
	replies []sendReply
}

// acked reports whether some reply acknowledged the command, and with
// which version.
func (o *outcome) acked() (uint64, bool) {
	for _, r := range o.replies {
		if r.OK {
			return r.Version, true
		}
	}
	return 0, false
}

// unknown reports whether no reply acknowledged the command and at least
// one said its outcome is unknown: it may be stored.
func (o *outcome) unknown() bool {
	if _, ok := o.acked(); ok {
		return false
	}
	for _, r := range o.replies {
		if r.OutcomeUnknown {
			return true
		}
	}
	return false
}

// ledger collects outcomes from many goroutines.
type ledger struct {
	mu   sync.Mutex
	byID map[string]*outcome // by command id
}

func newLedger() *ledger { return &ledger{byID: map[string]*outcome{}} }

func (l *ledger) add(id, cmdID string, r sendReply) {
	l.mu.Lock()
	defer l.mu.Unlock()
	o := l.byID[cmdID]
	if o == nil {
		o = &outcome{id: id, cmdID: cmdID}
		l.byID[cmdID] = o
	}
	o.replies = append(o.replies, r)
}

// sorted returns the outcomes in command-id order (deterministic output).
func (l *ledger) sorted() []*outcome {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]*outcome, 0, len(l.byID))
	for _, o := range l.byID {
		out = append(out, o)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].cmdID < out[j].cmdID })
	return out
}

// storedEvent is one event of a counter stream as the journal has it.
type storedEvent struct {
	version uint64
	cmdID   string
}

// readStreams returns the events of the counter streams whose aggregate
// ids start with prefix, by aggregate id, in version order.
func readStreams(t *testing.T, dsn, prefix string) map[string][]storedEvent {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	j, err := postgres.Open(ctx, dsn, postgres.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	out := map[string][]storedEvent{}
	for rec, err := range j.ReadAll(ctx, 0, 1<<30) {
		if err != nil {
			t.Fatal(err)
		}
		id, ok := strings.CutPrefix(rec.Stream, "counter-")
		if !ok {
			t.Fatalf("unexpected stream %q", rec.Stream)
		}
		if !strings.HasPrefix(id, prefix) {
			continue
		}
		out[id] = append(out[id], storedEvent{version: rec.Version, cmdID: rec.Envelope.CausationID})
	}
	for id := range out {
		sort.Slice(out[id], func(a, b int) bool { return out[id][a].version < out[id][b].version })
	}
	return out
}

// checkJournal asserts the invariants of the journal against what callers
// were told, and returns the command ids stored and their versions:
//   - every stream's versions are exactly 1..N, and no command id is
//     stored twice (in one stream or across streams);
//   - every acknowledged command is stored, in the stream of its id, at
//     the version its acknowledgement reported (never a false success);
//   - a command whose every reply was a definite error is not stored;
//   - every stored command was sent (acknowledged or outcome unknown).
func checkJournal(t *testing.T, streams map[string][]storedEvent, outcomes []*outcome) map[string]storedEvent {
	t.Helper()
	stored := map[string]storedEvent{}
	storedIn := map[string]string{}
	for id, evs := range streams {
		for k, e := range evs {
			if e.version != uint64(k+1) {
				t.Errorf("stream of %s: event %d has version %d: the history has a gap or a repeat", id, k, e.version)
			}
			if prev, dup := storedIn[e.cmdID]; dup {
				t.Errorf("command %s is stored twice (in %s and at version %d of %s)", e.cmdID, prev, e.version, id)
			}
			stored[e.cmdID], storedIn[e.cmdID] = e, id
		}
	}
	sent := map[string]bool{}
	for _, o := range outcomes {
		sent[o.cmdID] = true
		e, isStored := stored[o.cmdID]
		if v, ok := o.acked(); ok {
			switch {
			case !isStored:
				t.Errorf("command %s to %s was acknowledged (version %d) but is not in the journal: a false success", o.cmdID, o.id, v)
			case storedIn[o.cmdID] != o.id || e.version != v:
				t.Errorf("command %s was acknowledged at version %d of %s but is stored at version %d of %s", o.cmdID, v, o.id, e.version, storedIn[o.cmdID])
			}
			continue
		}
		if !o.unknown() && isStored {
			t.Errorf("command %s failed with a definite error (%s) but is stored at version %d of %s", o.cmdID, o.replies[0].Err, e.version, storedIn[o.cmdID])
		}
	}
	for c := range stored {
		if !sent[c] {
			t.Errorf("command %s is stored but was never sent", c)
		}
	}
	return stored
}

// retryUnsettled retries, with its own command id, every command that was
// not acknowledged, through members round robin, and asserts the retry
// succeeds and reports a duplicate exactly when the command was stored
// already. Each retry goes into the outcome as one more reply.
func retryUnsettled(t *testing.T, ms []*member, outcomes []*outcome, stored map[string]storedEvent) (wereStored, retried int) {
	t.Helper()
	for k, o := range outcomes {
		if _, ok := o.acked(); ok {
			continue
		}
		retried++
		e, was := stored[o.cmdID]
		if was {
			wereStored++
		}
		r := ms[k%len(ms)].send(t, o.id, o.cmdID, false)
		o.replies = append(o.replies, r)
		switch {
		case !r.OK:
			t.Errorf("retry of %s to %s: %s", o.cmdID, o.id, r.Err)
		case was && (!r.Duplicate || r.Version != e.version):
			t.Errorf("retry of %s, stored at version %d before the retry: %+v, want a duplicate of version %d", o.cmdID, e.version, r, e.version)
		case !was && r.Duplicate:
			t.Errorf("retry of %s, not stored before the retry, answered as a duplicate: %+v", o.cmdID, r)
		}
	}
	return wereStored, retried
}

func seedOf(t *testing.T) uint64 {
	seed := *chaosSeed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Logf("chaos seed: -chaos.seed=%d", seed)
	return seed
}

func TestChaos(t *testing.T) {
	needCluster(t)
	srv := pgtest.Start(t) // a server of this test's own: it gets killed
	dsn := srv.NewDatabase(t)
	ms := startMembers(t, dsn, 3, nil)
	seed := seedOf(t)

	t.Run("SixteenWritersOneID", func(t *testing.T) {
		// 16 writers send to one aggregate, each command through a random
		// member; a quarter of the commands are sent twice at once with the
		// same command id through two different members (half of those
		// through the two members that do not own the id, so that both
		// copies take the remote path and arrive close together, often
		// while the first is still being appended). The owner serialises
		// them: one gap-free history, every command once.
		const (
			writers   = 16
			perWriter = 20
			id        = "id-0" // an id /owners reports on
		)
		var owners []string
		if err := ms[0].get("/owners", url.Values{"n": {"1"}}, &owners); err != nil || len(owners) != 1 {
			t.Fatalf("owner of %s: %v %v", id, owners, err)
		}
		var nonOwners []int
		for i, mb := range ms {
			if mb.address != owners[0] {
				nonOwners = append(nonOwners, i)
			}
		}
		if len(nonOwners) != len(ms)-1 {
			t.Fatalf("owner of %s is %q, not one of the members", id, owners[0])
		}
		l := newLedger()
		var wg sync.WaitGroup
		for g := range writers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				rng := rand.New(rand.NewPCG(seed, uint64(g)))
				for k := range perWriter {
					cmdID := fmt.Sprintf("race-%02d-%02d", g, k)
					via := rng.IntN(len(ms))
					if rng.IntN(4) == 0 {
						other := (via + 1 + rng.IntN(len(ms)-1)) % len(ms)
						if rng.IntN(2) == 0 {
							via, other = nonOwners[0], nonOwners[1]
						}
						// Two copies through each of the two members, all at once.
						var twins sync.WaitGroup
						for _, i := range []int{via, other, via, other} {
							twins.Add(1)
							go func() { defer twins.Done(); l.add(id, cmdID, ms[i].send(t, id, cmdID, false)) }()
						}
						twins.Wait()
						continue
					}
					l.add(id, cmdID, ms[via].send(t, id, cmdID, false))
				}
			}()
		}
		wg.Wait()

		outcomes := l.sorted()
		var acked, unknown, twins int
		for _, o := range outcomes {
			if len(o.replies) > 1 {
				twins++
			}
			// Replies to one command id agree on its version, and at most
			// one of them executed it.
			executed := 0
			for _, r := range o.replies {
				switch {
				case r.OK:
					if v, _ := o.acked(); r.Version != v {
						t.Errorf("command %s acknowledged at versions %d and %d", o.cmdID, v, r.Version)
					}
					if !r.Duplicate {
						executed++
					}
				case !r.OutcomeUnknown:
					t.Errorf("command %s through a stable cluster failed definitely: %s", o.cmdID, r.Err)
				}
			}
			if executed > 1 {
				t.Errorf("command %s was executed by %d of its sends (want at most one; the others duplicates)", o.cmdID, executed)
			}
			if _, ok := o.acked(); ok {
				acked++
			} else if o.unknown() {
				unknown++
			}
		}
		streams := readStreams(t, dsn, "id-")
		stored := checkJournal(t, streams, outcomes)
		unknownStored := 0
		for _, o := range outcomes {
			if _, ok := stored[o.cmdID]; ok && o.unknown() {
				unknownStored++
			}
		}
		if n := len(streams[id]); n != acked+unknownStored {
			t.Errorf("stream of %s has %d events, want %d acknowledged + %d outcome-unknown found stored", id, n, acked, unknownStored)
		}
		wereStored, retried := retryUnsettled(t, ms, outcomes, stored)
		streams = readStreams(t, dsn, "id-")
		checkJournal(t, streams, outcomes)
		n := len(streams[id])
		if n != writers*perWriter {
			t.Errorf("after retrying the unknown outcomes the stream has %d events, want one per command: %d", n, writers*perWriter)
		}
		// Every member reads the same state from the owner.
		for i, mb := range ms {
			var st struct {
				Value   int
				Version uint64
				Err     string
			}
			if err := mb.get("/state", url.Values{"id": {id}}, &st); err != nil || st.Err != "" {
				t.Fatalf("state through member %d: %v %s", i, err, st.Err)
			}
			if st.Value != n || st.Version != uint64(n) {
				t.Errorf("state of %s through member %d: value %d version %d, want %d and %d", id, i, st.Value, st.Version, n, n)
			}
		}
		t.Logf("%d commands (%d sent twice at once): %d acknowledged, %d outcome unknown (%d of them found stored, %d retried); %d events",
			len(outcomes), twins, acked, unknown, wereStored, retried, n)
	})

	t.Run("PostgreSQLKilledMidLoad", func(t *testing.T) {
		// Writers send to 24 aggregates through all members; the
		// PostgreSQL server is SIGKILLed mid-load, stays down a moment,
		// and restarts on the same data directory and port. Callers see
		// failures (outcome unknown, or definite errors for what was
		// never stored), never a false success; every member serves again.
		const (
			writers = 24
			nIDs    = 24
		)
		l := newLedger()
		var (
			stop    atomic.Bool
			phase   atomic.Int32 // 0 before the kill, 1 server down, 2 restarted
			ackedIn [3]atomic.Int64
			failIn  [3]atomic.Int64
			wg      sync.WaitGroup
		)
		for g := range writers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				rng := rand.New(rand.NewPCG(seed, 100+uint64(g)))
				for k := 0; !stop.Load(); k++ {
					id := "pg-" + strconv.Itoa(rng.IntN(nIDs))
					cmdID := fmt.Sprintf("pg-%02d-%04d", g, k)
					p := phase.Load()
					r := ms[rng.IntN(len(ms))].send(t, id, cmdID, false)
					l.add(id, cmdID, r)
					if r.OK {
						ackedIn[p].Add(1)
					} else {
						failIn[p].Add(1)
						time.Sleep(20 * time.Millisecond) // do not spin while the server is down
					}
				}
			}()
		}
		waitFor(t, 60*time.Second, "100 acknowledged commands before the kill", func() bool { return ackedIn[0].Load() >= 100 })
		if err := srv.Kill(); err != nil {
			t.Fatal(err)
		}
		phase.Store(1)
		time.Sleep(2 * time.Second) // commands keep coming while the server is down
		if err := srv.Restart(); err != nil {
			t.Fatal(err)
		}
		phase.Store(2)
		// Every member serves again: commands sent through each of them
		// after the restart succeed.
		for i, mb := range ms {
			n := 0
			waitFor(t, 60*time.Second, fmt.Sprintf("a command through member %d to succeed after the restart", i), func() bool {
				n++
				id, cmdID := "pg-"+strconv.Itoa(n%nIDs), fmt.Sprintf("pg-probe-%d-%03d", i, n)
				r := mb.send(t, id, cmdID, false)
				l.add(id, cmdID, r)
				return r.OK
			})
		}
		waitFor(t, 60*time.Second, "50 acknowledged commands after the restart", func() bool { return ackedIn[2].Load() >= 50 })
		stop.Store(true)
		wg.Wait()
		for i, mb := range ms {
			select {
			case <-mb.exited:
				t.Fatalf("member %d exited while PostgreSQL was down", i)
			default:
			}
		}

		outcomes := l.sorted()
		var acked, unknown, definite int
		examples := map[string]string{} // one error text per class, for the log
		for _, o := range outcomes {
			switch _, ok := o.acked(); {
			case ok:
				acked++
			case o.unknown():
				unknown++
				examples["outcome unknown"] = o.replies[0].Err
			default:
				definite++
				examples["definite"] = o.replies[0].Err
			}
		}
		for class, e := range examples {
			t.Logf("an error of class %s: %s", class, e)
		}
		streams := readStreams(t, dsn, "pg-")
		stored := checkJournal(t, streams, outcomes)
		wereStored, retried := retryUnsettled(t, ms, outcomes, stored)
		streams = readStreams(t, dsn, "pg-")
		stored = checkJournal(t, streams, outcomes)
		for _, o := range outcomes {
			if _, ok := stored[o.cmdID]; !ok {
				t.Errorf("command %s is not stored after its retry was acknowledged", o.cmdID)
			}
		}
		if failIn[1].Load() == 0 {
			t.Errorf("no command failed while the server was down: the kill did not hit the load")
		}
		t.Logf("%d commands: %d acknowledged, %d outcome unknown, %d definite errors (%d of the unsettled found stored, %d retried); "+
			"acks/failures before the kill %d/%d, while down %d/%d, after the restart %d/%d",
			len(outcomes), acked, unknown, definite, wereStored, retried,
			ackedIn[0].Load(), failIn[0].Load(), ackedIn[1].Load(), failIn[1].Load(), ackedIn[2].Load(), failIn[2].Load())
	})
}
