// Command banking is the Orchestrix banking example: accounts (open,
// deposit, withdraw, suspend, reactivate, close) on the embedded bbolt
// journal (or PostgreSQL with -pg), a transfer saga that debits one account and credits another,
// reversing the debit when the credit is refused, and a balance
// projection that follows the journal.
//
//	go run ./examples/banking            # data in a temporary directory
//	go run ./examples/banking -data DIR  # keep the journal in DIR
//	go run ./examples/banking -pg DSN    # journal, snapshots and checkpoints in PostgreSQL
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"sync"

	"github.com/orchestrix/orchestrix/actor"
	"github.com/orchestrix/orchestrix/console"
	"github.com/orchestrix/orchestrix/examples/internal/obs"
	"github.com/orchestrix/orchestrix/projection"
	"github.com/orchestrix/orchestrix/saga"
)

// Transfer is the data of the transfer saga.
type Transfer struct {
	From, To string
	Amount   int64
}

// transferSaga debits From, then credits To; when the credit is refused,
// the debit is reversed by depositing the amount back.
func transferSaga(accounts *actor.Handle[Account, AccountCommand, AccountEvent]) *saga.Orchestration[Transfer] {
	return saga.New[Transfer]("transfer").
		Step("debit",
			saga.Command(accounts, func(t Transfer) (string, AccountCommand) { return t.From, Withdraw{Amount: t.Amount} }),
			saga.Command(accounts, func(t Transfer) (string, AccountCommand) { return t.From, Deposit{Amount: t.Amount} })).
		Step("credit",
			saga.Command(accounts, func(t Transfer) (string, AccountCommand) { return t.To, Deposit{Amount: t.Amount} }),
			nil)
}

// Balances is the read model of the balance projection.
type Balances struct {
	mu sync.Mutex
	m  map[string]int64
}

func (b *Balances) add(id string, amount int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.m[id] += amount
}

// Snapshot returns a copy of the balances.
func (b *Balances) Snapshot() map[string]int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make(map[string]int64, len(b.m))
	for k, v := range b.m {
		out[k] = v
	}
	return out
}

// balanceProjection keeps Balances up to date from account events.
func balanceProjection(b *Balances) projection.Projection {
	router := projection.NewRouter()
	projection.On(router, func(_ context.Context, ev projection.Event, e AccountOpened) error {
		b.add(ev.Envelope.Subject, 0)
		return nil
	})
	projection.On(router, func(_ context.Context, ev projection.Event, e MoneyDeposited) error {
		b.add(ev.Envelope.Subject, e.Amount)
		return nil
	})
	projection.On(router, func(_ context.Context, ev projection.Event, e MoneyWithdrawn) error {
		b.add(ev.Envelope.Subject, -e.Amount)
		return nil
	})
	return projection.Projection{
		Name:    "balances",
		Handler: router,
		Filter: projection.Filter{Types: []string{
			"bank.account.opened", "bank.account.deposited", "bank.account.withdrawn",
		}},
		// The read model lives in memory: it is rebuilt from the journal
		// on every start, so its checkpoint does too.
		Checkpoints: projection.NewMemCheckpoints(),
	}
}

// bank is one open journal with its actor system, saga runner and
// projections.
type bank struct {
	store       *storage
	system      *actor.System
	accounts    *actor.Handle[Account, AccountCommand, AccountEvent]
	runner      *saga.Runner
	transfers   *saga.Saga[Transfer]
	projections *projection.Manager
	balances    *Balances
}

func open(ctx context.Context, be backend, o *obs.Obs) (_ *bank, err error) {
	b := &bank{balances: &Balances{m: map[string]int64{}}}
	defer func() {
		if err != nil {
			b.close(ctx)
		}
	}()
	if b.store, err = be(ctx, o); err != nil {
		return nil, err
	}
	if b.system, err = actor.NewSystem(actor.Config{
		Journal: b.store.journal, Snapshots: b.store.snapshots, Source: "/orchestrix/banking",
		Metrics: o.Metrics(), TracerProvider: o.TracerProvider(),
	}); err != nil {
		return nil, err
	}
	if b.accounts, err = actor.Register(b.system, Accounts); err != nil {
		return nil, err
	}
	if b.runner, err = saga.NewRunner(saga.Config{
		Journal: b.store.journal, Registry: b.system.Registry(), Checkpoints: b.store.checkpoints, Source: "/orchestrix/banking",
		Metrics: o.Metrics(), TracerProvider: o.TracerProvider(),
	}); err != nil {
		return nil, err
	}
	if b.transfers, err = saga.Register(b.runner, transferSaga(b.accounts)); err != nil {
		return nil, err
	}
	if b.projections, err = projection.NewManager(projection.Config{
		Journal: b.store.journal, Registry: b.system.Registry(),
		Metrics: o.Metrics(), TracerProvider: o.TracerProvider(),
	}); err != nil {
		return nil, err
	}
	if err = b.projections.Add(ctx, balanceProjection(b.balances)); err != nil {
		return nil, err
	}
	return b, nil
}

func (b *bank) close(ctx context.Context) error {
	var errs []error
	if b.projections != nil {
		errs = append(errs, b.projections.Close())
	}
	if b.runner != nil {
		errs = append(errs, b.runner.Close())
	}
	if b.system != nil {
		errs = append(errs, b.system.Shutdown(ctx))
	}
	if b.store != nil {
		errs = append(errs, b.store.close())
	}
	return errors.Join(errs...)
}

// send executes one account command and prints its outcome.
func (b *bank) send(ctx context.Context, w io.Writer, id string, cmd AccountCommand) {
	_, err := b.accounts.Send(ctx, id, cmd)
	if err != nil {
		fmt.Fprintf(w, "%-8s %-28s refused: %v\n", id, describe(cmd), rootCause(err))
		return
	}
	s, _, err := b.accounts.State(ctx, id)
	if err != nil {
		fmt.Fprintf(w, "%-8s state: %v\n", id, err)
		return
	}
	fmt.Fprintf(w, "%-8s %-28s ok: %s, balance %d\n", id, describe(cmd), s.Status, s.Balance)
}

// transfer runs one transfer saga to its end and prints what happened.
func (b *bank) transfer(ctx context.Context, w io.Writer, id string, t Transfer) error {
	fmt.Fprintf(w, "transfer %s: %d from %s to %s\n", id, t.Amount, t.From, t.To)
	if err := b.transfers.Begin(ctx, id, t); err != nil {
		return err
	}
	st, err := b.transfers.Wait(ctx, id, saga.Finished)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "  steps done %v, undone %v\n", st.Done, st.Undone)
	if st.Failure != nil {
		fmt.Fprintf(w, "  step %s refused: %s\n", st.Failure.Step, domainReason(st.Failure.Reason))
	}
	if st.CompensationFailure != nil {
		fmt.Fprintf(w, "  compensation of %s failed: %s\n", st.CompensationFailure.Step, domainReason(st.CompensationFailure.Reason))
	}
	fmt.Fprintf(w, "  => %s\n", st.State)
	return nil
}

// printBalances waits until the balance projection has caught up with the
// journal and prints it.
func (b *bank) printBalances(ctx context.Context, w io.Writer) error {
	last, err := b.store.journal.LastPosition(ctx)
	if err != nil {
		return err
	}
	if _, err := b.projections.Wait(ctx, "balances", func(s projection.Status) bool { return s.Position >= last }); err != nil {
		return err
	}
	snap := b.balances.Snapshot()
	ids := make([]string, 0, len(snap))
	for id := range snap {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	fmt.Fprintln(w, "balances (projection):")
	for _, id := range ids {
		fmt.Fprintf(w, "  %-6s %d\n", id, snap[id])
	}
	return nil
}

// run is the whole example on a bbolt journal in dir; it writes its story
// to w.
func run(ctx context.Context, w io.Writer, dir string) error {
	return runOn(ctx, w, boltBackend(dir), nil)
}

// runOn is the whole example on the storage be opens; o supplies metrics
// and tracing (nil: none).
func runOn(ctx context.Context, w io.Writer, be backend, o *obs.Obs) error {
	b, err := open(ctx, be, o)
	if err != nil {
		return err
	}
	defer func() { b.close(ctx) }() // b is replaced on restart

	fmt.Fprintln(w, "== accounts")
	b.send(ctx, w, "alice", OpenAccount{Owner: "Alice"})
	b.send(ctx, w, "bob", OpenAccount{Owner: "Bob"})
	b.send(ctx, w, "carol", OpenAccount{Owner: "Carol"})
	b.send(ctx, w, "alice", Deposit{Amount: 1000})
	b.send(ctx, w, "bob", Deposit{Amount: 200})
	b.send(ctx, w, "bob", Withdraw{Amount: 500}) // no overdraft

	fmt.Fprintln(w, "== a transfer that succeeds")
	if err := b.transfer(ctx, w, "t1", Transfer{From: "alice", To: "bob", Amount: 300}); err != nil {
		return err
	}

	fmt.Fprintln(w, "== a transfer to a suspended account: the debit is reversed")
	b.send(ctx, w, "carol", Suspend{Reason: "identity check"})
	if err := b.transfer(ctx, w, "t2", Transfer{From: "bob", To: "carol", Amount: 100}); err != nil {
		return err
	}

	fmt.Fprintln(w, "== a transfer without funds: nothing to undo")
	if err := b.transfer(ctx, w, "t3", Transfer{From: "bob", To: "alice", Amount: 10_000}); err != nil {
		return err
	}

	fmt.Fprintln(w, "== reactivate, then close only at zero balance")
	b.send(ctx, w, "carol", Reactivate{})
	if err := b.transfer(ctx, w, "t4", Transfer{From: "alice", To: "carol", Amount: 50}); err != nil {
		return err
	}
	b.send(ctx, w, "carol", CloseAccount{})
	b.send(ctx, w, "carol", Withdraw{Amount: 50})
	b.send(ctx, w, "carol", CloseAccount{})
	b.send(ctx, w, "carol", Deposit{Amount: 1}) // closed accounts move no money

	if err := b.printBalances(ctx, w); err != nil {
		return err
	}

	fmt.Fprintln(w, "== restart: saga outcomes are read back from their streams")
	if err := b.close(ctx); err != nil {
		return err
	}
	if b, err = open(ctx, be, o); err != nil {
		return err
	}
	for _, id := range []string{"t1", "t2", "t3", "t4"} {
		st, err := b.transfers.Status(ctx, id)
		if err != nil {
			return err
		}
		fmt.Fprintf(w, "%s: %s (%d events in %s)\n", id, st.State, st.Version, st.Stream)
	}
	if err := b.printBalances(ctx, w); err != nil {
		return err
	}
	hold, stop := obs.Interrupted()
	defer stop()
	return o.Console(hold, console.Config{Journal: b.store.journal, Registry: b.system.Registry(), Projections: b.projections}, os.Stderr)
}

// describe prints a command as Type{Field:value}.
func describe(cmd AccountCommand) string {
	s := fmt.Sprintf("%T%+v", cmd, cmd)
	return strings.TrimPrefix(s, "main.")
}

// rootCause is the innermost error: the domain error of a rejection.
func rootCause(err error) error {
	for {
		next := errors.Unwrap(err)
		if next == nil {
			return err
		}
		err = next
	}
}

// domainReason trims a recorded rejection to its domain error.
func domainReason(reason string) string {
	for _, e := range []error{ErrNotActive, ErrInsufficientFunds, ErrNonZeroBalance, ErrInvalidAmount} {
		if strings.HasSuffix(reason, e.Error()) {
			return e.Error()
		}
	}
	return reason
}

func main() {
	dsn := flag.String("pg", "", "PostgreSQL connection string: keep everything there instead of in bbolt")
	obs.Main("banking", "directory for the journal", func(ctx context.Context, dir string, o *obs.Obs) error {
		be := boltBackend(dir)
		if *dsn != "" {
			be = postgresBackend(*dsn)
		}
		return runOn(ctx, os.Stdout, be, o)
	})
}
