package sagatest_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/orchestrix/orchestrix"
	"github.com/orchestrix/orchestrix/actor"
	"github.com/orchestrix/orchestrix/aggregate"
	"github.com/orchestrix/orchestrix/projection"
	"github.com/orchestrix/orchestrix/saga"
	"github.com/orchestrix/orchestrix/saga/sagatest"
)

// The domain of the examples: an order saga that reserves stock, charges
// the payment and ships, releasing and refunding when a later step fails.

type Order struct {
	ID     string
	SKU    string
	Qty    int
	Amount int
}

type (
	StockCommand   interface{ isStock() }
	Reserve        struct{ Qty int }
	Release        struct{ Qty int }
	PaymentCommand interface{ isPayment() }
	Charge         struct{ Amount int }
	Refund         struct{ Amount int }
	ShipCommand    interface{ isShip() }
	Ship           struct{ SKU string }
	Nothing        struct{}
)

func (Reserve) isStock()   {}
func (Release) isStock()   {}
func (Charge) isPayment()  {}
func (Refund) isPayment()  {}
func (Ship) isShip()       {}
func (Nothing) isShip()    {}
func (Nothing) isStock()   {}
func (Nothing) isPayment() {}

// definition is a do-nothing aggregate of kind: the examples fake their
// targets, so Decide never runs.
func definition[C any](kind string) aggregate.Definition[struct{}, C, Nothing] {
	return aggregate.Definition[struct{}, C, Nothing]{
		Kind:    kind,
		Initial: func(string) struct{} { return struct{}{} },
		Decide:  func(struct{}, C) ([]Nothing, error) { return nil, nil },
		Evolve:  func(s struct{}, _ Nothing) struct{} { return s },
	}
}

var (
	Stock    = definition[StockCommand]("stock")
	Payments = definition[PaymentCommand]("payment")
	Shipping = definition[ShipCommand]("shipping")
)

var ErrDeclined = errors.New("card declined")

// orderSaga is the code under test: it only sees typed handles.
func orderSaga(stock *actor.Handle[struct{}, StockCommand, Nothing], payments *actor.Handle[struct{}, PaymentCommand, Nothing],
	shipping *actor.Handle[struct{}, ShipCommand, Nothing]) *saga.Orchestration[Order] {
	return saga.New[Order]("order").
		Step("reserve",
			saga.Command(stock, func(o Order) (string, StockCommand) { return o.SKU, Reserve{o.Qty} }),
			saga.Command(stock, func(o Order) (string, StockCommand) { return o.SKU, Release{o.Qty} })).
		Step("charge",
			func(ctx context.Context, sc *saga.Context[Order]) error {
				_, err := payments.Send(ctx, sc.ID, Charge{sc.Data.Amount}, sc.SendOptions()...)
				return err
			},
			saga.Command(payments, func(o Order) (string, PaymentCommand) { return o.ID, Refund{o.Amount} })).
		Step("ship",
			saga.Command(shipping, func(o Order) (string, ShipCommand) { return o.SKU, Ship{o.SKU} }), nil,
			saga.Timeout(time.Hour))
}

// A rejected step: the kit refuses the payment as the payment aggregate
// would, and the test sees the stock released and the saga compensated.
func Example() {
	t := &exampleT{} // in a real test, the test's *testing.T
	defer t.finish()

	k := sagatest.New(t)
	stock, payments, shipping := sagatest.Fake(k, Stock), sagatest.Fake(k, Payments), sagatest.Fake(k, Shipping)
	orders := sagatest.Register(k, orderSaga(stock, payments, shipping))
	k.Reject(sagatest.Step("charge"), ErrDeclined)

	sagatest.Begin(k, orders, "o-1", Order{ID: "o-1", SKU: "sku-1", Qty: 2, Amount: 30})
	_, reserve := sagatest.ExpectSent[Reserve](k, "stock", "sku-1")
	_, charge := sagatest.ExpectSent[Charge](k, "payment", "o-1")
	_, release := sagatest.ExpectSent[Release](k, "stock", "sku-1")
	st := sagatest.ExpectFinished(k, orders, "o-1", saga.StateCompensated)
	k.ExpectNothingSent()

	for _, s := range []sagatest.Sent{reserve, charge, release} {
		fmt.Printf("%-7s compensating=%-5v %T %s\n", s.Step, s.Compensating, s.Command, s.Answer)
	}
	fmt.Println("charge id:", charge.ID, "correlation id:", charge.CorrelationID)
	fmt.Println("release id differs from reserve id:", release.ID != reserve.ID)
	fmt.Println(st.State, "done", st.Done, "undone", st.Undone)
	fmt.Printf("step %q failed: %s\n", st.Failure.Step, st.Failure.Reason)
	// Output:
	// reserve compensating=false sagatest_test.Reserve accepted
	// charge  compensating=false sagatest_test.Charge rejected
	// reserve compensating=true  sagatest_test.Release accepted
	// charge id: c1be0eaf-b7d7-587c-9d9d-463e8cbfa51f correlation id: o-1
	// release id differs from reserve id: true
	// compensated done [reserve] undone [reserve]
	// step "charge" failed: actor: payment "o-1" command c1be0eaf-b7d7-587c-9d9d-463e8cbfa51f: command rejected: card declined
}

// A step that times out: the shipment is never answered, the test
// advances the manual clock past the step's one-hour deadline, and the
// compensations run in reverse order: refund, then release.
func Example_timeout() {
	t := &exampleT{}
	defer t.finish()

	k := sagatest.New(t)
	stock, payments, shipping := sagatest.Fake(k, Stock), sagatest.Fake(k, Payments), sagatest.Fake(k, Shipping)
	orders := sagatest.Register(k, orderSaga(stock, payments, shipping))
	k.Hang(sagatest.To("shipping", ""))

	sagatest.Begin(k, orders, "o-2", Order{ID: "o-2", SKU: "sku-9", Qty: 1, Amount: 12})
	sagatest.ExpectSent[Reserve](k, "stock", "sku-9")
	sagatest.ExpectSent[Charge](k, "payment", "o-2")
	_, ship := sagatest.ExpectSent[Ship](k, "shipping", "sku-9")
	// The step's deadline was armed before its command was sent, so the
	// advance fires it.
	k.Clock.Advance(time.Hour)

	_, refund := sagatest.ExpectSent[Refund](k, "payment", "o-2")
	_, release := sagatest.ExpectSent[Release](k, "stock", "sku-9")
	st := sagatest.ExpectFinished(k, orders, "o-2", saga.StateCompensated)
	k.ExpectNothingSent()

	fmt.Println("ship:", ship.Answer)
	fmt.Println("then:", refund.Step, refund.Compensating, "/", release.Step, release.Compensating)
	fmt.Println(st.State, "undone", st.Undone, "timed out:", st.Failure.TimedOut)
	// Output:
	// ship: hung
	// then: charge true / reserve true
	// compensated undone [charge reserve] timed out: true
}

// A transient failure is retried with the same command id after the
// Retry policy's backoff, on the manual clock.
func ExampleKit_ExpectRetry() {
	t := &exampleT{}
	defer t.finish()

	k := sagatest.New(t, sagatest.WithRetry(projection.Retry{InitialBackoff: time.Second}))
	stock, payments, shipping := sagatest.Fake(k, Stock), sagatest.Fake(k, Payments), sagatest.Fake(k, Shipping)
	orders := sagatest.Register(k, orderSaga(stock, payments, shipping))
	k.Fail(sagatest.CommandOf[Charge](), 2)

	sagatest.Begin(k, orders, "o-3", Order{ID: "o-3", SKU: "sku-3", Qty: 1, Amount: 5})
	sagatest.ExpectSent[Reserve](k, "stock", "sku-3")
	_, first := sagatest.ExpectSent[Charge](k, "payment", "o-3")
	k.ExpectRetry(1) // advances 1 s
	_, second := sagatest.ExpectSent[Charge](k, "payment", "o-3")
	k.ExpectRetry(2) // advances 2 s
	_, third := sagatest.ExpectSent[Charge](k, "payment", "o-3")
	sagatest.ExpectSent[Ship](k, "shipping", "sku-3")
	st := sagatest.ExpectFinished(k, orders, "o-3", saga.StateCompleted)
	k.ExpectNothingSent()

	for _, s := range []sagatest.Sent{first, second, third} {
		fmt.Println("attempt", s.Attempt, s.Answer, "same id:", s.ID == first.ID)
	}
	fmt.Println(st.State, st.Done)
	// Output:
	// attempt 1 failed same id: true
	// attempt 2 failed same id: true
	// attempt 3 accepted same id: true
	// completed [reserve charge ship]
}

// Placed, Paid and Remind are the events and the command of a process manager
// that reminds a customer of an unpaid order every day, three times.
type (
	Placed struct{ Amount int }
	Paid   struct{}
	Remind struct{ N int }
)

func (Remind) isPayment() {}

type Reminders struct{ Sent int }

func reminders(payments *actor.Handle[struct{}, PaymentCommand, Nothing]) *saga.Process[Reminders] {
	p := saga.NewProcess[Reminders]("unpaid")
	saga.On(p, saga.BySubject[Placed], func(_ context.Context, pc *saga.ProcessContext[Reminders], _ Placed) error {
		pc.Schedule("remind", 24*time.Hour)
		return nil
	}, saga.Starts())
	saga.On(p, saga.BySubject[Paid], func(_ context.Context, pc *saga.ProcessContext[Reminders], _ Paid) error {
		pc.Complete()
		return nil
	})
	p.OnTimeout(func(ctx context.Context, pc *saga.ProcessContext[Reminders], _ string) error {
		pc.State.Sent++
		if pc.State.Sent < 3 {
			pc.Schedule("remind", 24*time.Hour)
		}
		_, err := payments.Send(ctx, pc.ID, Remind{pc.State.Sent}, pc.SendOptions("remind")...)
		return err
	})
	return p
}

// A process manager on the manual clock: events on the log start it, its
// timeouts fire when the test advances the clock, and a payment ends it.
func ExampleExpectCaughtUp() {
	t := &exampleT{}
	defer t.finish()

	k := sagatest.New(t)
	payments := sagatest.Fake(k, definition[PaymentCommand]("order"))
	reg := k.Env.System.Registry() // the events the process reacts to
	if err := errors.Join(orchestrix.Register[Placed](reg, "example.order.placed"), orchestrix.Register[Paid](reg, "example.order.paid")); err != nil {
		fmt.Println(err)
		return
	}
	m := sagatest.RegisterProcess(k, reminders(payments))

	k.Append("order-o-7", Placed{Amount: 12})
	sagatest.ExpectCaughtUp(k, m) // the first reminder is armed
	for day := 1; day <= 2; day++ {
		k.Clock.Advance(24 * time.Hour)
		r, s := sagatest.ExpectSent[Remind](k, "order", "o-7")
		fmt.Printf("day %d: reminder %d, sent on %s\n", day, r.N, s.Step)
		sagatest.ExpectProcess(k, m, "o-7", sagatest.Version[Reminders](uint64(day+1))) // the timeout's record
		sagatest.ExpectCaughtUp(k, m)                                                   // the next reminder is armed
	}
	k.Append("order-o-7", Paid{})
	sagatest.ExpectCaughtUp(k, m)
	k.Clock.Advance(72 * time.Hour)
	k.ExpectNothingSent()
	st := sagatest.ProcessStatus(k, m, "o-7")
	fmt.Println("done:", st.Done, "reminders:", st.State.Sent)
	// Output:
	// day 1: reminder 1, sent on timeout remind
	// day 2: reminder 2, sent on timeout remind
	// done: true reminders: 2
}

// exampleT stands in for the *testing.T of a real test: it prints
// failures and runs cleanups when the example ends.
type exampleT struct {
	testing.TB
	cleanups []func()
}

func (t *exampleT) Helper()                   {}
func (t *exampleT) Cleanup(f func())          { t.cleanups = append(t.cleanups, f) }
func (t *exampleT) Errorf(f string, a ...any) { fmt.Printf(f+"\n", a...) }
func (t *exampleT) Fatal(a ...any)            { t.Fatalf("%s", fmt.Sprint(a...)) }
func (t *exampleT) Fatalf(f string, a ...any) { fmt.Printf(f+"\n", a...); panic("fatal") }
func (t *exampleT) finish() {
	for i := len(t.cleanups) - 1; i >= 0; i-- {
		t.cleanups[i]()
	}
}
