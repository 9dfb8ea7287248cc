package main

import (
	"context"

	"github.com/orchestrix/orchestrix/saga"
)

// Replenishment is the state of the replenishment process of one SKU.
type Replenishment struct {
	Available int // units on the shelf, as the inventory events say
	OnOrder   int // units reordered and not yet restocked
	Reorders  int // reorders sent
}

// replenishment is a process manager, one process per SKU, that follows
// the SKU's inventory events and tops its stock back up to the SKU's
// target (the stock of its first delivery) whenever a reservation takes
// it below. The supplier is the inventory aggregate's Restock command.
//
// It reacts to events instead of driving steps: a reservation, a release
// and a delivery may come in any order, and the process's state (what is
// on the shelf and on order) decides what to do. A reorder carries the
// process's deterministic command id, so a reservation handled again
// after a crash does not reorder twice.
func (s *shop) replenishment() *saga.Process[Replenishment] {
	p := saga.NewProcess[Replenishment]("replenish")
	target := func(pc *saga.ProcessContext[Replenishment]) int { return targets[pc.ID] }

	saga.On(p, saga.BySubject[Restocked], // one process per SKU
		func(_ context.Context, pc *saga.ProcessContext[Replenishment], e Restocked) error {
			pc.State.Available += e.Qty
			pc.State.OnOrder = max(pc.State.OnOrder-e.Qty, 0)
			return nil
		}, saga.Starts())
	saga.On(p, saga.BySubject[Released],
		func(_ context.Context, pc *saga.ProcessContext[Replenishment], e Released) error {
			pc.State.Available += e.Qty
			return nil
		})
	saga.On(p, saga.BySubject[Reserved],
		func(ctx context.Context, pc *saga.ProcessContext[Replenishment], e Reserved) error {
			st := &pc.State
			st.Available -= e.Qty
			short := target(pc) - st.Available - st.OnOrder
			if short <= 0 {
				return nil
			}
			if _, err := s.inventory.Send(ctx, pc.ID, Restock{Qty: short}, pc.SendOptions("reorder")...); err != nil {
				return err
			}
			st.OnOrder += short
			st.Reorders++
			return nil
		})
	return p
}

// targets is the stock each SKU is kept at.
var targets = map[string]int{"book": 10, "lamp": 1}
