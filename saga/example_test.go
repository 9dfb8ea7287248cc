package saga_test

import (
	"context"
	"fmt"

	"github.com/orchestrix/orchestrix/actor"
	memjournal "github.com/orchestrix/orchestrix/journal/mem"
	"github.com/orchestrix/orchestrix/projection"
	"github.com/orchestrix/orchestrix/saga"
)

// A transfer between two accounts: debit one, credit the other, and
// reverse the debit when the credit is refused.
func Example() {
	ctx := context.Background()
	j, _ := memjournal.New(memjournal.Config{})
	defer j.Close()
	sys, err := actor.NewSystem(actor.Config{Journal: j})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer sys.Shutdown(ctx)
	accounts, _ := actor.Register(sys, Accounts)
	accounts.Send(ctx, "alice", Open{Balance: 100})
	accounts.Send(ctx, "bob", Open{})
	accounts.Send(ctx, "frozen", Open{NoCredit: true})

	runner, err := saga.NewRunner(saga.Config{Journal: j, Registry: sys.Registry(), Checkpoints: projection.NewMemCheckpoints()})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer runner.Close()
	transfers, err := saga.Register(runner, saga.New[Transfer]("transfer").
		Step("debit",
			saga.Command(accounts, func(t Transfer) (string, AccountCommand) { return t.From, Withdraw{t.Amount} }),
			saga.Command(accounts, func(t Transfer) (string, AccountCommand) { return t.From, Refund{t.Amount} })).
		Step("credit",
			saga.Command(accounts, func(t Transfer) (string, AccountCommand) { return t.To, Deposit{t.Amount} }), nil))
	if err != nil {
		fmt.Println(err)
		return
	}

	transfers.Begin(ctx, "t1", Transfer{From: "alice", To: "bob", Amount: 30})
	transfers.Begin(ctx, "t2", Transfer{From: "alice", To: "frozen", Amount: 20})
	for _, id := range []string{"t1", "t2"} {
		st, err := transfers.Wait(ctx, id, saga.Finished)
		if err != nil {
			fmt.Println(err)
			return
		}
		fmt.Printf("%s: %s, done %v, undone %v\n", id, st.State, st.Done, st.Undone)
		if st.Failure != nil {
			fmt.Printf("  because step %q failed: %s\n", st.Failure.Step, st.Failure.Reason)
		}
	}
	for _, id := range []string{"alice", "bob", "frozen"} {
		s, _, _ := accounts.State(ctx, id)
		fmt.Println(id, s.Balance)
	}
	// Output:
	// t1: completed, done [debit credit], undone []
	// t2: compensated, done [debit], undone [debit]
	//   because step "credit" failed: actor: account "frozen" command 482bab5d-231b-56bf-b2da-801b47269a50: command rejected: account accepts no credits
	// alice 70
	// bob 30
	// frozen 0
}

// A process manager: every account that receives 100 in deposits gets a
// bonus of 10, once, whatever order its deposits arrive in.
func ExampleRegisterProcess() {
	ctx := context.Background()
	j, _ := memjournal.New(memjournal.Config{})
	defer j.Close()
	sys, err := actor.NewSystem(actor.Config{Journal: j})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer sys.Shutdown(ctx)
	accounts, _ := actor.Register(sys, Accounts)
	runner, err := saga.NewRunner(saga.Config{Journal: j, Registry: sys.Registry(), Checkpoints: projection.NewMemCheckpoints()})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer runner.Close()

	type Progress struct{ Deposited int64 }
	p := saga.NewProcess[Progress]("bonus")
	saga.On(p,
		// Correlate: one process per account (the deposit's subject).
		saga.BySubject[Deposited],
		func(ctx context.Context, pc *saga.ProcessContext[Progress], e Deposited) error {
			pc.State.Deposited += e.Amount
			if pc.State.Deposited < 100 {
				return nil
			}
			// A redelivered event re-sends with the same command id: the
			// account applies the bonus once.
			if _, err := accounts.Send(ctx, pc.ID, Refund{Amount: 10}, pc.SendOptions("bonus")...); err != nil {
				return err
			}
			pc.Complete()
			return nil
		})
	bonus, err := saga.RegisterProcess(runner, p)
	if err != nil {
		fmt.Println(err)
		return
	}

	accounts.Send(ctx, "alice", Open{})
	for _, amount := range []int64{40, 70, 25} {
		accounts.Send(ctx, "alice", Deposit{Amount: amount})
	}
	st, err := bonus.Wait(ctx, "alice", func(st saga.ProcessStatus[Progress]) bool { return st.Done })
	if err != nil {
		fmt.Println(err)
		return
	}
	bonus.CaughtUp(ctx) // the third deposit is ignored: the process is done
	s, _, _ := accounts.State(ctx, "alice")
	fmt.Printf("process done after %d events, %d deposited; balance %d\n", st.Version, st.State.Deposited, s.Balance)
	// Output:
	// process done after 2 events, 110 deposited; balance 145
}
