package actor_test

import (
	"errors"

	"github.com/orchestrix/orchestrix/aggregate"
)

// A small bank account used by the tests of aggregate and aggregatetest.

type Account struct {
	ID      string
	Owner   string
	Open    bool
	Balance int64
}

type Command interface{ isCommand() }

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

type Event interface{ isEvent() }

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

var (
	ErrNotOpen           = errors.New("account is not open")
	ErrAlreadyOpen       = errors.New("account is already open")
	ErrInsufficientFunds = errors.New("insufficient funds")
)

func decide(s Account, c Command) ([]Event, error) {
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

func evolve(s Account, e Event) Account {
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

func accounts() aggregate.Definition[Account, Command, Event] {
	return aggregate.Definition[Account, Command, Event]{
		Kind:    "account",
		Initial: func(id string) Account { return Account{ID: id} },
		Decide:  decide,
		Evolve:  evolve,
		Events: []aggregate.EventType{
			aggregate.Event[Opened]("test.account.opened"),
			aggregate.Event[Deposited]("test.account.deposited"),
			aggregate.Event[Withdrawn]("test.account.withdrawn"),
			aggregate.Event[Poisoned]("test.account.poisoned"),
		},
	}
}
