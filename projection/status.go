package projection

// State is where a projection is in its life cycle.
type State int

const (
	// StateStopped: not running (never started, or stopped by Stop or
	// Close).
	StateStopped State = iota
	// StateRunning: catching up or following the journal live.
	StateRunning
	// StateRetrying: running, but waiting to try a failed event (or
	// journal read, or checkpoint save) again.
	StateRetrying
	// StateFailed: stopped on an error that retries did not fix;
	// Status.LastError and Status.FailedPosition say what and where.
	// Start retries from the checkpoint; Skip passes over the event.
	StateFailed
	// StateCompleted: an as-of projection reached its UntilPosition or
	// UntilTime and stopped there.
	StateCompleted
)

// String returns the lower-case name of s.
func (s State) String() string {
	switch s {
	case StateStopped:
		return "stopped"
	case StateRunning:
		return "running"
	case StateRetrying:
		return "retrying"
	case StateFailed:
		return "failed"
	case StateCompleted:
		return "completed"
	}
	return "unknown"
}

// Status is a snapshot of one projection's progress.
type Status struct {
	// Name is the projection's name.
	Name string
	// State is where the projection is in its life cycle.
	State State
	// Live is true while the projection has read everything committed and
	// waits for the next commit.
	Live bool
	// Position is the checkpoint: every record at or below it has been
	// handled (or excluded by the filter, or skipped).
	Position uint64
	// Head is the newest committed journal position known: fresh from
	// the journal in Manager.Status, the last one the projection saw in
	// Manager.Wait.
	Head uint64
	// Lag is Head minus Position (0 when Position is at or past Head).
	Lag uint64
	// Attempts is the number of failed attempts at the current event
	// while retrying, or at the failing event once failed.
	Attempts int
	// FailedPosition is the position of the record the projection failed
	// (or is retrying) at; 0 when none.
	FailedPosition uint64
	// LastError is the error of the last failed attempt, nil once the
	// projection makes progress again. For a failed event it is an
	// *EventError.
	LastError error
}

func (s *Status) computeLag() {
	s.Lag = 0
	if s.Head > s.Position {
		s.Lag = s.Head - s.Position
	}
}
