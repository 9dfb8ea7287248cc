// Package banktest holds the small bank account aggregate that the tests of
// aggregate, aggregatetest and actor share: open, deposit, withdraw without
// overdraft, plus a command and an event that panic, for supervision tests.
package banktest

import (
	"errors"

	"github.com/orchestrix/orchestrix/aggregate"
)

// Account is the state of one account.
type Account struct {
	ID      string
	Owner   string
	Open    bool
	Balance int64
}

// Command is implemented by the account commands.
type Command interface{ isCommand() }

// The account commands. Explode makes Decide panic.
type (
	OpenAccount struct{ Owner string }
	Deposit     struct{ Amount int64 }
	Withdraw    struct{ Amount int64 }
	Explode     struct{}
)

func (OpenAccount) isCommand() {}
func (Deposit) isCommand()     {}
func (Withdraw) isCommand()    {}
func (Explode) isCommand()     {}

// Event is implemented by the account events.
type Event interface{ isEvent() }

// The account events. Poisoned makes Evolve panic.
type (
	Opened    struct{ Owner string }
	Deposited struct{ Amount int64 }
	Withdrawn struct{ Amount int64 }
	Poisoned  struct{}
)

func (Opened) isEvent()    {}
func (Deposited) isEvent() {}
func (Withdrawn) isEvent() {}
func (Poisoned) isEvent()  {}

// Domain errors of Decide.
var (
	ErrNotOpen           = errors.New("account is not open")
	ErrAlreadyOpen       = errors.New("account is already open")
	ErrInsufficientFunds = errors.New("insufficient funds")
)

// Decide is the account's decision function.
func Decide(s Account, c Command) ([]Event, error) {
	switch c := c.(type) {
	case OpenAccount:
		if s.Open {
			return nil, ErrAlreadyOpen
		}
		return []Event{Opened{Owner: c.Owner}}, nil
	case Deposit:
		if !s.Open {
			return nil, ErrNotOpen
		}
		if c.Amount == 0 {
			return nil, nil
		}
		return []Event{Deposited{Amount: c.Amount}}, nil
	case Withdraw:
		if !s.Open {
			return nil, ErrNotOpen
		}
		if s.Balance < c.Amount {
			return nil, ErrInsufficientFunds
		}
		return []Event{Withdrawn{Amount: c.Amount}}, nil
	case Explode:
		panic("boom")
	}
	return nil, errors.New("unknown command")
}

// Evolve is the account's evolution function.
func Evolve(s Account, e Event) Account {
	switch e := e.(type) {
	case Opened:
		s.Open, s.Owner = true, e.Owner
	case Deposited:
		s.Balance += e.Amount
	case Withdrawn:
		s.Balance -= e.Amount
	case Poisoned:
		panic("poisoned event")
	}
	return s
}

// Accounts returns the definition of kind "account".
func Accounts() aggregate.Definition[Account, Command, Event] {
	return aggregate.Definition[Account, Command, Event]{
		Kind:    "account",
		Initial: func(id string) Account { return Account{ID: id} },
		Decide:  Decide,
		Evolve:  Evolve,
		Events: []aggregate.EventType{
			aggregate.Event[Opened]("test.account.opened"),
			aggregate.Event[Deposited]("test.account.deposited"),
			aggregate.Event[Withdrawn]("test.account.withdrawn"),
			aggregate.Event[Poisoned]("test.account.poisoned"),
		},
	}
}
