package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/orchestrix/orchestrix/internal/localcluster"
	"github.com/orchestrix/orchestrix/internal/pgtest"
	"github.com/orchestrix/orchestrix/journal/postgres"
)

// demo is one run of the story: it drives the members and keeps the book
// of every command it sent.
type demo struct {
	out, errOut          io.Writer
	nAccounts, nDeposits int
	keep                 bool

	members []*localcluster.Member
	dead    atomic.Int32 // index+1 of the killed member, 0 while all live

	mu sync.Mutex
	// sent holds every command sent, by command id, with its account.
	// Every one must end up acknowledged and stored exactly once.
	sent  map[string]string
	acked map[string]bool
	// pending are the commands without a definite answer (no reply: the
	// outcome is unknown; or not delivered), retried with the same id.
	pending []sendRequest
	remote  int // acknowledged commands run by another member than the one asked
	seq     int
}

func (d *demo) printf(format string, args ...any) { fmt.Fprintf(d.out, format, args...) }

func accountID(i int) string { return fmt.Sprintf("acc-%02d", i) }

// newCommand is a new deposit of 1 to account, with a new command id.
func (d *demo) newCommand(account string) sendRequest {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.seq++
	id := fmt.Sprintf("dep-%04d", d.seq)
	d.sent[id] = account
	return sendRequest{Account: account, CommandID: id, Amount: 1}
}

// send sends req through member m and books the outcome.
func (d *demo) send(ctx context.Context, m *localcluster.Member, req sendRequest) sendReply {
	var r sendReply
	if err := m.Call(ctx, "/send", req, &r); err != nil {
		// The member may have run the command before the connection broke.
		r = sendReply{Unknown: true, Err: "no answer from member: " + err.Error()}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if r.OK {
		d.acked[req.CommandID] = true
		if r.Owner != m.Address {
			d.remote++
		}
	} else {
		d.pending = append(d.pending, req)
	}
	return r
}

// sendAnswered sends req through m like send and, while the outcome is
// unknown, sends it again with the same command id (at most three times
// in all), as a caller would: the owner stores it at most once.
func (d *demo) sendAnswered(ctx context.Context, m *localcluster.Member, req sendRequest) sendReply {
	var r sendReply
	for range 3 {
		if r = d.send(ctx, m, req); !r.Unknown {
			break
		}
	}
	return r
}

// live returns the members not killed.
func (d *demo) live() []*localcluster.Member {
	var out []*localcluster.Member
	for i, m := range d.members {
		if int(d.dead.Load()) != i+1 {
			out = append(out, m)
		}
	}
	return out
}

// memberName names the member at addr.
func (d *demo) memberName(addr string) string {
	for _, m := range d.members {
		if m.Address == addr {
			return fmt.Sprintf("member %d", m.Index)
		}
	}
	return "member " + addr
}

// flow sends deposits through the live members from 8 workers until stop
// is closed, each to a random account.
func (d *demo) flow(ctx context.Context, stop <-chan struct{}) {
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 7))
			for {
				select {
				case <-stop:
					return
				case <-ctx.Done():
					return
				default:
				}
				live := d.live()
				d.send(ctx, live[rng.IntN(len(live))], d.newCommand(accountID(rng.IntN(d.nAccounts))))
			}
		})
	}
	wg.Wait()
}

// waitAcked waits until n commands are acknowledged in all, or ctx ends.
func (d *demo) waitAcked(ctx context.Context, n int) error {
	for {
		d.mu.Lock()
		got := len(d.acked)
		d.mu.Unlock()
		if got >= n {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %d acknowledged deposits (%d so far): %w", n, got, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func (d *demo) run(ctx context.Context, dsn string) (code int, err error) {
	d.sent, d.acked = map[string]string{}, map[string]bool{}
	givenDSN := dsn != ""
	if !givenDSN {
		srv, err := pgtest.StartServer()
		if errors.Is(err, pgtest.ErrNotInstalled) {
			return exitNoPG, fmt.Errorf("this example needs PostgreSQL: no -pg DSN was given, and no throwaway server can be started: %w\n"+
				"  install the PostgreSQL server binaries (Debian: apt-get install postgresql) or pass -pg DSN", err)
		}
		if err != nil {
			return exitFailed, fmt.Errorf("starting a throwaway PostgreSQL server: %w", err)
		}
		defer srv.Stop()
		dsn = srv.DSN()
		d.printf("started a throwaway PostgreSQL server on 127.0.0.1 (removed at exit)\n")
	}
	// A schema of this run's own, so that a database given with -pg can
	// hold earlier runs.
	schema := fmt.Sprintf("orchestrix_cluster_example_%d", time.Now().UnixNano())
	j, err := postgres.Open(ctx, dsn, postgres.Config{Schema: schema})
	if err != nil {
		hint := ""
		if localcluster.Isolated() && givenDSN {
			hint = "\n  this run is inside a loopback-only network namespace: a server outside it is reachable only through " +
				"a unix-socket DSN (host=/var/run/postgresql …), or run with -netns=false"
		}
		return exitFailed, fmt.Errorf("opening the journal: %w%s", err, hint)
	}
	defer j.Close()
	if givenDSN && !d.keep {
		defer dropSchema(dsn, schema)
	}

	logDir, err := os.MkdirTemp("", "orchestrix-cluster-example-")
	if err != nil {
		return exitFailed, err
	}
	defer os.RemoveAll(logDir)
	d.printf("\n== three members, one process each, over one PostgreSQL journal (schema %s)\n", schema)
	ms, err := localcluster.Start(ctx, localcluster.Options{Members: 3, LogDir: logDir,
		Params: map[string]string{"dsn": dsn, "schema": schema}})
	if err != nil {
		return exitFailed, err
	}
	d.members = ms
	defer func() {
		if code != exitOK {
			for _, m := range ms {
				fmt.Fprintf(d.errOut, "--- log of member %d (%s):\n%s\n", m.Index, m.Address, m.LogTail(3000))
			}
		}
		localcluster.StopAll(ms, 10*time.Second)
		// A member built with -race (the test) reports races in its log.
		if err := localcluster.CheckRaces(ms); err != nil {
			fmt.Fprintln(d.errOut, "cluster:", err)
			code = exitFailed
		}
	}()

	// Who owns which account: every member must say the same.
	accounts := make([]string, d.nAccounts)
	for i := range accounts {
		accounts[i] = accountID(i)
	}
	var owners []string
	for _, m := range ms {
		var o []string
		if err := m.Call(ctx, "/owners", accounts, &o); err != nil {
			return exitFailed, err
		}
		if owners != nil && !slices.Equal(o, owners) {
			return exitFailed, fmt.Errorf("member %d disagrees on the owners of the accounts:\n  %v\n  %v", m.Index, o, owners)
		}
		owners = o
	}
	owned := map[string][]string{}
	for i, o := range owners {
		owned[o] = append(owned[o], accounts[i])
	}
	for _, m := range ms {
		d.printf("member %d  %-15s  owns %2d of the %d accounts: %s\n", m.Index, m.Address, len(owned[m.Address]), d.nAccounts,
			strings.Join(owned[m.Address], " "))
	}
	d.printf("all three members agree on the owner of every account\n")
	victim := ms[2]
	for _, m := range ms {
		if len(owned[m.Address]) > len(owned[victim.Address]) {
			victim = m
		}
	}

	// Deposits through all three members.
	d.printf("\n== %d deposits, each with its own command id, sent through the three members in turn\n", d.nDeposits)
	var wg sync.WaitGroup
	work := make(chan int)
	for range 8 {
		wg.Go(func() {
			for k := range work {
				d.send(ctx, ms[k%len(ms)], d.newCommand(accounts[k%d.nAccounts]))
			}
		})
	}
	for k := range d.nDeposits {
		work <- k
	}
	close(work)
	wg.Wait()
	d.mu.Lock()
	d.printf("%d acknowledged: %d ran on the member asked (it owned the account), %d went over the wire to the owner\n",
		len(d.acked), len(d.acked)-d.remote, d.remote)
	d.mu.Unlock()

	// The kill, under load.
	d.printf("\n== SIGKILL member %d (owner of %d accounts) while deposits keep flowing through every member\n",
		victim.Index, len(owned[victim.Address]))
	before := len(d.acked)
	stop := make(chan struct{})
	flowDone := make(chan struct{})
	go func() { d.flow(ctx, stop); close(flowDone) }()
	if err := d.waitAcked(ctx, before+100); err != nil {
		close(stop)
		<-flowDone
		return exitFailed, err
	}
	killedAt := time.Now()
	if err := victim.Kill(); err != nil {
		close(stop)
		<-flowDone
		return exitFailed, fmt.Errorf("killing member %d: %w", victim.Index, err)
	}
	d.dead.Store(int32(victim.Index + 1))
	survivors := d.live()
	seen := localcluster.WaitMembers(ctx, survivors, len(survivors))
	seenAfter := time.Since(killedAt)
	// Let deposits flow a little longer on the new topology.
	d.mu.Lock()
	atSeen := len(d.acked)
	d.mu.Unlock()
	if seen == nil {
		seen = d.waitAcked(ctx, atSeen+100)
	}
	close(stop)
	<-flowDone
	if seen != nil {
		return exitFailed, seen
	}
	d.mu.Lock()
	d.printf("the survivors (members %s) saw %d members %.1f s after the kill\n", indexes(survivors), len(survivors), seenAfter.Seconds())
	d.printf("this phase: %d deposits acknowledged, %d without a definite answer (no reply before the member died or the request timed out: outcome unknown)\n",
		len(d.acked)-before, len(d.pending))
	d.mu.Unlock()

	// The killed member's accounts, served again.
	d.printf("\n== the accounts member %d owned, served again by the survivors\n", victim.Index)
	for k, acc := range owned[victim.Address] {
		via := survivors[k%len(survivors)]
		r := d.sendAnswered(ctx, via, d.newCommand(acc))
		if !r.OK {
			return exitFailed, fmt.Errorf("deposit to %s (owned by the killed member) through member %d: %s", acc, via.Index, r.Err)
		}
		d.printf("%s  deposit through member %d: ok, version %d, run by %s\n", acc, via.Index, r.Version, d.memberName(r.Owner))
	}
	d.printf("all %d accounts of the killed member are served again by the survivors\n", len(owned[victim.Address]))

	// The commands without a definite answer, retried with their ids.
	d.mu.Lock()
	pending := d.pending
	d.pending = nil
	d.mu.Unlock()
	d.printf("\n== retrying the %d deposits without a definite answer, with the same command ids\n", len(pending))
	dups := 0
	for k, req := range pending {
		via := survivors[k%len(survivors)]
		r := d.sendAnswered(ctx, via, req)
		if !r.OK {
			return exitFailed, fmt.Errorf("retry of %s to %s through member %d: %s", req.CommandID, req.Account, via.Index, r.Err)
		}
		if r.Duplicate {
			dups++
		}
	}
	d.printf("%d had been stored already (the owner answered them as duplicates and stored nothing), %d were stored now\n",
		dups, len(pending)-dups)

	// The proof, from the journal.
	return d.check(ctx, j, survivors[0])
}

// check reads the whole journal: every command sent (all acknowledged by
// now) must be stored exactly once, and each account's balance, read
// through a survivor, must be its number of deposits.
func (d *demo) check(ctx context.Context, j *postgres.Journal, via *localcluster.Member) (int, error) {
	d.printf("\n== the journal\n")
	stored := map[string]int{}
	perAccount := map[string]int64{}
	events := 0
	for rec, err := range j.ReadAll(ctx, 0, 1<<30) {
		if err != nil {
			return exitFailed, fmt.Errorf("reading the journal: %w", err)
		}
		events++
		stored[rec.Envelope.CausationID]++
		perAccount[rec.Envelope.Subject]++
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	var problems []string
	want := map[string]int64{}
	for id, acc := range d.sent {
		want[acc]++
		if !d.acked[id] {
			problems = append(problems, fmt.Sprintf("command %s was never acknowledged", id))
		}
		if n := stored[id]; n != 1 {
			problems = append(problems, fmt.Sprintf("command %s is stored %d times", id, n))
		}
	}
	for id, n := range stored {
		if _, ok := d.sent[id]; !ok {
			problems = append(problems, fmt.Sprintf("the journal holds %d events of command %s, which was never sent", n, id))
		}
	}
	for i := range d.nAccounts {
		acc := accountID(i)
		var st stateReply
		if err := via.Call(ctx, "/state", acc, &st); err != nil {
			return exitFailed, fmt.Errorf("state of %s through member %d: %w", acc, via.Index, err)
		}
		if st.Balance != want[acc] || int64(st.Version) != want[acc] || perAccount[acc] != want[acc] {
			problems = append(problems, fmt.Sprintf("%s: balance %d at version %d with %d events stored, want %d deposits",
				acc, st.Balance, st.Version, perAccount[acc], want[acc]))
		}
	}
	slices.Sort(problems)
	if len(problems) > 0 {
		for _, p := range problems {
			d.printf("FAIL %s\n", p)
		}
		return exitFailed, fmt.Errorf("%d problems in the journal", len(problems))
	}
	d.printf("%d events; every one of the %d acknowledged deposits is in the journal exactly once (none missing, no command id twice)\n",
		events, len(d.acked))
	d.printf("each account's balance, read through member %d, equals the deposits sent to it\n", via.Index)
	d.printf("OK\n")
	return exitOK, nil
}

func indexes(ms []*localcluster.Member) string {
	var s []string
	for _, m := range ms {
		s = append(s, fmt.Sprint(m.Index))
	}
	return strings.Join(s, " and ")
}

// dropSchema removes the run's schema from a database given with -pg.
func dropSchema(dsn, schema string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return
	}
	defer conn.Close(ctx)
	_, _ = conn.Exec(ctx, "DROP SCHEMA IF EXISTS "+pgx.Identifier{schema}.Sanitize()+" CASCADE")
}
