package telemetry

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
)

// ScopeName is the instrumentation scope of every Orchestrix span.
const ScopeName = "github.com/orchestrix/orchestrix"

// Span names.
const (
	// SpanCommand covers one command from Send to its answer.
	SpanCommand = "orchestrix.command"
	// SpanJournalCommit covers one journal commit (one transaction).
	SpanJournalCommit = "orchestrix.journal.commit"
	// SpanProjectionBatch covers one batch of events handled by a
	// projection, up to its checkpoint.
	SpanProjectionBatch = "orchestrix.projection.batch"
	// SpanSagaStep covers one saga step: an event handled by a saga
	// instance and the commands it sends.
	SpanSagaStep = "orchestrix.saga.step"
)

// Span attribute keys.
const (
	AttrAggregateKind = attribute.Key("orchestrix.aggregate.kind")
	AttrAggregateID   = attribute.Key("orchestrix.aggregate.id")
	AttrCommandType   = attribute.Key("orchestrix.command.type")
	AttrCommandID     = attribute.Key("orchestrix.command.id")
	AttrOutcome       = attribute.Key("orchestrix.command.outcome")
	AttrEvents        = attribute.Key("orchestrix.events")
	AttrProjection    = attribute.Key("orchestrix.projection")
	AttrFromPosition  = attribute.Key("orchestrix.position.from")
	AttrToPosition    = attribute.Key("orchestrix.position.to")
	AttrSaga          = attribute.Key("orchestrix.saga")
	AttrSagaStep      = attribute.Key("orchestrix.saga.step")
)

// ErrInvalidTraceParent means a string is not a valid W3C traceparent.
var ErrInvalidTraceParent = errors.New("telemetry: invalid traceparent")

// TraceParent returns the W3C traceparent of the span context in ctx, or
// "" when ctx carries none. The runtime writes it into every event of a
// command (Envelope.TraceParent).
func TraceParent(ctx context.Context) string {
	return FormatTraceParent(trace.SpanContextFromContext(ctx))
}

// FormatTraceParent formats sc as a version-00 W3C traceparent
// ("00-<trace id>-<span id>-<flags>"), or returns "" when sc is not
// valid. The trace state is not part of a traceparent and is dropped.
func FormatTraceParent(sc trace.SpanContext) string {
	if !sc.IsValid() {
		return ""
	}
	var b [55]byte
	tid, sid := sc.TraceID(), sc.SpanID()
	b[0], b[1], b[2] = '0', '0', '-'
	hex.Encode(b[3:35], tid[:])
	b[35] = '-'
	hex.Encode(b[36:52], sid[:])
	b[52] = '-'
	hex.Encode(b[53:55], []byte{byte(sc.TraceFlags())})
	return string(b[:])
}

// ParseTraceParent parses a W3C traceparent into a remote span context.
// Version 00 must be exactly 55 characters; later versions may carry
// more fields after a '-', which are ignored; version ff, upper-case hex
// and all-zero ids are invalid. Only the sampled flag is kept. The error
// matches ErrInvalidTraceParent.
func ParseTraceParent(tp string) (trace.SpanContext, error) {
	fail := func(reason string) (trace.SpanContext, error) {
		return trace.SpanContext{}, fmt.Errorf("%w: %q: %s", ErrInvalidTraceParent, tp, reason)
	}
	if len(tp) < 55 {
		return fail("too short")
	}
	var ver [1]byte
	if !decodeLowerHex(ver[:], tp[0:2]) {
		return fail("bad version")
	}
	switch {
	case ver[0] == 0xff:
		return fail("version ff")
	case ver[0] == 0 && len(tp) != 55:
		return fail("version 00 must be 55 characters")
	case len(tp) > 55 && tp[55] != '-':
		return fail("bad field separator")
	}
	if tp[2] != '-' || tp[35] != '-' || tp[52] != '-' {
		return fail("bad field separator")
	}
	var tid trace.TraceID
	var sid trace.SpanID
	var flags [1]byte
	if !decodeLowerHex(tid[:], tp[3:35]) || !tid.IsValid() {
		return fail("bad trace id")
	}
	if !decodeLowerHex(sid[:], tp[36:52]) || !sid.IsValid() {
		return fail("bad parent id")
	}
	if !decodeLowerHex(flags[:], tp[53:55]) {
		return fail("bad flags")
	}
	return trace.NewSpanContext(trace.SpanContextConfig{
		TraceID:    tid,
		SpanID:     sid,
		TraceFlags: trace.TraceFlags(flags[0]) & trace.FlagsSampled,
		Remote:     true,
	}), nil
}

// ContextFromTraceParent returns ctx carrying the remote span context of
// traceparent tp, so that spans started from it join tp's trace as its
// children. An empty or invalid tp returns ctx unchanged. Sagas and
// projections call it with an event's TraceParent.
func ContextFromTraceParent(ctx context.Context, tp string) context.Context {
	if tp == "" {
		return ctx
	}
	sc, err := ParseTraceParent(tp)
	if err != nil {
		return ctx
	}
	return trace.ContextWithRemoteSpanContext(ctx, sc)
}

// LinkFromTraceParent returns a span link to traceparent tp; ok is false
// when tp is empty or invalid.
func LinkFromTraceParent(tp string) (link trace.Link, ok bool) {
	if tp == "" {
		return trace.Link{}, false
	}
	sc, err := ParseTraceParent(tp)
	if err != nil {
		return trace.Link{}, false
	}
	return trace.Link{SpanContext: sc}, true
}

// decodeLowerHex decodes s, which must be exactly 2*len(dst) lower-case
// hex digits, into dst.
func decodeLowerHex(dst []byte, s string) bool {
	if len(s) != 2*len(dst) {
		return false
	}
	for i := range dst {
		hi, ok1 := lowerHexDigit(s[2*i])
		lo, ok2 := lowerHexDigit(s[2*i+1])
		if !ok1 || !ok2 {
			return false
		}
		dst[i] = hi<<4 | lo
	}
	return true
}

func lowerHexDigit(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	}
	return 0, false
}
