package actor

import (
	"context"
	"runtime/debug"

	"github.com/orchestrix/orchestrix"
	"github.com/orchestrix/orchestrix/aggregate"
	"github.com/orchestrix/orchestrix/journal"
)

// subjectCodec returns the registry's codec when it is subject-aware and
// the definition leaves state encoding to the runtime: snapshots are then
// encoded with it, for the aggregate id as subject, so that what it
// protects in events (for example personal data encrypted by package pii)
// is protected in snapshots too.
func (h *Handle[S, C, E]) subjectCodec() (orchestrix.SubjectCodec, bool) {
	if h.def.EncodeState != nil {
		return nil, false
	}
	sc, ok := h.sys.cfg.Registry.Codec().(orchestrix.SubjectCodec)
	return sc, ok
}

// encodeState encodes the state of aggregate id for a snapshot.
func (h *Handle[S, C, E]) encodeState(ctx context.Context, id string, state S) (data []byte, err error) {
	sc, ok := h.subjectCodec()
	if !ok {
		return h.def.EncodeSnapshot(state)
	}
	defer func() {
		if r := recover(); r != nil {
			data, err = nil, &aggregate.PanicError{Func: "EncodeState", Value: r, Stack: debug.Stack()}
		}
	}()
	return sc.EncodeFor(ctx, id, state)
}

// decodeState decodes a snapshot of the aggregate whose stream is stream.
func (h *Handle[S, C, E]) decodeState(ctx context.Context, stream string, data []byte) (state S, err error) {
	sc, ok := h.subjectCodec()
	if !ok {
		return h.def.DecodeSnapshot(data)
	}
	_, id, _ := journal.SplitStream(stream)
	defer func() {
		if r := recover(); r != nil {
			err = &aggregate.PanicError{Func: "DecodeState", Value: r, Stack: debug.Stack()}
		}
	}()
	err = sc.DecodeFor(ctx, id, data, &state)
	return state, err
}
