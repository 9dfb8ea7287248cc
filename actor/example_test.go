package actor_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/orchestrix/orchestrix/actor"
	"github.com/orchestrix/orchestrix/aggregate"
	memjournal "github.com/orchestrix/orchestrix/journal/mem"
)

// A counter that refuses to go above a limit.
type Counter struct{ Value int }

type CounterCommand interface{ isCounterCommand() }
type Increment struct{ By int }

func (Increment) isCounterCommand() {}

type CounterEvent interface{ isCounterEvent() }
type Incremented struct{ By int }

func (Incremented) isCounterEvent() {}

var ErrLimit = errors.New("counter limit reached")

var Counters = aggregate.Definition[Counter, CounterCommand, CounterEvent]{
	Kind:    "counter",
	Initial: func(id string) Counter { return Counter{} },
	Decide: func(s Counter, c CounterCommand) ([]CounterEvent, error) {
		switch c := c.(type) {
		case Increment:
			if s.Value+c.By > 10 {
				return nil, ErrLimit
			}
			return []CounterEvent{Incremented{By: c.By}}, nil
		}
		return nil, fmt.Errorf("unknown command %T", c)
	},
	Evolve: func(s Counter, e CounterEvent) Counter {
		switch e := e.(type) {
		case Incremented:
			s.Value += e.By
		}
		return s
	},
	Events: []aggregate.EventType{aggregate.Event[Incremented]("example.counter.incremented")},
}

func Example() {
	ctx := context.Background()
	j, _ := memjournal.New(memjournal.Config{})
	sys, err := actor.NewSystem(actor.Config{Journal: j})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer sys.Shutdown(ctx)

	counters, err := actor.Register(sys, Counters)
	if err != nil {
		fmt.Println(err)
		return
	}

	res, _ := counters.Send(ctx, "c1", Increment{By: 4})
	fmt.Println("version", res.Version, "events", res.Events)
	res, _ = counters.Send(ctx, "c1", Increment{By: 5}, actor.WithCommandID("inc-5"))
	fmt.Println("version", res.Version)

	// A retry with the same command id is not executed again.
	res, _ = counters.Send(ctx, "c1", Increment{By: 5}, actor.WithCommandID("inc-5"))
	fmt.Println("duplicate", res.Duplicate, "version", res.Version)

	_, err = counters.Send(ctx, "c1", Increment{By: 2})
	fmt.Println("rejected:", errors.Is(err, ErrLimit))

	state, version, _ := counters.State(ctx, "c1")
	fmt.Println("state", state.Value, "at version", version, "in stream", counters.Stream("c1"))

	past, _, _ := counters.StateAt(ctx, "c1", 1)
	fmt.Println("at version 1:", past.Value)
	// Output:
	// version 1 events [{4}]
	// version 2
	// duplicate true version 2
	// rejected: true
	// state 9 at version 2 in stream counter-c1
	// at version 1: 4
}
