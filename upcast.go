package orchestrix

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
)

// UpcastError reports that a payload could not be brought to the
// registered schema version of its type: an upcaster in the chain is
// missing or failed, or the payload is newer than the registered version.
type UpcastError struct {
	// Type is the registered type name.
	Type string
	// From is the version at which the chain broke (the payload's version
	// when it is newer than the registered one).
	From int
	// To is the registered (current) version.
	To int
	// Err is the cause.
	Err error
}

// Error implements error.
func (e *UpcastError) Error() string {
	return fmt.Sprintf("orchestrix: upcasting %q from schema version %d to %d: %v", e.Type, e.From, e.To, e.Err)
}

// Unwrap returns the cause.
func (e *UpcastError) Unwrap() error { return e.Err }

// AddUpcaster registers fn as the step that turns a payload of the type
// registered under typeName from schema version fromVersion into
// fromVersion+1. Unmarshal chains the steps from an envelope's
// SchemaVersion up to the registered version, so a type at version n needs
// a step from every version 1..n-1 that payloads may have been written
// at.
//
// fn receives and returns encoded payloads (the codec's format) and must
// be safe for concurrent use; it must not modify its input. An unknown
// typeName matches ErrUnknownEventType; a nil fn, a fromVersion outside
// 1..current-1, or a second step for the same version is a
// *RegistrationError.
func (r *Registry) AddUpcaster(typeName string, fromVersion int, fn func(data []byte) ([]byte, error)) error {
	if fn == nil {
		return &RegistrationError{Name: typeName, Reason: "nil upcaster"}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	reg, ok := r.byName[typeName]
	if !ok {
		return fmt.Errorf("%w: %q (register the type before adding upcasters)", ErrUnknownEventType, typeName)
	}
	if fromVersion < 1 || fromVersion >= reg.version {
		return &RegistrationError{Name: typeName, Reason: fmt.Sprintf(
			"upcaster from version %d: must be between 1 and %d (the registered version minus one)", fromVersion, reg.version-1)}
	}
	if _, dup := reg.upcasters[fromVersion]; dup {
		return &RegistrationError{Name: typeName, Reason: fmt.Sprintf("upcaster from version %d already added", fromVersion)}
	}
	reg.upcasters[fromVersion] = fn
	return nil
}

// UpcastJSON adapts fn, which edits a JSON object in place, into an
// upcaster for AddUpcaster with JSONCodec payloads. Numbers reach fn as
// json.Number so integers keep their precision. A payload that is not a
// JSON object yields an error.
//
//	r.AddUpcaster("bank.AccountOpened", 1, orchestrix.UpcastJSON(func(m map[string]any) error {
//		m["currency"] = "EUR" // added in version 2
//		return nil
//	}))
func UpcastJSON(fn func(m map[string]any) error) func([]byte) ([]byte, error) {
	return func(data []byte) ([]byte, error) {
		dec := json.NewDecoder(bytes.NewReader(data))
		dec.UseNumber()
		var m map[string]any
		if err := dec.Decode(&m); err != nil {
			return nil, fmt.Errorf("payload is not a JSON object: %w", err)
		}
		if m == nil {
			return nil, fmt.Errorf("payload is not a JSON object: null")
		}
		if _, err := dec.Token(); err != io.EOF {
			return nil, fmt.Errorf("payload has data after its JSON object")
		}
		if err := fn(m); err != nil {
			return nil, err
		}
		return json.Marshal(m)
	}
}
