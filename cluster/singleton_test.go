package cluster_test

// Singletons across member processes. This file adds its own member mode
// (envSingletonMember, handled in init, before TestMain) so that the
// member processes of these tests run a bank with a transfer saga runner
// and a balances projection as cluster singletons; the harness helpers
// (freePorts, waitFor, classifyRaces, member.get) are cluster_test.go's.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/orchestrix/orchestrix/actor"
	"github.com/orchestrix/orchestrix/actor/actortest"
	"github.com/orchestrix/orchestrix/aggregate"
	"github.com/orchestrix/orchestrix/cluster"
	"github.com/orchestrix/orchestrix/internal/pgtest"
	"github.com/orchestrix/orchestrix/journal/postgres"
	"github.com/orchestrix/orchestrix/projection"
	"github.com/orchestrix/orchestrix/projection/pgstore"
	"github.com/orchestrix/orchestrix/saga"
)

// envSingletonMember is set (to the member's index) in a member process of
// the singleton tests.
const envSingletonMember = "ORCHESTRIX_SINGLETON_MEMBER"

func init() {
	if os.Getenv(envSingletonMember) != "" {
		os.Exit(runSingletonMember())
	}
}

// ---- the bank: accounts, transfer requests, a transfer saga ----

type (
	acct struct {
		Open     bool
		NoCredit bool
		Balance  int64
	}
	acctCommand interface{ isAcctCommand() }
	acctOpen    struct {
		Balance  int64
		NoCredit bool
	}
	acctWithdraw struct{ Amount int64 }
	acctDeposit  struct{ Amount int64 }
	acctRefund   struct{ Amount int64 }

	acctEvent  interface{ isAcctEvent() }
	acctOpened struct {
		Balance  int64
		NoCredit bool
	}
	acctWithdrawn struct{ Amount int64 }
	acctDeposited struct{ Amount int64 }
	acctRefunded  struct{ Amount int64 }

	xfer        struct{ Requested bool }
	xferCommand interface{ isXferCommand() }
	xferRequest struct {
		From, To string
		Amount   int64
	}
	xferEvent     interface{ isXferEvent() }
	xferRequested struct {
		From, To string
		Amount   int64
	}

	// transfer is the saga's data.
	transfer struct {
		From, To string
		Amount   int64
	}
)

func (acctOpen) isAcctCommand()     {}
func (acctWithdraw) isAcctCommand() {}
func (acctDeposit) isAcctCommand()  {}
func (acctRefund) isAcctCommand()   {}
func (acctOpened) isAcctEvent()     {}
func (acctWithdrawn) isAcctEvent()  {}
func (acctDeposited) isAcctEvent()  {}
func (acctRefunded) isAcctEvent()   {}
func (xferRequest) isXferCommand()  {}
func (xferRequested) isXferEvent()  {}

var (
	errInsufficient = errors.New("insufficient funds")
	errNoCredit     = errors.New("account accepts no credits")
)

var accts = aggregate.Definition[acct, acctCommand, acctEvent]{
	Kind:    "acct",
	Initial: func(string) acct { return acct{} },
	Decide: func(s acct, c acctCommand) ([]acctEvent, error) {
		if _, open := c.(acctOpen); !open && !s.Open {
			return nil, errors.New("account not open")
		}
		switch c := c.(type) {
		case acctOpen:
			if s.Open {
				return nil, nil
			}
			return []acctEvent{acctOpened(c)}, nil
		case acctWithdraw:
			if c.Amount > s.Balance {
				return nil, errInsufficient
			}
			return []acctEvent{acctWithdrawn(c)}, nil
		case acctDeposit:
			if s.NoCredit {
				return nil, errNoCredit
			}
			return []acctEvent{acctDeposited(c)}, nil
		case acctRefund:
			return []acctEvent{acctRefunded(c)}, nil
		}
		return nil, fmt.Errorf("unknown command %T", c)
	},
	Evolve: func(s acct, e acctEvent) acct {
		switch e := e.(type) {
		case acctOpened:
			s.Open, s.Balance, s.NoCredit = true, e.Balance, e.NoCredit
		case acctWithdrawn:
			s.Balance -= e.Amount
		case acctDeposited:
			s.Balance += e.Amount
		case acctRefunded:
			s.Balance += e.Amount
		}
		return s
	},
	Events: []aggregate.EventType{
		aggregate.Event[acctOpened]("test.acct.opened"),
		aggregate.Event[acctWithdrawn]("test.acct.withdrawn"),
		aggregate.Event[acctDeposited]("test.acct.deposited"),
		aggregate.Event[acctRefunded]("test.acct.refunded"),
	},
	Commands: []aggregate.CommandType{
		aggregate.CommandOf[acctOpen]("test.acct.open"),
		aggregate.CommandOf[acctWithdraw]("test.acct.withdraw"),
		aggregate.CommandOf[acctDeposit]("test.acct.deposit"),
		aggregate.CommandOf[acctRefund]("test.acct.refund"),
	},
}

var xfers = aggregate.Definition[xfer, xferCommand, xferEvent]{
	Kind:    "xfer",
	Initial: func(string) xfer { return xfer{} },
	Decide: func(s xfer, c xferCommand) ([]xferEvent, error) {
		r := c.(xferRequest)
		if s.Requested {
			return nil, nil
		}
		return []xferEvent{xferRequested(r)}, nil
	},
	Evolve: func(s xfer, e xferEvent) xfer {
		s.Requested = true
		return s
	},
	Events:   []aggregate.EventType{aggregate.Event[xferRequested]("test.xfer.requested")},
	Commands: []aggregate.CommandType{aggregate.CommandOf[xferRequest]("test.xfer.request")},
}

func transferSaga(accounts *actor.Handle[acct, acctCommand, acctEvent]) *saga.Orchestration[transfer] {
	return saga.New[transfer]("transfer").
		Step("debit",
			saga.Command(accounts, func(t transfer) (string, acctCommand) { return t.From, acctWithdraw{t.Amount} }),
			saga.Command(accounts, func(t transfer) (string, acctCommand) { return t.From, acctRefund{t.Amount} })).
		Step("credit",
			saga.Command(accounts, func(t transfer) (string, acctCommand) { return t.To, acctDeposit{t.Amount} }), nil).
		StartOn(projection.Filter{Kinds: []string{"xfer"}}, func(ev projection.Event) (string, transfer, bool) {
			r := ev.Data.(xferRequested)
			return ev.Envelope.Subject, transfer(r), true
		})
}

// Names of the two singletons and of the projection's checkpoint.
const (
	sagasSingleton    = "sagas"
	balancesSingleton = "balances"
	balancesName      = "balances"
)

// ---- the member process ----

type singletonReply struct {
	Name        string `json:"name"`
	Owner       string `json:"owner"`
	Running     bool   `json:"running"`
	Epoch       uint64 `json:"epoch"`
	Activations int    `json:"activations"`
	LastError   string `json:"last_error"`
}

type sagaReply struct {
	State  string   `json:"state"`
	Data   transfer `json:"data"`
	Done   []string `json:"done"`
	Undone []string `json:"undone"`
	Reason string   `json:"reason"`
	Err    string   `json:"err"`
}

func runSingletonMember() int {
	fail := func(err error) int { fmt.Fprintln(os.Stderr, "member:", err); return 1 }
	ctx := context.Background()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	dsn := os.Getenv("OX_DSN")
	j, err := postgres.Open(ctx, dsn, postgres.Config{})
	if err != nil {
		return fail(err)
	}
	sys, err := actor.NewSystem(actor.Config{Journal: j, Logger: log})
	if err != nil {
		return fail(err)
	}
	accounts, err := actor.Register(sys, accts)
	if err != nil {
		return fail(err)
	}
	requests, err := actor.Register(sys, xfers)
	if err != nil {
		return fail(err)
	}
	store, err := pgstore.Open(ctx, dsn, pgstore.Config{})
	if err != nil {
		return fail(err)
	}
	reg := sys.Registry()

	sagas := cluster.Singleton{Name: sagasSingleton, Start: func(ctx context.Context, act cluster.Activation) (func(context.Context) error, error) {
		r, err := saga.NewRunner(saga.Config{
			Journal: j, Registry: reg, System: sys, Logger: log,
			Checkpoints: store.WithEpoch(act.Epoch), // the runner's checkpoints are fenced
			MaxActive:   2,                          // spread the sagas over time: the kill lands mid-way
			Retry:       projection.Retry{MaxAttempts: projection.UnlimitedAttempts, InitialBackoff: 10 * time.Millisecond, MaxBackoff: 300 * time.Millisecond},
		})
		if err != nil {
			return nil, err
		}
		if _, err := saga.Register(r, transferSaga(accounts)); err != nil {
			_ = r.Close()
			return nil, err
		}
		return func(context.Context) error { return r.Close() }, nil
	}}
	balances := cluster.Singleton{Name: balancesSingleton, Start: func(ctx context.Context, act cluster.Activation) (func(context.Context) error, error) {
		cp := store.WithEpoch(act.Epoch)
		pm, err := projection.NewManager(projection.Config{Journal: j, Registry: reg, System: sys, Logger: log})
		if err != nil {
			return nil, err
		}
		err = pm.Add(ctx, projection.Projection{
			Name: balancesName, Filter: projection.Filter{Kinds: []string{"acct"}}, Checkpoints: cp,
			Handler: cp.Handler(balancesName, applyBalances),
		})
		if err != nil {
			_ = pm.Close()
			return nil, err
		}
		return func(context.Context) error { return pm.Close() }, nil
	}}

	port, _ := strconv.Atoi(os.Getenv("OX_PORT"))
	amPort, _ := strconv.Atoi(os.Getenv("OX_AMPORT"))
	m, err := cluster.Start(ctx, sys, cluster.Config{
		Port: port, AutoManagedPort: amPort, Seeds: strings.Split(os.Getenv("OX_SEEDS"), ","),
		RefreshTTL: 300 * time.Millisecond, RequestTimeout: 3 * time.Second, Logger: log,
		Singletons: []cluster.Singleton{sagas, balances},
	})
	if err != nil {
		return fail(err)
	}
	followed, err := saga.Follow(saga.FollowConfig{Journal: j, Registry: reg}, transferSaga(accounts))
	if err != nil {
		return fail(err)
	}

	reply := func(w http.ResponseWriter, v any) { _ = json.NewEncoder(w).Encode(v) }
	errText := func(err error) string {
		if err == nil {
			return ""
		}
		return err.Error()
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/ready", func(w http.ResponseWriter, r *http.Request) {
		reply(w, map[string]any{"address": m.Address(), "members": m.Members()})
	})
	mux.HandleFunc("/singletons", func(w http.ResponseWriter, r *http.Request) {
		var out []singletonReply
		for _, s := range m.Singletons() {
			out = append(out, singletonReply{Name: s.Name, Owner: s.Owner, Running: s.Running, Epoch: s.Epoch,
				Activations: s.Activations, LastError: errText(s.LastError)})
		}
		reply(w, out)
	})
	mux.HandleFunc("/open", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		ctx, cancel := context.WithTimeout(r.Context(), 15*time.Second)
		defer cancel()
		balance, _ := strconv.ParseInt(q.Get("balance"), 10, 64)
		_, err := accounts.Send(ctx, q.Get("id"), acctOpen{Balance: balance, NoCredit: q.Get("nocredit") == "1"},
			actor.WithCommandID("open-"+q.Get("id")))
		reply(w, sendReply{OK: err == nil, Err: errText(err)})
	})
	mux.HandleFunc("/request", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		ctx, cancel := context.WithTimeout(r.Context(), 15*time.Second)
		defer cancel()
		amount, _ := strconv.ParseInt(q.Get("amount"), 10, 64)
		_, err := requests.Send(ctx, q.Get("id"), xferRequest{From: q.Get("from"), To: q.Get("to"), Amount: amount},
			actor.WithCommandID("request-"+q.Get("id")))
		reply(w, sendReply{OK: err == nil, Err: errText(err)})
	})
	mux.HandleFunc("/wait", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 90*time.Second)
		defer cancel()
		st, err := followed.Wait(ctx, r.URL.Query().Get("id"), saga.Finished)
		out := sagaReply{State: st.State.String(), Data: st.Data, Done: st.Done, Undone: st.Undone, Err: errText(err)}
		if st.Failure != nil {
			out.Reason = st.Failure.Reason
		}
		reply(w, out)
	})
	mux.HandleFunc("/state", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 15*time.Second)
		defer cancel()
		s, v, err := accounts.State(ctx, r.URL.Query().Get("id"))
		reply(w, map[string]any{"value": s.Balance, "version": v, "err": errText(err)})
	})
	if err := http.ListenAndServe(os.Getenv("OX_HTTP"), mux); err != nil {
		return fail(err)
	}
	return 0
}

// applyBalances is the balances projection: per account, its balance and
// the number of its events, written in the projection's transaction.
func applyBalances(ctx context.Context, tx pgx.Tx, batch []projection.Event) error {
	for _, ev := range batch {
		var delta int64
		switch e := ev.Data.(type) {
		case acctOpened:
			delta = e.Balance
		case acctWithdrawn:
			delta = -e.Amount
		case acctDeposited:
			delta = e.Amount
		case acctRefunded:
			delta = e.Amount
		}
		if _, err := tx.Exec(ctx, `INSERT INTO rm_balances (account, balance, events) VALUES ($1, $2, 1)
			ON CONFLICT (account) DO UPDATE SET balance = rm_balances.balance + excluded.balance, events = rm_balances.events + 1`,
			ev.Envelope.Subject, delta); err != nil {
			return err
		}
	}
	return nil
}

// ---- the harness ----

// startSingletonMembers starts n bank member processes over dsn, like
// startMembers, and returns once every member sees n members.
func startSingletonMembers(t *testing.T, dsn string, n int) []*member {
	t.Helper()
	ports := freePorts(t, 3*n)
	var seeds []string
	for i := range n {
		seeds = append(seeds, "127.0.0.1:"+strconv.Itoa(ports[n+i]))
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	var ms []*member
	for i := range n {
		mb := &member{t: t, http: "127.0.0.1:" + strconv.Itoa(ports[2*n+i]), log: fmt.Sprintf("%s/member-%d.log", t.TempDir(), i),
			exited: make(chan struct{})}
		logf, err := os.Create(mb.log)
		if err != nil {
			t.Fatal(err)
		}
		mb.cmd = exec.Command(self, "-test.run=^$")
		mb.cmd.Stdout, mb.cmd.Stderr = logf, logf
		mb.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		mb.cmd.Env = append(os.Environ(), envSingletonMember+"="+strconv.Itoa(i), "OX_DSN="+dsn,
			"OX_PORT="+strconv.Itoa(ports[i]), "OX_AMPORT="+strconv.Itoa(ports[n+i]),
			"OX_SEEDS="+strings.Join(seeds, ","), "OX_HTTP="+mb.http)
		if err := mb.cmd.Start(); err != nil {
			t.Fatal(err)
		}
		go func() { _ = mb.cmd.Wait(); logf.Close(); close(mb.exited) }()
		t.Cleanup(func() {
			_ = mb.cmd.Process.Kill()
			<-mb.exited
			b, _ := os.ReadFile(mb.log)
			ours, upstream := classifyRaces(string(b))
			for _, r := range ours {
				t.Errorf("member %d reported a data race in orchestrix code:\n%s", i, r)
			}
			if upstream > 0 {
				t.Logf("member %d: %d data race report(s) entirely inside protoactor-go (upstream, not ours)", i, upstream)
			}
			if t.Failed() {
				t.Logf("log of member %d (%s):\n%s", i, mb.address, tail(string(b), 4000))
			}
		})
		ms = append(ms, mb)
	}
	for i, mb := range ms {
		waitFor(t, 60*time.Second, fmt.Sprintf("member %d to see %d members", i, n), func() bool {
			var r struct {
				Address string
				Members int
			}
			if mb.get("/ready", nil, &r) != nil {
				return false
			}
			mb.address = r.Address
			return r.Members == n
		})
	}
	return ms
}

func (m *member) singletons() map[string]singletonReply {
	var out []singletonReply
	if err := m.get("/singletons", nil, &out); err != nil {
		return nil
	}
	byName := map[string]singletonReply{}
	for _, s := range out {
		byName[s.Name] = s
	}
	return byName
}

func (m *member) alive() bool {
	select {
	case <-m.exited:
		return false
	default:
		return true
	}
}

// running returns the live member running singleton name and its epoch,
// when exactly one live member does.
func running(ms []*member, name string) (*member, uint64) {
	var (
		found *member
		epoch uint64
	)
	for _, mb := range ms {
		if !mb.alive() {
			continue
		}
		if s := mb.singletons()[name]; s.Running {
			if found != nil {
				return nil, 0
			}
			found, epoch = mb, s.Epoch
		}
	}
	return found, epoch
}

// ---- the tests ----

// TestSingletons_SagaRunnerAndProjection_SurviveSIGKILLOfTheirMember runs
// the transfer saga runner and the balances projection as singletons on
// three members, SIGKILLs the member running the saga runner while sagas
// are in flight (and, if the projection did not move with it, the member
// running the projection too), and checks that another member takes each
// over with a higher epoch, that every saga ends, that every command took
// effect exactly as often as the sagas recorded (balances and event counts
// of every account), and that the read model, written exactly once per
// event through the fenced pgstore handler, equals the accounts' state.
// Bounded waits are liveness guards, not timing assertions.
func TestSingletons_SagaRunnerAndProjection_SurviveSIGKILLOfTheirMember(t *testing.T) {
	needCluster(t)
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("SINGLETON_SEED"); s != "" {
		seed, _ = strconv.ParseUint(s, 10, 64)
	}
	t.Logf("seed %d (SINGLETON_SEED=%d to replay)", seed, seed)
	rng := rand.New(rand.NewPCG(seed, seed^0xa5))

	dsn := pgtest.DSN(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	db, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close(context.Background())
	if _, err := db.Exec(ctx, `CREATE TABLE rm_balances (account text PRIMARY KEY, balance bigint NOT NULL, events bigint NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	ms := startSingletonMembers(t, dsn, 3)
	waitFor(t, 60*time.Second, "both singletons to run on one member each", func() bool {
		a, _ := running(ms, sagasSingleton)
		b, _ := running(ms, balancesSingleton)
		return a != nil && b != nil
	})

	const accounts, initial = 16, 400
	nSagas := 240
	if testing.Short() {
		nSagas = 120
	}
	acctID := func(i int) string { return fmt.Sprintf("a%02d", i) }
	for i := range accounts {
		var r sendReply
		if err := ms[i%3].get("/open", url.Values{"id": {acctID(i)}, "balance": {strconv.Itoa(initial)},
			"nocredit": {map[bool]string{true: "1", false: "0"}[i%8 == 0]}}, &r); err != nil || !r.OK {
			t.Fatalf("opening %s: %v %s", acctID(i), err, r.Err)
		}
	}
	transfers := make([]transfer, nSagas)
	for i := range transfers {
		from := rng.IntN(accounts)
		to := (from + 1 + rng.IntN(accounts-1)) % accounts
		transfers[i] = transfer{From: acctID(from), To: acctID(to), Amount: 1 + rng.Int64N(150)}
	}
	reqID := func(i int) string { return fmt.Sprintf("r%04d", i) }
	// request sends requests [from, to) through the live members, each
	// retried with the same command id until it is acknowledged.
	request := func(from, to int) {
		t.Helper()
		var wg sync.WaitGroup
		errs := make(chan error, to-from)
		for i := from; i < to; i++ {
			wg.Go(func() {
				tr := transfers[i]
				q := url.Values{"id": {reqID(i)}, "from": {tr.From}, "to": {tr.To}, "amount": {strconv.FormatInt(tr.Amount, 10)}}
				var last string
				for k := 0; ctx.Err() == nil; k++ {
					mb := ms[(i+k)%len(ms)]
					if !mb.alive() {
						continue
					}
					var r sendReply
					err := mb.get("/request", q, &r)
					if err == nil && r.OK {
						return
					}
					last = fmt.Sprint(err, r.Err)
					time.Sleep(100 * time.Millisecond)
				}
				errs <- fmt.Errorf("request %s never acknowledged: %s", reqID(i), last)
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
	}
	terminal := func() int {
		var n int
		if err := db.QueryRow(ctx, `SELECT count(*) FROM journal_events WHERE type = ANY($1)`,
			[]string{saga.TypeCompleted, saga.TypeCompensated, saga.TypeFailed}).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}

	first := nSagas * 2 / 3
	request(0, first)

	// A member that does not run the saga runner follows a saga to its
	// end (saga.Follow): progress made on another member.
	runner, _ := running(ms, sagasSingleton)
	for _, mb := range ms {
		if mb != runner {
			var st sagaReply
			if err := mb.get("/wait", url.Values{"id": {reqID(0)}}, &st); err != nil || st.Err != "" {
				t.Fatalf("waiting for %s on a member that does not run the sagas: %v %s", reqID(0), err, st.Err)
			}
			break
		}
	}
	waitFor(t, 120*time.Second, "some sagas to finish before the kill", func() bool { return terminal() >= nSagas/8 })

	killed := map[*member]bool{}
	// kill SIGKILLs victim and waits for a survivor to take over each
	// singleton it ran; it returns their names.
	kill := func(victim *member) map[string]bool {
		t.Helper()
		moved := map[string]bool{}
		before := victim.singletons()
		if err := victim.cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		<-victim.exited
		killed[victim] = true
		done := terminal()
		t.Logf("SIGKILL of %s (running %v) with %d of %d sagas finished", victim.address, before, done, nSagas)
		if done >= nSagas {
			t.Logf("every saga had finished before the kill; the runner still takes over for the later requests")
		}
		for name, s := range before {
			if !s.Running {
				continue
			}
			moved[name] = true
			waitFor(t, 60*time.Second, fmt.Sprintf("a survivor to take %q over with an epoch above %d", name, s.Epoch), func() bool {
				mb, epoch := running(ms, name)
				return mb != nil && mb != victim && epoch > s.Epoch
			})
		}
		return moved
	}

	victim, _ := running(ms, sagasSingleton)
	moved := kill(victim)
	second := first + (nSagas-first)/2
	request(first, second)
	if !moved[balancesSingleton] {
		// The projection did not run on the killed member: kill the
		// member running it too, while account events keep coming.
		proj, _ := running(ms, balancesSingleton)
		if proj == nil {
			t.Fatal("no member runs the balances projection")
		}
		kill(proj)
	}
	request(second, nSagas)

	// Every saga ends; the survivors follow them (saga.Follow).
	var survivor *member
	for _, mb := range ms {
		if mb.alive() {
			survivor = mb
			break
		}
	}
	expected := map[string]struct{ balance, version int64 }{}
	for i := range accounts {
		expected[acctID(i)] = struct{ balance, version int64 }{initial, 1}
	}
	move := func(id string, amount int64) {
		e := expected[id]
		e.balance += amount
		e.version++
		expected[id] = e
	}
	outcomes := map[string]int{}
	for i := range nSagas {
		var st sagaReply
		if err := survivor.get("/wait", url.Values{"id": {reqID(i)}}, &st); err != nil || st.Err != "" {
			t.Fatalf("saga %s did not finish: %+v %v (seed %d)", reqID(i), st, err, seed)
		}
		outcomes[st.State]++
		if st.Data != transfers[i] {
			t.Fatalf("saga %s data %+v, want %+v", reqID(i), st.Data, transfers[i])
		}
		if slices.Contains(st.Done, "debit") {
			move(st.Data.From, -st.Data.Amount)
		}
		if slices.Contains(st.Done, "credit") {
			move(st.Data.To, st.Data.Amount)
		}
		if slices.Contains(st.Undone, "debit") {
			move(st.Data.From, st.Data.Amount)
		}
		switch st.State {
		case saga.StateCompleted.String():
		case saga.StateCompensated.String():
			if !strings.Contains(st.Reason, errInsufficient.Error()) && !strings.Contains(st.Reason, errNoCredit.Error()) {
				t.Errorf("saga %s compensated for %q, want a domain rejection", reqID(i), st.Reason)
			}
		default:
			t.Errorf("saga %s ended %s", reqID(i), st.State)
		}
	}

	// No double effects: every account is where the sagas' records put it.
	var total int64
	for i := range accounts {
		id := acctID(i)
		var st struct {
			Value   int64
			Version int64
			Err     string
		}
		if err := survivor.get("/state", url.Values{"id": {id}}, &st); err != nil || st.Err != "" {
			t.Fatalf("state of %s: %v %s", id, err, st.Err)
		}
		total += st.Value
		if e := expected[id]; st.Value != e.balance || st.Version != e.version {
			t.Errorf("account %s: balance %d at version %d, want %d at version %d (seed %d)", id, st.Value, st.Version, e.balance, e.version, seed)
		}
	}
	if total != accounts*initial {
		t.Errorf("money not conserved: %d, want %d", total, accounts*initial)
	}

	// The read model caught up to the journal holds every event exactly
	// once.
	j, err := postgres.Open(ctx, dsn, postgres.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	last, err := j.LastPosition(ctx)
	if err != nil {
		t.Fatal(err)
	}
	store, err := pgstore.Open(ctx, dsn, pgstore.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	waitFor(t, 60*time.Second, fmt.Sprintf("the balances projection to reach position %d", last), func() bool {
		pos, err := store.Load(ctx, balancesName)
		return err == nil && pos >= last
	})
	rows, err := db.Query(ctx, `SELECT account, balance, events FROM rm_balances`)
	if err != nil {
		t.Fatal(err)
	}
	seen := 0
	for rows.Next() {
		var (
			id              string
			balance, events int64
		)
		if err := rows.Scan(&id, &balance, &events); err != nil {
			t.Fatal(err)
		}
		seen++
		if e := expected[id]; balance != e.balance || events != e.version {
			t.Errorf("read model of %s: balance %d from %d events, want %d from %d (seed %d)", id, balance, events, e.balance, e.version, seed)
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if seen != accounts {
		t.Errorf("read model has %d accounts, want %d", seen, accounts)
	}
	t.Logf("%d sagas: %v; %d member(s) killed", nSagas, outcomes, len(killed))
}

// One member in this process runs its singletons: each starts with an
// epoch from the journal and its holder recorded, a Start that fails is
// retried (with a new epoch), and Close stops every activation and
// releases its epoch before the member leaves.
func TestSingletons_InProcess_StartRetryCloseRelease(t *testing.T) {
	needCluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	j, err := postgres.Open(ctx, pgtest.DSN(t), postgres.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	sys, err := actor.NewSystem(actor.Config{Journal: j})
	if err != nil {
		t.Fatal(err)
	}
	defer sys.Close()
	var (
		mu      sync.Mutex
		acts    []cluster.Activation
		stopped []string
		failed  bool
	)
	start := func(ctx context.Context, act cluster.Activation) (func(context.Context) error, error) {
		mu.Lock()
		defer mu.Unlock()
		if act.Name == "flaky" && !failed {
			failed = true
			return nil, errors.New("not yet")
		}
		acts = append(acts, act)
		return func(context.Context) error {
			mu.Lock()
			defer mu.Unlock()
			stopped = append(stopped, act.Name)
			return nil
		}, nil
	}
	ports := freePorts(t, 1)
	m, err := cluster.Start(ctx, sys, cluster.Config{Name: "singletons", AutoManagedPort: ports[0], RefreshTTL: 200 * time.Millisecond,
		Singletons: []cluster.Singleton{{Name: "steady", Start: start}, {Name: "flaky", Start: start}}})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	waitFor(t, 30*time.Second, "both singletons to run", func() bool {
		a, _ := m.Singleton("steady")
		b, _ := m.Singleton("flaky")
		return a.Running && b.Running
	})
	steady, _ := m.Singleton("steady")
	flaky, _ := m.Singleton("flaky")
	if steady.Epoch != 1 || steady.Owner != m.Address() || steady.Activations != 1 {
		t.Fatalf("steady: %+v, want epoch 1 owned and run here once", steady)
	}
	if flaky.Epoch != 2 || flaky.Activations != 1 || flaky.LastError != nil {
		t.Fatalf("flaky: %+v, want its second epoch, after the failed start", flaky)
	}
	if e, holder, err := j.Epoch(ctx, "cluster.singleton:steady"); err != nil || e != 1 || holder != m.Address() {
		t.Fatalf("stored epoch of steady: %d %q %v", e, holder, err)
	}
	if _, err := m.Singleton("nope"); !errors.Is(err, cluster.ErrUnknownSingleton) {
		t.Fatalf("unknown singleton: %v", err)
	}
	mu.Lock()
	for _, a := range acts {
		if a.Member != m.Address() {
			t.Errorf("activation %+v on member %q", a, m.Address())
		}
	}
	mu.Unlock()

	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	slices.Sort(stopped)
	if !slices.Equal(stopped, []string{"flaky", "steady"}) {
		t.Errorf("stopped on Close: %v", stopped)
	}
	mu.Unlock()
	for _, name := range []string{"steady", "flaky"} {
		if _, holder, err := j.Epoch(ctx, "cluster.singleton:"+name); err != nil || holder != "" {
			t.Errorf("%s after Close: holder %q, %v; want released", name, holder, err)
		}
		if st, _ := m.Singleton(name); st.Running {
			t.Errorf("%s still running after Close", name)
		}
	}
}

// An activation that another member superseded (a newer epoch taken while
// this member did not see it go, as after a pause) is noticed at the next
// epoch check, on the injected clock: this member stops it and, still the
// owner, starts a new activation with an epoch above the intruder's.
func TestSingletons_InProcess_SupersededActivationRestarts(t *testing.T) {
	needCluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	j, err := postgres.Open(ctx, pgtest.DSN(t), postgres.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	sys, err := actor.NewSystem(actor.Config{Journal: j})
	if err != nil {
		t.Fatal(err)
	}
	defer sys.Close()
	var (
		mu      sync.Mutex
		stopped []uint64
	)
	start := func(ctx context.Context, act cluster.Activation) (func(context.Context) error, error) {
		return func(context.Context) error {
			mu.Lock()
			defer mu.Unlock()
			stopped = append(stopped, act.Epoch)
			return nil
		}, nil
	}
	clock := actortest.NewManualClock(time.Now())
	ports := freePorts(t, 1)
	m, err := cluster.Start(ctx, sys, cluster.Config{Name: "superseded", AutoManagedPort: ports[0], RefreshTTL: 200 * time.Millisecond,
		Clock: clock, Singletons: []cluster.Singleton{{Name: "s", Start: start, CheckInterval: time.Minute}}})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	waitFor(t, 30*time.Second, "the singleton to run with epoch 1", func() bool {
		st, _ := m.Singleton("s")
		return st.Running && st.Epoch == 1
	})
	waitFor(t, 30*time.Second, "the epoch check to be scheduled", func() bool { return clock.Timers() > 0 })

	// Another member (not in this member's view) takes the name over.
	intruder, err := j.NextEpoch(ctx, "cluster.singleton:s", "10.255.0.1:7000")
	if err != nil || intruder != 2 {
		t.Fatalf("intruding epoch: %d, %v", intruder, err)
	}
	clock.Advance(time.Minute)
	waitFor(t, 30*time.Second, "a new activation above the intruder's epoch", func() bool {
		st, _ := m.Singleton("s")
		return st.Running && st.Epoch > intruder && st.Activations == 2
	})
	mu.Lock()
	if !slices.Equal(stopped, []uint64{1}) {
		t.Errorf("stopped activations: %v, want the superseded epoch 1", stopped)
	}
	mu.Unlock()
	if _, holder, err := j.Epoch(ctx, "cluster.singleton:s"); err != nil || holder != m.Address() {
		t.Errorf("holder after the restart: %q, %v; want this member", holder, err)
	}
}
