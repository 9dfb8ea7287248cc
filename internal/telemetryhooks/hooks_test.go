package telemetryhooks_test

import (
	"context"
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/orchestrix/orchestrix/internal/telemetryhooks"
	"github.com/orchestrix/orchestrix/telemetry"
)

const validTP = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

func recorder(t *testing.T) (*tracetest.SpanRecorder, trace.Tracer) {
	t.Helper()
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec), sdktrace.WithSampler(sdktrace.AlwaysSample()))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	return rec, telemetryhooks.Tracer(tp)
}

func attrs(s sdktrace.ReadOnlySpan) map[string]string {
	out := map[string]string{}
	for _, kv := range s.Attributes() {
		out[string(kv.Key)] = kv.Value.String()
	}
	return out
}

func TestContextFromTraceParent_SpanJoinsTrace(t *testing.T) {
	rec, tr := recorder(t)
	ctx := telemetry.ContextFromTraceParent(context.Background(), validTP)
	assert.Equal(t, validTP, telemetry.TraceParent(ctx))
	_, span := telemetryhooks.StartSagaStepSpan(ctx, tr, "shipping", "reserve")
	telemetryhooks.EndSpan(span, nil)

	spans := rec.Ended()
	require.Len(t, spans, 1)
	s := spans[0]
	assert.Equal(t, telemetry.SpanSagaStep, s.Name())
	assert.Equal(t, "4bf92f3577b34da6a3ce929d0e0e4736", s.SpanContext().TraceID().String())
	assert.Equal(t, "00f067aa0ba902b7", s.Parent().SpanID().String())
	assert.Equal(t, map[string]string{"orchestrix.saga": "shipping", "orchestrix.saga.step": "reserve"}, attrs(s))
	assert.Equal(t, codes.Unset, s.Status().Code)
}

func TestStartCommandSpan_RecordsAttributesAndOutcome(t *testing.T) {
	rec, tr := recorder(t)
	type PlaceOrder struct{}
	ctx, parent := tr.Start(context.Background(), "caller")
	cctx, span := telemetryhooks.StartCommandSpan(ctx, tr, "order", "o-1", "cmd-1", PlaceOrder{})
	assert.Equal(t, telemetry.FormatTraceParent(span.SpanContext()), telemetry.TraceParent(cctx))
	telemetryhooks.EndCommandSpan(span, telemetry.OutcomeUnset, errors.New("refused"))
	parent.End()

	spans := rec.Ended()
	require.Len(t, spans, 2)
	s := spans[0]
	assert.Equal(t, telemetry.SpanCommand, s.Name())
	assert.Equal(t, parent.SpanContext().SpanID(), s.Parent().SpanID())
	assert.Equal(t, map[string]string{
		"orchestrix.aggregate.kind": "order", "orchestrix.aggregate.id": "o-1",
		"orchestrix.command.id": "cmd-1", "orchestrix.command.type": "telemetryhooks_test.PlaceOrder",
		"orchestrix.command.outcome": "error",
	}, attrs(s))
	assert.Equal(t, codes.Error, s.Status().Code)
	assert.Equal(t, "refused", s.Status().Description)
}

func TestStartCommitSpan_ChildWithLinks(t *testing.T) {
	rec, tr := recorder(t)
	ctx := telemetry.ContextFromTraceParent(context.Background(), validTP)
	other := "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	l1, ok := telemetry.LinkFromTraceParent(other)
	require.True(t, ok)
	l2, ok := telemetryhooks.LinkFromContext(ctx)
	require.True(t, ok)
	_, none := telemetryhooks.LinkFromContext(context.Background())
	assert.False(t, none)

	_, span := telemetryhooks.StartCommitSpan(ctx, tr, 12, l1, l2)
	telemetryhooks.EndSpan(span, errors.New("fsync failed"))

	spans := rec.Ended()
	require.Len(t, spans, 1)
	s := spans[0]
	assert.Equal(t, telemetry.SpanJournalCommit, s.Name())
	assert.Equal(t, "00f067aa0ba902b7", s.Parent().SpanID().String())
	assert.Equal(t, "12", attrs(s)["orchestrix.events"])
	require.Len(t, s.Links(), 2)
	assert.Equal(t, "0af7651916cd43dd8448eb211c80319c", s.Links()[0].SpanContext.TraceID().String())
	assert.Equal(t, codes.Error, s.Status().Code)
}

func TestStartProjectionSpan_Attributes(t *testing.T) {
	rec, tr := recorder(t)
	l, _ := telemetry.LinkFromTraceParent(validTP)
	_, span := telemetryhooks.StartProjectionSpan(context.Background(), tr, "balances", 11, 20, 10, l)
	telemetryhooks.EndSpan(span, nil)
	spans := rec.Ended()
	require.Len(t, spans, 1)
	assert.Equal(t, telemetry.SpanProjectionBatch, spans[0].Name())
	assert.False(t, spans[0].Parent().IsValid())
	assert.Equal(t, map[string]string{
		"orchestrix.projection": "balances", "orchestrix.position.from": "11",
		"orchestrix.position.to": "20", "orchestrix.events": "10",
	}, attrs(spans[0]))
	assert.Len(t, spans[0].Links(), 1)
}

func TestTracer_Noop_PropagatesCallerSpanContext(t *testing.T) {
	tr := telemetryhooks.Tracer(noop.NewTracerProvider())
	ctx := telemetry.ContextFromTraceParent(context.Background(), validTP)
	_, span := telemetryhooks.StartCommandSpan(ctx, tr, "k", "id", "c", nil)
	assert.False(t, span.IsRecording())
	assert.Equal(t, validTP, telemetry.FormatTraceParent(span.SpanContext()))
	telemetryhooks.EndCommandSpan(span, telemetry.OutcomeOK, nil)
}

// BenchmarkCommandSpan measures what the runtime adds to each Send for
// tracing: start, traceparent, end.
func BenchmarkCommandSpan(b *testing.B) {
	sdk := sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.AlwaysSample()))
	b.Cleanup(func() { _ = sdk.Shutdown(context.Background()) })
	for _, tc := range []struct {
		name string
		tp   trace.TracerProvider
	}{{"global-off", nil}, {"noop", noop.NewTracerProvider()}, {"sdk", sdk}} {
		b.Run(tc.name, func(b *testing.B) {
			tr := telemetryhooks.Tracer(tc.tp)
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				_, span := telemetryhooks.StartCommandSpan(ctx, tr, "k", "id", "c", struct{}{})
				_ = telemetry.FormatTraceParent(span.SpanContext())
				telemetryhooks.EndCommandSpan(span, telemetry.OutcomeOK, nil)
			}
		})
	}
}
