// Package globaltest holds the tests of telemetryhooks.Tracer with the
// global OpenTelemetry provider. They install a provider globally, which
// cannot be undone, so they live in a test binary of their own.
package globaltest_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/orchestrix/orchestrix/internal/telemetryhooks"
	"github.com/orchestrix/orchestrix/telemetry"
)

const validTP = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

// One test, in this order: the global provider can be installed only once.
func TestTracer_GlobalProvider_FreeUntilAnSDKIsInstalled(t *testing.T) {
	tr := telemetryhooks.Tracer(nil)
	ctx := context.Background()

	// No SDK: the span does nothing, costs no allocation, and ctx is
	// returned as it was.
	allocs := testing.AllocsPerRun(100, func() {
		sctx, span := telemetryhooks.StartCommandSpan(ctx, tr, "k", "id", "c", nil)
		if sctx != ctx || span.IsRecording() || span.SpanContext().IsValid() {
			t.Fatal("the span of an idle global provider must do nothing")
		}
		telemetryhooks.EndCommandSpan(span, telemetry.OutcomeOK, nil)
	})
	assert.Zero(t, allocs)

	// A caller's span context still propagates (the global tracer runs).
	parent := telemetry.ContextFromTraceParent(ctx, validTP)
	_, span := telemetryhooks.StartCommandSpan(parent, tr, "k", "id", "c", nil)
	assert.Equal(t, validTP, telemetry.FormatTraceParent(span.SpanContext()))
	telemetryhooks.EndCommandSpan(span, telemetry.OutcomeOK, nil)

	// Installing an SDK afterwards: the tracer obtained before records.
	rec := tracetest.NewSpanRecorder()
	sdk := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec), sdktrace.WithSampler(sdktrace.AlwaysSample()))
	t.Cleanup(func() { _ = sdk.Shutdown(context.Background()) })
	otel.SetTracerProvider(sdk)
	_, span = telemetryhooks.StartCommandSpan(ctx, tr, "k", "id", "c", nil)
	require.True(t, span.IsRecording())
	assert.True(t, span.SpanContext().IsValid())
	telemetryhooks.EndCommandSpan(span, telemetry.OutcomeOK, nil)
	spans := rec.Ended()
	require.Len(t, spans, 1)
	assert.Equal(t, telemetry.SpanCommand, spans[0].Name())

	// A tracer obtained now goes to the SDK from the start.
	_, span = telemetryhooks.StartCommandSpan(ctx, telemetryhooks.Tracer(nil), "k", "id", "c", nil)
	assert.True(t, span.IsRecording())
	telemetryhooks.EndCommandSpan(span, telemetry.OutcomeOK, nil)
}
