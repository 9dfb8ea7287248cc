package aggregate_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/orchestrix/orchestrix/aggregate"
	"github.com/orchestrix/orchestrix/aggregate/aggregatetest"
)

// A wallet: its state, its commands and its events, each family behind a
// marker interface so that Decide and Evolve need no casts.
type Wallet struct{ Balance int64 }

type WalletCommand interface{ isWalletCommand() }

type (
	TopUp struct{ Amount int64 }
	Spend struct{ Amount int64 }
)

func (TopUp) isWalletCommand() {}
func (Spend) isWalletCommand() {}

type WalletEvent interface{ isWalletEvent() }

type (
	ToppedUp struct{ Amount int64 }
	Spent    struct{ Amount int64 }
)

func (ToppedUp) isWalletEvent() {}
func (Spent) isWalletEvent()    {}

var ErrNotEnough = errors.New("not enough money")

var wallets = aggregate.Definition[Wallet, WalletCommand, WalletEvent]{
	Kind:    "wallet",
	Initial: func(string) Wallet { return Wallet{} },
	Decide: func(w Wallet, c WalletCommand) ([]WalletEvent, error) {
		switch c := c.(type) {
		case TopUp:
			return []WalletEvent{ToppedUp(c)}, nil
		case Spend:
			if c.Amount > w.Balance {
				return nil, ErrNotEnough
			}
			return []WalletEvent{Spent(c)}, nil
		}
		return nil, fmt.Errorf("unknown command %T", c)
	},
	Evolve: func(w Wallet, e WalletEvent) Wallet {
		switch e := e.(type) {
		case ToppedUp:
			w.Balance += e.Amount
		case Spent:
			w.Balance -= e.Amount
		}
		return w
	},
	Events: []aggregate.EventType{
		aggregate.Event[ToppedUp]("wallet.topped_up"),
		aggregate.Event[Spent]("wallet.spent"),
	},
}

// A Definition is plain functions: deciding a command against a state
// and folding the events it returns is all the runtime does with it
// (actor.Register runs it, one actor per id, and stores the events).
func ExampleDefinition() {
	if err := wallets.Validate(); err != nil {
		fmt.Println(err)
		return
	}
	w := wallets.Initial("w-1")
	for _, cmd := range []WalletCommand{TopUp{Amount: 30}, Spend{Amount: 20}, Spend{Amount: 20}} {
		events, err := wallets.Decide(w, cmd)
		if err != nil {
			fmt.Printf("%T refused: %v\n", cmd, err)
			continue
		}
		for _, e := range events {
			w = wallets.Evolve(w, e)
		}
		fmt.Printf("%T → %v, balance %d\n", cmd, events, w.Balance)
	}
	// Output:
	// aggregate_test.TopUp → [{30}], balance 30
	// aggregate_test.Spend → [{20}], balance 10
	// aggregate_test.Spend refused: not enough money
}

// Test a definition with aggregatetest: given the events already in the
// stream, when a command, then the events (or the error) it produces. In
// a test, pass the test's t to aggregatetest.New; here a stand-in prints
// what a failing check would report, and nothing fails.
func ExampleDefinition_aggregatetest() {
	t := printT{}
	aggregatetest.New(t, wallets).
		Given(ToppedUp{Amount: 50}).
		When(Spend{Amount: 20}).
		Then(Spent{Amount: 20}).
		ThenState(Wallet{Balance: 30})

	aggregatetest.New(t, wallets).
		Given(ToppedUp{Amount: 10}).
		When(Spend{Amount: 20}).
		ThenError(ErrNotEnough)

	out := aggregatetest.New(t, wallets).Given(ToppedUp{Amount: 5}).When(TopUp{Amount: 7})
	fmt.Println(out.Events(), out.State().Balance)
	// Output:
	// [{7}] 12
}

// printT stands in for a *testing.T outside a test: it prints failures.
type printT struct{ testing.TB }

func (printT) Helper() {}

func (printT) Errorf(format string, args ...any) { fmt.Printf(format+"\n", args...) }

func (printT) Name() string { return "example" }
