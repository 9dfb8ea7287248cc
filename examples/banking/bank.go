package main

import (
	"errors"
	"fmt"

	"github.com/orchestrix/orchestrix/aggregate"
)

// Status is where an account is in its life.
type Status string

// Account statuses.
const (
	Active    Status = "active"
	Suspended Status = "suspended"
	Closed    Status = "closed"
)

// Account is the state of one bank account. Balances are in cents.
type Account struct {
	Status  Status
	Owner   string
	Balance int64
}

// Commands of the account aggregate.
type (
	// AccountCommand is implemented by every account command.
	AccountCommand interface{ isAccountCommand() }
	// OpenAccount opens the account for an owner.
	OpenAccount struct{ Owner string }
	// Deposit adds money to an active account.
	Deposit struct{ Amount int64 }
	// Withdraw takes money from an active account, never below zero.
	Withdraw struct{ Amount int64 }
	// Suspend stops an active account from moving money.
	Suspend struct{ Reason string }
	// Reactivate lets a suspended account move money again.
	Reactivate struct{}
	// CloseAccount closes an account whose balance is zero.
	CloseAccount struct{}
)

func (OpenAccount) isAccountCommand()  {}
func (Deposit) isAccountCommand()      {}
func (Withdraw) isAccountCommand()     {}
func (Suspend) isAccountCommand()      {}
func (Reactivate) isAccountCommand()   {}
func (CloseAccount) isAccountCommand() {}

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
	// AccountSuspended records a suspension.
	AccountSuspended struct{ Reason string }
	// AccountReactivated records a reactivation.
	AccountReactivated struct{}
	// AccountClosed records that an account was closed.
	AccountClosed struct{}
)

func (AccountOpened) isAccountEvent()      {}
func (MoneyDeposited) isAccountEvent()     {}
func (MoneyWithdrawn) isAccountEvent()     {}
func (AccountSuspended) isAccountEvent()   {}
func (AccountReactivated) isAccountEvent() {}
func (AccountClosed) isAccountEvent()      {}

// Domain errors: the reasons an account refuses a command.
var (
	ErrAlreadyOpen       = errors.New("account already open")
	ErrNotActive         = errors.New("account is not active")
	ErrNotSuspended      = errors.New("account is not suspended")
	ErrInsufficientFunds = errors.New("insufficient funds")
	ErrInvalidAmount     = errors.New("amount must be positive")
	ErrNonZeroBalance    = errors.New("balance must be zero to close")
)

// Accounts defines the account aggregate. An account exists once opened.
var Accounts = aggregate.Definition[Account, AccountCommand, AccountEvent]{
	Kind:    "account",
	Initial: func(string) Account { return Account{} },
	Decide:  decide,
	Evolve:  evolve,
	Creates: func(c AccountCommand) bool { _, ok := c.(OpenAccount); return ok },
	Events: []aggregate.EventType{
		aggregate.Event[AccountOpened]("bank.account.opened"),
		aggregate.Event[MoneyDeposited]("bank.account.deposited"),
		aggregate.Event[MoneyWithdrawn]("bank.account.withdrawn"),
		aggregate.Event[AccountSuspended]("bank.account.suspended"),
		aggregate.Event[AccountReactivated]("bank.account.reactivated"),
		aggregate.Event[AccountClosed]("bank.account.closed"),
	},
}

func decide(s Account, c AccountCommand) ([]AccountEvent, error) {
	switch c := c.(type) {
	case OpenAccount:
		if s.Status != "" {
			return nil, ErrAlreadyOpen
		}
		return []AccountEvent{AccountOpened(c)}, nil
	case Deposit:
		if err := s.canMove(c.Amount); err != nil {
			return nil, err
		}
		return []AccountEvent{MoneyDeposited(c)}, nil
	case Withdraw:
		if err := s.canMove(c.Amount); err != nil {
			return nil, err
		}
		if c.Amount > s.Balance {
			return nil, ErrInsufficientFunds
		}
		return []AccountEvent{MoneyWithdrawn(c)}, nil
	case Suspend:
		if s.Status != Active {
			return nil, ErrNotActive
		}
		return []AccountEvent{AccountSuspended(c)}, nil
	case Reactivate:
		if s.Status != Suspended {
			return nil, ErrNotSuspended
		}
		return []AccountEvent{AccountReactivated{}}, nil
	case CloseAccount:
		if s.Status != Active {
			return nil, ErrNotActive
		}
		if s.Balance != 0 {
			return nil, ErrNonZeroBalance
		}
		return []AccountEvent{AccountClosed{}}, nil
	}
	return nil, fmt.Errorf("unknown command %T", c)
}

// canMove checks that the account may move amount.
func (s Account) canMove(amount int64) error {
	if s.Status != Active {
		return ErrNotActive
	}
	if amount <= 0 {
		return ErrInvalidAmount
	}
	return nil
}

func evolve(s Account, e AccountEvent) Account {
	switch e := e.(type) {
	case AccountOpened:
		s.Status, s.Owner = Active, e.Owner
	case MoneyDeposited:
		s.Balance += e.Amount
	case MoneyWithdrawn:
		s.Balance -= e.Amount
	case AccountSuspended:
		s.Status = Suspended
	case AccountReactivated:
		s.Status = Active
	case AccountClosed:
		s.Status = Closed
	}
	return s
}
