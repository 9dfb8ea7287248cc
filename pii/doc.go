// Package pii is crypto-shredding for Orchestrix: the fields of events and
// aggregate states that hold personal data are encrypted with a key per
// data subject before they reach the journal or a snapshot, and erasing a
// subject destroys its key, so those fields become unreadable everywhere
// at once while the rest of every event stays readable.
//
// # Marking personal data
//
// A struct tag marks a field as personal data:
//
//	type CustomerRegistered struct {
//		Name    string `pii:"data"` // subject: the envelope's Subject (the aggregate id)
//		Email   string `pii:"data"`
//		Country string              // stored as is
//	}
//
//	type OrderPlaced struct {
//		CustomerID string
//		ShipTo     string `pii:"data,subject=CustomerID"` // subject: the named field's value
//	}
//
// Tagged fields may be string (or a named string type), []byte or
// []string, in the payload struct or in structs reached from it through
// struct fields, pointers, slices and arrays (recursive types too). The
// subject= option names a string field of the same struct that holds the
// subject id; that field must not itself be personal data. Anything else —
// another field kind, an unexported field, an unknown option, personal
// data inside a map — fails encoding and decoding with
// ErrUnsupportedField. Fields of interface type are not inspected.
//
// # Wiring
//
//	keys, err := bolt.Open("keys.db", bolt.Config{}) // package pii/bolt; NewMemKeyStore for tests
//	codec, err := pii.NewCodec(pii.Config{Keys: keys})  // wraps orchestrix.JSONCodec by default
//	reg := orchestrix.NewRegistry(orchestrix.WithCodec(codec))
//	sys, err := actor.NewSystem(actor.Config{Journal: j, Snapshots: s, Registry: reg})
//
// Codec implements orchestrix.SubjectCodec. The registry encodes events
// with it in Registry.MarshalFor (the runtime passes the aggregate id)
// and decodes them in Registry.Unmarshal, so journal reads, recovery,
// time travel and projections all decrypt through it. The runtime also
// encodes snapshots with it (subject: the aggregate id) when the
// definition has no EncodeState of its own — so tag personal fields of
// the state type as well. Registry.Marshal, which has no subject, fails
// with ErrNoSubject for a payload whose personal data needs one.
//
// # Encrypted form
//
// Each non-empty personal string becomes
//
//	enc:v1:<key id>:<base64url(nonce ‖ AES-256-GCM ciphertext ‖ tag)>
//
// with a random 12-byte nonce per value and "orchestrix/pii/v1/<key id>" as
// additional authenticated data. The key id (random, 128 bits) lets a
// field be decrypted without knowing its subject, and leaves room for key
// rotation. A []byte field holds the same text as bytes; each element of
// a []string field is encrypted on its own. The empty string and the
// Erased marker are stored as they are: they are not personal data. A
// tagged field that does not start with "enc:v1:" (written before the tag
// was added) reads back unchanged.
//
// Decoding a field whose key was destroyed yields Erased ("[erased]",
// []byte(Erased) for []byte fields; test with IsErased) — never an error.
// A malformed or tampered field fails with ErrCorruptField, a key id the
// key store never issued with ErrUnknownKey; both match
// orchestrix.ErrCorrupt, and the registry's error also matches
// orchestrix.ErrInvalidEnvelope. Nothing panics on bad input.
//
// # Key stores and erasure
//
// A KeyStore holds one key per subject (GetOrCreate), finds keys by id
// (Get) and destroys a subject's keys (Delete), remembering the subject as
// erased: new personal data for an erased subject is refused with
// ErrErased, so a command that would record some fails and stores nothing.
// NewMemKeyStore is the in-memory reference (tests only: its keys die
// with the process); package pii/bolt keeps keys in a bbolt file of its
// own and removes deleted key bytes from that file, and package
// pii/postgres is the shared store for several processes on one
// PostgreSQL database (see their documentation for how, and for the
// residual risks). A store may also implement BatchDeleter, which
// Eraser.EraseMany uses. Package piitest is the conformance suite for key
// stores.
//
// Eraser.Erase destroys the keys and then records a SubjectErased event
// as the only event of stream "pii-<subject>" (ErasureStream), once:
// erasing again returns the first record. Register the event type with
// RegisterEvents where the global log is decoded.
//
// What erasure cannot reach: values already decrypted in memory (an
// active aggregate keeps its decrypted state until it passivates or the
// process restarts — it can no longer write new personal data, and its
// snapshots fail to encode rather than store plaintext; read models keep
// their copies until rebuilt, see projection.Manager.Rebuild), and copies
// made outside Orchestrix. The journal never receives the plaintext, so
// its file needs no cleaning; the key bytes only ever live in the key
// store.
//
// # Cost
//
// A payload type without tagged fields pays one cache lookup per encode
// or decode (plans are computed once per type). A payload with personal
// fields costs one key store read per payload and one AES-GCM operation
// per field; see BenchmarkCodec_Encode and BenchmarkCodec_Decode.
package pii
