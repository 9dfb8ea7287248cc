package aggregatetest_test

import (
	"fmt"
	"github.com/orchestrix/orchestrix/internal/banktest"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/orchestrix/orchestrix/aggregate"
	"github.com/orchestrix/orchestrix/aggregate/aggregatetest"
)

// recorder is a testing.TB that records failures instead of failing.
type recorder struct {
	testing.TB
	failures []string
}

func (r *recorder) Helper() {}
func (r *recorder) Errorf(format string, args ...any) {
	r.failures = append(r.failures, fmt.Sprintf(format, args...))
}
func (r *recorder) Error(args ...any) { r.failures = append(r.failures, fmt.Sprint(args...)) }

func (r *recorder) all() string { return strings.Join(r.failures, "\n") }

func TestScenario_Then_Matching_Passes(t *testing.T) {
	aggregatetest.New(t, banktest.Accounts()).
		Given(banktest.Opened{Owner: "ada"}, banktest.Deposited{Amount: 50}).
		When(banktest.Withdraw{Amount: 20}).
		Then(banktest.Withdrawn{Amount: 20}).
		ThenState(banktest.Account{ID: aggregatetest.DefaultID, Owner: "ada", Open: true, Balance: 30})
}

func TestScenario_ThenError_DomainError_Passes(t *testing.T) {
	aggregatetest.New(t, banktest.Accounts()).
		Given(banktest.Opened{Owner: "ada"}).
		When(banktest.Withdraw{Amount: 80}).
		ThenError(banktest.ErrInsufficientFunds).
		ThenError(aggregate.ErrRejected)
}

func TestScenario_ThenNoEvents_ZeroDeposit_Passes(t *testing.T) {
	aggregatetest.New(t, banktest.Accounts()).ForID("acc-9").
		Given(banktest.Opened{Owner: "ada"}).
		When(banktest.Deposit{Amount: 0}).
		ThenNoEvents().
		ThenState(banktest.Account{ID: "acc-9", Owner: "ada", Open: true})
}

func TestScenario_Then_WrongEvents_ReportsDiff(t *testing.T) {
	r := &recorder{TB: t}
	aggregatetest.New(r, banktest.Accounts()).
		Given(banktest.Opened{Owner: "ada"}).
		When(banktest.Deposit{Amount: 5}).
		Then(banktest.Deposited{Amount: 6})
	assert.Len(t, r.failures, 1)
	assert.Contains(t, r.all(), "Diff:")
	assert.Contains(t, r.all(), "Deposited{Amount:6}")
	assert.Contains(t, r.all(), "Deposited{Amount:5}")
}

func TestScenario_Then_CommandRejected_ReportsError(t *testing.T) {
	r := &recorder{TB: t}
	aggregatetest.New(r, banktest.Accounts()).
		When(banktest.Deposit{Amount: 5}).
		Then(banktest.Deposited{Amount: 5})
	assert.Len(t, r.failures, 1)
	assert.Contains(t, r.all(), "account is not open")
}

func TestScenario_ThenError_CommandSucceeded_ReportsEvents(t *testing.T) {
	r := &recorder{TB: t}
	aggregatetest.New(r, banktest.Accounts()).
		When(banktest.OpenAccount{Owner: "bob"}).
		ThenError(banktest.ErrAlreadyOpen)
	assert.Len(t, r.failures, 1)
	assert.Contains(t, r.all(), "Opened")
}

func TestScenario_ThenError_OtherError_Reports(t *testing.T) {
	r := &recorder{TB: t}
	aggregatetest.New(r, banktest.Accounts()).
		Given(banktest.Opened{Owner: "ada"}).
		When(banktest.Withdraw{Amount: 1}).
		ThenError(banktest.ErrNotOpen)
	assert.Len(t, r.failures, 1)
	assert.Contains(t, r.all(), "insufficient funds")
}

func TestScenario_When_Panic_ReportedAsError(t *testing.T) {
	aggregatetest.New(t, banktest.Accounts()).
		Given(banktest.Opened{Owner: "ada"}).
		When(banktest.Explode{}).
		ThenError(aggregate.ErrPanicked)
}

func TestScenario_ThenState_Mismatch_ReportsDiff(t *testing.T) {
	r := &recorder{TB: t}
	aggregatetest.New(r, banktest.Accounts()).
		Given(banktest.Opened{Owner: "ada"}).
		When(banktest.Deposit{Amount: 5}).
		ThenState(banktest.Account{Balance: 5})
	assert.Len(t, r.failures, 1)
	assert.Contains(t, r.all(), "Diff:")
}

func TestScenario_UndeclaredEvent_Reported(t *testing.T) {
	r := &recorder{TB: t}
	def := banktest.Accounts()
	def.Events = def.Events[:1] // only Opened declared
	aggregatetest.New(r, def).
		Given(banktest.Opened{Owner: "ada"}).
		When(banktest.Deposit{Amount: 5}).
		Then(banktest.Deposited{Amount: 5})
	assert.Len(t, r.failures, 1)
	assert.Contains(t, r.all(), "not declared")
}

func TestScenario_GivenPanics_ReportsSetupFailure(t *testing.T) {
	r := &recorder{TB: t}
	aggregatetest.New(r, banktest.Accounts()).
		Given(banktest.Poisoned{}).
		When(banktest.Deposit{Amount: 5}).
		Then(banktest.Deposited{Amount: 5})
	assert.Len(t, r.failures, 1)
	assert.Contains(t, r.all(), "Evolve panicked")
}

func TestNew_InvalidDefinition_Reported(t *testing.T) {
	r := &recorder{TB: t}
	aggregatetest.New(r, aggregate.Definition[banktest.Account, banktest.Command, banktest.Event]{Kind: "x"})
	assert.NotEmpty(t, r.failures)
}

func TestScenario_State_AfterGiven(t *testing.T) {
	s := aggregatetest.New(t, banktest.Accounts()).Given(banktest.Opened{Owner: "ada"}, banktest.Deposited{Amount: 3}).State()
	assert.Equal(t, int64(3), s.Balance)
}
