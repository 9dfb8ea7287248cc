package projection_test

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/orchestrix/orchestrix"
	"github.com/orchestrix/orchestrix/journal"
	"github.com/orchestrix/orchestrix/journal/mem"
	"github.com/orchestrix/orchestrix/projection"
)

type MoneyDeposited struct {
	Amount int `json:"amount"`
}

func Example() {
	ctx := context.Background()
	reg := orchestrix.NewRegistry()
	if err := orchestrix.Register[MoneyDeposited](reg, "bank.MoneyDeposited"); err != nil {
		fmt.Println(err)
		return
	}
	j, err := mem.New(mem.Config{})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer j.Close()
	deposit := func(account string, amount int) {
		env, err := reg.Marshal(MoneyDeposited{Amount: amount})
		if err != nil {
			fmt.Println(err)
			return
		}
		env.Source, env.Subject = "/bank", account
		if _, err := j.Append(ctx, "account-"+account, journal.Any, []orchestrix.Envelope{env}); err != nil {
			fmt.Println(err)
		}
	}
	deposit("alice", 100)
	deposit("bob", 20)

	// The read model: balance per account, filled by a typed route.
	var mu sync.Mutex
	balances := map[string]int{}
	router := projection.NewRouter()
	projection.On(router, func(_ context.Context, ev projection.Event, e MoneyDeposited) error {
		mu.Lock()
		defer mu.Unlock()
		balances[ev.Envelope.Subject] += e.Amount
		return nil
	})

	m, err := projection.NewManager(projection.Config{
		Journal: j, Registry: reg, Checkpoints: projection.NewMemCheckpoints(),
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer m.Close()
	if err := m.Add(ctx, projection.Projection{
		Name:    "balances",
		Handler: router,
		Filter:  projection.Filter{Kinds: []string{"account"}},
	}); err != nil {
		fmt.Println(err)
		return
	}

	// Catch up, then follow a live deposit.
	waitCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	caughtUp := func(pos uint64) func(projection.Status) bool {
		return func(s projection.Status) bool { return s.Live && s.Position == pos }
	}
	if _, err := m.Wait(waitCtx, "balances", caughtUp(2)); err != nil {
		fmt.Println(err)
		return
	}
	deposit("alice", 5)
	st, err := m.Wait(waitCtx, "balances", caughtUp(3))
	if err != nil {
		fmt.Println(err)
		return
	}
	mu.Lock()
	fmt.Println("alice:", balances["alice"], "bob:", balances["bob"])
	mu.Unlock()
	fmt.Println("state:", st.State, "position:", st.Position, "lag:", st.Lag)
	// Output:
	// alice: 105 bob: 20
	// state: running position: 3 lag: 0
}
