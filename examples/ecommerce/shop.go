package main

import (
	"errors"
	"fmt"

	"github.com/orchestrix/orchestrix/aggregate"
)

// ---- orders ----

// OrderStatus is where an order is.
type OrderStatus string

// Order statuses.
const (
	StatusCreated   OrderStatus = "created"
	StatusPaid      OrderStatus = "paid"
	StatusReserved  OrderStatus = "reserved"
	StatusConfirmed OrderStatus = "confirmed"
	StatusCancelled OrderStatus = "cancelled"
)

// Order is the state of one order: one line of Qty units of SKU for Total
// cents, paid from Customer's payment account.
type Order struct {
	Status   OrderStatus
	Customer string
	SKU      string
	Qty      int
	Total    int64
	Reason   string // why it was cancelled
}

// Commands of the order aggregate.
type (
	// OrderCommand is implemented by every order command.
	OrderCommand interface{ isOrderCommand() }
	// CreateOrder places an order.
	CreateOrder struct {
		Customer, SKU string
		Qty           int
		Total         int64
	}
	// PayOrder records that the order was paid.
	PayOrder struct{ Amount int64 }
	// ReserveInventory records that the order's stock is reserved.
	ReserveInventory struct{}
	// ConfirmOrder confirms a paid order with reserved stock.
	ConfirmOrder struct{}
	// CancelOrder cancels an order that is not confirmed.
	CancelOrder struct{ Reason string }
)

func (CreateOrder) isOrderCommand()      {}
func (PayOrder) isOrderCommand()         {}
func (ReserveInventory) isOrderCommand() {}
func (ConfirmOrder) isOrderCommand()     {}
func (CancelOrder) isOrderCommand()      {}

// Events of the order aggregate.
type (
	// OrderEvent is implemented by every order event.
	OrderEvent interface{ isOrderEvent() }
	// OrderCreated records a new order; it starts the order saga.
	OrderCreated struct {
		Customer, SKU string
		Qty           int
		Total         int64
	}
	// OrderPaid records the payment.
	OrderPaid struct{ Amount int64 }
	// OrderInventoryReserved records the reservation.
	OrderInventoryReserved struct{}
	// OrderConfirmed records the confirmation.
	OrderConfirmed struct{}
	// OrderCancelled records the cancellation.
	OrderCancelled struct{ Reason string }
)

func (OrderCreated) isOrderEvent()           {}
func (OrderPaid) isOrderEvent()              {}
func (OrderInventoryReserved) isOrderEvent() {}
func (OrderConfirmed) isOrderEvent()         {}
func (OrderCancelled) isOrderEvent()         {}

// Domain errors.
var (
	ErrOrderExists   = errors.New("order already exists")
	ErrBadOrder      = errors.New("order needs a customer, a SKU, a positive quantity and total")
	ErrWrongStatus   = errors.New("order is not in a status that allows this")
	ErrCardDeclined  = errors.New("payment declined: insufficient funds")
	ErrOutOfStock    = errors.New("out of stock")
	ErrUnknownCharge = errors.New("no such charge to refund")
	ErrBadAmount     = errors.New("amount must be positive")
)

// Orders defines the order aggregate.
var Orders = aggregate.Definition[Order, OrderCommand, OrderEvent]{
	Kind:    "order",
	Initial: func(string) Order { return Order{} },
	Creates: func(c OrderCommand) bool { _, ok := c.(CreateOrder); return ok },
	Decide: func(s Order, c OrderCommand) ([]OrderEvent, error) {
		switch c := c.(type) {
		case CreateOrder:
			if s.Status != "" {
				return nil, ErrOrderExists
			}
			if c.Customer == "" || c.SKU == "" || c.Qty <= 0 || c.Total <= 0 {
				return nil, ErrBadOrder
			}
			return []OrderEvent{OrderCreated(c)}, nil
		case PayOrder:
			if s.Status != StatusCreated {
				return nil, ErrWrongStatus
			}
			return []OrderEvent{OrderPaid(c)}, nil
		case ReserveInventory:
			if s.Status != StatusPaid {
				return nil, ErrWrongStatus
			}
			return []OrderEvent{OrderInventoryReserved{}}, nil
		case ConfirmOrder:
			if s.Status != StatusReserved {
				return nil, ErrWrongStatus
			}
			return []OrderEvent{OrderConfirmed{}}, nil
		case CancelOrder:
			if s.Status == StatusConfirmed || s.Status == StatusCancelled {
				return nil, ErrWrongStatus
			}
			return []OrderEvent{OrderCancelled(c)}, nil
		}
		return nil, fmt.Errorf("unknown command %T", c)
	},
	Evolve: func(s Order, e OrderEvent) Order {
		switch e := e.(type) {
		case OrderCreated:
			s = Order{Status: StatusCreated, Customer: e.Customer, SKU: e.SKU, Qty: e.Qty, Total: e.Total}
		case OrderPaid:
			s.Status = StatusPaid
		case OrderInventoryReserved:
			s.Status = StatusReserved
		case OrderConfirmed:
			s.Status = StatusConfirmed
		case OrderCancelled:
			s.Status, s.Reason = StatusCancelled, e.Reason
		}
		return s
	},
	Events: []aggregate.EventType{
		aggregate.Event[OrderCreated]("shop.order.created"),
		aggregate.Event[OrderPaid]("shop.order.paid"),
		aggregate.Event[OrderInventoryReserved]("shop.order.inventory_reserved"),
		aggregate.Event[OrderConfirmed]("shop.order.confirmed"),
		aggregate.Event[OrderCancelled]("shop.order.cancelled"),
	},
}

// ---- payment accounts ----

// Wallet is a customer's payment account: its balance and the charges
// not refunded, by order.
type Wallet struct {
	Balance int64
	Charges map[string]int64
}

// Commands of the payment aggregate.
type (
	// PaymentCommand is implemented by every payment command.
	PaymentCommand interface{ isPaymentCommand() }
	// Fund adds money to the wallet.
	Fund struct{ Amount int64 }
	// Charge takes an order's amount from the wallet.
	Charge struct {
		Order  string
		Amount int64
	}
	// RefundCharge gives an order's charge back.
	RefundCharge struct{ Order string }
)

func (Fund) isPaymentCommand()         {}
func (Charge) isPaymentCommand()       {}
func (RefundCharge) isPaymentCommand() {}

// Events of the payment aggregate.
type (
	// PaymentEvent is implemented by every payment event.
	PaymentEvent interface{ isPaymentEvent() }
	// Funded records money added.
	Funded struct{ Amount int64 }
	// Charged records a charge for an order.
	Charged struct {
		Order  string
		Amount int64
	}
	// Refunded records a refund of an order's charge.
	Refunded struct {
		Order  string
		Amount int64
	}
)

func (Funded) isPaymentEvent()   {}
func (Charged) isPaymentEvent()  {}
func (Refunded) isPaymentEvent() {}

// Payments defines the payment aggregate, one per customer.
var Payments = aggregate.Definition[Wallet, PaymentCommand, PaymentEvent]{
	Kind:    "payment",
	Initial: func(string) Wallet { return Wallet{} },
	Decide: func(s Wallet, c PaymentCommand) ([]PaymentEvent, error) {
		switch c := c.(type) {
		case Fund:
			if c.Amount <= 0 {
				return nil, ErrBadAmount
			}
			return []PaymentEvent{Funded(c)}, nil
		case Charge:
			if c.Amount <= 0 {
				return nil, ErrBadAmount
			}
			if c.Amount > s.Balance {
				return nil, ErrCardDeclined
			}
			return []PaymentEvent{Charged(c)}, nil
		case RefundCharge:
			amount, ok := s.Charges[c.Order]
			if !ok {
				return nil, ErrUnknownCharge
			}
			return []PaymentEvent{Refunded{Order: c.Order, Amount: amount}}, nil
		}
		return nil, fmt.Errorf("unknown command %T", c)
	},
	Evolve: func(s Wallet, e PaymentEvent) Wallet {
		charges := make(map[string]int64, len(s.Charges)+1) // never modify the given state
		for k, v := range s.Charges {
			charges[k] = v
		}
		switch e := e.(type) {
		case Funded:
			s.Balance += e.Amount
		case Charged:
			s.Balance -= e.Amount
			charges[e.Order] = e.Amount
		case Refunded:
			s.Balance += e.Amount
			delete(charges, e.Order)
		}
		s.Charges = charges
		return s
	},
	Events: []aggregate.EventType{
		aggregate.Event[Funded]("shop.payment.funded"),
		aggregate.Event[Charged]("shop.payment.charged"),
		aggregate.Event[Refunded]("shop.payment.refunded"),
	},
}

// ---- inventory ----

// Stock is the inventory of one SKU: units available and reserved by order.
type Stock struct {
	Available int
	Reserved  map[string]int
}

// Commands of the inventory aggregate.
type (
	// InventoryCommand is implemented by every inventory command.
	InventoryCommand interface{ isInventoryCommand() }
	// Restock adds units.
	Restock struct{ Qty int }
	// Reserve sets units aside for an order.
	Reserve struct {
		Order string
		Qty   int
	}
	// Release gives an order's reserved units back.
	Release struct{ Order string }
)

func (Restock) isInventoryCommand() {}
func (Reserve) isInventoryCommand() {}
func (Release) isInventoryCommand() {}

// Events of the inventory aggregate.
type (
	// InventoryEvent is implemented by every inventory event.
	InventoryEvent interface{ isInventoryEvent() }
	// Restocked records units added.
	Restocked struct{ Qty int }
	// Reserved records units set aside for an order.
	Reserved struct {
		Order string
		Qty   int
	}
	// Released records an order's units given back.
	Released struct {
		Order string
		Qty   int
	}
)

func (Restocked) isInventoryEvent() {}
func (Reserved) isInventoryEvent()  {}
func (Released) isInventoryEvent()  {}

// Inventory defines the inventory aggregate, one per SKU.
var Inventory = aggregate.Definition[Stock, InventoryCommand, InventoryEvent]{
	Kind:    "inventory",
	Initial: func(string) Stock { return Stock{} },
	Decide: func(s Stock, c InventoryCommand) ([]InventoryEvent, error) {
		switch c := c.(type) {
		case Restock:
			if c.Qty <= 0 {
				return nil, ErrBadAmount
			}
			return []InventoryEvent{Restocked(c)}, nil
		case Reserve:
			if c.Qty <= 0 {
				return nil, ErrBadAmount
			}
			if c.Qty > s.Available {
				return nil, ErrOutOfStock
			}
			return []InventoryEvent{Reserved(c)}, nil
		case Release:
			qty, ok := s.Reserved[c.Order]
			if !ok {
				return nil, nil // nothing reserved: releasing is a no-op
			}
			return []InventoryEvent{Released{Order: c.Order, Qty: qty}}, nil
		}
		return nil, fmt.Errorf("unknown command %T", c)
	},
	Evolve: func(s Stock, e InventoryEvent) Stock {
		reserved := make(map[string]int, len(s.Reserved)+1)
		for k, v := range s.Reserved {
			reserved[k] = v
		}
		switch e := e.(type) {
		case Restocked:
			s.Available += e.Qty
		case Reserved:
			s.Available -= e.Qty
			reserved[e.Order] = e.Qty
		case Released:
			s.Available += e.Qty
			delete(reserved, e.Order)
		}
		s.Reserved = reserved
		return s
	},
	Events: []aggregate.EventType{
		aggregate.Event[Restocked]("shop.inventory.restocked"),
		aggregate.Event[Reserved]("shop.inventory.reserved"),
		aggregate.Event[Released]("shop.inventory.released"),
	},
}
