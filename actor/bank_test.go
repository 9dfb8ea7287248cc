package actor_test

import (
	"github.com/orchestrix/orchestrix/aggregate"
	"github.com/orchestrix/orchestrix/internal/banktest"
)

// The bank account of the tests is internal/banktest's, shared with the
// other packages' tests; the aliases keep the tests short.
type (
	Account     = banktest.Account
	Command     = banktest.Command
	Event       = banktest.Event
	OpenAccount = banktest.OpenAccount
	Deposit     = banktest.Deposit
	Withdraw    = banktest.Withdraw
	Explode     = banktest.Explode
	Opened      = banktest.Opened
	Deposited   = banktest.Deposited
	Withdrawn   = banktest.Withdrawn
	Poisoned    = banktest.Poisoned
)

var (
	ErrNotOpen           = banktest.ErrNotOpen
	ErrAlreadyOpen       = banktest.ErrAlreadyOpen
	ErrInsufficientFunds = banktest.ErrInsufficientFunds
)

func accounts() aggregate.Definition[Account, Command, Event] { return banktest.Accounts() }
