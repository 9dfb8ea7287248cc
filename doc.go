// Package orchestrix holds what every other Orchestrix package builds on:
// the message envelope, the event type registry with its codec and
// upcasters, and the sentinel errors shared by all packages. It imports no
// other Orchestrix package.
//
// # Envelope
//
// Every event and command travels and is stored as an Envelope: the
// attributes of a CloudEvents 1.0 event (id, source, specversion, type,
// subject, time, datacontenttype, dataschema) plus Orchestrix's extension
// attributes (sequence, correlationid, causationid, traceparent,
// schemaversion), free extensions, and the already-encoded payload in Data.
//
// An envelope has two encodings:
//
//   - Structured-mode CloudEvents JSON (MarshalJSON, UnmarshalJSON,
//     DecodeJSON), for the wire and for anything outside Orchestrix. JSON
//     payloads appear as JSON values under "data", any other payload
//     base64-encoded under "data_base64". DecodeJSON limits the payload
//     size (DefaultMaxDataSize unless DecodeOptions says otherwise).
//   - A compact, versioned binary form (MarshalBinary, UnmarshalBinary),
//     which the journals store.
//
// Both encoders validate the envelope first (see Envelope.Validate) and
// both decoders reject malformed input with an error matching
// ErrInvalidEnvelope, ErrCorrupt (binary) or ErrTooLarge (JSON data over
// the limit); they never panic. NewID makes the default envelope id, a
// UUIDv7.
//
// # Registry
//
// A Registry maps Go payload types to stable type names (Envelope.Type)
// and schema versions:
//
//	r := orchestrix.NewRegistry()
//	err := orchestrix.Register[AccountOpened](r, "bank.AccountOpened", orchestrix.WithSchemaVersion(2))
//
// Registry.Marshal encodes a payload with the registry's Codec (JSONCodec
// unless NewRegistry is given WithCodec) into a new envelope;
// Registry.Unmarshal decodes an envelope back into a value of the
// registered type. A type name with no registration is reported as
// ErrUnknownEventType, naming the type. Type names are part of the stored
// data: rename a Go type freely, but never the name it is registered
// under.
//
// # Upcasters
//
// When a payload's shape changes, raise its schema version and add an
// upcaster that turns a payload of the previous version into the new one
// (Registry.AddUpcaster; UpcastJSON helps with JSON payloads). Unmarshal
// runs the chain from the version recorded in the envelope
// (Envelope.SchemaVersion) up to the registered version, so events
// written years ago are read as the current type, on every read path. A
// missing step, a failing step, or an event newer than the registered
// version is reported as an *UpcastError; stored events are never
// rewritten.
package orchestrix
