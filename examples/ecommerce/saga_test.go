package main

import (
	"context"
	"testing"
	"time"

	"github.com/orchestrix/orchestrix/saga"
	"github.com/orchestrix/orchestrix/saga/sagatest"
)

// The order saga and the replenishment process on the saga test kit: the
// orders run for real (the saga reads an order's status and the test
// checks it), payments and inventory are faked, and the kit makes the
// step under test fail. Everything runs on the kit's manual clock.

// sagaKit registers the shop's aggregates on a sagatest kit and the order
// saga and replenishment process on its runner.
func sagaKit(t *testing.T) (*sagatest.Kit, *shop) {
	k := sagatest.New(t)
	s := &shop{
		orders:    sagatest.Real(k, Orders),
		payments:  sagatest.Fake(k, Payments),
		inventory: sagatest.Fake(k, Inventory),
	}
	s.sagas = sagatest.Register(k, s.orderSaga())
	s.replenish = sagatest.RegisterProcess(k, s.replenishment())
	return k, s
}

// placeOrder creates order id; its OrderCreated event starts the saga.
func placeOrder(t *testing.T, s *shop, id string, c CreateOrder) {
	t.Helper()
	if _, err := s.orders.Send(context.Background(), id, c); err != nil {
		t.Fatalf("creating %s: %v", id, err)
	}
}

func orderStatus(t *testing.T, s *shop, id string) OrderStatus {
	t.Helper()
	o, _, err := s.orders.State(context.Background(), id)
	if err != nil {
		t.Fatalf("order %s: %v", id, err)
	}
	return o.Status
}

func TestOrderSaga_DeclinedPayment_CancelsOnlyTheOrder(t *testing.T) {
	k, s := sagaKit(t)
	k.Reject(sagatest.To("payment", "bob"), ErrCardDeclined)

	placeOrder(t, s, "o2", CreateOrder{Customer: "bob", SKU: "lamp", Qty: 1, Total: 300})
	charge, _ := sagatest.ExpectSent[Charge](k, "payment", "bob")
	cancel, undo := sagatest.ExpectSent[CancelOrder](k, "order", "o2")
	st := sagatest.ExpectFinished(k, s.sagas, "o2", saga.StateCompensated)
	k.ExpectNothingSent() // no stock was touched

	if charge != (Charge{Order: "o2", Amount: 300}) {
		t.Errorf("charge %+v", charge)
	}
	if cancel.Reason != ErrCardDeclined.Error() || undo.Step != "accept" || !undo.Compensating {
		t.Errorf("cancel %+v sent by %s", cancel, undo)
	}
	if st.Failure.Step != "pay" || len(st.Undone) != 1 || st.Undone[0] != "accept" {
		t.Errorf("failure %+v, undone %v", st.Failure, st.Undone)
	}
	if got := orderStatus(t, s, "o2"); got != StatusCancelled {
		t.Errorf("order o2 is %s, want cancelled", got)
	}
}

func TestOrderSaga_OutOfStock_RefundsThenCancels(t *testing.T) {
	k, s := sagaKit(t)
	k.Reject(sagatest.CommandOf[Reserve](), ErrOutOfStock)

	placeOrder(t, s, "o3", CreateOrder{Customer: "alice", SKU: "lamp", Qty: 5, Total: 100})
	_, charge := sagatest.ExpectSent[Charge](k, "payment", "alice")
	sagatest.ExpectSent[PayOrder](k, "order", "o3")
	sagatest.ExpectSent[Reserve](k, "inventory", "lamp")
	_, refund := sagatest.ExpectSent[RefundCharge](k, "payment", "alice")
	sagatest.ExpectSent[CancelOrder](k, "order", "o3")
	st := sagatest.ExpectFinished(k, s.sagas, "o3", saga.StateCompensated)
	k.ExpectNothingSent()

	// Compensations run in reverse order, each with its own command id.
	if want := []string{"pay", "accept"}; len(st.Undone) != 2 || st.Undone[0] != want[0] || st.Undone[1] != want[1] {
		t.Errorf("undone %v, want %v", st.Undone, want)
	}
	if refund.ID == charge.ID || refund.CorrelationID != "o3" {
		t.Errorf("refund %s after charge %s", refund, charge)
	}
	if got := orderStatus(t, s, "o3"); got != StatusCancelled {
		t.Errorf("order o3 is %s, want cancelled", got)
	}
}

// The saga's one-hour deadline, on the manual clock: a reservation that
// never answers times the saga out, and it undoes the payment.
func TestOrderSaga_StockNeverAnswers_DeadlineCompensates(t *testing.T) {
	k, s := sagaKit(t)
	k.Hang(sagatest.To("inventory", ""))

	placeOrder(t, s, "o4", CreateOrder{Customer: "alice", SKU: "book", Qty: 1, Total: 20})
	sagatest.ExpectSent[Charge](k, "payment", "alice")
	sagatest.ExpectSent[PayOrder](k, "order", "o4")
	sagatest.ExpectSent[Reserve](k, "inventory", "book") // hangs; the deadline is armed
	k.Clock.Advance(time.Hour)
	sagatest.ExpectSent[RefundCharge](k, "payment", "alice")
	sagatest.ExpectSent[CancelOrder](k, "order", "o4")
	st := sagatest.ExpectFinished(k, s.sagas, "o4", saga.StateCompensated)
	k.ExpectNothingSent()
	if !st.Failure.TimedOut || st.Failure.Step != "reserve" {
		t.Errorf("failure %+v, want reserve timed out", st.Failure)
	}
}

// The replenishment process reorders what a reservation took below the
// SKU's target, once, with a deterministic command id.
func TestReplenishment_ReordersWhatAReservationTook(t *testing.T) {
	k, s := sagaKit(t)
	k.Append("inventory-book", Restocked{Qty: 10})
	k.Append("inventory-book", Reserved{Order: "o1", Qty: 2})
	sagatest.ExpectCaughtUp(k, s.replenish)
	reorder, sent := sagatest.ExpectSent[Restock](k, "inventory", "book")
	k.Append("inventory-book", Released{Order: "o9", Qty: 1}) // back on the shelf: nothing to reorder
	sagatest.ExpectCaughtUp(k, s.replenish)
	k.ExpectNothingSent()

	if reorder.Qty != 2 || !sent.Process || sent.Step != "shop.inventory.reserved" {
		t.Errorf("reorder %+v sent by %s", reorder, sent)
	}
	st := sagatest.ProcessStatus(k, s.replenish, "book")
	if st.State != (Replenishment{Available: 9, OnOrder: 2, Reorders: 1}) {
		t.Errorf("process state %+v", st.State)
	}
}
