package projection_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/orchestrix/orchestrix"
	"github.com/orchestrix/orchestrix/journal"

	"github.com/orchestrix/orchestrix/projection"
	"github.com/orchestrix/orchestrix/telemetry"
)

func TestManager_Metrics_PositionAndLagFollowTheCheckpoint(t *testing.T) {
	promReg := prometheus.NewRegistry()
	metrics, err := telemetry.NewMetrics(promReg)
	require.NoError(t, err)
	j, reg := newJournal(t), newRegistry(t)
	for i := range 5 {
		appendOne(t, j, reg, stream("account", i), Deposited{Amount: i}, epoch)
	}
	m := newManager(t, projection.Config{Journal: j, Registry: reg, Checkpoints: projection.NewMemCheckpoints(), Metrics: metrics})
	require.NoError(t, m.Add(t.Context(), projection.Projection{Name: "balances", Handler: &recorder{}}))
	wait(t, m, "balances", "catch-up", atPosition(5))

	pos, err := gaugeValue(promReg, "orchestrix_projection_position")
	require.NoError(t, err)
	require.Equal(t, 5.0, pos)
	lag, err := gaugeValue(promReg, "orchestrix_projection_lag_events")
	require.NoError(t, err)
	require.Equal(t, 0.0, lag)
	require.Equal(t, 2, testutil.CollectAndCount(metrics, "orchestrix_projection_position", "orchestrix_projection_lag_events"))
}

// gaugeValue returns the value of the single series of the named gauge.
func gaugeValue(g prometheus.Gatherer, name string) (float64, error) {
	families, err := g.Gather()
	if err != nil {
		return 0, err
	}
	for _, f := range families {
		if f.GetName() == name && len(f.GetMetric()) == 1 {
			return f.GetMetric()[0].GetGauge().GetValue(), nil
		}
	}
	return 0, fmt.Errorf("no single series of %s", name)
}

func TestManager_Tracing_BatchSpanLinksTheEventsTraces(t *testing.T) {
	spans := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans))
	defer tp.Shutdown(context.Background())
	j, reg := newJournal(t), newRegistry(t)

	const traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	env, err := reg.Marshal(Deposited{Amount: 7})
	require.NoError(t, err)
	env.Source, env.Subject = "/test", "a1"
	env.TraceParent = "00-" + traceID + "-00f067aa0ba902b7-01"
	_, err = j.Append(context.Background(), "account-a1", journal.Any, []orchestrix.Envelope{env})
	require.NoError(t, err)

	var handlerSpan trace.SpanContext
	handler := projection.HandlerFunc(func(ctx context.Context, _ []projection.Event) error {
		handlerSpan = trace.SpanFromContext(ctx).SpanContext()
		return nil
	})
	m := newManager(t, projection.Config{Journal: j, Registry: reg, Checkpoints: projection.NewMemCheckpoints(), TracerProvider: tp})
	require.NoError(t, m.Add(context.Background(), projection.Projection{Name: "traced", Handler: handler}))
	wait(t, m, "traced", "catch-up", atPosition(1))

	var batch sdktrace.ReadOnlySpan
	for _, s := range spans.Ended() {
		if s.Name() == telemetry.SpanProjectionBatch {
			batch = s
		}
	}
	require.NotNil(t, batch, "a projection batch span was recorded")
	require.Len(t, batch.Links(), 1)
	require.Equal(t, traceID, batch.Links()[0].SpanContext.TraceID().String())
	require.Equal(t, batch.SpanContext().SpanID(), handlerSpan.SpanID(), "the handler runs inside the batch span")
}
