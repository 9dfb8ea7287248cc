// Command gdpr shows crypto-shredding with package pii: customers' personal
// data is encrypted with a key per customer before it reaches the journal
// or a snapshot, a read model shows it, and an erasure request destroys
// one customer's key. Afterwards the rebuilt read model, the recovered
// aggregate and the journal read back "[erased]" for that customer's
// personal fields while everything else stays as it was, and neither the
// journal file nor the key file holds the personal data or the key.
//
//	go run ./examples/gdpr            # data in a temporary directory
//	go run ./examples/gdpr -data DIR  # keep the files in DIR
//	go run ./examples/gdpr -pg postgres://localhost/shop  # journal, snapshots and keys in PostgreSQL
//	go run ./examples/gdpr -metrics 127.0.0.1:9090 -trace
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"sort"
	"sync"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/orchestrix/orchestrix"
	"github.com/orchestrix/orchestrix/actor"
	"github.com/orchestrix/orchestrix/aggregate"
	"github.com/orchestrix/orchestrix/examples/internal/obs"
	"github.com/orchestrix/orchestrix/journal"
	boltjournal "github.com/orchestrix/orchestrix/journal/bolt"
	pgjournal "github.com/orchestrix/orchestrix/journal/postgres"
	"github.com/orchestrix/orchestrix/pii"
	boltkeys "github.com/orchestrix/orchestrix/pii/bolt"
	pgkeys "github.com/orchestrix/orchestrix/pii/postgres"
	"github.com/orchestrix/orchestrix/projection"
	"github.com/orchestrix/orchestrix/snapshot"
	boltsnapshot "github.com/orchestrix/orchestrix/snapshot/bolt"
	pgsnapshot "github.com/orchestrix/orchestrix/snapshot/postgres"
)

// File names inside the data directory.
const (
	JournalFile = "orchestrix.db"
	KeysFile    = "keys.db"
)

// Customer is the state of one customer. Its personal fields are tagged
// too, because snapshots store the state.
type Customer struct {
	Name    string `pii:"data"`
	Email   string `pii:"data"`
	Country string
	Orders  int
}

// Commands of the customer aggregate.
type (
	// CustomerCommand is implemented by every customer command.
	CustomerCommand interface{ isCustomerCommand() }
	// RegisterCustomer registers a customer.
	RegisterCustomer struct{ Name, Email, Country string }
	// ChangeEmail changes a customer's email address.
	ChangeEmail struct{ Email string }
	// CountOrder counts one more order.
	CountOrder struct{}
)

func (RegisterCustomer) isCustomerCommand() {}
func (ChangeEmail) isCustomerCommand()      {}
func (CountOrder) isCustomerCommand()       {}

// Events of the customer aggregate: personal data is tagged `pii:"data"`
// and belongs to the event's subject, the customer id.
type (
	// CustomerEvent is implemented by every customer event.
	CustomerEvent interface{ isCustomerEvent() }
	// CustomerRegistered records a registration.
	CustomerRegistered struct {
		Name    string `pii:"data"`
		Email   string `pii:"data"`
		Country string
	}
	// EmailChanged records a new email address.
	EmailChanged struct {
		Email string `pii:"data"`
	}
	// OrderCounted records the customer's order count.
	OrderCounted struct{ Orders int }
)

func (CustomerRegistered) isCustomerEvent() {}
func (EmailChanged) isCustomerEvent()       {}
func (OrderCounted) isCustomerEvent()       {}

// Domain errors.
var (
	ErrAlreadyRegistered = errors.New("customer already registered")
	ErrNotRegistered     = errors.New("customer not registered")
)

// Customers defines the customer aggregate.
var Customers = aggregate.Definition[Customer, CustomerCommand, CustomerEvent]{
	Kind:          "customer",
	Initial:       func(string) Customer { return Customer{} },
	SnapshotEvery: 2,
	Decide: func(s Customer, c CustomerCommand) ([]CustomerEvent, error) {
		registered := s.Name != "" || s.Country != ""
		switch c := c.(type) {
		case RegisterCustomer:
			if registered {
				return nil, ErrAlreadyRegistered
			}
			return []CustomerEvent{CustomerRegistered(c)}, nil
		case ChangeEmail:
			if !registered {
				return nil, ErrNotRegistered
			}
			return []CustomerEvent{EmailChanged(c)}, nil
		case CountOrder:
			if !registered {
				return nil, ErrNotRegistered
			}
			return []CustomerEvent{OrderCounted{Orders: s.Orders + 1}}, nil
		}
		return nil, fmt.Errorf("unknown command %T", c)
	},
	Evolve: func(s Customer, e CustomerEvent) Customer {
		switch e := e.(type) {
		case CustomerRegistered:
			s.Name, s.Email, s.Country = e.Name, e.Email, e.Country
		case EmailChanged:
			s.Email = e.Email
		case OrderCounted:
			s.Orders = e.Orders
		}
		return s
	},
	Events: []aggregate.EventType{
		aggregate.Event[CustomerRegistered]("shop.customer.registered"),
		aggregate.Event[EmailChanged]("shop.customer.email_changed"),
		aggregate.Event[OrderCounted]("shop.customer.order_counted"),
	},
}

// Order is the state of one order.
type Order struct {
	CustomerID string
	ShipTo     string `pii:"data,subject=CustomerID"`
	Total      int64
}

// PlaceOrder is the only order command.
type PlaceOrder struct {
	CustomerID, ShipTo string
	Total              int64
}

// OrderPlaced records an order. The shipping address is the customer's
// personal data, not the order's: subject=CustomerID encrypts it with the
// customer's key, so erasing the customer erases it here too.
type OrderPlaced struct {
	CustomerID string
	ShipTo     string `pii:"data,subject=CustomerID"`
	Total      int64
}

// Orders defines the order aggregate.
var Orders = aggregate.Definition[Order, PlaceOrder, OrderPlaced]{
	Kind:    "order",
	Initial: func(string) Order { return Order{} },
	Decide: func(s Order, c PlaceOrder) ([]OrderPlaced, error) {
		if s.CustomerID != "" {
			return nil, errors.New("order already placed")
		}
		return []OrderPlaced{OrderPlaced(c)}, nil
	},
	Evolve: func(_ Order, e OrderPlaced) Order { return Order(e) },
	Events: []aggregate.EventType{aggregate.Event[OrderPlaced]("shop.order.placed")},
}

// Directory is the read model: what the shop's back office sees.
type Directory struct {
	mu        sync.Mutex
	customers map[string]CustomerRegistered
	shipTo    map[string]string // order id → address
}

// NewDirectory returns an empty directory.
func NewDirectory() *Directory {
	d := &Directory{}
	d.reset()
	return d
}

func (d *Directory) reset() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.customers = map[string]CustomerRegistered{}
	d.shipTo = map[string]string{}
}

func (d *Directory) apply(_ context.Context, ev projection.Event) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	id := ev.Envelope.Subject
	switch e := ev.Data.(type) {
	case CustomerRegistered:
		d.customers[id] = e
	case EmailChanged:
		c := d.customers[id]
		c.Email = e.Email
		d.customers[id] = c
	case OrderPlaced:
		d.shipTo[id] = e.ShipTo
	}
	return nil
}

// Print writes the directory sorted by id.
func (d *Directory) Print(w io.Writer) {
	d.mu.Lock()
	defer d.mu.Unlock()
	ids := make([]string, 0, len(d.customers))
	for id := range d.customers {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		c := d.customers[id]
		fmt.Fprintf(w, "  customer %-5s name=%q email=%q country=%s\n", id, c.Name, c.Email, c.Country)
	}
	ids = ids[:0]
	for id := range d.shipTo {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		fmt.Fprintf(w, "  order    %-5s ship to %q\n", id, d.shipTo[id])
	}
}

// Projection returns the directory's projection definition.
func (d *Directory) Projection() projection.Projection {
	return projection.Projection{
		Name:    "directory",
		Handler: projection.EachEvent(d.apply),
		Filter:  projection.Filter{Kinds: []string{Customers.Kind, Orders.Kind}},
		Reset: func(context.Context) error {
			d.reset()
			return nil
		},
	}
}

// eventLog is a journal that can also tell how far it is written.
type eventLog interface {
	journal.Journal
	journal.Watcher
}

// storage is where the shop keeps events, snapshots and keys.
type storage struct {
	journal   eventLog
	snapshots snapshot.Store
	keys      pii.KeyStore
	close     func() error
	// holds reports whether the stored events or the stored keys contain
	// needle: one check per place, described by what.
	holds func(ctx context.Context, needle []byte) ([]stored, error)
}

// stored is one place the demo looks into at the end.
type stored struct {
	where string
	found bool
}

// backend opens the storage; the demo calls it again to restart.
type backend func(ctx context.Context, o *obs.Obs) (*storage, error)

// boltBackend keeps the journal and its snapshots in one bbolt file in dir
// and the keys in another.
func boltBackend(dir string) backend {
	return func(_ context.Context, o *obs.Obs) (_ *storage, err error) {
		st := &storage{}
		var j *boltjournal.Journal
		var snaps *boltsnapshot.Store
		var keys *boltkeys.Store
		st.close = func() error {
			var errs []error
			if snaps != nil {
				errs = append(errs, snaps.Close())
			}
			if j != nil {
				errs = append(errs, j.Close())
			}
			if keys != nil {
				errs = append(errs, keys.Close())
			}
			return errors.Join(errs...)
		}
		defer func() {
			if err != nil {
				err = errors.Join(err, st.close())
			}
		}()
		if j, err = boltjournal.Open(filepath.Join(dir, JournalFile), boltjournal.Config{Metrics: o.Metrics(), TracerProvider: o.TracerProvider()}); err != nil {
			return nil, err
		}
		if snaps, err = boltsnapshot.New(j.DB(), boltsnapshot.Config{}); err != nil {
			return nil, err
		}
		if keys, err = boltkeys.Open(filepath.Join(dir, KeysFile), boltkeys.Config{}); err != nil {
			return nil, err
		}
		st.journal, st.snapshots, st.keys = j, snaps, keys
		st.holds = func(_ context.Context, needle []byte) ([]stored, error) {
			var out []stored
			for _, f := range []string{JournalFile, KeysFile} {
				found, err := fileContains(filepath.Join(dir, f), needle)
				if err != nil {
					return nil, err
				}
				out = append(out, stored{f, found})
			}
			return out, nil
		}
		return st, nil
	}
}

// postgresBackend keeps everything in the PostgreSQL database at dsn, as a
// deployment of several processes would: the journal, the snapshots and
// the shared key store (pii/postgres) on one pool.
func postgresBackend(dsn string) backend {
	return func(ctx context.Context, o *obs.Obs) (_ *storage, err error) {
		pool, err := pgxpool.New(ctx, dsn)
		if err != nil {
			return nil, err
		}
		defer func() {
			if err != nil {
				pool.Close()
			}
		}()
		j, err := pgjournal.New(ctx, pool, pgjournal.Config{Metrics: o.Metrics(), TracerProvider: o.TracerProvider()})
		if err != nil {
			return nil, err
		}
		snaps, err := pgsnapshot.New(ctx, pool, pgsnapshot.Config{})
		if err != nil {
			return nil, errors.Join(err, j.Close())
		}
		keys, err := pgkeys.New(ctx, pool, pgkeys.Config{})
		if err != nil {
			return nil, errors.Join(err, snaps.Close(), j.Close())
		}
		events := pgx.Identifier{j.Schema(), "journal_events"}.Sanitize()
		keyTable := pgx.Identifier{keys.Schema(), pgkeys.Table}.Sanitize()
		return &storage{
			journal: j, snapshots: snaps, keys: keys,
			close: func() error {
				err := errors.Join(keys.Close(), snaps.Close(), j.Close())
				pool.Close()
				return err
			},
			holds: func(ctx context.Context, needle []byte) ([]stored, error) {
				var inEvents, inKeys bool
				if err := pool.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM "+events+" WHERE position($1::bytea IN record) > 0)", needle).Scan(&inEvents); err != nil {
					return nil, err
				}
				if err := pool.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM "+keyTable+" WHERE position($1::bytea IN material) > 0)", needle).Scan(&inKeys); err != nil {
					return nil, err
				}
				return []stored{{"table journal_events", inEvents}, {"table " + pgkeys.Table, inKeys}}, nil
			},
		}, nil
	}
}

// runtime is one open storage, registry and actor system.
type runtime struct {
	*storage
	registry  *orchestrix.Registry
	system    *actor.System
	customers *actor.Handle[Customer, CustomerCommand, CustomerEvent]
	orders    *actor.Handle[Order, PlaceOrder, OrderPlaced]
}

func start(ctx context.Context, be backend, o *obs.Obs) (_ *runtime, err error) {
	st, err := be(ctx, o)
	if err != nil {
		return nil, err
	}
	rt := &runtime{storage: st}
	defer func() {
		if err != nil {
			err = errors.Join(err, rt.stop(context.Background()))
		}
	}()
	codec, err := pii.NewCodec(pii.Config{Keys: rt.keys})
	if err != nil {
		return nil, err
	}
	rt.registry = orchestrix.NewRegistry(orchestrix.WithCodec(codec))
	if err := pii.RegisterEvents(rt.registry); err != nil {
		return nil, err
	}
	rt.system, err = actor.NewSystem(actor.Config{
		Journal: rt.journal, Snapshots: rt.snapshots, Registry: rt.registry, Source: "/orchestrix/gdpr",
		Metrics: o.Metrics(), TracerProvider: o.TracerProvider(),
	})
	if err != nil {
		return nil, err
	}
	if rt.customers, err = actor.Register(rt.system, Customers); err != nil {
		return nil, err
	}
	if rt.orders, err = actor.Register(rt.system, Orders); err != nil {
		return nil, err
	}
	return rt, nil
}

func (rt *runtime) stop(ctx context.Context) error {
	var errs []error
	if rt.system != nil {
		errs = append(errs, rt.system.Shutdown(ctx))
	}
	return errors.Join(append(errs, rt.close())...)
}

// project runs the directory projection until it has caught up with the
// journal, rebuilding it from scratch first when rebuild is set.
func (rt *runtime) project(ctx context.Context, m *projection.Manager, rebuild bool) error {
	if rebuild {
		if err := m.Rebuild(ctx, "directory"); err != nil {
			return err
		}
	}
	head, err := rt.journal.LastPosition(ctx)
	if err != nil {
		return err
	}
	_, err = m.Wait(ctx, "directory", func(s projection.Status) bool { return s.Position >= head || s.LastError != nil })
	if err != nil {
		return err
	}
	st, err := m.Status(ctx, "directory")
	if err == nil && st.LastError != nil {
		err = st.LastError
	}
	return err
}

// fileContains reports whether the file at path contains needle.
func fileContains(path string, needle []byte) (bool, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return false, err
	}
	return bytes.Contains(raw, needle), nil
}

// run is the whole demo on bbolt files in dir; it writes its story to w.
// o supplies metrics and tracing (nil: none).
func run(ctx context.Context, w io.Writer, dir string, o *obs.Obs) error {
	return runOn(ctx, w, boltBackend(dir), o)
}

// runOn is the whole demo on the storage be opens.
func runOn(ctx context.Context, w io.Writer, be backend, o *obs.Obs) error {
	rt, err := start(ctx, be, o)
	if err != nil {
		return err
	}
	fmt.Fprintln(w, "== customers register and order; personal data is encrypted per customer")
	steps := []struct {
		id  string
		cmd CustomerCommand
	}{
		{"alice", RegisterCustomer{Name: "Alice Liddell", Email: "alice@wonderland.example", Country: "GB"}},
		{"bob", RegisterCustomer{Name: "Bob Marley", Email: "bob@trenchtown.example", Country: "JM"}},
		{"alice", ChangeEmail{Email: "alice@looking-glass.example"}},
		{"alice", CountOrder{}},
	}
	for _, s := range steps {
		if _, err := rt.customers.Send(ctx, s.id, s.cmd); err != nil {
			return errors.Join(fmt.Errorf("%s %T: %w", s.id, s.cmd, err), rt.stop(ctx))
		}
	}
	if _, err := rt.orders.Send(ctx, "o-1", PlaceOrder{CustomerID: "alice", ShipTo: "7 Rabbit Hole, Oxford", Total: 4200}); err != nil {
		return errors.Join(err, rt.stop(ctx))
	}
	if _, err := rt.orders.Send(ctx, "o-2", PlaceOrder{CustomerID: "bob", ShipTo: "56 Hope Road, Kingston", Total: 1500}); err != nil {
		return errors.Join(err, rt.stop(ctx))
	}
	for rec, err := range rt.journal.Read(ctx, rt.customers.Stream("alice"), 1, 1, 1) {
		if err != nil {
			return errors.Join(err, rt.stop(ctx))
		}
		fmt.Fprintf(w, "stored payload of %s v1: %.60s…\n", rec.Stream, rec.Envelope.Data)
	}
	// Keep alice's key to prove below that it is gone from the key file.
	aliceKey, err := rt.keys.GetOrCreate(ctx, "alice")
	if err != nil {
		return errors.Join(err, rt.stop(ctx))
	}

	dirModel := NewDirectory()
	m, err := projection.NewManager(projection.Config{
		Journal: rt.journal, Registry: rt.registry, Checkpoints: projection.NewMemCheckpoints(),
		Metrics: o.Metrics(), TracerProvider: o.TracerProvider(),
	})
	if err != nil {
		return errors.Join(err, rt.stop(ctx))
	}
	defer m.Close()
	if err := m.Add(ctx, dirModel.Projection()); err != nil {
		return errors.Join(err, rt.stop(ctx))
	}
	if err := rt.project(ctx, m, false); err != nil {
		return errors.Join(err, rt.stop(ctx))
	}
	fmt.Fprintln(w, "== the back office directory (a projection)")
	dirModel.Print(w)

	fmt.Fprintln(w, "== alice asks to be forgotten")
	eraser := &pii.Eraser{Keys: rt.keys, Journal: rt.journal, Registry: rt.registry, Source: "/orchestrix/gdpr"}
	erasure, err := eraser.Erase(ctx, "alice", "GDPR art. 17 request #1")
	if err != nil {
		return errors.Join(err, rt.stop(ctx))
	}
	fmt.Fprintf(w, "erasure recorded in stream %s at position %d\n", erasure.Record.Stream, erasure.Record.Position)
	_, err = rt.customers.Send(ctx, "alice", ChangeEmail{Email: "alice@new.example"})
	fmt.Fprintf(w, "new personal data for alice is refused: %t\n", errors.Is(err, pii.ErrErased))

	fmt.Fprintln(w, "== the directory, rebuilt from the journal")
	if err := rt.project(ctx, m, true); err != nil {
		return errors.Join(err, rt.stop(ctx))
	}
	dirModel.Print(w)
	if err := m.Close(); err != nil {
		return errors.Join(err, rt.stop(ctx))
	}

	fmt.Fprintln(w, "== restart: recovery from snapshot and journal")
	if err := rt.stop(ctx); err != nil {
		return err
	}
	if rt, err = start(ctx, be, o); err != nil {
		return err
	}
	alice, version, err := rt.customers.State(ctx, "alice")
	if err != nil {
		return errors.Join(err, rt.stop(ctx))
	}
	fmt.Fprintf(w, "alice at version %d: name=%q email=%q country=%s orders=%d\n", version, alice.Name, alice.Email, alice.Country, alice.Orders)
	bob, _, err := rt.customers.State(ctx, "bob")
	if err != nil {
		return errors.Join(err, rt.stop(ctx))
	}
	fmt.Fprintf(w, "bob: name=%q email=%q\n", bob.Name, bob.Email)
	for rec, err := range rt.journal.Read(ctx, rt.orders.Stream("o-1"), 1, math.MaxUint64, math.MaxInt) {
		if err != nil {
			return errors.Join(err, rt.stop(ctx))
		}
		v, err := rt.registry.Unmarshal(rec.Envelope)
		if err != nil {
			return errors.Join(err, rt.stop(ctx))
		}
		fmt.Fprintf(w, "journal read of %s: %+v\n", rec.Stream, v)
	}
	fmt.Fprintln(w, "== the stored bytes")
	for _, c := range []struct {
		what   string
		needle []byte
	}{
		{`"Alice Liddell"`, []byte("Alice Liddell")},
		{`"Rabbit Hole"`, []byte("Rabbit Hole")},
		{`"Bob Marley"`, []byte("Bob Marley")},
		{"alice's key", aliceKey.Material},
	} {
		places, err := rt.holds(ctx, c.needle)
		if err != nil {
			return errors.Join(err, rt.stop(ctx))
		}
		for _, p := range places {
			fmt.Fprintf(w, "%s contains %s: %t\n", p.where, c.what, p.found)
		}
	}
	return rt.stop(ctx)
}

func main() {
	dsn := flag.String("pg", "", "PostgreSQL connection string: keep the journal, snapshots and keys there (pii/postgres) instead of in bbolt files")
	obs.Main("gdpr", "directory for the journal and key store", func(ctx context.Context, dir string, o *obs.Obs) error {
		be := boltBackend(dir)
		if *dsn != "" {
			be = postgresBackend(*dsn)
		}
		return runOn(ctx, os.Stdout, be, o)
	})
}
