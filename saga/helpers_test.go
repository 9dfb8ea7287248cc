package saga_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/orchestrix/orchestrix"
	"github.com/orchestrix/orchestrix/actor"
	"github.com/orchestrix/orchestrix/aggregate"
	"github.com/orchestrix/orchestrix/internal/pgtest"
	"github.com/orchestrix/orchestrix/journal"
	boltjournal "github.com/orchestrix/orchestrix/journal/bolt"
	memjournal "github.com/orchestrix/orchestrix/journal/mem"
	pgjournal "github.com/orchestrix/orchestrix/journal/postgres"
	"github.com/orchestrix/orchestrix/projection"
	"github.com/orchestrix/orchestrix/saga"
)

// A small bank used by the tests: accounts that may refuse credits.

type Account struct {
	Open     bool
	NoCredit bool // deposits are rejected (refunds are not)
	Balance  int64
}

type AccountCommand interface{ isAccountCommand() }

type (
	Open struct {
		Balance  int64
		NoCredit bool
	}
	Withdraw struct{ Amount int64 }
	Deposit  struct{ Amount int64 }
	Refund   struct{ Amount int64 }
)

func (Open) isAccountCommand()     {}
func (Withdraw) isAccountCommand() {}
func (Deposit) isAccountCommand()  {}
func (Refund) isAccountCommand()   {}

type AccountEvent interface{ isAccountEvent() }

type (
	Opened struct {
		Balance  int64
		NoCredit bool
	}
	Withdrawn struct{ Amount int64 }
	Deposited struct{ Amount int64 }
	Refunded  struct{ Amount int64 }
)

func (Opened) isAccountEvent()    {}
func (Withdrawn) isAccountEvent() {}
func (Deposited) isAccountEvent() {}
func (Refunded) isAccountEvent()  {}

var (
	ErrInsufficientFunds = errors.New("insufficient funds")
	ErrNoCredit          = errors.New("account accepts no credits")
	ErrNotOpen           = errors.New("account not open")
)

var Accounts = aggregate.Definition[Account, AccountCommand, AccountEvent]{
	Kind:    "account",
	Initial: func(string) Account { return Account{} },
	Decide: func(s Account, c AccountCommand) ([]AccountEvent, error) {
		if _, open := c.(Open); !open && !s.Open {
			return nil, ErrNotOpen
		}
		switch c := c.(type) {
		case Open:
			if s.Open {
				return nil, nil
			}
			return []AccountEvent{Opened(c)}, nil
		case Withdraw:
			if c.Amount > s.Balance {
				return nil, ErrInsufficientFunds
			}
			return []AccountEvent{Withdrawn(c)}, nil
		case Deposit:
			if s.NoCredit {
				return nil, ErrNoCredit
			}
			return []AccountEvent{Deposited(c)}, nil
		case Refund:
			return []AccountEvent{Refunded(c)}, nil
		}
		return nil, fmt.Errorf("unknown command %T", c)
	},
	Evolve: func(s Account, e AccountEvent) Account {
		switch e := e.(type) {
		case Opened:
			s.Open, s.Balance, s.NoCredit = true, e.Balance, e.NoCredit
		case Withdrawn:
			s.Balance -= e.Amount
		case Deposited:
			s.Balance += e.Amount
		case Refunded:
			s.Balance += e.Amount
		}
		return s
	},
	Events: []aggregate.EventType{
		aggregate.Event[Opened]("test.account.opened"),
		aggregate.Event[Withdrawn]("test.account.withdrawn"),
		aggregate.Event[Deposited]("test.account.deposited"),
		aggregate.Event[Refunded]("test.account.refunded"),
	},
}

// Transfer is the data of the transfer saga.
type Transfer struct {
	From, To string
	Amount   int64
}

func transferSaga(accounts *actor.Handle[Account, AccountCommand, AccountEvent]) *saga.Orchestration[Transfer] {
	return saga.New[Transfer]("transfer").
		Step("debit",
			saga.Command(accounts, func(t Transfer) (string, AccountCommand) { return t.From, Withdraw{t.Amount} }),
			saga.Command(accounts, func(t Transfer) (string, AccountCommand) { return t.From, Refund{t.Amount} })).
		Step("credit",
			saga.Command(accounts, func(t Transfer) (string, AccountCommand) { return t.To, Deposit{t.Amount} }), nil)
}

// world is a journal and checkpoint store that outlive restarts, and the
// actor system and runner currently running on them.
type world struct {
	t           testing.TB
	journal     *memjournal.Journal // nil for a world on bbolt
	store       watchedJournal      // what the system and runner use
	checkpoints *projection.MemCheckpoints
	clock       orchestrix.Clock
	cfg         func(*saga.Config)
	sysCfg      func(*actor.Config)
	dedup       int // actor.Config.DedupMaxEntries; when set, the window is unbounded in practice

	sys      *actor.System
	accounts *actor.Handle[Account, AccountCommand, AccountEvent]
	runner   *saga.Runner
}

func newWorld(t testing.TB, clock orchestrix.Clock) *world {
	t.Helper()
	j, err := memjournal.New(memjournal.Config{})
	if err != nil {
		t.Fatal(err)
	}
	w := worldOn(t, j, clock)
	w.journal = j
	return w
}

// worldOn returns a world on store, which it closes when t ends.
func worldOn(t testing.TB, store watchedJournal, clock orchestrix.Clock) *world {
	t.Cleanup(func() { store.Close() })
	return &world{t: t, store: store, checkpoints: projection.NewMemCheckpoints(), clock: clock}
}

// watchedJournal is a journal the saga runner can follow.
type watchedJournal interface {
	journal.Journal
	journal.Watcher
}

// newBoltWorld is newWorld on a bbolt journal in a temporary directory
// (without fsync: the tests are about behaviour, not durability).
func newBoltWorld(t testing.TB, clock orchestrix.Clock) *world {
	t.Helper()
	j, err := boltjournal.Open(filepath.Join(t.TempDir(), "journal.db"), boltjournal.Config{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	return worldOn(t, j, clock)
}

// newPGWorld is newWorld on a PostgreSQL journal in a database of its own
// (skipped, with the reason, when PostgreSQL is not installed).
func newPGWorld(t testing.TB, clock orchestrix.Clock) *world {
	t.Helper()
	j, err := pgjournal.Open(context.Background(), pgtest.DSN(t), pgjournal.Config{})
	if err != nil {
		t.Fatal(err)
	}
	return worldOn(t, j, clock)
}

// worldBackends are the journals the chaos tests run on.
var worldBackends = []struct {
	name string
	new  func(testing.TB, orchestrix.Clock) *world
}{{"mem", newWorld}, {"bolt", newBoltWorld}, {"postgres", newPGWorld}}

func TestMain(m *testing.M) { pgtest.Main(m) }

// start starts an actor system and a runner on the world's stores.
func (w *world) start() {
	w.t.Helper()
	reg := orchestrix.NewRegistry()
	sysCfg := actor.Config{Journal: w.store, Registry: reg, Clock: w.clock, DedupMaxEntries: w.dedup}
	if w.dedup > 0 {
		sysCfg.DedupWindow = 24 * time.Hour
	}
	if w.sysCfg != nil {
		w.sysCfg(&sysCfg)
	}
	sys, err := actor.NewSystem(sysCfg)
	if err != nil {
		w.t.Fatal(err)
	}
	accounts, err := actor.Register(sys, Accounts)
	if err != nil {
		w.t.Fatal(err)
	}
	cfg := saga.Config{
		Journal: w.store, Registry: reg, Checkpoints: w.checkpoints, Clock: w.clock,
		Retry: projection.Retry{InitialBackoff: time.Millisecond, MaxBackoff: 20 * time.Millisecond},
	}
	if w.cfg != nil {
		w.cfg(&cfg)
	}
	runner, err := saga.NewRunner(cfg)
	if err != nil {
		w.t.Fatal(err)
	}
	w.sys, w.accounts, w.runner = sys, accounts, runner
	w.t.Cleanup(w.stop)
}

// stop closes the runner and the actor system (idempotent).
func (w *world) stop() {
	if w.runner == nil {
		return
	}
	if err := w.runner.Close(); err != nil {
		w.t.Errorf("runner close: %v", err)
	}
	if err := w.sys.Shutdown(context.Background()); err != nil {
		w.t.Errorf("system shutdown: %v", err)
	}
	w.runner, w.sys = nil, nil
}

func (w *world) open(ctx context.Context, id string, balance int64, noCredit bool) {
	w.t.Helper()
	if _, err := w.accounts.Send(ctx, id, Open{Balance: balance, NoCredit: noCredit}); err != nil {
		w.t.Fatal(err)
	}
}

func (w *world) balance(ctx context.Context, id string) (int64, uint64) {
	w.t.Helper()
	s, v, err := w.accounts.State(ctx, id)
	if err != nil {
		w.t.Fatal(err)
	}
	return s.Balance, v
}

func testContext(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func mustRegister[D any](t testing.TB, r *saga.Runner, o *saga.Orchestration[D]) *saga.Saga[D] {
	t.Helper()
	s, err := saga.Register(r, o)
	if err != nil {
		t.Fatal(err)
	}
	return s
}
