package telemetry

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"reflect"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
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

// Tracer returns the tracer Orchestrix components start their spans with:
// tp's tracer for ScopeName, or the global provider's
// (otel.GetTracerProvider) when tp is nil. Without an OpenTelemetry SDK
// installed, the global provider's spans are non-recording and cost next
// to nothing. Components call Tracer once and keep the result.
func Tracer(tp trace.TracerProvider) trace.Tracer {
	if tp == nil {
		tp = otel.GetTracerProvider()
	}
	return tp.Tracer(ScopeName)
}

// StartCommandSpan starts the SpanCommand span of a command to aggregate
// aggregateID of kind, as a child of the span in ctx. body is the command;
// its Go type names the orchestrix.command.type attribute. Attributes are
// computed only when the span is recording. End it with EndCommandSpan.
func StartCommandSpan(ctx context.Context, tr trace.Tracer, kind, aggregateID, commandID string, body any) (context.Context, trace.Span) {
	ctx, span := tr.Start(ctx, SpanCommand)
	if span.IsRecording() {
		span.SetAttributes(
			AttrAggregateKind.String(kind),
			AttrAggregateID.String(aggregateID),
			AttrCommandID.String(commandID),
			AttrCommandType.String(typeName(body)),
		)
	}
	return ctx, span
}

// EndCommandSpan records the command's outcome (attribute
// orchestrix.command.outcome; error status and the error as a span event
// when err is not nil) and ends span.
func EndCommandSpan(span trace.Span, outcome Outcome, err error) {
	if span.IsRecording() {
		if outcome == OutcomeUnset {
			outcome = OutcomeOf(err)
		}
		span.SetAttributes(AttrOutcome.String(outcome.String()))
		if err != nil {
			span.RecordError(err)
			span.SetStatus(codes.Error, err.Error())
		}
	}
	span.End()
}

// StartCommitSpan starts the SpanJournalCommit span of one journal commit
// of events events. Journal backends call it around each transaction:
//
//	ctx, span := telemetry.StartCommitSpan(ctx, tr, n, links...)
//	err := commit(ctx)
//	telemetry.EndSpan(span, err)
//
// The span is a child of the span in ctx (the runtime puts the span
// context of the batch's first command into the context of
// Journal.Append). A backend that commits the appends of many callers in
// one transaction starts the span from its own context and passes one
// link per append (LinkFromContext of each Append's ctx, or
// LinkFromTraceParent of the envelopes).
func StartCommitSpan(ctx context.Context, tr trace.Tracer, events int, links ...trace.Link) (context.Context, trace.Span) {
	ctx, span := tr.Start(ctx, SpanJournalCommit, trace.WithLinks(links...))
	if span.IsRecording() {
		span.SetAttributes(AttrEvents.Int(events))
	}
	return ctx, span
}

// StartProjectionSpan starts the SpanProjectionBatch span of projection
// handling events events at global positions from through to. Its parent
// is the span in ctx (usually none: a projection runs on its own); pass
// one link per distinct traceparent of the batch's events
// (LinkFromTraceParent) so the batch is reachable from the commands that
// wrote them. End it with EndSpan.
func StartProjectionSpan(ctx context.Context, tr trace.Tracer, projection string, from, to uint64, events int, links ...trace.Link) (context.Context, trace.Span) {
	ctx, span := tr.Start(ctx, SpanProjectionBatch, trace.WithLinks(links...))
	if span.IsRecording() {
		span.SetAttributes(
			AttrProjection.String(projection),
			AttrFromPosition.Int64(clampInt64(from)),
			AttrToPosition.Int64(clampInt64(to)),
			AttrEvents.Int(events),
		)
	}
	return ctx, span
}

// StartSagaStepSpan starts the SpanSagaStep span of step of saga. A saga
// handling an event makes the step part of the event's trace by deriving
// ctx with ContextFromTraceParent(ctx, event.TraceParent) first; commands
// sent with the returned context then become children of the step. End
// it with EndSpan.
func StartSagaStepSpan(ctx context.Context, tr trace.Tracer, saga, step string) (context.Context, trace.Span) {
	ctx, span := tr.Start(ctx, SpanSagaStep)
	if span.IsRecording() {
		span.SetAttributes(AttrSaga.String(saga), AttrSagaStep.String(step))
	}
	return ctx, span
}

// EndSpan ends span, marking it failed with err (error status and the
// error recorded as a span event) when err is not nil.
func EndSpan(span trace.Span, err error) {
	if err != nil && span.IsRecording() {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
	}
	span.End()
}

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

// LinkFromContext returns a span link to the span context in ctx; ok is
// false when ctx carries none.
func LinkFromContext(ctx context.Context) (link trace.Link, ok bool) {
	sc := trace.SpanContextFromContext(ctx)
	if !sc.IsValid() {
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

func typeName(v any) string {
	if v == nil {
		return "<nil>"
	}
	return reflect.TypeOf(v).String()
}

func clampInt64(v uint64) int64 {
	if v > 1<<63-1 {
		return 1<<63 - 1
	}
	return int64(v)
}
