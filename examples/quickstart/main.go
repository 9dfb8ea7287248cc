// Command quickstart is the Orchestrix demo: a bank account aggregate on the
// embedded bbolt journal. It opens an account, moves money, shows a domain
// rejection and a deduplicated retry, restarts the runtime to show recovery
// from the journal and snapshots, travels back in time, and prints the
// global log as CloudEvents JSON.
//
//	go run ./examples/quickstart            # data in a temporary directory
//	go run ./examples/quickstart -data DIR  # keep the journal in DIR
//	go run ./examples/quickstart -metrics 127.0.0.1:9090 -trace
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"

	"github.com/orchestrix/orchestrix/actor"
	"github.com/orchestrix/orchestrix/aggregate"
	"github.com/orchestrix/orchestrix/console"
	"github.com/orchestrix/orchestrix/examples/internal/obs"
	"github.com/orchestrix/orchestrix/journal"
	boltjournal "github.com/orchestrix/orchestrix/journal/bolt"
	boltsnapshot "github.com/orchestrix/orchestrix/snapshot/bolt"
)

// Account is the state of one bank account.
type Account struct {
	Open    bool
	Owner   string
	Balance int64
}

// Commands of the account aggregate.
type (
	// AccountCommand is implemented by every account command.
	AccountCommand interface{ isAccountCommand() }
	// OpenAccount opens the account for an owner.
	OpenAccount struct{ Owner string }
	// Deposit adds money (in cents).
	Deposit struct{ Amount int64 }
	// Withdraw takes money out; the balance may not go below zero.
	Withdraw struct{ Amount int64 }
)

func (OpenAccount) isAccountCommand() {}
func (Deposit) isAccountCommand()     {}
func (Withdraw) isAccountCommand()    {}

// Events of the account aggregate.
type (
	// AccountEvent is implemented by every account event.
	AccountEvent interface{ isAccountEvent() }
	// AccountOpened records that an account was opened.
	AccountOpened struct{ Owner string }
	// MoneyDeposited records a deposit.
	MoneyDeposited struct{ Amount int64 }
	// MoneyWithdrawn records a withdrawal.
	MoneyWithdrawn struct{ Amount int64 }
)

func (AccountOpened) isAccountEvent()  {}
func (MoneyDeposited) isAccountEvent() {}
func (MoneyWithdrawn) isAccountEvent() {}

// Domain errors.
var (
	ErrAlreadyOpen       = errors.New("account already open")
	ErrNotOpen           = errors.New("account not open")
	ErrInsufficientFunds = errors.New("insufficient funds")
	ErrInvalidAmount     = errors.New("amount must be positive")
)

// Accounts defines the account aggregate: pure decisions and evolution.
var Accounts = aggregate.Definition[Account, AccountCommand, AccountEvent]{
	Kind:          "account",
	Initial:       func(string) Account { return Account{} },
	Decide:        decide,
	Evolve:        evolve,
	SnapshotEvery: 50,
	Events: []aggregate.EventType{
		aggregate.Event[AccountOpened]("bank.account.opened"),
		aggregate.Event[MoneyDeposited]("bank.account.deposited"),
		aggregate.Event[MoneyWithdrawn]("bank.account.withdrawn"),
	},
}

func decide(s Account, c AccountCommand) ([]AccountEvent, error) {
	switch c := c.(type) {
	case OpenAccount:
		if s.Open {
			return nil, ErrAlreadyOpen
		}
		return []AccountEvent{AccountOpened{Owner: c.Owner}}, nil
	case Deposit:
		if !s.Open {
			return nil, ErrNotOpen
		}
		if c.Amount <= 0 {
			return nil, ErrInvalidAmount
		}
		return []AccountEvent{MoneyDeposited{Amount: c.Amount}}, nil
	case Withdraw:
		if !s.Open {
			return nil, ErrNotOpen
		}
		if c.Amount <= 0 {
			return nil, ErrInvalidAmount
		}
		if c.Amount > s.Balance {
			return nil, ErrInsufficientFunds
		}
		return []AccountEvent{MoneyWithdrawn{Amount: c.Amount}}, nil
	}
	return nil, fmt.Errorf("unknown command %T", c)
}

func evolve(s Account, e AccountEvent) Account {
	switch e := e.(type) {
	case AccountOpened:
		s.Open, s.Owner = true, e.Owner
	case MoneyDeposited:
		s.Balance += e.Amount
	case MoneyWithdrawn:
		s.Balance -= e.Amount
	}
	return s
}

// runtime is one open journal, snapshot store and actor system.
type runtime struct {
	journal  *boltjournal.Journal
	system   *actor.System
	accounts *actor.Handle[Account, AccountCommand, AccountEvent]
}

func start(dir string, o *obs.Obs) (*runtime, error) {
	j, err := boltjournal.Open(filepath.Join(dir, "orchestrix.db"), boltjournal.Config{Metrics: o.Metrics(), TracerProvider: o.TracerProvider()})
	if err != nil {
		return nil, err
	}
	snaps, err := boltsnapshot.New(j.DB(), boltsnapshot.Config{})
	if err != nil {
		j.Close()
		return nil, err
	}
	sys, err := actor.NewSystem(actor.Config{
		Journal: j, Snapshots: snaps, Source: "/orchestrix/quickstart",
		Metrics: o.Metrics(), TracerProvider: o.TracerProvider(),
	})
	if err != nil {
		j.Close()
		return nil, err
	}
	accounts, err := actor.Register(sys, Accounts)
	if err != nil {
		sys.Shutdown(context.Background())
		j.Close()
		return nil, err
	}
	return &runtime{journal: j, system: sys, accounts: accounts}, nil
}

func (r *runtime) stop(ctx context.Context) error {
	return errors.Join(r.system.Shutdown(ctx), r.journal.Close())
}

// run is the whole demo; it writes its story to w and keeps data in dir.
// o supplies metrics and tracing (nil: none).
func run(ctx context.Context, w io.Writer, dir string, o *obs.Obs) error {
	rt, err := start(dir, o)
	if err != nil {
		return err
	}
	const id = "alice"
	fmt.Fprintln(w, "== commands: each reply means the events are durable")
	steps := []AccountCommand{OpenAccount{Owner: "Alice"}, Deposit{Amount: 10_000}, Withdraw{Amount: 2_500}}
	for _, cmd := range steps {
		res, err := rt.accounts.Send(ctx, id, cmd)
		if err != nil {
			return fmt.Errorf("%T: %w", cmd, err)
		}
		fmt.Fprintf(w, "%-11s -> %s, version %d\n", typeName(cmd), typeName(res.Events[0]), res.Version)
	}

	_, err = rt.accounts.Send(ctx, id, Withdraw{Amount: 1_000_000})
	fmt.Fprintf(w, "overdraft rejected by the domain: %v (matches ErrInsufficientFunds: %t)\n", err, errors.Is(err, ErrInsufficientFunds))

	first, err := rt.accounts.Send(ctx, id, Deposit{Amount: 500}, actor.WithCommandID("deposit-42"))
	if err != nil {
		return err
	}
	retry, err := rt.accounts.Send(ctx, id, Deposit{Amount: 500}, actor.WithCommandID("deposit-42"))
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "retried command deposit-42: duplicate=%t, version stays %d (was %d)\n", retry.Duplicate, retry.Version, first.Version)

	// Many small deposits: pipelined into few journal commits.
	for i := 0; i < 100; i++ {
		if err := rt.accounts.Tell(id, Deposit{Amount: 1}); err != nil {
			return err
		}
	}
	res, err := rt.accounts.Send(ctx, id, Deposit{Amount: 1})
	if err != nil {
		return err
	}
	state, version, err := rt.accounts.State(ctx, id)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "after 101 more deposits: balance %d at version %d (last reply version %d)\n", state.Balance, version, res.Version)

	fmt.Fprintln(w, "== restart: state is recovered from the snapshot and the journal")
	if err := rt.stop(ctx); err != nil {
		return err
	}
	if rt, err = start(dir, o); err != nil {
		return err
	}
	defer rt.stop(ctx)
	state, version, err = rt.accounts.State(ctx, id)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "recovered: owner %s, balance %d at version %d\n", state.Owner, state.Balance, version)

	fmt.Fprintln(w, "== time travel: the state as of earlier versions")
	for _, v := range []uint64{1, 2, 3} {
		past, _, err := rt.accounts.StateAt(ctx, id, v)
		if err != nil {
			return err
		}
		fmt.Fprintf(w, "version %d: open=%t balance %d\n", v, past.Open, past.Balance)
	}

	fmt.Fprintln(w, "== the global log (first 3 records) as CloudEvents JSON")
	for rec, err := range rt.journal.ReadAll(ctx, 1, 3) {
		if err != nil {
			return err
		}
		if err := printRecord(w, rec); err != nil {
			return err
		}
	}
	head, err := rt.journal.Head(ctx, rt.accounts.Stream(id))
	if err != nil {
		return err
	}
	n := 0
	for _, err := range rt.journal.Read(ctx, rt.accounts.Stream(id), 1, math.MaxUint64, math.MaxInt) {
		if err != nil {
			return err
		}
		n++
	}
	fmt.Fprintf(w, "stream %s: head %d, %d events stored\n", rt.accounts.Stream(id), head, n)
	hold, stop := obs.Interrupted()
	defer stop()
	return o.Console(hold, console.Config{Journal: rt.journal, Registry: rt.system.Registry()}, os.Stderr)
}

// typeName is the unqualified Go type name of v.
func typeName(v any) string {
	name := fmt.Sprintf("%T", v)
	return name[strings.LastIndexByte(name, '.')+1:]
}

func printRecord(w io.Writer, rec journal.Record) error {
	js, err := rec.Envelope.MarshalJSON()
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "position %d: %s\n", rec.Position, js)
	return err
}

func main() {
	obs.Main("quickstart", "directory for the journal", func(ctx context.Context, dir string, o *obs.Obs) error {
		return run(ctx, os.Stdout, dir, o)
	})
}
