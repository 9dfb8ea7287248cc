package orchestrix

import "time"

// SpecVersion is the CloudEvents specification version every envelope
// carries.
const SpecVersion = "1.0"

// Envelope is how every event and command travels and is stored: the
// attributes of a CloudEvents 1.0 event plus Orchestrix's extensions, and
// the already-encoded payload in Data.
//
// The structured-mode JSON form (MarshalJSON / UnmarshalJSON) is valid
// CloudEvents JSON. The binary form (MarshalBinary / UnmarshalBinary) is the
// compact encoding the journals store.
type Envelope struct {
	// ID identifies the event (a UUIDv7 string by default). Together with
	// Source it is unique; journals use it for idempotent retries.
	ID string
	// Source identifies the context in which the event happened (a URI
	// reference such as "/orchestrix/bank").
	Source string
	// SpecVersion is always "1.0"; empty is read as "1.0" when encoding.
	SpecVersion string
	// Type is the registered, stable type name of the payload.
	Type string
	// Subject is the aggregate id the event belongs to.
	Subject string
	// Time is when the event happened (set from the injected clock).
	Time time.Time
	// DataContentType is the media type of Data, e.g. "application/json".
	DataContentType string
	// DataSchema optionally identifies the schema of Data (a URI).
	DataSchema string
	// SchemaVersion is the registered schema version of the payload type
	// at the time it was encoded (1 when unset). Upcasters bring older
	// versions forward on read. Extension attribute "schemaversion".
	SchemaVersion int

	// Sequence is the version of the event in its stream (extension
	// attribute "sequence", encoded as a decimal string as the CloudEvents
	// sequence extension prescribes). Set by the journal on append.
	Sequence uint64
	// CorrelationID groups every message of one business transaction
	// (extension "correlationid").
	CorrelationID string
	// CausationID is the id of the message that caused this one
	// (extension "causationid"); the runtime records the command id here,
	// which is what command deduplication reads back.
	CausationID string
	// TraceParent is a W3C trace context traceparent header value
	// (extension "traceparent").
	TraceParent string
	// Extensions holds any further CloudEvents extension attributes.
	// Names must be 1-20 lower-case letters or digits.
	Extensions map[string]string

	// Data is the encoded payload.
	Data []byte
}
