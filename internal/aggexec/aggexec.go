// Package aggexec is the runtime's view of an aggregate.Definition: it
// runs the user's functions (Initial, Decide, Evolve, the state codec)
// with panics turned into *aggregate.PanicError and rejections into
// *aggregate.RejectedError, and resolves the definition's defaults
// (snapshot interval, state version).
//
// It lives here, not on aggregate.Definition, so that users see only what
// they need to define and test an aggregate. Package actor runs
// definitions through it; package aggregatetest uses it so that a
// scenario decides and folds exactly as the runtime does.
package aggexec

import (
	"encoding/json"
	"runtime/debug"

	"github.com/orchestrix/orchestrix/aggregate"
)

// Def is a definition as the runtime runs it. It embeds the definition,
// so its fields (Kind, Creates, Evolve, …) are read directly.
type Def[S, C, E any] struct {
	aggregate.Definition[S, C, E]
}

// Of returns the runtime view of d (a copy: later changes to d are not
// seen).
func Of[S, C, E any](d aggregate.Definition[S, C, E]) Def[S, C, E] {
	return Def[S, C, E]{Definition: d}
}

// Execute decides cmd against state and folds the resulting events into
// it, returning the new state and the events. A rejection is returned as
// a *aggregate.RejectedError, a panic in Decide or Evolve as a
// *aggregate.PanicError. On error, state is returned unchanged and events
// is nil.
func (d *Def[S, C, E]) Execute(state S, cmd C) (next S, events []E, err error) {
	events, err = d.decide(state, cmd)
	if err != nil {
		return state, nil, err
	}
	next, err = d.Fold(state, events...)
	if err != nil {
		return state, nil, err
	}
	return next, events, nil
}

func (d *Def[S, C, E]) decide(state S, cmd C) (events []E, err error) {
	defer func() {
		if r := recover(); r != nil {
			events, err = nil, PanicError("Decide", r)
		}
	}()
	events, err = d.Decide(state, cmd)
	if err != nil {
		return nil, &aggregate.RejectedError{Err: err}
	}
	return events, nil
}

// Fold applies events to state with Evolve, in order. A panic in Evolve
// is returned as a *aggregate.PanicError together with the unchanged
// state.
func (d *Def[S, C, E]) Fold(state S, events ...E) (next S, err error) {
	defer func() {
		if r := recover(); r != nil {
			next, err = state, PanicError("Evolve", r)
		}
	}()
	next = state
	for _, e := range events {
		next = d.Evolve(next, e)
	}
	return next, nil
}

// InitialState returns Initial(id), turning a panic into a
// *aggregate.PanicError.
func (d *Def[S, C, E]) InitialState(id string) (s S, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = PanicError("Initial", r)
		}
	}()
	return d.Initial(id), nil
}

// EncodeSnapshot encodes state with EncodeState, or JSON when unset.
func (d *Def[S, C, E]) EncodeSnapshot(state S) (data []byte, err error) {
	defer func() {
		if r := recover(); r != nil {
			data, err = nil, PanicError("EncodeState", r)
		}
	}()
	if d.EncodeState != nil {
		return d.EncodeState(state)
	}
	return json.Marshal(state)
}

// DecodeSnapshot decodes state with DecodeState, or JSON when unset.
func (d *Def[S, C, E]) DecodeSnapshot(data []byte) (state S, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = PanicError("DecodeState", r)
		}
	}()
	if d.DecodeState != nil {
		return d.DecodeState(data)
	}
	err = json.Unmarshal(data, &state)
	return state, err
}

// SnapshotInterval returns the effective snapshot interval: SnapshotEvery,
// aggregate.DefaultSnapshotEvery when it is zero, or 0 when snapshots by
// count are disabled.
func (d *Def[S, C, E]) SnapshotInterval() int {
	switch {
	case d.SnapshotEvery == 0:
		return aggregate.DefaultSnapshotEvery
	case d.SnapshotEvery < 0:
		return 0
	}
	return d.SnapshotEvery
}

// SchemaVersion returns the effective StateVersion (1 when zero).
func (d *Def[S, C, E]) SchemaVersion() int {
	if d.StateVersion <= 0 {
		return 1
	}
	return d.StateVersion
}

// PanicError returns the *aggregate.PanicError for a panic with value v
// in the user function fn, with the current goroutine's stack.
func PanicError(fn string, v any) *aggregate.PanicError {
	return &aggregate.PanicError{Func: fn, Value: v, Stack: debug.Stack()}
}
