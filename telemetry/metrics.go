package telemetry

import (
	"fmt"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/orchestrix/orchestrix/internal/telemetryhooks/bridge"
)

// Namespace is the prefix of every metric name.
const Namespace = "orchestrix"

// Label names. Their values have bounded cardinality: aggregate kinds,
// outcomes, projection and saga names and saga states are fixed by the
// program, never per-aggregate ids.
const (
	LabelKind       = "kind"
	LabelOutcome    = "outcome"
	LabelProjection = "projection"
	LabelSaga       = "saga"
	LabelState      = "state"
	LabelProcess    = "process"
	LabelInput      = "input"
	LabelRoute      = "route"  // cluster: where a command ran, "local" or "remote"
	LabelReason     = "reason" // cluster: why a member fenced itself, "paused" or "majority"
)

// Histogram buckets.
var (
	// latencyBuckets (seconds) serve command_duration_seconds,
	// journal_commit_seconds and recovery_seconds: 100 µs to 10 s.
	latencyBuckets = []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}
	// batchBuckets serve journal_batch_events: 1 to 4096 events.
	batchBuckets = prometheus.ExponentialBuckets(1, 2, 13)
)

// Metrics holds Orchestrix's Prometheus metrics. Create it with NewMetrics
// and give the same *Metrics to the runtime (actor.Config.Metrics) and to
// the journals, projections and sagas you configure: each records its own
// series into it (a nil *Metrics means "no metrics"). Read the series
// through the prometheus.Registerer you registered it on.
//
// Metrics is a prometheus.Collector of all of its series, and an Observer
// of the runtime's Observations (its Observe records the command,
// event, aggregate and recovery series); its methods are safe for
// concurrent use.
type Metrics struct {
	commands         *prometheus.CounterVec
	commandDuration  *prometheus.HistogramVec
	eventsAppended   *prometheus.CounterVec
	batchEvents      prometheus.Histogram
	commitSeconds    prometheus.Histogram
	aggregatesActive *prometheus.GaugeVec
	passivations     *prometheus.CounterVec
	recoveries       *prometheus.CounterVec
	recoverySeconds  *prometheus.HistogramVec
	projectionLag    *prometheus.GaugeVec
	projectionPos    *prometheus.GaugeVec
	sagaInstances    *prometheus.GaugeVec
	sagaCompensation *prometheus.CounterVec
	processInputs    *prometheus.CounterVec
	clusterMembers   prometheus.Gauge
	clusterTopology  prometheus.Counter
	clusterCommands  *prometheus.CounterVec
	clusterNotOwner  *prometheus.CounterVec
	clusterConflicts *prometheus.CounterVec
	clusterFences    *prometheus.CounterVec

	collectors []prometheus.Collector

	// kinds caches the series of each aggregate kind (string →
	// *kindSeries), so the runtime's hot path does no label hashing.
	kinds sync.Map
}

// kindSeries are the series of one aggregate kind.
type kindSeries struct {
	commands        [numOutcomes]prometheus.Counter // index OutcomeUnset unused
	duration        prometheus.Observer
	events          prometheus.Counter
	active          prometheus.Gauge
	passivations    prometheus.Counter
	recoveries      prometheus.Counter
	recoverySeconds prometheus.Observer
}

var _ Observer = (*Metrics)(nil)
var _ prometheus.Collector = (*Metrics)(nil)

// NewMetrics creates the metrics and registers them, as one collector, on
// reg. Nothing is registered anywhere else (in particular not on the
// global prometheus.DefaultRegisterer); a nil reg registers nothing, for a
// caller that registers the returned *Metrics itself. The error is reg's
// (for example a prometheus.AlreadyRegisteredError when the same names are
// registered twice).
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		commands: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Name: "commands_total",
			Help: "Commands answered by aggregates, by aggregate kind and outcome.",
		}, []string{LabelKind, LabelOutcome}),
		commandDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: Namespace, Name: "command_duration_seconds",
			Help:    "Time from Send to the command's answer, by aggregate kind.",
			Buckets: latencyBuckets,
		}, []string{LabelKind}),
		eventsAppended: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Name: "events_appended_total",
			Help: "Events durably appended by aggregates, by aggregate kind.",
		}, []string{LabelKind}),
		batchEvents: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: Namespace, Name: "journal_batch_events",
			Help:    "Events per journal commit (one transaction).",
			Buckets: batchBuckets,
		}),
		commitSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: Namespace, Name: "journal_commit_seconds",
			Help:    "Duration of one journal commit (one transaction, including its sync).",
			Buckets: latencyBuckets,
		}),
		aggregatesActive: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: Namespace, Name: "aggregates_active",
			Help: "Aggregates with a live actor, by aggregate kind.",
		}, []string{LabelKind}),
		passivations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Name: "passivations_total",
			Help: "Aggregate actors stopped (idle, evicted or shut down), by aggregate kind.",
		}, []string{LabelKind}),
		recoveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Name: "recoveries_total",
			Help: "Aggregate recoveries (snapshot load plus replay) completed or failed, by aggregate kind.",
		}, []string{LabelKind}),
		recoverySeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: Namespace, Name: "recovery_seconds",
			Help:    "Duration of aggregate recoveries, by aggregate kind.",
			Buckets: latencyBuckets,
		}, []string{LabelKind}),
		projectionLag: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: Namespace, Name: "projection_lag_events",
			Help: "Events committed to the journal that a projection has not processed yet.",
		}, []string{LabelProjection}),
		projectionPos: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: Namespace, Name: "projection_position",
			Help: "Global journal position a projection has processed (its checkpoint).",
		}, []string{LabelProjection}),
		sagaInstances: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: Namespace, Name: "saga_instances",
			Help: "Saga instances by saga and state.",
		}, []string{LabelSaga, LabelState}),
		sagaCompensation: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Name: "saga_compensations_total",
			Help: "Compensations started by sagas.",
		}, []string{LabelSaga}),
		processInputs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Name: "process_inputs_total",
			Help: "Events and timeouts recorded by process managers, by input and outcome.",
		}, []string{LabelProcess, LabelInput, LabelOutcome}),
		clusterMembers: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: Namespace, Name: "cluster_members",
			Help: "Members this cluster member sees (itself included).",
		}),
		clusterTopology: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: Namespace, Name: "cluster_topology_changes_total",
			Help: "Topology changes this cluster member saw.",
		}),
		clusterCommands: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Name: "cluster_commands_total",
			Help: "Commands sent through this cluster member, by aggregate kind and where they ran (local or remote).",
		}, []string{LabelKind, LabelRoute}),
		clusterNotOwner: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Name: "cluster_not_owner_retries_total",
			Help: "Requests placed again because they were not delivered (not the owner, no owner, dead letter, released), by aggregate kind.",
		}, []string{LabelKind}),
		clusterConflicts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Name: "cluster_conflicts_retried_total",
			Help: "Version conflicts at the journal (another activation wrote: the fence) retried on fresh state in cluster mode, by aggregate kind.",
		}, []string{LabelKind}),
		clusterFences: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Name: "cluster_self_fences_total",
			Help: "Times this cluster member fenced itself, by reason (paused, majority, unconfirmed).",
		}, []string{LabelReason}),
	}
	m.collectors = []prometheus.Collector{
		m.commands, m.commandDuration, m.eventsAppended, m.batchEvents, m.commitSeconds,
		m.aggregatesActive, m.passivations, m.recoveries, m.recoverySeconds,
		m.projectionLag, m.projectionPos, m.sagaInstances, m.sagaCompensation,
		m.processInputs,
		m.clusterMembers, m.clusterTopology, m.clusterCommands, m.clusterNotOwner, m.clusterConflicts, m.clusterFences,
	}
	if reg != nil {
		if err := reg.Register(m); err != nil {
			return nil, fmt.Errorf("telemetry: registering metrics: %w", err)
		}
	}
	return m, nil
}

// Describe implements prometheus.Collector.
func (m *Metrics) Describe(ch chan<- *prometheus.Desc) {
	for _, c := range m.collectors {
		c.Describe(ch)
	}
}

// Collect implements prometheus.Collector.
func (m *Metrics) Collect(ch chan<- prometheus.Metric) {
	for _, c := range m.collectors {
		c.Collect(ch)
	}
}

// kind returns the cached series of an aggregate kind, creating them
// (with every outcome's counter at zero) on first use.
func (m *Metrics) kind(kind string) *kindSeries {
	if s, ok := m.kinds.Load(kind); ok {
		return s.(*kindSeries)
	}
	s := &kindSeries{
		duration:        m.commandDuration.WithLabelValues(kind),
		events:          m.eventsAppended.WithLabelValues(kind),
		active:          m.aggregatesActive.WithLabelValues(kind),
		passivations:    m.passivations.WithLabelValues(kind),
		recoveries:      m.recoveries.WithLabelValues(kind),
		recoverySeconds: m.recoverySeconds.WithLabelValues(kind),
	}
	for o := OutcomeOK; o < numOutcomes; o++ {
		s.commands[o] = m.commands.WithLabelValues(kind, o.String())
	}
	actual, _ := m.kinds.LoadOrStore(kind, s)
	return actual.(*kindSeries)
}

// Observe records o: CommandDone feeds commands_total and
// command_duration_seconds (when Duration is set), a successful Committed
// feeds events_appended_total, Activated and Passivated move
// aggregates_active (Passivated also counts passivations_total), and
// Recovered feeds recoveries_total and recovery_seconds. Other kinds are
// ignored.
func (m *Metrics) Observe(o Observation) {
	if m == nil {
		return
	}
	switch o.Kind {
	case CommandDone:
		out := o.Outcome
		if out == OutcomeUnset {
			out = OutcomeOf(o.Err)
		}
		m.commandDone(m.kind(o.AggregateKind), out, o.Duration)
	case Committed:
		if o.Err == nil && o.Events > 0 {
			m.kind(o.AggregateKind).events.Add(float64(o.Events))
		}
	case Activated:
		m.kind(o.AggregateKind).active.Inc()
	case Passivated:
		s := m.kind(o.AggregateKind)
		s.active.Dec()
		s.passivations.Inc()
	case Recovered:
		s := m.kind(o.AggregateKind)
		s.recoveries.Inc()
		s.recoverySeconds.Observe(seconds(o.Duration))
	}
}

func (m *Metrics) commandDone(s *kindSeries, out Outcome, d time.Duration) {
	if out == OutcomeUnset || out >= numOutcomes {
		out = OutcomeError
	}
	s.commands[out].Inc()
	if d > 0 {
		s.duration.Observe(d.Seconds())
	}
}

// Values of the input and outcome labels of process_inputs_total.
const (
	InputEvent   = "event"
	InputTimeout = "timeout"

	OutcomeHandled   = "handled"   // the handler succeeded
	OutcomeFailed    = "failed"    // the handler failed for good
	OutcomeCompleted = "completed" // the handler succeeded and completed the process
)

func init() {
	bridge.Recorder = func(m any) bridge.MetricsRecorder {
		if mt, _ := m.(*Metrics); mt != nil {
			return recorder{mt}
		}
		return nil
	}
}

// recorder is the recording side of a *Metrics, which the runtime's
// components reach through internal/telemetryhooks: users configure
// metrics and read them; they do not record.
type recorder struct{ m *Metrics }

// CommandDone counts a command of aggregate kind that ended with outcome
// and, when d > 0, records its duration. OutcomeUnset counts as
// OutcomeError.
func (r recorder) CommandDone(kind string, outcome uint8, d time.Duration) {
	r.m.commandDone(r.m.kind(kind), Outcome(outcome), d)
}

// ObserveCommit records one journal commit (one transaction) of events
// events that took d, including its sync: journal_batch_events and
// journal_commit_seconds. Journal backends call it once per commit, after
// the commit succeeded; a failed commit is not recorded.
func (r recorder) ObserveCommit(events int, d time.Duration) {
	r.m.batchEvents.Observe(float64(max(events, 0)))
	r.m.commitSeconds.Observe(seconds(d))
}

// ProjectionPosition records that projection name has processed the
// global log up to position pos and is lag events behind the journal's
// head (projection_position and projection_lag_events).
func (r recorder) ProjectionPosition(name string, pos, lag uint64) {
	r.m.projectionPos.WithLabelValues(name).Set(float64(pos))
	r.m.projectionLag.WithLabelValues(name).Set(float64(lag))
}

// SetSagaInstances sets the number of instances of saga in state to n
// (saga_instances).
func (r recorder) SetSagaInstances(saga, state string, n int) {
	r.m.sagaInstances.WithLabelValues(saga, state).Set(float64(n))
}

// SagaTransition moves one instance of saga from state from to state to
// in saga_instances. An empty from means a new instance, an empty to an
// instance that is no longer tracked.
func (r recorder) SagaTransition(saga, from, to string) {
	if from != "" {
		r.m.sagaInstances.WithLabelValues(saga, from).Dec()
	}
	if to != "" {
		r.m.sagaInstances.WithLabelValues(saga, to).Inc()
	}
}

// SagaCompensation counts one compensation started by saga
// (saga_compensations_total).
func (r recorder) SagaCompensation(saga string) {
	r.m.sagaCompensation.WithLabelValues(saga).Inc()
}

// ProcessInputs counts n inputs of process (process_inputs_total) that
// were recorded with outcome.
func (r recorder) ProcessInputs(process, input, outcome string, n int) {
	if n > 0 {
		r.m.processInputs.WithLabelValues(process, input, outcome).Add(float64(n))
	}
}

// ClusterTopology sets cluster_members and counts a topology change.
func (r recorder) ClusterTopology(members int) {
	r.m.clusterMembers.Set(float64(members))
	r.m.clusterTopology.Inc()
}

// ClusterCommand counts a command of kind sent through a cluster member
// that ran locally or on another member (cluster_commands_total).
func (r recorder) ClusterCommand(kind string, remote bool) {
	route := "local"
	if remote {
		route = "remote"
	}
	r.m.clusterCommands.WithLabelValues(kind, route).Inc()
}

// ClusterNotOwnerRetry counts a request of kind placed again
// (cluster_not_owner_retries_total).
func (r recorder) ClusterNotOwnerRetry(kind string) { r.m.clusterNotOwner.WithLabelValues(kind).Inc() }

// ClusterConflictRetry counts a version conflict retried on fresh state
// (cluster_conflicts_retried_total).
func (r recorder) ClusterConflictRetry(kind string) { r.m.clusterConflicts.WithLabelValues(kind).Inc() }

// ClusterSelfFence counts a self-fence (cluster_self_fences_total).
func (r recorder) ClusterSelfFence(reason string) { r.m.clusterFences.WithLabelValues(reason).Inc() }

func seconds(d time.Duration) float64 {
	if d < 0 {
		return 0
	}
	return d.Seconds()
}
