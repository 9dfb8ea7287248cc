package actortest_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/orchestrix/orchestrix/actor/actortest"
	"github.com/orchestrix/orchestrix/internal/banktest"
)

// A Harness runs an aggregate on the real runtime: the serialization check
// runs first, each command reports its events, state, version and error,
// and ExpectRecovers restarts the system and compares the recovered state.
func ExampleNewHarness() {
	t := &exampleT{}
	defer t.finish()

	h := actortest.NewHarness(t, banktest.Accounts())
	h.Run("acc-1", banktest.OpenAccount{Owner: "ada"})
	out := h.Run("acc-1", banktest.Deposit{Amount: 50})
	fmt.Println(out.Events, out.State.Balance, out.Version, out.Err)

	out = h.Run("acc-1", banktest.Withdraw{Amount: 80})
	fmt.Println(errors.Is(out.Err, banktest.ErrInsufficientFunds), out.Version)

	h.ExpectRecovers("acc-1")
	h.ExpectStateAt("acc-1", 1, banktest.Account{ID: "acc-1", Owner: "ada", Open: true})
	fmt.Println("failures:", t.failures)
	// Output:
	// [{50}] 50 2 <nil>
	// true 2
	// failures: 0
}

// An EventProbe sees the events committed after it was created, in commit
// order, on any journal.
func ExampleExpectPersisted() {
	t := &exampleT{}
	defer t.finish()

	h := actortest.NewHarness(t, banktest.Accounts())
	h.Run("acc-1", banktest.OpenAccount{Owner: "ada"})

	p := h.EventProbe()
	h.Run("acc-1", banktest.Deposit{Amount: 5})
	e, rec := actortest.ExpectPersisted[banktest.Deposited](p, "acc-1")
	fmt.Println(e.Amount, rec.Stream, rec.Version, rec.Envelope.Type)
	p.ExpectNothingPersisted(0)
	fmt.Println("failures:", t.failures)
	// Output:
	// 5 account-acc-1 2 test.account.deposited
	// failures: 0
}

// exampleT stands in for the *testing.T a real test has.
type exampleT struct {
	testing.TB
	failures int
	cleanups []func()
}

func (t *exampleT) Helper()                   { t.failures += 0 }
func (t *exampleT) Cleanup(f func())          { t.cleanups = append(t.cleanups, f) }
func (t *exampleT) Errorf(f string, a ...any) { t.failures++; fmt.Printf(f+"\n", a...) }
func (t *exampleT) Error(a ...any)            { t.failures++; fmt.Println(a...) }
func (t *exampleT) Fatalf(f string, a ...any) { t.Errorf(f, a...); panic("fatal") }
func (t *exampleT) finish() {
	for i := len(t.cleanups) - 1; i >= 0; i-- {
		t.cleanups[i]()
	}
}
