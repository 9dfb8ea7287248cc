package actor_test

import (
	"context"
	"github.com/orchestrix/orchestrix/internal/banktest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/orchestrix/orchestrix"
	"github.com/orchestrix/orchestrix/actor"
	"github.com/orchestrix/orchestrix/actor/actortest"
	"github.com/orchestrix/orchestrix/journal"
	"github.com/orchestrix/orchestrix/telemetry"
)

// tickClock is a manual clock whose Now moves forward by a millisecond on
// every call, so that command durations are positive without a wall clock.
type tickClock struct {
	*actortest.ManualClock
	ticks atomic.Int64
}

func (c *tickClock) Now() time.Time {
	return c.ManualClock.Now().Add(time.Duration(c.ticks.Add(1)) * time.Millisecond)
}

// metricsEnv starts a system with metrics on a fresh registry.
func metricsEnv(t *testing.T, opts ...actortest.Option) (*actortest.Env, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	m, err := telemetry.NewMetrics(reg)
	require.NoError(t, err)
	opts = append(opts, actortest.WithConfig(func(c *actor.Config) {
		c.Metrics = m
		c.Clock = &tickClock{ManualClock: c.Clock.(*actortest.ManualClock)}
	}))
	return actortest.NewSystem(t, opts...), reg
}

// sample returns the value of the series of metric name whose labels are
// exactly labels (name, value pairs): a counter's or gauge's value, or a
// histogram's sample count. It fails the test when there is no such series.
func sample(t *testing.T, g prometheus.Gatherer, name string, labels ...string) float64 {
	t.Helper()
	fams, err := g.Gather()
	require.NoError(t, err)
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
	series:
		for _, m := range f.GetMetric() {
			if len(m.GetLabel())*2 != len(labels) {
				continue
			}
			for i, l := range m.GetLabel() {
				if l.GetName() != labels[2*i] || l.GetValue() != labels[2*i+1] {
					continue series
				}
			}
			switch f.GetType() {
			case dto.MetricType_COUNTER:
				return m.GetCounter().GetValue()
			case dto.MetricType_GAUGE:
				return m.GetGauge().GetValue()
			case dto.MetricType_HISTOGRAM:
				return float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	t.Fatalf("no series %s%v", name, labels)
	return 0
}

func TestSystem_Metrics_CountsCommandsByOutcome(t *testing.T) {
	env, reg := metricsEnv(t)
	h := register(t, env, banktest.Accounts())
	ctx := ctxT(t)

	_, err := h.Send(ctx, "a1", banktest.OpenAccount{Owner: "ann"})
	require.NoError(t, err)
	_, err = h.Send(ctx, "a1", banktest.Deposit{Amount: 10}, actor.WithCommandID("dep-1"))
	require.NoError(t, err)
	res, err := h.Send(ctx, "a1", banktest.Deposit{Amount: 10}, actor.WithCommandID("dep-1"))
	require.NoError(t, err)
	require.True(t, res.Duplicate)
	_, err = h.Send(ctx, "a1", banktest.Withdraw{Amount: 100})
	require.ErrorIs(t, err, banktest.ErrInsufficientFunds)
	_, err = h.Send(ctx, "a1", banktest.Explode{})
	require.Error(t, err)
	_, err = h.Send(ctx, "a1", banktest.Withdraw{Amount: 5})
	require.NoError(t, err)
	// A command is counted before its Send returns.

	const want = `
# HELP orchestrix_commands_total Commands answered by aggregates, by aggregate kind and outcome.
# TYPE orchestrix_commands_total counter
orchestrix_commands_total{kind="account",outcome="canceled"} 0
orchestrix_commands_total{kind="account",outcome="closed"} 0
orchestrix_commands_total{kind="account",outcome="conflict"} 0
orchestrix_commands_total{kind="account",outcome="duplicate"} 1
orchestrix_commands_total{kind="account",outcome="error"} 0
orchestrix_commands_total{kind="account",outcome="invalid"} 0
orchestrix_commands_total{kind="account",outcome="ok"} 3
orchestrix_commands_total{kind="account",outcome="panic"} 1
orchestrix_commands_total{kind="account",outcome="rejected"} 1
orchestrix_commands_total{kind="account",outcome="timeout"} 0
orchestrix_commands_total{kind="account",outcome="unknown"} 0
# HELP orchestrix_events_appended_total Events durably appended by aggregates, by aggregate kind.
# TYPE orchestrix_events_appended_total counter
orchestrix_events_appended_total{kind="account"} 3
`
	require.NoError(t, testutil.GatherAndCompare(reg, strings.NewReader(want),
		"orchestrix_commands_total", "orchestrix_events_appended_total"))
	assert.Equal(t, 6.0, sample(t, reg, "orchestrix_command_duration_seconds", "kind", "account"))
	assert.Equal(t, 1.0, sample(t, reg, "orchestrix_aggregates_active", "kind", "account"))
	assert.Equal(t, 1.0, sample(t, reg, "orchestrix_recoveries_total", "kind", "account"))
	assert.Equal(t, 1.0, sample(t, reg, "orchestrix_recovery_seconds", "kind", "account"))
}

func TestSystem_Metrics_PassivationMovesActiveGauge(t *testing.T) {
	env, reg := metricsEnv(t, actortest.WithConfig(func(c *actor.Config) { c.IdleTimeout = time.Minute }))
	h := register(t, env, banktest.Accounts())
	ctx := ctxT(t)
	for _, id := range []string{"a", "b", "c"} {
		_, err := h.Send(ctx, id, banktest.OpenAccount{Owner: id})
		require.NoError(t, err)
	}
	assert.Equal(t, 3.0, sample(t, reg, "orchestrix_aggregates_active", "kind", "account"))

	env.Clock.Advance(2 * time.Minute)
	env.Observed.WaitFor(t, wait, 3, actortest.Is(telemetry.Passivated, ""))
	assert.Equal(t, 0.0, sample(t, reg, "orchestrix_aggregates_active", "kind", "account"))
	assert.Equal(t, 3.0, sample(t, reg, "orchestrix_passivations_total", "kind", "account"))

	// Reactivation recovers from the journal again.
	_, err := h.Send(ctx, "a", banktest.Deposit{Amount: 1})
	require.NoError(t, err)
	assert.Equal(t, 1.0, sample(t, reg, "orchestrix_aggregates_active", "kind", "account"))
	assert.Equal(t, 4.0, sample(t, reg, "orchestrix_recoveries_total", "kind", "account"))
}

func TestSystem_Metrics_LabelsNeverCarryAggregateIDs(t *testing.T) {
	env, reg := metricsEnv(t)
	h := register(t, env, banktest.Accounts())
	ctx := ctxT(t)
	ids := map[string]bool{}
	for i := range 20 {
		id := "acct-" + string(rune('a'+i))
		ids[id] = true
		_, err := h.Send(ctx, id, banktest.OpenAccount{Owner: id})
		require.NoError(t, err)
	}
	fams, err := reg.Gather()
	require.NoError(t, err)
	allowed := map[string]bool{"kind": true, "outcome": true, "projection": true, "saga": true, "state": true, "le": true}
	series := 0
	for _, f := range fams {
		for _, m := range f.GetMetric() {
			series++
			for _, l := range m.GetLabel() {
				assert.True(t, allowed[l.GetName()], "label %s on %s", l.GetName(), f.GetName())
				assert.False(t, ids[l.GetValue()], "aggregate id %s as label of %s", l.GetValue(), f.GetName())
			}
		}
	}
	// However many aggregates there are: one series per outcome, one
	// for each of the six other per-kind metrics, the two journal
	// histograms, and the two unlabelled cluster series (members,
	// topology changes).
	assert.Equal(t, 11+6+2+2, series)
}

// tracingEnv starts a system whose spans go to a span recorder.
func tracingEnv(t *testing.T, opts ...actortest.Option) (*actortest.Env, *tracetest.SpanRecorder, trace.TracerProvider) {
	t.Helper()
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec), sdktrace.WithSampler(sdktrace.AlwaysSample()))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	opts = append(opts, actortest.WithConfig(func(c *actor.Config) { c.TracerProvider = tp }))
	return actortest.NewSystem(t, opts...), rec, tp
}

func spansNamed(rec *tracetest.SpanRecorder, name string) []sdktrace.ReadOnlySpan {
	var out []sdktrace.ReadOnlySpan
	for _, s := range rec.Ended() {
		if s.Name() == name {
			out = append(out, s)
		}
	}
	return out
}

func attr(s sdktrace.ReadOnlySpan, key string) string {
	for _, kv := range s.Attributes() {
		if string(kv.Key) == key {
			return kv.Value.String()
		}
	}
	return ""
}

func TestHandle_Send_CommandSpanIsChildOfCallerSpan(t *testing.T) {
	env, rec, tp := tracingEnv(t)
	h := register(t, env, banktest.Accounts())
	ctx, parent := tp.Tracer("test").Start(ctxT(t), "caller")
	_, err := h.Send(ctx, "a1", banktest.OpenAccount{Owner: "ann"}, actor.WithCommandID("open-1"))
	parent.End()
	require.NoError(t, err)

	cmds := spansNamed(rec, telemetry.SpanCommand)
	require.Len(t, cmds, 1)
	cmd := cmds[0]
	assert.Equal(t, parent.SpanContext().TraceID(), cmd.SpanContext().TraceID())
	assert.Equal(t, parent.SpanContext().SpanID(), cmd.Parent().SpanID())
	assert.Equal(t, "account", attr(cmd, "orchestrix.aggregate.kind"))
	assert.Equal(t, "banktest.OpenAccount", attr(cmd, "orchestrix.command.type"))
	assert.Equal(t, "open-1", attr(cmd, "orchestrix.command.id"))
	assert.Equal(t, "ok", attr(cmd, "orchestrix.command.outcome"))
	assert.Equal(t, codes.Unset, cmd.Status().Code)

	// The stored event carries the command span as its traceparent.
	recs := readStream(t, env.Journal, h.Stream("a1"))
	require.Len(t, recs, 1)
	sc, err := telemetry.ParseTraceParent(recs[0].Envelope.TraceParent)
	require.NoError(t, err)
	assert.Equal(t, cmd.SpanContext().TraceID(), sc.TraceID())
	assert.Equal(t, cmd.SpanContext().SpanID(), sc.SpanID())
	assert.True(t, sc.IsSampled())
}

func TestHandle_Send_WithoutCallerSpanStartsTrace(t *testing.T) {
	env, rec, _ := tracingEnv(t)
	h := register(t, env, banktest.Accounts())
	_, err := h.Send(ctxT(t), "a1", banktest.OpenAccount{Owner: "ann"})
	require.NoError(t, err)
	cmds := spansNamed(rec, telemetry.SpanCommand)
	require.Len(t, cmds, 1)
	assert.False(t, cmds[0].Parent().IsValid(), "a root span")
	recs := readStream(t, env.Journal, h.Stream("a1"))
	require.Len(t, recs, 1)
	assert.Equal(t, telemetry.FormatTraceParent(cmds[0].SpanContext()), recs[0].Envelope.TraceParent)
}

func TestHandle_Send_FailedCommandSpanHasErrorStatus(t *testing.T) {
	env, rec, _ := tracingEnv(t)
	h := register(t, env, banktest.Accounts())
	ctx := ctxT(t)
	_, err := h.Send(ctx, "a1", banktest.Withdraw{Amount: 1})
	require.ErrorIs(t, err, banktest.ErrNotOpen)
	_, err = h.Send(ctx, "a1", banktest.Explode{})
	require.Error(t, err)
	_, err = h.Send(ctx, "", banktest.Deposit{Amount: 1})
	require.ErrorIs(t, err, actor.ErrInvalidID)

	cmds := spansNamed(rec, telemetry.SpanCommand)
	require.Len(t, cmds, 3)
	for i, want := range []string{"rejected", "panic", "invalid"} {
		assert.Equal(t, want, attr(cmds[i], "orchestrix.command.outcome"))
		assert.Equal(t, codes.Error, cmds[i].Status().Code)
		require.NotEmpty(t, cmds[i].Events(), "error recorded")
		assert.Equal(t, "exception", cmds[i].Events()[0].Name)
	}
}

func TestHandle_Send_DuplicateSpanOutcome(t *testing.T) {
	env, rec, _ := tracingEnv(t)
	h := register(t, env, banktest.Accounts())
	ctx := ctxT(t)
	for range 2 {
		_, err := h.Send(ctx, "a1", banktest.OpenAccount{Owner: "ann"}, actor.WithCommandID("open"))
		require.NoError(t, err)
	}
	cmds := spansNamed(rec, telemetry.SpanCommand)
	require.Len(t, cmds, 2)
	assert.Equal(t, "ok", attr(cmds[0], "orchestrix.command.outcome"))
	assert.Equal(t, "duplicate", attr(cmds[1], "orchestrix.command.outcome"))
	assert.Equal(t, codes.Unset, cmds[1].Status().Code)
}

func TestHandle_Send_WithTraceParentParentsCommandSpan(t *testing.T) {
	env, rec, _ := tracingEnv(t)
	h := register(t, env, banktest.Accounts())
	const tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	_, err := h.Send(ctxT(t), "a1", banktest.OpenAccount{Owner: "ann"}, actor.WithTraceParent(tp))
	require.NoError(t, err)

	cmds := spansNamed(rec, telemetry.SpanCommand)
	require.Len(t, cmds, 1)
	assert.Equal(t, "4bf92f3577b34da6a3ce929d0e0e4736", cmds[0].SpanContext().TraceID().String())
	assert.Equal(t, "00f067aa0ba902b7", cmds[0].Parent().SpanID().String())
	assert.True(t, cmds[0].Parent().IsRemote())
	recs := readStream(t, env.Journal, h.Stream("a1"))
	require.Len(t, recs, 1)
	assert.Equal(t, tp, recs[0].Envelope.TraceParent, "an explicit traceparent is stored as given")
}

func TestHandle_Send_TracingOffPropagatesCallerTrace(t *testing.T) {
	env := actortest.NewSystem(t, actortest.WithConfig(func(c *actor.Config) { c.TracerProvider = noop.NewTracerProvider() }))
	h := register(t, env, banktest.Accounts())
	ctx := ctxT(t)
	_, err := h.Send(ctx, "a1", banktest.OpenAccount{Owner: "ann"})
	require.NoError(t, err)

	const tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	_, err = h.Send(telemetry.ContextFromTraceParent(ctx, tp), "a1", banktest.Deposit{Amount: 1})
	require.NoError(t, err)

	recs := readStream(t, env.Journal, h.Stream("a1"))
	require.Len(t, recs, 2)
	assert.Empty(t, recs[0].Envelope.TraceParent, "no trace without a span anywhere")
	assert.Equal(t, tp, recs[1].Envelope.TraceParent, "the caller's trace is propagated without a tracer")
}

// spyJournal remembers the span context of each Append's context.
type spyJournal struct {
	journal.Journal
	mu  sync.Mutex
	scs []trace.SpanContext
}

func (s *spyJournal) Append(ctx context.Context, stream string, exp journal.ExpectedVersion, events []orchestrix.Envelope) (journal.AppendResult, error) {
	s.mu.Lock()
	s.scs = append(s.scs, trace.SpanContextFromContext(ctx))
	s.mu.Unlock()
	return s.Journal.Append(ctx, stream, exp, events)
}

func TestSystem_Append_ContextCarriesCommandSpan(t *testing.T) {
	spy := &spyJournal{}
	env, rec, _ := tracingEnv(t, actortest.WithConfig(func(c *actor.Config) {
		spy.Journal = c.Journal
		c.Journal = spy
	}))
	h := register(t, env, banktest.Accounts())
	_, err := h.Send(ctxT(t), "a1", banktest.OpenAccount{Owner: "ann"})
	require.NoError(t, err)
	cmds := spansNamed(rec, telemetry.SpanCommand)
	require.Len(t, cmds, 1)
	spy.mu.Lock()
	defer spy.mu.Unlock()
	require.Len(t, spy.scs, 1)
	assert.Equal(t, cmds[0].SpanContext().SpanID(), spy.scs[0].SpanID())
	assert.Equal(t, cmds[0].SpanContext().TraceID(), spy.scs[0].TraceID())
}
