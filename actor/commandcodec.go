package actor

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/orchestrix/orchestrix"
	"github.com/orchestrix/orchestrix/aggregate"
)

// ErrUnknownCommandType means a command could not be encoded or decoded
// because its type is not one of the definition's registered command types
// (aggregate.Definition.Commands): encoding a command whose Go type is not
// listed, or decoding an envelope whose type name is not listed (including
// the name of an event type, or of another kind's command).
var ErrUnknownCommandType = errors.New("actor: unknown command type")

// EncodeCommand encodes cmd into the binary envelope form
// (orchestrix.Envelope.MarshalBinary) for sending it to another process:
// the envelope's ID is the command id, Subject the aggregate id, Type the
// registered command type name, Time the system clock's time, and the
// correlation id and traceparent are carried along. cmd.ID and
// cmd.AggregateID must be set (a command without id could not be
// deduplicated at the receiver).
//
// The definition must list the command's type in Commands; otherwise the
// error matches ErrUnknownCommandType. A definition without command types
// can still be used in one process (Send, Dispatch, Tell), just not
// encoded.
func (h *Handle[S, C, E]) EncodeCommand(ctx context.Context, cmd aggregate.Command[C]) ([]byte, error) {
	if cmd.ID == "" || cmd.AggregateID == "" {
		return nil, fmt.Errorf("%w: encoding a %s command needs both a command id and an aggregate id", ErrInvalidID, h.kind)
	}
	if err := h.checkIDs(cmd); err != nil {
		return nil, err
	}
	name, ok := h.def.CommandTypeName(cmd.Body)
	if !ok {
		if len(h.def.Commands) == 0 {
			return nil, fmt.Errorf("%w: aggregate kind %q lists no command types (Definition.Commands)", ErrUnknownCommandType, h.kind)
		}
		return nil, fmt.Errorf("%w: %T is not listed in the Commands of aggregate kind %q", ErrUnknownCommandType, any(cmd.Body), h.kind)
	}
	scratch := getScratch()
	defer putScratch(scratch)
	env, payload, err := h.sys.cfg.Registry.AppendMarshalFor(ctx, (*scratch)[:0], cmd.AggregateID, cmd.Body)
	*scratch = payload
	if err != nil {
		return nil, fmt.Errorf("actor: encoding %s command %q: %w", h.kind, name, err)
	}
	env.ID = cmd.ID
	env.Source = h.sys.cfg.Source
	env.Time = h.sys.cfg.Clock.Now()
	env.CorrelationID = cmd.CorrelationID
	env.TraceParent = cmd.TraceParent
	return marshalEnvelope(env)
}

// marshalEnvelope is env.MarshalBinary into one allocation of the exact
// size: env.Data may point into a scratch buffer, which the result does
// not share.
func marshalEnvelope(env orchestrix.Envelope) ([]byte, error) {
	if err := env.Validate(); err != nil {
		return nil, err
	}
	return env.AppendBinary(nil)
}

// scratchPool holds the buffers the wire encoders (EncodeCommand, a
// served command's reply) write a payload into before it is copied into
// the envelope's bytes: one allocation per encoding instead of two.
// Buffers that grew past maxScratch are dropped rather than kept.
var scratchPool = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

const maxScratch = 64 << 10

func getScratch() *[]byte { return scratchPool.Get().(*[]byte) }

func putScratch(b *[]byte) {
	if cap(*b) <= maxScratch {
		*b = (*b)[:0]
		scratchPool.Put(b)
	}
}

// DecodeCommand decodes bytes written by EncodeCommand (by this or another
// process with the same definition) back into the typed command. An
// envelope whose type name is not one of the definition's command types
// yields an error matching ErrUnknownCommandType; malformed bytes match
// orchestrix.ErrCorrupt, a payload that does not decode
// orchestrix.ErrInvalidEnvelope; ids
// that this system would refuse match ErrInvalidID. Payloads written at an
// older schema version go through the registry's upcasters.
func (h *Handle[S, C, E]) DecodeCommand(ctx context.Context, data []byte) (aggregate.Command[C], error) {
	return h.decodeCommand(ctx, data, false)
}

// decodeCommand is DecodeCommand; with owned set, data belongs to the
// caller alone and is never modified again (a buffer the wire decoder
// allocated for this command), so the command's strings may point into it
// instead of into a copy.
func (h *Handle[S, C, E]) decodeCommand(ctx context.Context, data []byte, owned bool) (aggregate.Command[C], error) {
	var cmd aggregate.Command[C]
	var env orchestrix.Envelope
	var err error
	if owned {
		err = env.UnmarshalBinaryBorrowed(data)
	} else {
		err = env.UnmarshalBinary(data)
	}
	if err != nil {
		return cmd, fmt.Errorf("actor: decoding a %s command: %w", h.kind, err)
	}
	if !h.def.HasCommandType(env.Type) {
		return cmd, fmt.Errorf("%w: %q is not a command type of aggregate kind %q", ErrUnknownCommandType, env.Type, h.kind)
	}
	v, err := h.sys.cfg.Registry.UnmarshalFor(ctx, env)
	if err != nil {
		return cmd, fmt.Errorf("actor: decoding %s command %q: %w", h.kind, env.Type, err)
	}
	body, ok := v.(C)
	if !ok {
		// Validate checked that every listed type is a C; a registry
		// shared with a conflicting registration could still get here.
		return cmd, fmt.Errorf("%w: %q decoded to %T, not a command of aggregate kind %q", ErrUnknownCommandType, env.Type, v, h.kind)
	}
	cmd = aggregate.Command[C]{ID: env.ID, AggregateID: env.Subject, Body: body,
		CorrelationID: env.CorrelationID, TraceParent: env.TraceParent}
	if cmd.ID == "" || cmd.AggregateID == "" {
		return aggregate.Command[C]{}, fmt.Errorf("%w: decoded %s command lacks a command id or aggregate id", ErrInvalidID, h.kind)
	}
	if err := h.checkIDs(cmd); err != nil {
		return aggregate.Command[C]{}, err
	}
	return cmd, nil
}
