package cluster_test

// Singletons across member processes. This file adds its own member mode
// (envSingletonMember, handled in init, before TestMain) so that the
// member processes of these tests run a bank with a transfer saga runner
// and a balances projection as cluster singletons; the harness helpers
// (freePorts, waitFor, member.get) are cluster_test.go's.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/orchestrix/orchestrix"
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
		if os.Getenv("OX_MODE") == "plain" {
			os.Exit(runPlainMember())
		}
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
	ledgerSingleton   = "ledger"
	ledgerName        = "ledger"
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

	// The ledger projection writes its read model with a handler of its
	// own: the read model and SaveTx in one transaction, no skipping of
	// what is applied. A stale activation's batch is refused by the fence
	// in SaveTx, which aborts the transaction.
	pool, err := pgxpool.New(ctx, dsn)
	if err != nil {
		return fail(err)
	}
	ledger := cluster.Singleton{Name: ledgerSingleton, Start: func(ctx context.Context, act cluster.Activation) (func(context.Context) error, error) {
		cp := store.WithEpoch(act.Epoch)
		pm, err := projection.NewManager(projection.Config{Journal: j, Registry: reg, System: sys, Logger: log})
		if err != nil {
			return nil, err
		}
		err = pm.Add(ctx, projection.Projection{
			Name: ledgerName, Filter: projection.Filter{Kinds: []string{"acct"}}, Checkpoints: cp,
			Handler: projection.HandlerFunc(func(ctx context.Context, batch []projection.Event) error {
				tx, err := pool.Begin(ctx)
				if err != nil {
					return err
				}
				defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
				if err := applyLedger(ctx, tx, batch); err != nil {
					return err
				}
				if err := cp.SaveTx(ctx, tx, ledgerName, batch[len(batch)-1].Position); err != nil {
					return err
				}
				return tx.Commit(ctx)
			}),
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
		Singletons: []cluster.Singleton{sagas, balances, ledger},
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

// runPlainMember runs a member whose singletons (named in OX_SINGLETONS)
// do nothing but record their activations, shown at /activations.
func runPlainMember() int {
	fail := func(err error) int { fmt.Fprintln(os.Stderr, "member:", err); return 1 }
	ctx := context.Background()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	j, err := postgres.Open(ctx, os.Getenv("OX_DSN"), postgres.Config{})
	if err != nil {
		return fail(err)
	}
	sys, err := actor.NewSystem(actor.Config{Journal: j, Logger: log})
	if err != nil {
		return fail(err)
	}
	var (
		mu   sync.Mutex
		acts = map[string]activationReply{}
	)
	// OX_STOP_DELAY makes each stop take that long, as draining work
	// would: a new owner that did not wait for the release would start
	// meanwhile.
	stopDelay, _ := time.ParseDuration(os.Getenv("OX_STOP_DELAY"))
	var singletons []cluster.Singleton
	for _, name := range strings.Split(os.Getenv("OX_SINGLETONS"), ",") {
		singletons = append(singletons, cluster.Singleton{Name: name, Start: func(ctx context.Context, act cluster.Activation) (func(context.Context) error, error) {
			mu.Lock()
			defer mu.Unlock()
			acts[act.Name] = activationReply{Epoch: act.Epoch, TakeoverFrom: act.TakeoverFrom, Running: true}
			return func(context.Context) error {
				time.Sleep(stopDelay)
				mu.Lock()
				defer mu.Unlock()
				a := acts[act.Name]
				a.Running = false
				acts[act.Name] = a
				return nil
			}, nil
		}})
	}
	port, _ := strconv.Atoi(os.Getenv("OX_PORT"))
	amPort, _ := strconv.Atoi(os.Getenv("OX_AMPORT"))
	m, err := cluster.Start(ctx, sys, cluster.Config{
		Port: port, AutoManagedPort: amPort, Seeds: strings.Split(os.Getenv("OX_SEEDS"), ","),
		RefreshTTL: 300 * time.Millisecond, RequestTimeout: 3 * time.Second, Logger: log, Singletons: singletons,
	})
	if err != nil {
		return fail(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/ready", func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode(map[string]any{"address": m.Address(), "members": m.Members()})
	})
	mux.HandleFunc("/activations", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		out := map[string]activationReply{}
		for name, a := range acts {
			st, _ := m.Singleton(name)
			a.Owner = st.Owner
			out[name] = a
		}
		_ = json.NewEncoder(w).Encode(out)
	})
	if err := http.ListenAndServe(os.Getenv("OX_HTTP"), mux); err != nil {
		return fail(err)
	}
	return 0
}

type activationReply struct {
	Epoch        uint64 `json:"epoch"`
	TakeoverFrom string `json:"takeover_from"`
	Running      bool   `json:"running"`
	Owner        string `json:"owner"`
}

// applyBalances is the balances projection: per account, its balance and
// the number of its events, written in the projection's transaction.
func applyBalances(ctx context.Context, tx pgx.Tx, batch []projection.Event) error {
	return applyTo(ctx, tx, "rm_balances", batch)
}

// applyLedger is the ledger projection's read model: the same as balances,
// in a table of its own.
func applyLedger(ctx context.Context, tx pgx.Tx, batch []projection.Event) error {
	return applyTo(ctx, tx, "rm_ledger", batch)
}

func applyTo(ctx context.Context, tx pgx.Tx, table string, batch []projection.Event) error {
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
		if _, err := tx.Exec(ctx, `INSERT INTO `+table+` AS t (account, balance, events) VALUES ($1, $2, 1)
			ON CONFLICT (account) DO UPDATE SET balance = t.balance + excluded.balance, events = t.events + 1`,
			ev.Envelope.Subject, delta); err != nil {
			return err
		}
	}
	return nil
}

// ---- the harness ----

// memberPlan is the ports and seeds of n member processes.
type memberPlan struct {
	n     int
	ports []int
	seeds []string
}

func planMembers(t *testing.T, n int) memberPlan {
	p := memberPlan{n: n, ports: freePorts(t, 3*n)}
	for i := range n {
		p.seeds = append(p.seeds, "127.0.0.1:"+strconv.Itoa(p.ports[n+i]))
	}
	return p
}

// spawnSingletonMember starts member process i of plan over dsn, in the
// mode this file adds, with env added to its environment.
func spawnSingletonMember(t *testing.T, dsn string, plan memberPlan, i int, env ...string) *member {
	t.Helper()
	n := plan.n
	vars := []string{envSingletonMember + "=" + strconv.Itoa(i), "OX_DSN=" + dsn,
		"OX_PORT=" + strconv.Itoa(plan.ports[i]), "OX_AMPORT=" + strconv.Itoa(plan.ports[n+i]),
		"OX_SEEDS=" + strings.Join(plan.seeds, ",")}
	return launchMember(t, i, "127.0.0.1:"+strconv.Itoa(plan.ports[2*n+i]), append(vars, env...))
}

// waitMembers waits until every member of ms sees n members.
func waitMembers(t *testing.T, ms []*member, n int) {
	t.Helper()
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
}

// startSingletonMembers starts n bank member processes over dsn, like
// startMembers, and returns once every member sees n members.
func startSingletonMembers(t *testing.T, dsn string, n int) []*member {
	t.Helper()
	plan := planMembers(t, n)
	var ms []*member
	for i := range n {
		ms = append(ms, spawnSingletonMember(t, dsn, plan, i))
	}
	waitMembers(t, ms, n)
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

// ---- the scenario ----

// bank is one run of the bank over member processes: the accounts, the
// transfers requested so far, and what the test did to the members.
type bank struct {
	t         *testing.T
	ctx       context.Context
	dsn       string
	seed      uint64
	db        *pgx.Conn
	ms        []*member
	transfers []transfer
	killed    map[*member]bool
	paused    map[*member]bool
}

const bankAccounts, bankInitial = 16, 400

func acctID(i int) string { return fmt.Sprintf("a%02d", i) }
func reqID(i int) string  { return fmt.Sprintf("r%04d", i) }

// newBank creates the read-model tables, starts three members, waits for
// every singleton to run, opens the accounts and draws nSagas transfers.
func newBank(t *testing.T, ctx context.Context, nSagas, members int) *bank {
	t.Helper()
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("SINGLETON_SEED"); s != "" {
		seed, _ = strconv.ParseUint(s, 10, 64)
	}
	t.Logf("seed %d (SINGLETON_SEED=%d to replay)", seed, seed)
	rng := rand.New(rand.NewPCG(seed, seed^0xa5))
	b := &bank{t: t, ctx: ctx, dsn: pgtest.DSN(t), seed: seed, killed: map[*member]bool{}, paused: map[*member]bool{}}
	db, err := pgx.Connect(ctx, b.dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close(context.Background()) })
	b.db = db
	for _, table := range []string{"rm_balances", "rm_ledger"} {
		if _, err := db.Exec(ctx, `CREATE TABLE `+table+` (account text PRIMARY KEY, balance bigint NOT NULL, events bigint NOT NULL)`); err != nil {
			t.Fatal(err)
		}
	}
	b.ms = startSingletonMembers(t, b.dsn, members)
	waitFor(t, 60*time.Second, "every singleton to run on one member", func() bool {
		for _, name := range []string{sagasSingleton, balancesSingleton, ledgerSingleton} {
			if mb, _ := running(b.ms, name); mb == nil {
				return false
			}
		}
		return true
	})
	for i := range bankAccounts {
		var r sendReply
		if err := b.ms[i%len(b.ms)].get("/open", url.Values{"id": {acctID(i)}, "balance": {strconv.Itoa(bankInitial)},
			"nocredit": {map[bool]string{true: "1", false: "0"}[i%8 == 0]}}, &r); err != nil || !r.OK {
			t.Fatalf("opening %s: %v %s", acctID(i), err, r.Err)
		}
	}
	b.transfers = make([]transfer, nSagas)
	for i := range b.transfers {
		from := rng.IntN(bankAccounts)
		to := (from + 1 + rng.IntN(bankAccounts-1)) % bankAccounts
		b.transfers[i] = transfer{From: acctID(from), To: acctID(to), Amount: 1 + rng.Int64N(150)}
	}
	return b
}

// usable reports whether the test may talk to mb.
func (b *bank) usable(mb *member) bool { return mb.alive() && !b.paused[mb] && !b.killed[mb] }

// request sends requests [from, to) through the usable members, each
// retried with the same command id until it is acknowledged.
func (b *bank) request(from, to int) {
	t := b.t
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, to-from)
	for i := from; i < to; i++ {
		wg.Go(func() {
			tr := b.transfers[i]
			q := url.Values{"id": {reqID(i)}, "from": {tr.From}, "to": {tr.To}, "amount": {strconv.FormatInt(tr.Amount, 10)}}
			var last string
			for k := 0; b.ctx.Err() == nil; k++ {
				mb := b.ms[(i+k)%len(b.ms)]
				if !b.usable(mb) {
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

// terminal counts the sagas that recorded their end.
func (b *bank) terminal() int {
	var n int
	if err := b.db.QueryRow(b.ctx, `SELECT count(*) FROM journal_events WHERE type = ANY($1)`,
		[]string{saga.TypeCompleted, saga.TypeCompensated, saga.TypeFailed}).Scan(&n); err != nil {
		b.t.Fatal(err)
	}
	return n
}

// followFrom has a usable member that does not run the saga runner wait
// for saga id to end (saga.Follow: progress made on another member).
func (b *bank) followFrom(id string) {
	b.t.Helper()
	runner, _ := running(b.ms, sagasSingleton)
	for _, mb := range b.ms {
		if mb != runner && b.usable(mb) {
			var st sagaReply
			if err := mb.get("/wait", url.Values{"id": {id}}, &st); err != nil || st.Err != "" {
				b.t.Fatalf("waiting for %s on a member that does not run the sagas: %v %s", id, err, st.Err)
			}
			return
		}
	}
	b.t.Fatal("no usable member without the saga runner")
}

// moveAway SIGKILLs victim, or SIGSTOPs it when pause is set, and waits
// for a survivor to take over, with a higher epoch, each singleton it ran;
// it returns their names.
func (b *bank) moveAway(victim *member, pause bool) map[string]bool {
	t := b.t
	t.Helper()
	before := victim.singletons()
	sig, what := syscall.SIGKILL, "SIGKILL"
	if pause {
		sig, what = syscall.SIGSTOP, "SIGSTOP"
	}
	if err := victim.cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
	if pause {
		b.paused[victim] = true
	} else {
		<-victim.exited
		b.killed[victim] = true
	}
	t.Logf("%s of %s (singletons %+v) with %d of %d sagas finished", what, victim.address, before, b.terminal(), len(b.transfers))
	moved := map[string]bool{}
	for name, s := range before {
		if !s.Running {
			continue
		}
		moved[name] = true
		waitFor(t, 60*time.Second, fmt.Sprintf("a survivor to take %q over with an epoch above %d", name, s.Epoch), func() bool {
			for _, mb := range b.ms {
				if mb != victim && b.usable(mb) {
					if st := mb.singletons()[name]; st.Running && st.Epoch > s.Epoch {
						return true
					}
				}
			}
			return false
		})
	}
	return moved
}

// resume sends SIGCONT to a paused member.
func (b *bank) resume(mb *member) {
	b.t.Helper()
	if err := mb.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		b.t.Fatal(err)
	}
	delete(b.paused, mb)
	b.t.Logf("SIGCONT of %s", mb.address)
}

// check waits for every saga to end and checks the invariants: every saga
// terminal for a reason its data explains, every account where the
// sagas' records put it (no double effects), money conserved, and both
// read models, once caught up with the journal, equal to the accounts
// (each event applied exactly once).
func (b *bank) check() {
	t := b.t
	t.Helper()
	var survivor *member
	for _, mb := range b.ms {
		if b.usable(mb) {
			survivor = mb
			break
		}
	}
	expected := map[string]struct{ balance, version int64 }{}
	for i := range bankAccounts {
		expected[acctID(i)] = struct{ balance, version int64 }{bankInitial, 1}
	}
	move := func(id string, amount int64) {
		e := expected[id]
		e.balance += amount
		e.version++
		expected[id] = e
	}
	outcomes := map[string]int{}
	for i := range b.transfers {
		var st sagaReply
		if err := survivor.get("/wait", url.Values{"id": {reqID(i)}}, &st); err != nil || st.Err != "" {
			t.Fatalf("saga %s did not finish: %+v %v (seed %d)", reqID(i), st, err, b.seed)
		}
		outcomes[st.State]++
		if st.Data != b.transfers[i] {
			t.Fatalf("saga %s data %+v, want %+v", reqID(i), st.Data, b.transfers[i])
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

	// The accounts as the journal records them (State through a member
	// could come from a stale activation on a member that was paused: a
	// limit of the cluster until self-fence).
	j, err := postgres.Open(b.ctx, b.dsn, postgres.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	reg := orchestrix.NewRegistry()
	for _, err := range []error{
		orchestrix.Register[acctOpened](reg, "test.acct.opened"),
		orchestrix.Register[acctWithdrawn](reg, "test.acct.withdrawn"),
		orchestrix.Register[acctDeposited](reg, "test.acct.deposited"),
		orchestrix.Register[acctRefunded](reg, "test.acct.refunded"),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	var total int64
	for i := range bankAccounts {
		id := acctID(i)
		var s acct
		var version int64
		for rec, err := range j.Read(b.ctx, "acct-"+id, 1, math.MaxUint64, math.MaxInt) {
			if err != nil {
				t.Fatal(err)
			}
			ev, err := reg.Unmarshal(rec.Envelope)
			if err != nil {
				t.Fatal(err)
			}
			s = accts.Evolve(s, ev.(acctEvent))
			version++
		}
		total += s.Balance
		if e := expected[id]; s.Balance != e.balance || version != e.version {
			t.Errorf("account %s: balance %d at version %d, want %d at version %d (seed %d)", id, s.Balance, version, e.balance, e.version, b.seed)
		}
	}
	if total != bankAccounts*bankInitial {
		t.Errorf("money not conserved: %d, want %d", total, bankAccounts*bankInitial)
	}
	last, err := j.LastPosition(b.ctx)
	if err != nil {
		t.Fatal(err)
	}
	store, err := pgstore.Open(b.ctx, b.dsn, pgstore.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	for _, rm := range []struct{ name, table string }{{balancesName, "rm_balances"}, {ledgerName, "rm_ledger"}} {
		waitFor(t, 60*time.Second, fmt.Sprintf("projection %s to reach position %d", rm.name, last), func() bool {
			pos, err := store.Load(b.ctx, rm.name)
			return err == nil && pos >= last
		})
		rows, err := b.db.Query(b.ctx, `SELECT account, balance, events FROM `+rm.table)
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
				t.Errorf("%s: %s has balance %d from %d events, want %d from %d (seed %d)", rm.table, id, balance, events, e.balance, e.version, b.seed)
			}
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		if seen != bankAccounts {
			t.Errorf("%s has %d accounts, want %d", rm.table, seen, bankAccounts)
		}
	}
	t.Logf("%d sagas: %v; killed %d member(s)", len(b.transfers), outcomes, len(b.killed))
}

// ---- the tests ----

// TestSingletons_SagaRunnerAndProjections_SurviveSIGKILLOfTheirMember
// runs the transfer saga runner and two projections (balances, through
// pgstore's Handler; ledger, through a handler of its own calling SaveTx)
// as singletons on three members, SIGKILLs the member running the saga
// runner while sagas are in flight (and then, if they did not move with
// it, the member running the projections), and checks that another member
// takes each over with a higher epoch, that every saga ends, that every
// command took effect exactly as often as the sagas recorded, and that
// both read models equal the accounts: every event applied exactly once.
// Bounded waits are liveness guards, not timing assertions.
func TestSingletons_SagaRunnerAndProjections_SurviveSIGKILLOfTheirMember(t *testing.T) {
	needCluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	nSagas := 240
	if testing.Short() {
		nSagas = 120
	}
	// Up to two members are killed: five members, so that the three
	// left still hold a majority and do not fence themselves.
	b := newBank(t, ctx, nSagas, 5)
	first, second := nSagas*2/3, nSagas*5/6
	b.request(0, first)
	b.followFrom(reqID(0))
	waitFor(t, 120*time.Second, "some sagas to finish before the kill", func() bool { return b.terminal() >= nSagas/8 })

	victim, _ := running(b.ms, sagasSingleton)
	moved := b.moveAway(victim, false)
	b.request(first, second)
	for _, name := range []string{balancesSingleton, ledgerSingleton} {
		if !moved[name] && len(b.killed) < 2 { // three of five stay: a majority
			// This projection did not run on the killed member: kill the
			// member running it too, while account events keep coming.
			mb, _ := running(b.ms, name)
			if mb == nil {
				t.Fatalf("no member runs %s", name)
			}
			for n := range b.moveAway(mb, false) {
				moved[n] = true
			}
		}
	}
	t.Logf("taken over after a SIGKILL: %v", moved)
	b.request(second, nSagas)
	b.check()
}

// TestSingletons_PausedMember_StaleActivationsFenced SIGSTOPs the member
// running the ledger projection (and whatever else it runs) while events
// flow, waits for the survivors to take its singletons over, and resumes
// it: its stale activations wake up with their old epochs, so their
// checkpoint and read-model writes are refused (pgstore.ErrFenced aborts
// the ledger handler's own transaction) and their epoch check stops them.
// The invariants are those of the SIGKILL test, plus: in the end exactly
// one member runs each singleton. Whether the stale projection got to
// write before its epoch check stopped it depends on scheduling; the
// member's log says (a line with "fenced").
func TestSingletons_PausedMember_StaleActivationsFenced(t *testing.T) {
	needCluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	nSagas := 180
	if testing.Short() {
		nSagas = 90
	}
	b := newBank(t, ctx, nSagas, 3)
	first, second := nSagas/2, nSagas*3/4
	b.request(0, first)
	waitFor(t, 120*time.Second, "some sagas to finish before the pause", func() bool { return b.terminal() >= nSagas/8 })

	victim, _ := running(b.ms, ledgerSingleton)
	b.moveAway(victim, true)
	b.request(first, second)
	b.resume(victim)
	b.request(second, nSagas)
	b.check()
	for _, name := range []string{sagasSingleton, balancesSingleton, ledgerSingleton} {
		waitFor(t, 60*time.Second, fmt.Sprintf("exactly one member to run %s", name), func() bool {
			mb, _ := running(b.ms, name)
			return mb != nil
		})
	}
	log, _ := os.ReadFile(victim.log)
	var lines []string
	for _, l := range strings.Split(string(log), "\n") {
		if strings.Contains(l, "fenced") || strings.Contains(l, "singleton") {
			lines = append(lines, l)
		}
	}
	t.Logf("the paused member's singleton and fence log lines:\n%s", strings.Join(lines[:min(len(lines), 30)], "\n"))
}

// A member joins a running cluster: the singletons whose names now hash
// to it move there as handoffs. Their previous member stops them and
// releases their epoch, and only then does the new member start them
// (Activation.TakeoverFrom is empty: the holder had released), with the
// next epoch, although each stop takes a while (OX_STOP_DELAY), so a new
// owner that did not wait would start before the release; the names
// that did not move keep running where they were,
// untouched. 24 names make it certain in practice that some move (each
// does with probability 1/3); the test fails if none does.
func TestSingletons_MemberJoins_HandoffWithoutOverlap(t *testing.T) {
	needCluster(t)
	dsn := pgtest.DSN(t)
	var names []string
	for i := range 24 {
		names = append(names, fmt.Sprintf("j%02d", i))
	}
	env := []string{"OX_MODE=plain", "OX_SINGLETONS=" + strings.Join(names, ","), "OX_STOP_DELAY=3s"}
	plan := planMembers(t, 3)
	ms := []*member{spawnSingletonMember(t, dsn, plan, 0, env...), spawnSingletonMember(t, dsn, plan, 1, env...)}
	waitMembers(t, ms, 2)
	activations := func(mb *member) map[string]activationReply {
		var out map[string]activationReply
		if err := mb.get("/activations", nil, &out); err != nil {
			return nil
		}
		return out
	}
	// settled returns who runs each name when every name runs on exactly
	// one member, the owner in that member's view.
	settled := func() map[string]*member {
		where := map[string]*member{}
		for _, mb := range ms {
			for name, a := range activations(mb) {
				if a.Running {
					if where[name] != nil || a.Owner != mb.address {
						return nil
					}
					where[name] = mb
				}
			}
		}
		if len(where) != len(names) {
			return nil
		}
		return where
	}
	var before map[string]*member
	waitFor(t, 60*time.Second, "every singleton to run on one of two members", func() bool { before = settled(); return before != nil })
	epochs := map[string]uint64{}
	for name, mb := range before {
		epochs[name] = activations(mb)[name].Epoch
	}

	ms = append(ms, spawnSingletonMember(t, dsn, plan, 2, env...))
	waitMembers(t, ms, 3)
	var after map[string]*member
	waitFor(t, 60*time.Second, "every singleton to run on one of three members", func() bool {
		after = settled()
		if after == nil {
			return false
		}
		for _, mb := range after {
			if mb == ms[2] {
				return true
			}
		}
		return false
	})
	moved := 0
	for _, name := range names {
		a := activations(after[name])[name]
		if after[name] != ms[2] {
			if after[name] != before[name] || a.Epoch != epochs[name] {
				t.Errorf("%s stayed off the new member but moved from %s to %s (epoch %d to %d)", name,
					before[name].address, after[name].address, epochs[name], a.Epoch)
			}
			continue
		}
		moved++
		if a.TakeoverFrom != "" {
			t.Errorf("%s moved to the new member as a takeover from %s, want a clean handoff (released first)", name, a.TakeoverFrom)
		}
		if a.Epoch != epochs[name]+1 {
			t.Errorf("%s runs on the new member with epoch %d, want %d", name, a.Epoch, epochs[name]+1)
		}
		if old := activations(before[name])[name]; old.Running || old.Epoch != epochs[name] {
			t.Errorf("%s on its previous member: %+v, want stopped at epoch %d", name, old, epochs[name])
		}
	}
	if moved == 0 {
		t.Fatalf("none of %d singletons moved to the joining member", len(names))
	}
	t.Logf("%d of %d singletons handed off to the joining member", moved, len(names))
}

// One member in this process runs its singletons: each starts with an
// epoch from the journal and its holder recorded, a Start that fails is
// retried (with a new epoch), and Close stops every activation and
// releases its epoch before the member leaves.
func TestSingletons_InProcess_StartRetryCloseRelease(t *testing.T) {
	needCluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	sys, j := pgSystem(t, ctx)
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
	sys, j := pgSystem(t, ctx)
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
