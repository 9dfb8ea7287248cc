package actor

import (
	"context"
	"errors"

	"github.com/orchestrix/orchestrix/aggregate"
	"github.com/orchestrix/orchestrix/internal/commandtap"
)

// This file is the seam the saga test kit plugs into
// (internal/commandtap): while a tap is attached, every command a handle
// sends is shown to it first, and it may answer instead of the aggregate.

// tapBox boxes the attached tap for an atomic pointer.
type tapBox struct{ t commandtap.Tap }

func init() {
	commandtap.Attach = func(sys any, t commandtap.Tap) error {
		s := sys.(*System)
		if t == nil {
			s.tap.Store(nil)
			return nil
		}
		if !s.tap.CompareAndSwap(nil, &tapBox{t: t}) {
			return errors.New("actor: a command tap is already attached to this system")
		}
		return nil
	}
}

// tapped shows cmd to the attached tap, if any. It reports whether the
// tap answered the command (then err is the outcome), or whether the
// command goes on to its aggregate.
func (h *Handle[S, C, E]) tapped(ctx context.Context, cmd aggregate.Command[C], told bool) (answered bool, err error) {
	b := h.sys.tap.Load()
	if b == nil {
		return false, nil
	}
	pass, err := b.t.Command(ctx, commandtap.Command{
		Kind: h.kind, AggregateID: cmd.AggregateID, ID: cmd.ID, CorrelationID: cmd.CorrelationID,
		Body: cmd.Body, Told: told,
	})
	return !pass, err
}
