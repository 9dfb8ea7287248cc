package telemetry_test

import (
	"context"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/orchestrix/orchestrix/actor"
	"github.com/orchestrix/orchestrix/aggregate"
	memjournal "github.com/orchestrix/orchestrix/journal/mem"
	"github.com/orchestrix/orchestrix/telemetry"
)

type Tally struct{ N int }
type Add struct{ By int }
type Added struct{ By int }

var tallies = aggregate.Definition[Tally, Add, Added]{
	Kind:    "tally",
	Initial: func(string) Tally { return Tally{} },
	Decide:  func(_ Tally, c Add) ([]Added, error) { return []Added{{By: c.By}}, nil },
	Evolve:  func(s Tally, e Added) Tally { s.N += e.By; return s },
	Events:  []aggregate.EventType{aggregate.Event[Added]("example.tally.added")},
}

// The runtime with metrics on a private registry and an OpenTelemetry SDK
// (here recording spans in memory; in production, an exporter).
func Example() {
	ctx := context.Background()
	reg := prometheus.NewRegistry()
	metrics, err := telemetry.NewMetrics(reg)
	if err != nil {
		fmt.Println(err)
		return
	}
	spans := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans))
	defer tp.Shutdown(ctx)

	j, _ := memjournal.New(memjournal.Config{})
	sys, err := actor.NewSystem(actor.Config{Journal: j, Metrics: metrics, TracerProvider: tp})
	if err != nil {
		fmt.Println(err)
		return
	}
	h, _ := actor.Register(sys, tallies)

	// A caller's span becomes the parent of the command's span.
	callerCtx, caller := tp.Tracer("shop").Start(ctx, "checkout")
	if _, err := h.Send(callerCtx, "t1", Add{By: 2}); err != nil {
		fmt.Println(err)
		return
	}
	caller.End()
	_ = sys.Shutdown(ctx) // the metrics are final once the system stopped

	for _, s := range spans.Ended() {
		parent := "none"
		if s.Parent().SpanID() == caller.SpanContext().SpanID() {
			parent = "checkout"
		}
		fmt.Printf("span %s (parent: %s)\n", s.Name(), parent)
	}

	// The event carries the command span's traceparent, so a saga or a
	// projection handling it continues the trace.
	for rec, err := range j.Read(ctx, h.Stream("t1"), 1, ^uint64(0), 10) {
		if err != nil {
			fmt.Println(err)
			return
		}
		sc, _ := telemetry.ParseTraceParent(rec.Envelope.TraceParent)
		fmt.Println("event in the caller's trace:", sc.TraceID() == caller.SpanContext().TraceID())
	}

	fams, _ := reg.Gather()
	for _, f := range fams {
		for _, m := range f.GetMetric() {
			switch f.GetName() {
			case "orchestrix_commands_total":
				if v := m.GetCounter().GetValue(); v > 0 {
					fmt.Println(f.GetName(), m.GetLabel()[0].GetValue(), m.GetLabel()[1].GetValue(), v)
				}
			case "orchestrix_events_appended_total", "orchestrix_passivations_total":
				fmt.Println(f.GetName(), m.GetLabel()[0].GetValue(), m.GetCounter().GetValue())
			}
		}
	}
	// Output:
	// span orchestrix.command (parent: checkout)
	// span checkout (parent: none)
	// event in the caller's trace: true
	// orchestrix_commands_total tally ok 1
	// orchestrix_events_appended_total tally 1
	// orchestrix_passivations_total tally 1
}
