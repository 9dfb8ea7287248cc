// Package telemetryhooks is the recording side of package telemetry: the
// span starters and metric recorders that actor, the journal backends,
// projection and saga call. Users configure telemetry (a
// telemetry.Metrics, an OpenTelemetry TracerProvider) and read what it
// records; recording stays inside the module.
package telemetryhooks

import (
	"context"
	"reflect"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/orchestrix/orchestrix/internal/telemetryhooks/bridge"
	"github.com/orchestrix/orchestrix/telemetry"
)

// Tracer returns the tracer Orchestrix components start their spans with:
// tp's tracer for telemetry.ScopeName, or the global provider's
// (otel.GetTracerProvider) when tp is nil. Without an OpenTelemetry SDK
// installed, the global provider's spans are non-recording and cost next
// to nothing. Components call Tracer once and keep the result.
//
// With tp nil, and while the global provider is one whose spans are
// neither recording nor valid (no SDK installed), the returned tracer
// skips the global tracer's Start for a ctx without a valid span context:
// it returns ctx unchanged and a no-op span, which is what the global
// tracer's span amounts to (non-recording, invalid span context, End does
// nothing), without its two allocations per span. Once a provider is
// installed with otel.SetTracerProvider, every Start goes to the global
// tracer again, which delegates to it.
func Tracer(tp trace.TracerProvider) trace.Tracer {
	if tp != nil {
		return tp.Tracer(telemetry.ScopeName)
	}
	tp = otel.GetTracerProvider()
	tr := tp.Tracer(telemetry.ScopeName)
	if tp == nil || !reflect.TypeOf(tp).Comparable() {
		return tr
	}
	_, probe := tr.Start(context.Background(), telemetry.SpanCommand)
	probe.End()
	if probe.IsRecording() || probe.SpanContext().IsValid() {
		return tr
	}
	return &idleGlobalTracer{Tracer: tr, provider: tp}
}

// idleGlobalTracer is the global provider's tracer while that provider
// makes spans that do nothing (see Tracer).
type idleGlobalTracer struct {
	trace.Tracer
	provider trace.TracerProvider // the global provider when it was probed
}

func (t *idleGlobalTracer) Start(ctx context.Context, name string, opts ...trace.SpanStartOption) (context.Context, trace.Span) {
	if otel.GetTracerProvider() == t.provider && !trace.SpanContextFromContext(ctx).IsValid() {
		return ctx, noop.Span{}
	}
	return t.Tracer.Start(ctx, name, opts...)
}

// StartCommandSpan starts the telemetry.SpanCommand span of a command to aggregate
// aggregateID of kind, as a child of the span in ctx. body is the command;
// its Go type names the orchestrix.command.type attribute. Attributes are
// computed only when the span is recording. End it with EndCommandSpan.
func StartCommandSpan(ctx context.Context, tr trace.Tracer, kind, aggregateID, commandID string, body any) (context.Context, trace.Span) {
	ctx, span := tr.Start(ctx, telemetry.SpanCommand)
	if span.IsRecording() {
		span.SetAttributes(
			telemetry.AttrAggregateKind.String(kind),
			telemetry.AttrAggregateID.String(aggregateID),
			telemetry.AttrCommandID.String(commandID),
			telemetry.AttrCommandType.String(typeName(body)),
		)
	}
	return ctx, span
}

// EndCommandSpan records the command's outcome (attribute
// orchestrix.command.outcome; error status and the error as a span event
// when err is not nil) and ends span.
func EndCommandSpan(span trace.Span, outcome telemetry.Outcome, err error) {
	if span.IsRecording() {
		if outcome == telemetry.OutcomeUnset {
			outcome = telemetry.OutcomeOf(err)
		}
		span.SetAttributes(telemetry.AttrOutcome.String(outcome.String()))
		if err != nil {
			span.RecordError(err)
			span.SetStatus(codes.Error, err.Error())
		}
	}
	span.End()
}

// StartCommitSpan starts the telemetry.SpanJournalCommit span of one journal commit
// of events events. Journal backends call it around each transaction:
//
//	ctx, span := telemetryhooks.StartCommitSpan(ctx, tr, n, links...)
//	err := commit(ctx)
//	telemetryhooks.EndSpan(span, err)
//
// The span is a child of the span in ctx (the runtime puts the span
// context of the batch's first command into the context of
// Journal.Append). A backend that commits the appends of many callers in
// one transaction starts the span from its own context and passes one
// link per append (LinkFromContext of each Append's ctx, or
// telemetry.LinkFromTraceParent of the envelopes).
func StartCommitSpan(ctx context.Context, tr trace.Tracer, events int, links ...trace.Link) (context.Context, trace.Span) {
	ctx, span := tr.Start(ctx, telemetry.SpanJournalCommit, trace.WithLinks(links...))
	if span.IsRecording() {
		span.SetAttributes(telemetry.AttrEvents.Int(events))
	}
	return ctx, span
}

// StartProjectionSpan starts the telemetry.SpanProjectionBatch span of projection
// handling events events at global positions from through to. Its parent
// is the span in ctx (usually none: a projection runs on its own); pass
// one link per distinct traceparent of the batch's events
// (telemetry.LinkFromTraceParent) so the batch is reachable from the commands that
// wrote them. End it with EndSpan.
func StartProjectionSpan(ctx context.Context, tr trace.Tracer, projection string, from, to uint64, events int, links ...trace.Link) (context.Context, trace.Span) {
	ctx, span := tr.Start(ctx, telemetry.SpanProjectionBatch, trace.WithLinks(links...))
	if span.IsRecording() {
		span.SetAttributes(
			telemetry.AttrProjection.String(projection),
			telemetry.AttrFromPosition.Int64(clampInt64(from)),
			telemetry.AttrToPosition.Int64(clampInt64(to)),
			telemetry.AttrEvents.Int(events),
		)
	}
	return ctx, span
}

// StartSagaStepSpan starts the telemetry.SpanSagaStep span of step of saga. A saga
// handling an event makes the step part of the event's trace by deriving
// ctx with telemetry.ContextFromTraceParent(ctx, event.TraceParent) first; commands
// sent with the returned context then become children of the step. End
// it with EndSpan.
func StartSagaStepSpan(ctx context.Context, tr trace.Tracer, saga, step string) (context.Context, trace.Span) {
	ctx, span := tr.Start(ctx, telemetry.SpanSagaStep)
	if span.IsRecording() {
		span.SetAttributes(telemetry.AttrSaga.String(saga), telemetry.AttrSagaStep.String(step))
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

// LinkFromContext returns a span link to the span context in ctx; ok is
// false when ctx carries none.
func LinkFromContext(ctx context.Context) (link trace.Link, ok bool) {
	sc := trace.SpanContextFromContext(ctx)
	if !sc.IsValid() {
		return trace.Link{}, false
	}
	return trace.Link{SpanContext: sc}, true
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

// Metrics records into one *telemetry.Metrics. Its zero value, and the
// Metrics of a nil *telemetry.Metrics, record nothing.
type Metrics struct{ r bridge.MetricsRecorder }

// MetricsOf returns the recorder of m (nil: record nothing).
func MetricsOf(m *telemetry.Metrics) Metrics {
	if m == nil {
		return Metrics{}
	}
	return Metrics{bridge.Recorder(m)}
}

// Enabled reports whether m records anything.
func (m Metrics) Enabled() bool { return m.r != nil }

// CommandDone counts a command of aggregate kind that ended with outcome
// and, when d > 0, records its duration (commands_total and
// command_duration_seconds). OutcomeUnset counts as OutcomeError. The
// runtime records commands through Metrics.Observe; this is for other
// command dispatchers.
func (m Metrics) CommandDone(kind string, outcome telemetry.Outcome, d time.Duration) {
	if m.r != nil {
		m.r.CommandDone(kind, uint8(outcome), d)
	}
}

// ObserveCommit records one journal commit (one transaction) of events
// events that took d, including its sync (journal_batch_events and
// journal_commit_seconds). Journal backends call it once per commit,
// after the commit succeeded; a failed commit is not recorded.
func (m Metrics) ObserveCommit(events int, d time.Duration) {
	if m.r != nil {
		m.r.ObserveCommit(events, d)
	}
}

// ProjectionPosition records that projection name has processed the
// global log up to position pos and is lag events behind the journal's
// head (projection_position and projection_lag_events). Projection
// runners call it after each checkpointed batch and whenever they learn
// a new head position.
func (m Metrics) ProjectionPosition(name string, pos, lag uint64) {
	if m.r != nil {
		m.r.ProjectionPosition(name, pos, lag)
	}
}

// SetSagaInstances sets the number of instances of saga in state to n
// (saga_instances), for a saga manager that counts its instances.
func (m Metrics) SetSagaInstances(saga, state string, n int) {
	if m.r != nil {
		m.r.SetSagaInstances(saga, state, n)
	}
}

// SagaTransition moves one instance of saga from state from to state to
// in saga_instances. An empty from means a new instance, an empty to an
// instance that is no longer tracked (deleted or archived).
func (m Metrics) SagaTransition(saga, from, to string) {
	if m.r != nil {
		m.r.SagaTransition(saga, from, to)
	}
}

// SagaCompensation counts one compensation started by saga
// (saga_compensations_total): once per instance whose steps are being
// compensated, not once per compensating command.
func (m Metrics) SagaCompensation(saga string) {
	if m.r != nil {
		m.r.SagaCompensation(saga)
	}
}

// ProcessInputs counts n inputs of process (process_inputs_total)
// recorded with outcome: input is telemetry.InputEvent or InputTimeout,
// outcome telemetry.OutcomeHandled, OutcomeFailed or OutcomeCompleted.
// Redelivered and ignored events are not counted.
func (m Metrics) ProcessInputs(process, input, outcome string, n int) {
	if m.r != nil {
		m.r.ProcessInputs(process, input, outcome, n)
	}
}

// ClusterTopology records a topology change seen by a cluster member that
// now sees members members (cluster_members, cluster_topology_changes_total).
func (m Metrics) ClusterTopology(members int) {
	if m.r != nil {
		m.r.ClusterTopology(members)
	}
}

// ClusterCommand counts a command of kind that a cluster member ran
// locally or sent to its owner (cluster_commands_total{route}).
func (m Metrics) ClusterCommand(kind string, remote bool) {
	if m.r != nil {
		m.r.ClusterCommand(kind, remote)
	}
}

// ClusterNotOwnerRetry counts a request of kind that was not delivered
// and is placed again (cluster_not_owner_retries_total).
func (m Metrics) ClusterNotOwnerRetry(kind string) {
	if m.r != nil {
		m.r.ClusterNotOwnerRetry(kind)
	}
}

// ClusterConflictRetry counts a version conflict (the journal's fence)
// retried on fresh state in cluster mode (cluster_conflicts_retried_total).
func (m Metrics) ClusterConflictRetry(kind string) {
	if m.r != nil {
		m.r.ClusterConflictRetry(kind)
	}
}

// ClusterSelfFence counts a member fencing itself for reason
// (cluster_self_fences_total).
func (m Metrics) ClusterSelfFence(reason string) {
	if m.r != nil {
		m.r.ClusterSelfFence(reason)
	}
}
