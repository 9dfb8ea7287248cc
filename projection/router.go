package projection

import (
	"context"
	"fmt"
	"reflect"
)

// Router is a Handler that dispatches each event to a typed function
// chosen by the Go type of its decoded payload; register them with On.
// An event whose payload type has no function is an error matching
// ErrNoRoute (exclude such events with the projection's Filter instead).
//
// Register every route before the projection starts; a Router is not
// safe for registration concurrent with Handle.
type Router struct {
	routes map[reflect.Type]func(ctx context.Context, ev Event) error
}

// NewRouter returns a Router without routes.
func NewRouter() *Router {
	return &Router{routes: make(map[reflect.Type]func(context.Context, Event) error)}
}

// On routes events whose decoded payload is a T to fn, which receives the
// payload already typed. A later On for the same T replaces the earlier.
func On[T any](r *Router, fn func(ctx context.Context, ev Event, payload T) error) {
	r.routes[reflect.TypeFor[T]()] = func(ctx context.Context, ev Event) error {
		return fn(ctx, ev, ev.Data.(T))
	}
}

// Handle implements Handler: it calls the route of each event in order
// and stops at the first error.
func (r *Router) Handle(ctx context.Context, batch []Event) error {
	for _, ev := range batch {
		fn, ok := r.routes[reflect.TypeOf(ev.Data)]
		if !ok {
			return Permanent(fmt.Errorf("%w: %q (Go type %T) at position %d", ErrNoRoute, ev.Envelope.Type, ev.Data, ev.Position))
		}
		if err := fn(ctx, ev); err != nil {
			return err
		}
	}
	return nil
}
