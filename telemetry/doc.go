// Package telemetry is how a service sees what Orchestrix does: its
// Prometheus metrics (NewMetrics), the runtime's Observations (Observer),
// the names of its spans and their attributes, and W3C traceparent helpers
// for continuing a trace from an event. Give one *Metrics and one
// OpenTelemetry TracerProvider to the components you configure
// (actor.Config, the journal backends' Config, projection.Config,
// saga.Config); they record into them. It imports only the root package,
// client_golang and the OpenTelemetry API (never an SDK).
//
// # Metrics
//
// NewMetrics registers these on a caller-supplied prometheus.Registerer
// (nothing is registered globally). Labels have bounded cardinality:
// aggregate kinds, outcomes, projection and saga names and saga states,
// never aggregate ids.
//
//	orchestrix_commands_total{kind,outcome}        counter   commands answered, by Outcome
//	orchestrix_command_duration_seconds{kind}      histogram Send to answer
//	orchestrix_events_appended_total{kind}         counter   events durably appended
//	orchestrix_journal_batch_events                histogram events per journal commit
//	orchestrix_journal_commit_seconds              histogram duration of a journal commit
//	orchestrix_aggregates_active{kind}             gauge     aggregates with a live actor
//	orchestrix_passivations_total{kind}            counter   actors stopped (idle, evicted, shut down)
//	orchestrix_recoveries_total{kind}              counter   recoveries (snapshot + replay)
//	orchestrix_recovery_seconds{kind}              histogram recovery duration
//	orchestrix_projection_lag_events{projection}   gauge     events not yet processed
//	orchestrix_projection_position{projection}     gauge     checkpointed global position
//	orchestrix_saga_instances{saga,state}          gauge     saga instances per state
//	orchestrix_saga_compensations_total{saga}      counter   compensations started
//	orchestrix_process_inputs_total{process,input,outcome}
//	                                               counter   events and timeouts process managers recorded
//	orchestrix_cluster_members                     gauge     members a cluster member sees
//	orchestrix_cluster_topology_changes_total      counter   topology changes it saw
//	orchestrix_cluster_commands_total{kind,route}  counter   commands sent through it, run local or remote
//	orchestrix_cluster_not_owner_retries_total{kind}
//	                                               counter   requests not delivered, placed again
//	orchestrix_cluster_conflicts_retried_total{kind}
//	                                               counter   version conflicts (the fence) retried on fresh state
//	orchestrix_cluster_self_fences_total{reason}   counter   self-fences (paused, majority, unconfirmed)
//
// The outcome label takes the values of Outcome: ok, duplicate, rejected,
// conflict, timeout, canceled, unknown, panic, invalid, closed, error.
//
// Who feeds what: the runtime (actor.Config.Metrics) feeds the command,
// event, aggregate, passivation and recovery metrics through Observe;
// journal backends (their Config.Metrics) record each commit; projection
// managers (projection.Config.Metrics) the positions and lags; saga
// runners (saga.Config.Metrics) the saga, compensation and process series;
// cluster members (cluster.Config.Metrics) the cluster series, except the
// conflicts retried, which the runtime records.
// Latencies use buckets from 100 µs to 10 s; journal_batch_events buckets
// from 1 to 4096 events.
//
// # Traces
//
// Components start spans through the OpenTelemetry API with their
// Config.TracerProvider (the global provider when nil), instrumentation
// scope ScopeName; without an SDK they are non-recording. Span names:
//
//	orchestrix.command            one per Send/Dispatch (SpanCommand), a child of the caller's span;
//	                              attributes orchestrix.aggregate.kind, .aggregate.id, .command.type,
//	                              .command.id, .command.outcome; error status on failure
//	orchestrix.journal.commit     one per journal commit (SpanJournalCommit), a child of the command
//	                              whose events come first, linked to the others
//	orchestrix.projection.batch   one per projection batch (SpanProjectionBatch), linked to the
//	                              commands that wrote its events
//	orchestrix.saga.step          one per saga step (SpanSagaStep), a child of the command
//	                              that wrote the triggering event
//
// The runtime writes the command span's W3C traceparent into every event
// it stores (Envelope.TraceParent). Downstream code continues the trace
// with ContextFromTraceParent (a child) or LinkFromTraceParent (a link);
// TraceParent formats the span context of a context. A saga's step and
// the commands it sends therefore appear in the trace of the command that
// caused them:
//
//	caller span
//	└── orchestrix.command (kind=order, outcome=ok)      event.traceparent = this span
//	    ├── orchestrix.journal.commit (events=2)
//	    └── orchestrix.saga.step (saga=shipping)         ContextFromTraceParent(event.TraceParent)
//	        └── orchestrix.command (kind=shipment)
package telemetry
