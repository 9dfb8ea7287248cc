package saga_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/orchestrix/orchestrix/actor"
	"github.com/orchestrix/orchestrix/actor/actortest"
	"github.com/orchestrix/orchestrix/projection"
	"github.com/orchestrix/orchestrix/saga"
	"github.com/orchestrix/orchestrix/telemetry"
)

// withMetrics gives the world's runners (every restart included) one
// *telemetry.Metrics registered on a fresh registry.
func withMetrics(t *testing.T, w *world) *prometheus.Registry {
	t.Helper()
	reg := prometheus.NewRegistry()
	m, err := telemetry.NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	w.cfg = func(c *saga.Config) { c.Metrics = m }
	return reg
}

// withTracing records the spans of the world's actor system and runners.
func withTracing(t *testing.T, w *world) (*tracetest.SpanRecorder, trace.TracerProvider) {
	t.Helper()
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	w.sysCfg = func(c *actor.Config) { c.TracerProvider = tp }
	w.cfg = func(c *saga.Config) { c.TracerProvider = tp }
	return rec, tp
}

// sample returns the value of the series of the named gauge or counter
// with exactly the given labels; ok is false when there is none.
func sample(t *testing.T, g prometheus.Gatherer, name string, labels map[string]string) (v float64, ok bool) {
	t.Helper()
	families, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	series:
		for _, m := range f.GetMetric() {
			if len(m.GetLabel()) != len(labels) {
				continue
			}
			for _, l := range m.GetLabel() {
				if want, ok := labels[l.GetName()]; !ok || want != l.GetValue() {
					continue series
				}
			}
			if m.GetCounter() != nil {
				return m.GetCounter().GetValue(), true
			}
			return m.GetGauge().GetValue(), true
		}
	}
	return 0, false
}

// wantInstances checks orchestrix_saga_instances{saga,state} for every
// state: a state missing from want must be absent or zero.
func wantInstances(t *testing.T, g prometheus.Gatherer, name string, want map[saga.State]float64) {
	t.Helper()
	for _, st := range []saga.State{saga.StateRunning, saga.StateCompensating, saga.StateCompleted, saga.StateCompensated, saga.StateFailed} {
		got, _ := sample(t, g, "orchestrix_saga_instances", map[string]string{"saga": name, "state": st.String()})
		if got != want[st] {
			t.Errorf("saga_instances{saga=%q,state=%q} = %v, want %v", name, st, got, want[st])
		}
	}
}

func wantCompensations(t *testing.T, g prometheus.Gatherer, name string, want float64) {
	t.Helper()
	got, _ := sample(t, g, "orchestrix_saga_compensations_total", map[string]string{"saga": name})
	if got != want {
		t.Errorf("saga_compensations_total{saga=%q} = %v, want %v", name, got, want)
	}
}

// settled waits until saga id is terminal and no instance of s executes
// any more, so that its metrics and spans are final.
func settled[D any](t *testing.T, ctx context.Context, s *saga.Saga[D], id string) saga.Status[D] {
	t.Helper()
	st, err := s.Wait(ctx, id, func(st saga.Status[D]) bool { return saga.Finished(st) && !st.Executing })
	if err != nil {
		t.Fatalf("saga %q: %+v, %v", id, st, err)
	}
	return st
}

func TestRunner_Metrics_CountsTerminalStatesAndCompensations(t *testing.T) {
	ctx := testContext(t)
	w := newWorld(t, nil)
	reg := withMetrics(t, w)
	w.start()
	w.open(ctx, "a", 100, false)
	w.open(ctx, "b", 0, false)
	w.open(ctx, "frozen", 0, true)
	transfers := mustRegister(t, w.runner, transferSaga(w.accounts))
	var rec recorder
	orders := mustRegister(t, w.runner, saga.New[int]("order").
		Step("charge", rec.step("do charge", nil), rec.step("undo charge", saga.Reject(errors.New("refund window closed")))).
		Step("ship", rec.step("do ship", saga.Reject(errors.New("no courier"))), nil))

	for id, to := range map[string]string{"ok1": "b", "ok2": "b", "undo": "frozen"} {
		if err := transfers.Begin(ctx, id, Transfer{From: "a", To: to, Amount: 10}); err != nil {
			t.Fatal(err)
		}
	}
	if err := orders.Begin(ctx, "o1", 1); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"ok1", "ok2", "undo"} {
		settled(t, ctx, transfers, id)
	}
	if st := settled(t, ctx, orders, "o1"); st.State != saga.StateFailed {
		t.Fatalf("order state = %v, want failed", st.State)
	}

	wantInstances(t, reg, "transfer", map[saga.State]float64{saga.StateCompleted: 2, saga.StateCompensated: 1})
	wantCompensations(t, reg, "transfer", 1)
	wantInstances(t, reg, "order", map[saga.State]float64{saga.StateFailed: 1})
	wantCompensations(t, reg, "order", 1)
	// The runner's projections report their position too.
	if _, ok := sample(t, reg, "orchestrix_projection_position", map[string]string{"projection": "saga.transfer"}); !ok {
		t.Error("no orchestrix_projection_position for the saga's driver projection")
	}
}

func TestRunner_Metrics_RestartCountsRecoveredInstancesOnce(t *testing.T) {
	ctx := testContext(t)
	w := newWorld(t, nil)
	reg := withMetrics(t, w)
	release := make(chan struct{})
	// The gate blocks sagas whose data is 0 until release is closed.
	gate := func(ctx context.Context, sc *saga.Context[int]) error {
		if sc.Data != 0 {
			return nil
		}
		select {
		case <-release:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	orchestration := func() *saga.Orchestration[int] { return saga.New[int]("gated").Step("gate", gate, nil) }

	w.start()
	s := mustRegister(t, w.runner, orchestration())
	for _, id := range []string{"blocked1", "blocked2"} {
		if err := s.Begin(ctx, id, 0); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Wait(ctx, id, func(st saga.Status[int]) bool { return st.Attempt == 1 }); err != nil {
			t.Fatal(err)
		}
	}
	// Begun after the blocked ones, so the restarted driver sees its
	// Started event again (its checkpoint is held back to blocked1).
	if err := s.Begin(ctx, "quick", 1); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Wait(ctx, "quick", func(st saga.Status[int]) bool { return saga.Finished(st) && !st.Executing }); err != nil {
		t.Fatal(err)
	}
	wantInstances(t, reg, "gated", map[saga.State]float64{saga.StateRunning: 2, saga.StateCompleted: 1})

	w.stop()
	// A closed runner no longer counts the instances it left unfinished.
	wantInstances(t, reg, "gated", map[saga.State]float64{saga.StateCompleted: 1})

	close(release)
	w.start()
	s = mustRegister(t, w.runner, orchestration())
	for _, id := range []string{"blocked1", "blocked2"} {
		if st := settled(t, ctx, s, id); st.State != saga.StateCompleted {
			t.Fatalf("saga %s: %v", id, st.State)
		}
	}
	// "quick" finished before the restart: it is not counted again.
	wantInstances(t, reg, "gated", map[saga.State]float64{saga.StateCompleted: 3})
	wantCompensations(t, reg, "gated", 0)
}

func TestRunner_Metrics_NilRecordsNothing(t *testing.T) {
	ctx := testContext(t)
	w := newWorld(t, nil)
	w.start() // Config.Metrics is nil
	var rec recorder
	s := mustRegister(t, w.runner, saga.New[int]("plain").
		Step("a", rec.step("do a", nil), rec.step("undo a", nil)).
		Step("b", rec.step("do b", saga.Reject(errors.New("no"))), nil))
	if err := s.Begin(ctx, "x", 1); err != nil {
		t.Fatal(err)
	}
	if st := settled(t, ctx, s, "x"); st.State != saga.StateCompensated {
		t.Fatalf("state = %v", st.State)
	}
}

// spansNamed returns the ended spans called name whose attributes include
// every one of attrs.
func spansNamed(rec *tracetest.SpanRecorder, name string, attrs ...attribute.KeyValue) []sdktrace.ReadOnlySpan {
	var out []sdktrace.ReadOnlySpan
	for _, s := range rec.Ended() {
		if s.Name() != name {
			continue
		}
		have := map[attribute.Key]attribute.Value{}
		for _, kv := range s.Attributes() {
			have[kv.Key] = kv.Value
		}
		match := true
		for _, kv := range attrs {
			if v, ok := have[kv.Key]; !ok || v != kv.Value {
				match = false
			}
		}
		if match {
			out = append(out, s)
		}
	}
	return out
}

// one returns the single span of spans, failing the test otherwise.
func one(t *testing.T, what string, spans []sdktrace.ReadOnlySpan) sdktrace.ReadOnlySpan {
	t.Helper()
	if len(spans) != 1 {
		t.Fatalf("%d %s spans, want 1", len(spans), what)
	}
	return spans[0]
}

func TestSaga_Tracing_BeginSpanParentsStepsAndTheirCommands(t *testing.T) {
	ctx := testContext(t)
	w := newWorld(t, nil)
	spans, tp := withTracing(t, w)
	w.start()
	w.open(ctx, "a", 100, false)
	w.open(ctx, "b", 0, false)
	transfers := mustRegister(t, w.runner, transferSaga(w.accounts))

	callerCtx, caller := tp.Tracer("test").Start(ctx, "caller")
	if err := transfers.Begin(callerCtx, "t1", Transfer{From: "a", To: "b", Amount: 30}); err != nil {
		t.Fatal(err)
	}
	caller.End()
	if st := settled(t, ctx, transfers, "t1"); st.State != saga.StateCompleted {
		t.Fatalf("state = %v", st.State)
	}

	traceID := caller.SpanContext().TraceID()
	for _, step := range []struct{ name, command string }{{"debit", "saga_test.Withdraw"}, {"credit", "saga_test.Deposit"}} {
		s := one(t, step.name+" step", spansNamed(spans, telemetry.SpanSagaStep,
			telemetry.AttrSaga.String("transfer"), telemetry.AttrSagaStep.String(step.name)))
		if s.SpanContext().TraceID() != traceID || s.Parent().SpanID() != caller.SpanContext().SpanID() {
			t.Errorf("%s step span: trace %s parent %s, want a child of the caller span %s/%s",
				step.name, s.SpanContext().TraceID(), s.Parent().SpanID(), traceID, caller.SpanContext().SpanID())
		}
		if s.Status().Code == codes.Error {
			t.Errorf("%s step span has error status %q", step.name, s.Status().Description)
		}
		cmd := one(t, step.command+" command", spansNamed(spans, telemetry.SpanCommand, telemetry.AttrCommandType.String(step.command)))
		if cmd.Parent().SpanID() != s.SpanContext().SpanID() || cmd.SpanContext().TraceID() != traceID {
			t.Errorf("%s command span's parent = %s, want the %s step span %s", step.command, cmd.Parent().SpanID(), step.name, s.SpanContext().SpanID())
		}
	}

	// The deposit's event carries its command span's traceparent, like
	// every event written by a command.
	deposit := one(t, "deposit command", spansNamed(spans, telemetry.SpanCommand, telemetry.AttrCommandType.String("saga_test.Deposit")))
	for r, err := range w.journal.Read(ctx, w.accounts.Stream("b"), 2, 2, 1) {
		if err != nil {
			t.Fatal(err)
		}
		if want := telemetry.FormatTraceParent(deposit.SpanContext()); r.Envelope.TraceParent != want {
			t.Errorf("deposit event traceparent = %q, want the command span's %q", r.Envelope.TraceParent, want)
		}
	}
}

func TestOrchestration_StartOn_TracingFollowsTriggeringCommand(t *testing.T) {
	ctx := testContext(t)
	w := newWorld(t, nil)
	spans, _ := withTracing(t, w)
	w.start()
	requests, err := actor.Register(w.sys, Requests)
	if err != nil {
		t.Fatal(err)
	}
	w.open(ctx, "a", 100, false)
	w.open(ctx, "frozen", 0, true)
	s := mustRegister(t, w.runner, transferSaga(w.accounts).
		StartOn(projection.Filter{Kinds: []string{"request"}}, func(ev projection.Event) (string, Transfer, bool) {
			r := ev.Data.(Requested)
			return ev.Envelope.Subject, Transfer{From: r.From, To: r.To, Amount: r.Amount}, true
		}))
	if _, err := requests.Send(ctx, "r1", Requested{From: "a", To: "frozen", Amount: 10}); err != nil {
		t.Fatal(err)
	}
	if st := settled(t, ctx, s, "r1"); st.State != saga.StateCompensated {
		t.Fatalf("state = %v", st.State)
	}

	request := one(t, "request command", spansNamed(spans, telemetry.SpanCommand, telemetry.AttrAggregateKind.String("request")))
	steps := spansNamed(spans, telemetry.SpanSagaStep, telemetry.AttrSaga.String("transfer"))
	if len(steps) != 3 { // debit, credit (rejected), debit's compensation
		t.Fatalf("%d step spans, want 3", len(steps))
	}
	var names []string
	for _, st := range steps {
		if st.Parent().SpanID() != request.SpanContext().SpanID() || st.SpanContext().TraceID() != request.SpanContext().TraceID() {
			t.Errorf("step span %v: parent %s, want the triggering command span %s", st.Attributes(), st.Parent().SpanID(), request.SpanContext().SpanID())
		}
		var step string
		var compensating bool
		for _, kv := range st.Attributes() {
			switch kv.Key {
			case telemetry.AttrSagaStep:
				step = kv.Value.AsString()
			case "orchestrix.saga.compensating":
				compensating = kv.Value.AsBool()
			}
		}
		failed := st.Status().Code == codes.Error
		names = append(names, fmt.Sprintf("%s compensating=%v failed=%v", step, compensating, failed))
		if failed && !strings.Contains(st.Status().Description, ErrNoCredit.Error()) {
			t.Errorf("failed step span's status = %q, want the rejection", st.Status().Description)
		}
	}
	want := map[string]bool{
		"debit compensating=false failed=false": true,
		"credit compensating=false failed=true": true,
		"debit compensating=true failed=false":  true,
	}
	for _, n := range names {
		if !want[n] {
			t.Errorf("unexpected step span %q (all: %v)", n, names)
		}
		delete(want, n)
	}
	if len(want) != 0 {
		t.Errorf("missing step spans %v (got %v)", want, names)
	}
	// The refund is a child of the compensation's step span.
	refund := one(t, "refund command", spansNamed(spans, telemetry.SpanCommand, telemetry.AttrCommandType.String("saga_test.Refund")))
	comp := one(t, "compensation step", spansNamed(spans, telemetry.SpanSagaStep, attribute.Bool("orchestrix.saga.compensating", true)))
	if refund.Parent().SpanID() != comp.SpanContext().SpanID() {
		t.Errorf("refund span's parent = %s, want the compensation's step span %s", refund.Parent().SpanID(), comp.SpanContext().SpanID())
	}
}

// TestProcess_Metrics_CountsInputsByOutcome: a process handles an
// account's Opened event and its deposits, fails on a rejected one and
// completes at 100; another account's welcome timeout fires. A restart
// (redelivering what the new runner's projection re-reads) adds nothing.
func TestProcess_Metrics_CountsInputsByOutcome(t *testing.T) {
	ctx := testContext(t)
	clock := actortest.NewManualClock(time.Time{})
	w := newWorld(t, clock)
	reg := withMetrics(t, w)
	w.start()
	build := func() *saga.Process[Bonus] {
		p := saga.NewProcess[Bonus]("metered")
		saga.On(p, saga.BySubject[Opened], func(_ context.Context, pc *saga.ProcessContext[Bonus], _ Opened) error {
			pc.Schedule("welcome", time.Hour)
			return nil
		}, saga.Starts())
		saga.On(p, saga.BySubject[Deposited], func(_ context.Context, pc *saga.ProcessContext[Bonus], e Deposited) error {
			if e.Amount == 13 {
				return saga.Reject(errors.New("unlucky"))
			}
			pc.State.Total += e.Amount
			pc.Cancel("welcome")
			if pc.State.Total >= 100 {
				pc.Complete()
			}
			return nil
		})
		return p.OnTimeout(func(context.Context, *saga.ProcessContext[Bonus], string) error { return nil })
	}
	m := mustRegisterProcess(t, w.runner, build())
	w.open(ctx, "a", 0, false)
	w.open(ctx, "w", 0, false)
	for _, amount := range []int64{40, 13, 60, 5} { // the 5 comes after completion
		w.deposit(ctx, "a", amount)
	}
	if err := m.CaughtUp(ctx); err != nil {
		t.Fatal(err)
	}
	clock.Advance(time.Hour)
	if _, err := m.Wait(ctx, "w", func(st saga.ProcessStatus[Bonus]) bool { return len(st.Timers) == 0 }); err != nil {
		t.Fatal(err)
	}
	w.stop()
	w.start()
	m = mustRegisterProcess(t, w.runner, build())
	if err := m.CaughtUp(ctx); err != nil {
		t.Fatal(err)
	}

	for _, c := range []struct {
		input, outcome string
		want           float64
	}{
		{"event", "handled", 3}, // a: Opened, 40; w: Opened
		{"event", "failed", 1},  // a: 13
		{"event", "completed", 1},
		{"timeout", "handled", 1}, // w: welcome
	} {
		got, _ := sample(t, reg, "orchestrix_process_inputs_total",
			map[string]string{"process": "metered", "input": c.input, "outcome": c.outcome})
		if got != c.want {
			t.Errorf("process_inputs_total{input=%s,outcome=%s} = %v, want %v", c.input, c.outcome, got, c.want)
		}
	}
}
