package aggregate

import "github.com/orchestrix/orchestrix"

// Command is a command addressed to one aggregate, with the metadata the
// runtime needs to deduplicate and trace it.
type Command[C any] struct {
	// ID identifies the command. A command retried with the same ID is
	// executed at most once (within the runtime's deduplication window);
	// set it to a deterministic value when retries must be recognised
	// (sagas derive it from the event that caused the command). Empty
	// means the runtime generates a UUIDv7.
	ID string
	// AggregateID is the id of the target aggregate.
	AggregateID string
	// Body is the command itself.
	Body C
	// CorrelationID groups the messages of one business transaction; it is
	// copied to the events the command produces (the command ID is used
	// when empty).
	CorrelationID string
	// TraceParent is a W3C traceparent header value copied to the events.
	TraceParent string
}

// NewCommand returns a command for aggregateID with a new UUIDv7 ID.
func NewCommand[C any](aggregateID string, body C) Command[C] {
	return Command[C]{ID: orchestrix.NewID(), AggregateID: aggregateID, Body: body}
}
