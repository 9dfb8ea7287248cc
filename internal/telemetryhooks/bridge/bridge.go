// Package bridge lets package telemetry hand the recording side of its
// *Metrics to package telemetryhooks without exporting it: telemetry
// imports bridge and sets Recorder in its init; telemetryhooks imports
// both and calls Recorder. It imports nothing of ours, so neither
// import runs in a cycle.
package bridge

import "time"

// MetricsRecorder records what the runtime's components measure into one
// *telemetry.Metrics. Its methods are safe for concurrent use.
type MetricsRecorder interface {
	CommandDone(kind string, outcome uint8, d time.Duration)
	ObserveCommit(events int, d time.Duration)
	ProjectionPosition(name string, pos, lag uint64)
	SetSagaInstances(saga, state string, n int)
	SagaTransition(saga, from, to string)
	SagaCompensation(saga string)
	ProcessInputs(process, input, outcome string, n int)
	ClusterTopology(members int)
	ClusterCommand(kind string, remote bool)
	ClusterNotOwnerRetry(kind string)
	ClusterConflictRetry(kind string)
	ClusterSelfFence(reason string)
}

// Recorder returns the recorder of m, a *telemetry.Metrics, or nil when
// m is nil or of another type. Package telemetry sets it in its init.
var Recorder func(m any) MetricsRecorder
