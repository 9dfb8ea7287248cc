package actor_test

import (
	"context"
	"github.com/orchestrix/orchestrix/internal/banktest"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/orchestrix/orchestrix/actor"
	"github.com/orchestrix/orchestrix/actor/actortest"
	"github.com/orchestrix/orchestrix/telemetry"
)

// BenchmarkHandle_Send_Telemetry measures one Send to a hot aggregate on
// the in-memory journal with telemetry off (the default: no metrics, the
// global, non-recording tracer provider), with a no-op provider, with
// metrics, and with a sampling OpenTelemetry SDK.
func BenchmarkHandle_Send_Telemetry(b *testing.B) {
	sdk := sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.AlwaysSample()))
	b.Cleanup(func() { _ = sdk.Shutdown(context.Background()) })
	cases := []struct {
		name string
		cfg  func(*actor.Config)
	}{
		{"off", func(*actor.Config) {}},
		{"noop-provider", func(c *actor.Config) { c.TracerProvider = noop.NewTracerProvider() }},
		{"metrics", func(c *actor.Config) {
			m, err := telemetry.NewMetrics(prometheus.NewRegistry())
			if err != nil {
				b.Fatal(err)
			}
			c.Metrics = m
		}},
		{"tracing-sdk", func(c *actor.Config) { c.TracerProvider = sdk }},
	}
	for _, tc := range cases {
		b.Run(tc.name, func(b *testing.B) {
			env := actortest.NewSystem(b, actortest.WithoutSnapshots(), actortest.WithConfig(func(c *actor.Config) {
				c.Observer = nil // the recorder would keep every observation
				tc.cfg(c)
			}))
			h, err := actor.Register(env.System, banktest.Accounts())
			if err != nil {
				b.Fatal(err)
			}
			ctx := context.Background()
			if _, err := h.Send(ctx, "hot", banktest.OpenAccount{Owner: "b"}); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				if _, err := h.Send(ctx, "hot", banktest.Deposit{Amount: 1}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
