// Package protosys lets orchestrix's own packages (projection, saga and,
// later, cluster) reach the protoactor-go actor system that runs under an
// actor.System, without protoactor appearing in any public API: users pass
// an *actor.System, and what runs underneath can change without breaking
// them.
//
// Package actor sets Of when it is initialised; every package that accepts
// an *actor.System imports actor, so Of is set before it can be called.
package protosys

import proto "github.com/asynkron/protoactor-go/actor"

// Of returns the protoactor-go actor system under sys, which must be a
// non-nil *actor.System. It is set by package actor.
var Of func(sys any) *proto.ActorSystem
