// Command ecommerce is the Orchestrix order-saga example: orders,
// payment accounts and inventory as aggregates on the embedded bbolt
// journal, and an order saga started by each OrderCreated event that
// charges the customer, reserves stock and confirms the order. When the
// payment is declined the order is cancelled; when the stock is short the
// payment is refunded, then the order cancelled. A replenishment process
// manager tops stock back up after reservations, and an orders-by-status
// projection follows it all.
//
//	go run ./examples/ecommerce            # data in a temporary directory
//	go run ./examples/ecommerce -data DIR  # keep the journal in DIR
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/orchestrix/orchestrix/actor"
	"github.com/orchestrix/orchestrix/console"
	"github.com/orchestrix/orchestrix/examples/internal/obs"
	boltjournal "github.com/orchestrix/orchestrix/journal/bolt"
	"github.com/orchestrix/orchestrix/projection"
	"github.com/orchestrix/orchestrix/projection/boltstore"
	"github.com/orchestrix/orchestrix/saga"
	boltsnapshot "github.com/orchestrix/orchestrix/snapshot/bolt"
)

// OrderSaga is the data of the order saga.
type OrderSaga struct {
	Order, Customer, SKU string
	Qty                  int
	Total                int64
}

// shop is one open journal with its actor system, saga runner and
// projections.
type shop struct {
	journal     *boltjournal.Journal
	system      *actor.System
	orders      *actor.Handle[Order, OrderCommand, OrderEvent]
	payments    *actor.Handle[Wallet, PaymentCommand, PaymentEvent]
	inventory   *actor.Handle[Stock, InventoryCommand, InventoryEvent]
	runner      *saga.Runner
	sagas       *saga.Saga[OrderSaga]
	replenish   *saga.ProcessManager[Replenishment]
	projections *projection.Manager
	byStatus    *OrdersByStatus
}

// orderSaga wires the steps of an order:
//
//	accept   check the order is open          undo: cancel the order
//	pay      charge the customer, mark paid   undo: refund the charge
//	reserve  reserve stock, mark reserved     undo: release the stock
//	confirm  confirm the order
//
// A declined payment fails "pay": the order is cancelled. Short stock
// fails "reserve": the charge is refunded, then the order cancelled.
func (s *shop) orderSaga() *saga.Orchestration[OrderSaga] {
	accept := func(ctx context.Context, sc *saga.Context[OrderSaga]) error {
		o, _, err := s.orders.State(ctx, sc.Data.Order)
		if err != nil {
			return err
		}
		if o.Status != StatusCreated {
			return saga.Reject(fmt.Errorf("order %s is %s", sc.Data.Order, o.Status))
		}
		return nil
	}
	cancel := func(ctx context.Context, sc *saga.Context[OrderSaga]) error {
		_, err := s.orders.Send(ctx, sc.Data.Order, CancelOrder{Reason: domainReason(sc.Failure.Reason)}, sc.SendOptions()...)
		return err
	}
	pay := func(ctx context.Context, sc *saga.Context[OrderSaga]) error {
		d := sc.Data
		if _, err := s.payments.Send(ctx, d.Customer, Charge{Order: d.Order, Amount: d.Total}, sc.SendOptionsFor("charge")...); err != nil {
			return err
		}
		_, err := s.orders.Send(ctx, d.Order, PayOrder{Amount: d.Total}, sc.SendOptionsFor("order")...)
		return err
	}
	refund := saga.Command(s.payments, func(d OrderSaga) (string, PaymentCommand) {
		return d.Customer, RefundCharge{Order: d.Order}
	})
	reserve := func(ctx context.Context, sc *saga.Context[OrderSaga]) error {
		d := sc.Data
		if _, err := s.inventory.Send(ctx, d.SKU, Reserve{Order: d.Order, Qty: d.Qty}, sc.SendOptionsFor("stock")...); err != nil {
			return err
		}
		_, err := s.orders.Send(ctx, d.Order, ReserveInventory{}, sc.SendOptionsFor("order")...)
		return err
	}
	release := saga.Command(s.inventory, func(d OrderSaga) (string, InventoryCommand) {
		return d.SKU, Release{Order: d.Order}
	})
	confirm := saga.Command(s.orders, func(d OrderSaga) (string, OrderCommand) { return d.Order, ConfirmOrder{} })

	return saga.New[OrderSaga]("order").
		StartOn(projection.Filter{Types: []string{"shop.order.created"}}, func(ev projection.Event) (string, OrderSaga, bool) {
			c := ev.Data.(OrderCreated)
			return ev.Envelope.Subject, OrderSaga{Order: ev.Envelope.Subject, Customer: c.Customer, SKU: c.SKU, Qty: c.Qty, Total: c.Total}, true
		}).
		Step("accept", accept, cancel).
		Step("pay", pay, refund).
		Step("reserve", reserve, release).
		Step("confirm", confirm, nil).
		Deadline(time.Hour)
}

// OrdersByStatus is the read model of the orders-by-status projection.
type OrdersByStatus struct {
	mu     sync.Mutex
	status map[string]OrderStatus
}

func (m *OrdersByStatus) set(order string, st OrderStatus) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.status[order] = st
}

// Grouped returns the order ids of each status, sorted.
func (m *OrdersByStatus) Grouped() map[OrderStatus][]string {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := map[OrderStatus][]string{}
	for id, st := range m.status {
		out[st] = append(out[st], id)
	}
	for _, ids := range out {
		slices.Sort(ids)
	}
	return out
}

func ordersByStatus(m *OrdersByStatus) projection.Projection {
	router := projection.NewRouter()
	on := func(st OrderStatus) func(context.Context, projection.Event) error {
		return func(_ context.Context, ev projection.Event) error {
			m.set(ev.Envelope.Subject, st)
			return nil
		}
	}
	projection.On(router, func(ctx context.Context, ev projection.Event, _ OrderCreated) error {
		return on(StatusCreated)(ctx, ev)
	})
	projection.On(router, func(ctx context.Context, ev projection.Event, _ OrderPaid) error { return on(StatusPaid)(ctx, ev) })
	projection.On(router, func(ctx context.Context, ev projection.Event, _ OrderInventoryReserved) error {
		return on(StatusReserved)(ctx, ev)
	})
	projection.On(router, func(ctx context.Context, ev projection.Event, _ OrderConfirmed) error {
		return on(StatusConfirmed)(ctx, ev)
	})
	projection.On(router, func(ctx context.Context, ev projection.Event, _ OrderCancelled) error {
		return on(StatusCancelled)(ctx, ev)
	})
	return projection.Projection{
		Name:        "orders-by-status",
		Handler:     router,
		Filter:      projection.Filter{Kinds: []string{"order"}},
		Checkpoints: projection.NewMemCheckpoints(), // in-memory model, rebuilt on start
	}
}

func open(ctx context.Context, dir string, o *obs.Obs) (_ *shop, err error) {
	s := &shop{byStatus: &OrdersByStatus{status: map[string]OrderStatus{}}}
	defer func() {
		if err != nil {
			s.close(ctx)
		}
	}()
	if s.journal, err = boltjournal.Open(filepath.Join(dir, "shop.db"), boltjournal.Config{Metrics: o.Metrics(), TracerProvider: o.TracerProvider()}); err != nil {
		return nil, err
	}
	snaps, err := boltsnapshot.New(s.journal.DB(), boltsnapshot.Config{})
	if err != nil {
		return nil, err
	}
	if s.system, err = actor.NewSystem(actor.Config{
		Journal: s.journal, Snapshots: snaps, Source: "/orchestrix/shop",
		Metrics: o.Metrics(), TracerProvider: o.TracerProvider(),
	}); err != nil {
		return nil, err
	}
	if s.orders, err = actor.Register(s.system, Orders); err != nil {
		return nil, err
	}
	if s.payments, err = actor.Register(s.system, Payments); err != nil {
		return nil, err
	}
	if s.inventory, err = actor.Register(s.system, Inventory); err != nil {
		return nil, err
	}
	checkpoints, err := boltstore.New(s.journal.DB(), boltstore.Config{})
	if err != nil {
		return nil, err
	}
	if s.runner, err = saga.NewRunner(saga.Config{
		Journal: s.journal, Registry: s.system.Registry(), Checkpoints: checkpoints, Source: "/orchestrix/shop",
		Metrics: o.Metrics(), TracerProvider: o.TracerProvider(),
	}); err != nil {
		return nil, err
	}
	if s.sagas, err = saga.Register(s.runner, s.orderSaga()); err != nil {
		return nil, err
	}
	if s.replenish, err = saga.RegisterProcess(s.runner, s.replenishment()); err != nil {
		return nil, err
	}
	if s.projections, err = projection.NewManager(projection.Config{
		Journal: s.journal, Registry: s.system.Registry(),
		Metrics: o.Metrics(), TracerProvider: o.TracerProvider(),
	}); err != nil {
		return nil, err
	}
	if err = s.projections.Add(ctx, ordersByStatus(s.byStatus)); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *shop) close(ctx context.Context) error {
	var errs []error
	if s.projections != nil {
		errs = append(errs, s.projections.Close())
	}
	if s.runner != nil {
		errs = append(errs, s.runner.Close())
	}
	if s.system != nil {
		errs = append(errs, s.system.Shutdown(ctx))
	}
	if s.journal != nil {
		errs = append(errs, s.journal.Close())
	}
	return errors.Join(errs...)
}

// place creates an order, waits for its saga to finish and prints the
// story.
func (s *shop) place(ctx context.Context, w io.Writer, id string, c CreateOrder) error {
	fmt.Fprintf(w, "order %s: %s buys %d × %s for %d\n", id, c.Customer, c.Qty, c.SKU, c.Total)
	if _, err := s.orders.Send(ctx, id, c); err != nil {
		return err
	}
	st, err := s.sagas.Wait(ctx, id, saga.Finished)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "  saga steps done %v\n", st.Done)
	if st.Failure != nil {
		fmt.Fprintf(w, "  step %s failed: %s\n", st.Failure.Step, domainReason(st.Failure.Reason))
		fmt.Fprintf(w, "  compensated, in order: %v\n", st.Undone)
	}
	if st.CompensationFailure != nil {
		fmt.Fprintf(w, "  compensation of %s failed: %s\n", st.CompensationFailure.Step, st.CompensationFailure.Reason)
	}
	o, _, err := s.orders.State(ctx, id)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "  => saga %s, order %s", st.State, o.Status)
	if o.Reason != "" {
		fmt.Fprintf(w, " (%s)", o.Reason)
	}
	fmt.Fprintln(w)
	return nil
}

func (s *shop) printAccounts(ctx context.Context, w io.Writer) error {
	for _, c := range []string{"alice", "bob"} {
		wl, _, err := s.payments.State(ctx, c)
		if err != nil {
			return err
		}
		fmt.Fprintf(w, "  wallet %-5s balance %d\n", c, wl.Balance)
	}
	for _, sku := range []string{"book", "lamp"} {
		st, _, err := s.inventory.State(ctx, sku)
		if err != nil {
			return err
		}
		fmt.Fprintf(w, "  stock  %-5s available %d, reserved for %d order(s)\n", sku, st.Available, len(st.Reserved))
	}
	return nil
}

// printByStatus waits until the projection has caught up and prints it.
func (s *shop) printByStatus(ctx context.Context, w io.Writer) error {
	last, err := s.journal.LastPosition(ctx)
	if err != nil {
		return err
	}
	if _, err := s.projections.Wait(ctx, "orders-by-status", func(st projection.Status) bool { return st.Position >= last }); err != nil {
		return err
	}
	groups := s.byStatus.Grouped()
	fmt.Fprintln(w, "orders by status (projection):")
	for _, st := range []OrderStatus{StatusCreated, StatusPaid, StatusReserved, StatusConfirmed, StatusCancelled} {
		if ids := groups[st]; len(ids) > 0 {
			fmt.Fprintf(w, "  %-9s %s\n", st, strings.Join(ids, ", "))
		}
	}
	return nil
}

// run is the whole example; it writes its story to w and keeps data in dir.
// o supplies metrics and tracing (nil: none).
func run(ctx context.Context, w io.Writer, dir string, o *obs.Obs) error {
	s, err := open(ctx, dir, o)
	if err != nil {
		return err
	}
	defer s.close(ctx)

	fmt.Fprintln(w, "== setup")
	for _, step := range []struct {
		name string
		err  error
	}{
		{"fund alice 1000", send(ctx, s.payments, "alice", PaymentCommand(Fund{Amount: 1000}))},
		{"fund bob 20", send(ctx, s.payments, "bob", PaymentCommand(Fund{Amount: 20}))},
		{"restock book 10", send(ctx, s.inventory, "book", InventoryCommand(Restock{Qty: 10}))},
		{"restock lamp 1", send(ctx, s.inventory, "lamp", InventoryCommand(Restock{Qty: 1}))},
	} {
		if step.err != nil {
			return fmt.Errorf("%s: %w", step.name, step.err)
		}
		fmt.Fprintln(w, step.name)
	}
	if err := s.printAccounts(ctx, w); err != nil {
		return err
	}

	fmt.Fprintln(w, "== an order that goes through")
	if err := s.place(ctx, w, "o1", CreateOrder{Customer: "alice", SKU: "book", Qty: 2, Total: 40}); err != nil {
		return err
	}
	fmt.Fprintln(w, "== payment declined: the order is cancelled")
	if err := s.place(ctx, w, "o2", CreateOrder{Customer: "bob", SKU: "book", Qty: 1, Total: 30}); err != nil {
		return err
	}
	fmt.Fprintln(w, "== out of stock: the payment is refunded, then the order cancelled")
	if err := s.place(ctx, w, "o3", CreateOrder{Customer: "alice", SKU: "lamp", Qty: 2, Total: 100}); err != nil {
		return err
	}
	fmt.Fprintln(w, "== afterwards")
	replenished, err := s.replenished(ctx)
	if err != nil {
		return err
	}
	if err := s.printAccounts(ctx, w); err != nil {
		return err
	}
	fmt.Fprintln(w, "replenishment (process manager):")
	for _, st := range replenished {
		fmt.Fprintf(w, "  %-5s target %d, available %d, %d reorder(s), %d events handled\n",
			st.ID, targets[st.ID], st.State.Available, st.State.Reorders, st.Version)
	}
	if err := s.printByStatus(ctx, w); err != nil {
		return err
	}
	hold, stop := obs.Interrupted()
	defer stop()
	return o.Console(hold, console.Config{Journal: s.journal, Registry: s.system.Registry(), Projections: s.projections}, os.Stderr)
}

// replenished waits until the replenishment processes have handled every
// inventory event and have nothing on order, and returns their status.
func (s *shop) replenished(ctx context.Context) ([]saga.ProcessStatus[Replenishment], error) {
	if err := s.replenish.CaughtUp(ctx); err != nil {
		return nil, err
	}
	var out []saga.ProcessStatus[Replenishment]
	for _, sku := range []string{"book", "lamp"} {
		st, err := s.replenish.Wait(ctx, sku, func(st saga.ProcessStatus[Replenishment]) bool { return st.State.OnOrder == 0 })
		if err != nil {
			return nil, err
		}
		out = append(out, st)
	}
	return out, nil
}

func send[S, C, E any](ctx context.Context, h *actor.Handle[S, C, E], id string, cmd C) error {
	_, err := h.Send(ctx, id, cmd)
	return err
}

// domainReason trims a recorded rejection to its domain error.
func domainReason(reason string) string {
	for _, e := range []error{ErrCardDeclined, ErrOutOfStock, ErrWrongStatus, ErrUnknownCharge} {
		if strings.HasSuffix(reason, e.Error()) {
			return e.Error()
		}
	}
	return reason
}

func main() {
	obs.Main("ecommerce", "directory for the journal", func(ctx context.Context, dir string, o *obs.Obs) error {
		return run(ctx, os.Stdout, dir, o)
	})
}
