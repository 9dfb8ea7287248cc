package telemetry_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/orchestrix/orchestrix"
	"github.com/orchestrix/orchestrix/internal/telemetryhooks"
	"github.com/orchestrix/orchestrix/telemetry"
)

func newMetrics(t *testing.T) (*telemetry.Metrics, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	m, err := telemetry.NewMetrics(reg)
	require.NoError(t, err)
	return m, reg
}

func TestNewMetrics_Registry_ExposesEveryName(t *testing.T) {
	m, reg := newMetrics(t)
	m.Observe(telemetry.Observation{Kind: telemetry.Activated, AggregateKind: "k"})
	telemetryhooks.MetricsOf(m).ProjectionPosition("p", 1, 0)
	telemetryhooks.MetricsOf(m).SetSagaInstances("s", "running", 1)
	telemetryhooks.MetricsOf(m).SagaCompensation("s")
	telemetryhooks.MetricsOf(m).ClusterCommand("k", true)
	telemetryhooks.MetricsOf(m).ClusterNotOwnerRetry("k")
	telemetryhooks.MetricsOf(m).ClusterConflictRetry("k")
	telemetryhooks.MetricsOf(m).ClusterSelfFence("paused")

	fams, err := reg.Gather()
	require.NoError(t, err)
	var names []string
	for _, f := range fams {
		names = append(names, f.GetName())
	}
	assert.ElementsMatch(t, []string{
		"orchestrix_commands_total", "orchestrix_command_duration_seconds",
		"orchestrix_events_appended_total", "orchestrix_journal_batch_events",
		"orchestrix_journal_commit_seconds", "orchestrix_aggregates_active",
		"orchestrix_passivations_total", "orchestrix_recoveries_total",
		"orchestrix_recovery_seconds", "orchestrix_projection_lag_events",
		"orchestrix_projection_position", "orchestrix_saga_instances",
		"orchestrix_saga_compensations_total",
		"orchestrix_cluster_members", "orchestrix_cluster_topology_changes_total",
		"orchestrix_cluster_commands_total", "orchestrix_cluster_not_owner_retries_total",
		"orchestrix_cluster_conflicts_retried_total", "orchestrix_cluster_self_fences_total",
	}, names)
}

func TestClusterSeries_Move(t *testing.T) {
	m, reg := newMetrics(t)
	h := telemetryhooks.MetricsOf(m)
	h.ClusterTopology(3)
	h.ClusterTopology(2)
	h.ClusterCommand("k", true)
	h.ClusterCommand("k", false)
	h.ClusterCommand("k", false)
	h.ClusterNotOwnerRetry("k")
	h.ClusterConflictRetry("k")
	h.ClusterSelfFence("majority")
	want := `
# HELP orchestrix_cluster_members Members this cluster member sees (itself included).
# TYPE orchestrix_cluster_members gauge
orchestrix_cluster_members 2
# HELP orchestrix_cluster_topology_changes_total Topology changes this cluster member saw.
# TYPE orchestrix_cluster_topology_changes_total counter
orchestrix_cluster_topology_changes_total 2
# HELP orchestrix_cluster_commands_total Commands sent through this cluster member, by aggregate kind and where they ran (local or remote).
# TYPE orchestrix_cluster_commands_total counter
orchestrix_cluster_commands_total{kind="k",route="local"} 2
orchestrix_cluster_commands_total{kind="k",route="remote"} 1
# HELP orchestrix_cluster_self_fences_total Times this cluster member fenced itself, by reason (paused, majority, unconfirmed).
# TYPE orchestrix_cluster_self_fences_total counter
orchestrix_cluster_self_fences_total{reason="majority"} 1
`
	require.NoError(t, testutil.GatherAndCompare(reg, strings.NewReader(want),
		"orchestrix_cluster_members", "orchestrix_cluster_topology_changes_total",
		"orchestrix_cluster_commands_total", "orchestrix_cluster_self_fences_total"))
}

func TestNewMetrics_NothingGlobal(t *testing.T) {
	_, _ = newMetrics(t)
	fams, err := prometheus.DefaultGatherer.Gather()
	require.NoError(t, err)
	for _, f := range fams {
		assert.False(t, strings.HasPrefix(f.GetName(), "orchestrix_"), f.GetName())
	}
}

func TestNewMetrics_SameRegistryTwice_ReturnsError(t *testing.T) {
	_, reg := newMetrics(t)
	_, err := telemetry.NewMetrics(reg)
	var are prometheus.AlreadyRegisteredError
	require.ErrorAs(t, err, &are)
}

func TestNewMetrics_NilRegisterer_RegistersLater(t *testing.T) {
	m, err := telemetry.NewMetrics(nil)
	require.NoError(t, err)
	telemetryhooks.MetricsOf(m).CommandDone("k", telemetry.OutcomeOK, time.Millisecond)
	reg := prometheus.NewRegistry()
	require.NoError(t, reg.Register(m))
	n, err := testutil.GatherAndCount(reg, "orchestrix_commands_total")
	require.NoError(t, err)
	assert.Equal(t, 11, n, "one series per outcome")
}

func TestMetrics_Observe_CommandDoneByOutcome(t *testing.T) {
	m, _ := newMetrics(t)
	obs := func(out telemetry.Outcome, err error) {
		m.Observe(telemetry.Observation{Kind: telemetry.CommandDone, AggregateKind: "order", AggregateID: "o-1",
			Outcome: out, Err: err, Duration: 3 * time.Millisecond})
	}
	obs(telemetry.OutcomeOK, nil)
	obs(telemetry.OutcomeUnset, nil)
	obs(telemetry.OutcomeRejected, errors.New("no"))
	obs(telemetry.OutcomeUnset, fmt.Errorf("append: %w", orchestrix.ErrVersionConflict))
	obs(telemetry.OutcomeUnset, context.DeadlineExceeded)
	obs(telemetry.Outcome(200), errors.New("out of range"))

	const want = `
# HELP orchestrix_commands_total Commands answered by aggregates, by aggregate kind and outcome.
# TYPE orchestrix_commands_total counter
orchestrix_commands_total{kind="order",outcome="canceled"} 0
orchestrix_commands_total{kind="order",outcome="closed"} 0
orchestrix_commands_total{kind="order",outcome="conflict"} 1
orchestrix_commands_total{kind="order",outcome="duplicate"} 0
orchestrix_commands_total{kind="order",outcome="error"} 1
orchestrix_commands_total{kind="order",outcome="invalid"} 0
orchestrix_commands_total{kind="order",outcome="ok"} 2
orchestrix_commands_total{kind="order",outcome="panic"} 0
orchestrix_commands_total{kind="order",outcome="rejected"} 1
orchestrix_commands_total{kind="order",outcome="timeout"} 1
orchestrix_commands_total{kind="order",outcome="unknown"} 0
`
	require.NoError(t, testutil.CollectAndCompare(m, strings.NewReader(want), "orchestrix_commands_total"))
}

func TestMetrics_Observe_DurationHistogram(t *testing.T) {
	m, _ := newMetrics(t)
	telemetryhooks.MetricsOf(m).CommandDone("k", telemetry.OutcomeOK, 2*time.Millisecond)
	telemetryhooks.MetricsOf(m).CommandDone("k", telemetry.OutcomeOK, 0) // unknown duration: not observed
	const want = `
# HELP orchestrix_command_duration_seconds Time from Send to the command's answer, by aggregate kind.
# TYPE orchestrix_command_duration_seconds histogram
orchestrix_command_duration_seconds_bucket{kind="k",le="0.0001"} 0
orchestrix_command_duration_seconds_bucket{kind="k",le="0.00025"} 0
orchestrix_command_duration_seconds_bucket{kind="k",le="0.0005"} 0
orchestrix_command_duration_seconds_bucket{kind="k",le="0.001"} 0
orchestrix_command_duration_seconds_bucket{kind="k",le="0.0025"} 1
orchestrix_command_duration_seconds_bucket{kind="k",le="0.005"} 1
orchestrix_command_duration_seconds_bucket{kind="k",le="0.01"} 1
orchestrix_command_duration_seconds_bucket{kind="k",le="0.025"} 1
orchestrix_command_duration_seconds_bucket{kind="k",le="0.05"} 1
orchestrix_command_duration_seconds_bucket{kind="k",le="0.1"} 1
orchestrix_command_duration_seconds_bucket{kind="k",le="0.25"} 1
orchestrix_command_duration_seconds_bucket{kind="k",le="0.5"} 1
orchestrix_command_duration_seconds_bucket{kind="k",le="1"} 1
orchestrix_command_duration_seconds_bucket{kind="k",le="2.5"} 1
orchestrix_command_duration_seconds_bucket{kind="k",le="5"} 1
orchestrix_command_duration_seconds_bucket{kind="k",le="10"} 1
orchestrix_command_duration_seconds_bucket{kind="k",le="+Inf"} 1
orchestrix_command_duration_seconds_sum{kind="k"} 0.002
orchestrix_command_duration_seconds_count{kind="k"} 1
`
	require.NoError(t, testutil.CollectAndCompare(m, strings.NewReader(want), "orchestrix_command_duration_seconds"))
}

func TestMetrics_Observe_LifecycleKinds(t *testing.T) {
	m, _ := newMetrics(t)
	for _, o := range []telemetry.Observation{
		{Kind: telemetry.Activated, AggregateKind: "k"},
		{Kind: telemetry.Activated, AggregateKind: "k"},
		{Kind: telemetry.Recovered, AggregateKind: "k", Duration: time.Second},
		{Kind: telemetry.Committed, AggregateKind: "k", Events: 5, Commands: 2},
		{Kind: telemetry.Committed, AggregateKind: "k", Events: 7, Err: errors.New("disk")},
		{Kind: telemetry.Passivated, AggregateKind: "k"},
		{Kind: telemetry.Decided, AggregateKind: "k", Events: 9},
		{Kind: telemetry.SnapshotSaved, AggregateKind: "k"},
		{Kind: telemetry.Restarted, AggregateKind: "k"},
	} {
		m.Observe(o)
	}
	const want = `
# HELP orchestrix_aggregates_active Aggregates with a live actor, by aggregate kind.
# TYPE orchestrix_aggregates_active gauge
orchestrix_aggregates_active{kind="k"} 1
# HELP orchestrix_events_appended_total Events durably appended by aggregates, by aggregate kind.
# TYPE orchestrix_events_appended_total counter
orchestrix_events_appended_total{kind="k"} 5
# HELP orchestrix_passivations_total Aggregate actors stopped (idle, evicted or shut down), by aggregate kind.
# TYPE orchestrix_passivations_total counter
orchestrix_passivations_total{kind="k"} 1
# HELP orchestrix_recoveries_total Aggregate recoveries (snapshot load plus replay) completed or failed, by aggregate kind.
# TYPE orchestrix_recoveries_total counter
orchestrix_recoveries_total{kind="k"} 1
`
	require.NoError(t, testutil.CollectAndCompare(m, strings.NewReader(want),
		"orchestrix_aggregates_active", "orchestrix_events_appended_total",
		"orchestrix_passivations_total", "orchestrix_recoveries_total"))
	assert.Equal(t, 1, testutil.CollectAndCount(m, "orchestrix_recovery_seconds"))
}

func TestMetrics_ObserveCommit_FeedsJournalHistograms(t *testing.T) {
	m, _ := newMetrics(t)
	telemetryhooks.MetricsOf(m).ObserveCommit(3, 4*time.Millisecond)
	telemetryhooks.MetricsOf(m).ObserveCommit(100, time.Millisecond)
	telemetryhooks.MetricsOf(m).ObserveCommit(-1, -time.Second) // nonsense is clamped to zero
	const want = `
# HELP orchestrix_journal_batch_events Events per journal commit (one transaction).
# TYPE orchestrix_journal_batch_events histogram
orchestrix_journal_batch_events_bucket{le="1"} 1
orchestrix_journal_batch_events_bucket{le="2"} 1
orchestrix_journal_batch_events_bucket{le="4"} 2
orchestrix_journal_batch_events_bucket{le="8"} 2
orchestrix_journal_batch_events_bucket{le="16"} 2
orchestrix_journal_batch_events_bucket{le="32"} 2
orchestrix_journal_batch_events_bucket{le="64"} 2
orchestrix_journal_batch_events_bucket{le="128"} 3
orchestrix_journal_batch_events_bucket{le="256"} 3
orchestrix_journal_batch_events_bucket{le="512"} 3
orchestrix_journal_batch_events_bucket{le="1024"} 3
orchestrix_journal_batch_events_bucket{le="2048"} 3
orchestrix_journal_batch_events_bucket{le="4096"} 3
orchestrix_journal_batch_events_bucket{le="+Inf"} 3
orchestrix_journal_batch_events_sum 103
orchestrix_journal_batch_events_count 3
`
	require.NoError(t, testutil.CollectAndCompare(m, strings.NewReader(want), "orchestrix_journal_batch_events"))
	assert.Equal(t, 1, testutil.CollectAndCount(m, "orchestrix_journal_commit_seconds"))
}

func TestMetrics_ProjectionPosition_SetsGauges(t *testing.T) {
	m, _ := newMetrics(t)
	telemetryhooks.MetricsOf(m).ProjectionPosition("balances", 10, 5)
	telemetryhooks.MetricsOf(m).ProjectionPosition("balances", 42, 0)
	telemetryhooks.MetricsOf(m).ProjectionPosition("audit", 7, 35)
	const want = `
# HELP orchestrix_projection_lag_events Events committed to the journal that a projection has not processed yet.
# TYPE orchestrix_projection_lag_events gauge
orchestrix_projection_lag_events{projection="audit"} 35
orchestrix_projection_lag_events{projection="balances"} 0
# HELP orchestrix_projection_position Global journal position a projection has processed (its checkpoint).
# TYPE orchestrix_projection_position gauge
orchestrix_projection_position{projection="audit"} 7
orchestrix_projection_position{projection="balances"} 42
`
	require.NoError(t, testutil.CollectAndCompare(m, strings.NewReader(want),
		"orchestrix_projection_lag_events", "orchestrix_projection_position"))
}

func TestMetrics_SagaMethods_TrackInstancesAndCompensations(t *testing.T) {
	m, _ := newMetrics(t)
	telemetryhooks.MetricsOf(m).SetSagaInstances("shipping", "running", 4)
	telemetryhooks.MetricsOf(m).SagaTransition("shipping", "", "running")
	telemetryhooks.MetricsOf(m).SagaTransition("shipping", "running", "compensating")
	telemetryhooks.MetricsOf(m).SagaCompensation("shipping")
	telemetryhooks.MetricsOf(m).SagaTransition("shipping", "compensating", "")
	const want = `
# HELP orchestrix_saga_compensations_total Compensations started by sagas.
# TYPE orchestrix_saga_compensations_total counter
orchestrix_saga_compensations_total{saga="shipping"} 1
# HELP orchestrix_saga_instances Saga instances by saga and state.
# TYPE orchestrix_saga_instances gauge
orchestrix_saga_instances{saga="shipping",state="compensating"} 0
orchestrix_saga_instances{saga="shipping",state="running"} 4
`
	require.NoError(t, testutil.CollectAndCompare(m, strings.NewReader(want),
		"orchestrix_saga_compensations_total", "orchestrix_saga_instances"))
}

func TestMetrics_NilReceiver_IsNoOp(t *testing.T) {
	var m *telemetry.Metrics
	assert.NotPanics(t, func() {
		m.Observe(telemetry.Observation{Kind: telemetry.CommandDone, AggregateKind: "k"})
		telemetryhooks.MetricsOf(m).CommandDone("k", telemetry.OutcomeOK, time.Second)
		telemetryhooks.MetricsOf(m).ObserveCommit(1, time.Second)
		telemetryhooks.MetricsOf(m).ProjectionPosition("p", 1, 1)
		telemetryhooks.MetricsOf(m).SetSagaInstances("s", "x", 1)
		telemetryhooks.MetricsOf(m).SagaTransition("s", "a", "b")
		telemetryhooks.MetricsOf(m).SagaCompensation("s")
	})
}

func TestOutcomeOf_ClassifiesSharedSentinels(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want telemetry.Outcome
	}{
		{nil, telemetry.OutcomeOK},
		{fmt.Errorf("x: %w", context.DeadlineExceeded), telemetry.OutcomeTimeout},
		{context.Canceled, telemetry.OutcomeCanceled},
		{fmt.Errorf("x: %w", orchestrix.ErrVersionConflict), telemetry.OutcomeConflict},
		{orchestrix.ErrOutcomeUnknown, telemetry.OutcomeUnknown},
		{errors.Join(orchestrix.ErrOutcomeUnknown, context.DeadlineExceeded), telemetry.OutcomeTimeout},
		{orchestrix.ErrClosed, telemetry.OutcomeClosed},
		{orchestrix.ErrNotFound, telemetry.OutcomeRejected},
		{orchestrix.ErrInvalidEnvelope, telemetry.OutcomeInvalid},
		{orchestrix.ErrTooLarge, telemetry.OutcomeInvalid},
		{errors.New("disk on fire"), telemetry.OutcomeError},
	} {
		assert.Equal(t, tc.want, telemetry.OutcomeOf(tc.err), "%v", tc.err)
	}
}

func TestOutcome_String_LabelValues(t *testing.T) {
	assert.Equal(t, "", telemetry.OutcomeUnset.String())
	assert.Equal(t, "ok", telemetry.OutcomeOK.String())
	assert.Equal(t, "duplicate", telemetry.OutcomeDuplicate.String())
	assert.Equal(t, "error", telemetry.OutcomeError.String())
	assert.Equal(t, "error", telemetry.Outcome(99).String())
	assert.False(t, telemetry.OutcomeDuplicate.Failed())
	assert.True(t, telemetry.OutcomeRejected.Failed())
}

func TestObservers_FansOutSkippingNil(t *testing.T) {
	var a, b int
	obs := telemetry.Observers(
		telemetry.ObserverFunc(func(telemetry.Observation) { a++ }),
		nil,
		telemetry.ObserverFunc(func(telemetry.Observation) { b++ }),
	)
	obs.Observe(telemetry.Observation{Kind: telemetry.Activated})
	assert.Equal(t, []int{1, 1}, []int{a, b})
	assert.Equal(t, "command-done", telemetry.CommandDone.String())
	assert.Equal(t, "unknown", telemetry.ObservationKind(77).String())
}

func BenchmarkMetrics_Observe_CommandDone(b *testing.B) {
	m, err := telemetry.NewMetrics(prometheus.NewRegistry())
	require.NoError(b, err)
	o := telemetry.Observation{Kind: telemetry.CommandDone, AggregateKind: "k", Outcome: telemetry.OutcomeOK, Duration: time.Millisecond}
	b.ReportAllocs()
	for b.Loop() {
		m.Observe(o)
	}
}
