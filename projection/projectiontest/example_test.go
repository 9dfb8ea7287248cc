package projectiontest_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/orchestrix/orchestrix"
	boltjournal "github.com/orchestrix/orchestrix/journal/bolt"
	"github.com/orchestrix/orchestrix/projection"
	"github.com/orchestrix/orchestrix/projection/projectiontest"
)

type MoneyDeposited struct {
	Amount int `json:"amount"`
}

// A test of a balances read model: run it to the head, assert the model;
// then drive a poisoned event through its retries on the manual clock and
// Skip it.
func Example() {
	t := &exampleT{} // in a real test, the test's *testing.T
	defer t.finish()
	reg := orchestrix.NewRegistry()
	if err := orchestrix.Register[MoneyDeposited](reg, "bank.MoneyDeposited"); err != nil {
		fmt.Println(err)
		return
	}
	k := projectiontest.New(t, reg)
	k.Append("account-alice", MoneyDeposited{Amount: 100})
	poisoned := k.Append("account-bob", MoneyDeposited{Amount: -1})
	k.Append("account-alice", MoneyDeposited{Amount: 5})

	// Delivery is at least once: after the failed batch, the events before
	// the poisoned one come again, so the handler ignores positions it has
	// applied.
	var mu sync.Mutex
	balances := map[string]int{}
	var applied uint64
	router := projection.NewRouter()
	projection.On(router, func(_ context.Context, ev projection.Event, e MoneyDeposited) error {
		mu.Lock()
		defer mu.Unlock()
		if ev.Position <= applied {
			return nil
		}
		if e.Amount < 0 {
			return errors.New("negative deposit")
		}
		balances[ev.Envelope.Subject] += e.Amount
		applied = ev.Position
		return nil
	})
	k.Add(projection.Projection{
		Name: "balances", Handler: router,
		Retry: projection.Retry{MaxAttempts: 3, InitialBackoff: time.Second},
	})

	// Three attempts, 1 s and 2 s apart on the manual clock, then failed.
	before := k.Clock.Now()
	ee := k.ExpectFailsAt("balances", poisoned, 3)
	fmt.Println("failed at", ee.Position, "after", ee.Attempts, "attempts:", ee.Err)
	fmt.Println("manual time spent:", k.Clock.Now().Sub(before))

	k.Skip("balances", poisoned)
	st := k.ExpectCaughtUp("balances")
	mu.Lock()
	fmt.Println("alice:", balances["account-alice"], "bob:", balances["account-bob"])
	mu.Unlock()
	fmt.Println("state:", st.State, "position:", st.Position)
	// Output:
	// failed at 2 after 3 attempts: negative deposit
	// manual time spent: 3s
	// alice: 105 bob: 0
	// state: running position: 3
}

// The same kind of test as an integration test on the bbolt journal the
// service runs on (journal/postgres works the same way): the kit appends
// to it and the projection reads it.
func ExampleWithJournal() {
	dir, err := os.MkdirTemp("", "projectiontest")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)
	j, err := boltjournal.Open(filepath.Join(dir, "journal.db"), boltjournal.Config{})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer j.Close() // the test owns the journal; the kit stops before it closes
	t := &exampleT{}
	defer t.finish()
	reg := orchestrix.NewRegistry()
	if err := orchestrix.Register[MoneyDeposited](reg, "bank.MoneyDeposited"); err != nil {
		fmt.Println(err)
		return
	}

	k := projectiontest.New(t, reg, projectiontest.WithJournal(j))
	k.Append("account-alice", MoneyDeposited{Amount: 100}, MoneyDeposited{Amount: 5})
	var mu sync.Mutex
	total := 0
	st := k.Run(projection.Projection{Name: "total", Handler: projection.EachEvent(func(_ context.Context, ev projection.Event) error {
		mu.Lock()
		defer mu.Unlock()
		total += ev.Data.(MoneyDeposited).Amount
		return nil
	})})
	mu.Lock()
	fmt.Println("total:", total, "position:", st.Position)
	mu.Unlock()
	// Output:
	// total: 105 position: 2
}

// exampleT stands in for the *testing.T of a real test: it prints
// failures and runs cleanups when the example ends.
type exampleT struct {
	testing.TB
	cleanups []func()
}

func (t *exampleT) Helper()                   {}
func (t *exampleT) Cleanup(f func())          { t.cleanups = append(t.cleanups, f) }
func (t *exampleT) Fatal(a ...any)            { t.Fatalf("%s", fmt.Sprint(a...)) }
func (t *exampleT) Fatalf(f string, a ...any) { fmt.Printf(f+"\n", a...); panic("fatal") }
func (t *exampleT) finish() {
	for i := len(t.cleanups) - 1; i >= 0; i-- {
		t.cleanups[i]()
	}
}
