package orchestrix

import (
	"context"
	"errors"
	"fmt"
	"mime"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"unicode/utf8"
	"unsafe"
)

// Registry maps Go payload types to stable type names and schema versions,
// encodes payloads into Envelopes and decodes them back, bringing payloads
// written at older schema versions forward through upcasters.
//
// Register every type and add every upcaster at start-up, then share the
// Registry: Marshal, Unmarshal and TypeName are safe for concurrent use
// with each other and with further registrations.
type Registry struct {
	codec Codec
	newID func() string

	mu     sync.RWMutex
	byName map[string]*registration
	byType map[reflect.Type]*registration

	// types is what Marshal looks payload types up in without a lock: a
	// map replaced (never modified) under mu by Register, holding each
	// registered type T and *T.
	types atomic.Pointer[map[reflect.Type]typeEntry]
}

// typeEntry is the registration of a Go type T, reached from T or from *T
// (ptr set).
type typeEntry struct {
	reg *registration
	ptr bool
}

// registration is what the registry knows about one type. Its fields are
// written only under the registry's write lock.
type registration struct {
	name    string
	typ     reflect.Type
	version int
	decode  func(c Codec, data []byte) (any, error)
	// fast: the type decodes the same with the fast JSON decoder as with
	// encoding/json (fastJSONSafe).
	fast bool
	// upcasters[v] turns a payload at version v into version v+1.
	upcasters map[int]func([]byte) ([]byte, error)
	// encode is the compiled JSON encoder of the type (json_encode.go),
	// nil when the type is left to json.Marshal; boxedPtr: an interface
	// holding a value of the type points to it (boxedByPointer).
	encode   jsonEncoder
	boxedPtr bool
}

// RegistryOption configures NewRegistry.
type RegistryOption func(*Registry)

// WithCodec makes the registry encode and decode payloads with c instead
// of JSONCodec. A nil c is ignored.
func WithCodec(c Codec) RegistryOption {
	return func(r *Registry) {
		if c != nil {
			r.codec = c
		}
	}
}

// WithIDFunc makes Marshal take envelope ids from newID instead of NewID,
// for example to get deterministic ids in tests. A nil newID is ignored.
func WithIDFunc(newID func() string) RegistryOption {
	return func(r *Registry) {
		if newID != nil {
			r.newID = newID
		}
	}
}

// NewRegistry returns an empty registry using JSONCodec and NewID unless
// options say otherwise.
func NewRegistry(opts ...RegistryOption) *Registry {
	r := &Registry{
		codec:  JSONCodec{},
		newID:  NewID,
		byName: make(map[string]*registration),
		byType: make(map[reflect.Type]*registration),
	}
	for _, opt := range opts {
		opt(r)
	}
	return r
}

// Codec returns the codec the registry encodes payloads with.
func (r *Registry) Codec() Codec { return r.codec }

// RegisterOption configures one call of Register.
type RegisterOption func(*registerConfig)

type registerConfig struct {
	version int
}

// WithSchemaVersion sets the current schema version of the type being
// registered (default 1). Payloads written at a lower version are brought
// forward by the upcasters added with Registry.AddUpcaster.
func WithSchemaVersion(n int) RegisterOption {
	return func(c *registerConfig) { c.version = n }
}

// RegistrationError reports a rejected Register or AddUpcaster call.
type RegistrationError struct {
	// Name is the type name involved.
	Name string
	// Reason says why the call was rejected.
	Reason string
}

// Error implements error.
func (e *RegistrationError) Error() string {
	return fmt.Sprintf("orchestrix: registering %q: %s", e.Name, e.Reason)
}

// Register records that payloads of type T travel under the type name
// name (Envelope.Type) at the current schema version given by
// WithSchemaVersion (default 1).
//
// The name must be a non-blank UTF-8 string; CloudEvents recommends a
// reverse-DNS prefix such as "com.example.bank.AccountOpened". Registering
// a name already taken by another type, a type already registered under
// another name, a non-positive schema version, or an interface type is an
// error (*RegistrationError). Registering the same type under the same
// name and version again is a no-op.
//
// Unmarshal returns payloads as values of type T (not *T). Marshal accepts
// a T or a non-nil *T.
func Register[T any](r *Registry, name string, opts ...RegisterOption) error {
	cfg := registerConfig{version: 1}
	for _, opt := range opts {
		opt(&cfg)
	}
	typ := reflect.TypeFor[T]()
	switch {
	case strings.TrimSpace(name) == "" || !utf8.ValidString(name):
		return &RegistrationError{Name: name, Reason: "type name must be a non-blank UTF-8 string"}
	case cfg.version < 1:
		return &RegistrationError{Name: name, Reason: fmt.Sprintf("schema version %d is not positive", cfg.version)}
	case int64(cfg.version) > 1<<31-1:
		return &RegistrationError{Name: name, Reason: fmt.Sprintf("schema version %d exceeds the 32-bit range", cfg.version)}
	case typ.Kind() == reflect.Interface:
		return &RegistrationError{Name: name, Reason: fmt.Sprintf("%v is an interface type; register a concrete type", typ)}
	}

	r.mu.Lock()
	defer r.mu.Unlock()
	if old, ok := r.byName[name]; ok {
		if old.typ != typ {
			return &RegistrationError{Name: name, Reason: fmt.Sprintf("name already registered for %v, cannot register %v", old.typ, typ)}
		}
		if old.version != cfg.version {
			return &RegistrationError{Name: name, Reason: fmt.Sprintf("already registered at schema version %d, cannot register version %d", old.version, cfg.version)}
		}
		return nil
	}
	if old, ok := r.byType[typ]; ok {
		return &RegistrationError{Name: name, Reason: fmt.Sprintf("type %v already registered as %q", typ, old.name)}
	}
	reg := &registration{
		name:      name,
		typ:       typ,
		version:   cfg.version,
		fast:      fastJSONSafe(typ),
		upcasters: make(map[int]func([]byte) ([]byte, error)),
		encode:    compileJSON(typ),
		boxedPtr:  boxedByPointer(typ),
	}
	box := boxer[T](reg.boxedPtr)
	reg.decode = func(c Codec, data []byte) (any, error) {
		v := new(T)
		if reg.fastJSON(c) {
			if err := decodeFastJSON(data, v); err != nil {
				return nil, err
			}
			return box(v), nil
		}
		if err := c.Decode(data, v); err != nil {
			return nil, err
		}
		return box(v), nil
	}
	r.byName[name] = reg
	r.byType[typ] = reg
	types := make(map[reflect.Type]typeEntry, 2*len(r.byType))
	for t, reg := range r.byType {
		types[t] = typeEntry{reg: reg}
		if pt := reflect.PointerTo(t); r.byType[pt] == nil {
			types[pt] = typeEntry{reg: reg, ptr: true}
		}
	}
	r.types.Store(&types)
	return nil
}

// fastJSON reports whether payloads of this registration, encoded by c,
// are decoded by the fast JSON decoder (see json_fast.go).
func (reg *registration) fastJSON(c Codec) bool { return reg.fast && isJSONCodec(c) }

// lookupValue finds the registration for the dynamic type of v, or of *v
// when v is a non-nil pointer to a registered type, and returns the
// payload as a T.
func (r *Registry) lookupValue(v any) (*registration, any, error) {
	reg, ptr, err := r.lookupType(v)
	if err != nil {
		return nil, nil, err
	}
	if ptr {
		v = reflect.ValueOf(v).Elem().Interface()
	}
	return reg, v, nil
}

// lookupType finds the registration for the dynamic type of v (ptr false)
// or of *v when v is a non-nil pointer to a registered type (ptr true),
// without taking the registry's lock.
func (r *Registry) lookupType(v any) (reg *registration, ptr bool, err error) {
	if v == nil {
		return nil, false, fmt.Errorf("%w: nil payload", ErrUnknownEventType)
	}
	typ := reflect.TypeOf(v)
	var e typeEntry
	if types := r.types.Load(); types != nil {
		e = (*types)[typ]
	}
	if e.reg == nil {
		return nil, false, fmt.Errorf("%w: Go type %v is not registered", ErrUnknownEventType, typ)
	}
	if e.ptr && reflect.ValueOf(v).IsNil() {
		return nil, false, fmt.Errorf("%w: nil %v", ErrUnknownEventType, typ)
	}
	return e.reg, e.ptr, nil
}

// TypeName returns the registered type name of v's type (or of *v, for a
// pointer to a registered type). An unregistered type yields an error
// matching ErrUnknownEventType.
func (r *Registry) TypeName(v any) (string, error) {
	reg, _, err := r.lookupValue(v)
	if err != nil {
		return "", err
	}
	return reg.name, nil
}

// Marshal encodes v with the registry's codec into a new envelope with ID
// (from NewID or WithIDFunc), SpecVersion, Type, SchemaVersion (the
// registered current version), DataContentType and Data set. The caller
// sets Source, Subject, Time and the remaining attributes before the
// envelope is stored or sent.
//
// An unregistered type yields an error matching ErrUnknownEventType; an
// encoding failure is returned wrapped.
func (r *Registry) Marshal(v any) (Envelope, error) {
	return r.marshal(context.Background(), "", v, false)
}

// MarshalFor is Marshal for a payload that belongs to subject (usually an
// aggregate id): it also sets the envelope's Subject, and when the
// registry's codec is a SubjectCodec it encodes with EncodeFor(ctx,
// subject, v), which may do I/O (for example fetch the subject's key).
// With any other codec ctx is unused.
func (r *Registry) MarshalFor(ctx context.Context, subject string, v any) (Envelope, error) {
	return r.marshal(ctx, subject, v, true)
}

// AppendMarshalFor is MarshalFor that writes the payload's encoding at
// the end of buf when it can, instead of into an allocation of its own:
// it returns the envelope and buf extended by the payload, which the
// envelope's Data then is (its capacity ends where it ends, so appending
// to Data never writes into buf). The envelope's Data shares buf's
// memory: the caller must not overwrite that part of buf (by reusing buf
// from an earlier length) while the envelope is in use.
//
// The payload goes into buf when the registry's codec is JSONCodec and
// the payload's type is one the registry compiled an encoder for (see
// JSONCodec); the bytes are then exactly json.Marshal's. Otherwise Data
// is a new allocation, as with MarshalFor, and buf is returned unchanged.
// Passing a pointer to the payload (a *T for a registered T) spares
// boxing a copy of it in an interface. Errors are MarshalFor's, with buf
// returned unchanged.
func (r *Registry) AppendMarshalFor(ctx context.Context, buf []byte, subject string, v any) (Envelope, []byte, error) {
	reg, ptr, err := r.lookupType(v)
	if err != nil {
		return Envelope{}, buf, err
	}
	if reg.encode != nil && isJSONCodec(r.codec) {
		if p := payloadPointer(reg, ptr, v); p != nil {
			start := len(buf)
			if out, ok := reg.encode(buf, p); ok {
				return r.envelope(reg, subject, out[start:len(out):len(out)]), out, nil
			}
			// A value json.Marshal refuses: it reports the error below.
		}
	}
	if ptr {
		v = reflect.ValueOf(v).Elem().Interface()
	}
	env, err := r.encodeWithCodec(ctx, reg, subject, v, true)
	return env, buf, err
}

// boxer returns the function that turns a decoded *T, which nothing else
// refers to, into the interface value holding the T. When an interface
// holds a T by pointer to it (boxed, see boxedByPointer), that pointer
// can be v itself: the interface is built around v instead of copying *v
// into an allocation of its own, which halves the allocations of a
// decode (replay decodes every event of a stream this way). Otherwise
// the T is stored in the interface itself, as any(*v) does without
// allocating.
func boxer[T any](boxed bool) func(v *T) any {
	if !boxed {
		return func(v *T) any { return *v }
	}
	var zero any = *new(T)
	typ := (*[2]unsafe.Pointer)(unsafe.Pointer(&zero))[0]
	return func(v *T) any {
		var out any
		w := (*[2]unsafe.Pointer)(unsafe.Pointer(&out))
		w[0], w[1] = typ, unsafe.Pointer(v)
		return out
	}
}

// payloadPointer returns a pointer to the payload in v (a T, or a *T when
// ptr is set), or nil when a T boxed in an interface does not point to
// its value.
func payloadPointer(reg *registration, ptr bool, v any) unsafe.Pointer {
	if ptr {
		return reflect.ValueOf(v).UnsafePointer()
	}
	if !reg.boxedPtr {
		return nil
	}
	return (*[2]unsafe.Pointer)(unsafe.Pointer(&v))[1]
}

// marshal encodes v, with the SubjectCodec's EncodeFor when forSubject is
// set and the codec is one.
func (r *Registry) marshal(ctx context.Context, subject string, v any, forSubject bool) (Envelope, error) {
	reg, ptr, err := r.lookupType(v)
	if err != nil {
		return Envelope{}, err
	}
	if reg.encode != nil && isJSONCodec(r.codec) {
		if p := payloadPointer(reg, ptr, v); p != nil {
			scratch := jsonScratch.Get().(*[]byte)
			out, ok := reg.encode((*scratch)[:0], p)
			var data []byte
			if ok {
				data = append([]byte(nil), out...)
			}
			if cap(out) <= maxJSONScratch {
				*scratch = out[:0]
			}
			jsonScratch.Put(scratch)
			if ok {
				return r.envelope(reg, subject, data), nil
			}
		}
	}
	if ptr {
		v = reflect.ValueOf(v).Elem().Interface()
	}
	return r.encodeWithCodec(ctx, reg, subject, v, forSubject)
}

// jsonScratch holds buffers that Marshal encodes into before copying the
// payload into its own allocation of the exact size.
var jsonScratch = sync.Pool{New: func() any { return new([]byte) }}

// maxJSONScratch bounds the buffer a pooled scratch keeps.
const maxJSONScratch = 64 << 10

// encodeWithCodec encodes v (a T) with the registry's codec, with the
// SubjectCodec's EncodeFor when forSubject is set and the codec is one.
func (r *Registry) encodeWithCodec(ctx context.Context, reg *registration, subject string, v any, forSubject bool) (Envelope, error) {
	var data []byte
	var err error
	if sc, ok := r.codec.(SubjectCodec); ok && forSubject {
		data, err = sc.EncodeFor(ctx, subject, v)
	} else {
		data, err = r.codec.Encode(v)
	}
	if err != nil {
		return Envelope{}, fmt.Errorf("orchestrix: encoding %q: %w", reg.name, err)
	}
	return r.envelope(reg, subject, data), nil
}

// envelope returns the envelope of a payload of reg encoded as data.
func (r *Registry) envelope(reg *registration, subject string, data []byte) Envelope {
	return Envelope{
		ID:              r.newID(),
		SpecVersion:     SpecVersion,
		Type:            reg.name,
		Subject:         subject,
		SchemaVersion:   reg.version,
		DataContentType: r.codec.ContentType(),
		Data:            data,
	}
}

// Unmarshal decodes the payload of e into a value of the type registered
// under e.Type and returns it (a T, not a *T).
//
// A payload written at an older schema version (e.SchemaVersion; 0 is read
// as 1) is first passed through the upcasters for each version up to the
// registered one. Errors:
//
//   - an unregistered e.Type matches ErrUnknownEventType and names the type;
//   - a missing upcaster, a failing upcaster, or a payload written at a
//     version newer than the registered one is an *UpcastError;
//   - a DataContentType that is not the codec's media type, or a payload
//     the codec cannot decode, matches ErrInvalidEnvelope.
//
// When the registry's codec is a SubjectCodec, the payload is decoded with
// DecodeFor(context.Background(), e.Subject, …); use UnmarshalFor to
// pass a context.
func (r *Registry) Unmarshal(e Envelope) (any, error) {
	return r.unmarshal(context.Background(), e)
}

// UnmarshalFor is the inverse of MarshalFor: Unmarshal of a payload that
// belongs to e.Subject, with a context for a SubjectCodec's DecodeFor
// (which may do I/O, for example fetch the subject's decryption key). With
// any other codec it is the same as Unmarshal.
func (r *Registry) UnmarshalFor(ctx context.Context, e Envelope) (any, error) {
	if ctx == nil {
		ctx = context.Background()
	}
	return r.unmarshal(ctx, e)
}

func (r *Registry) unmarshal(ctx context.Context, e Envelope) (any, error) {
	r.mu.RLock()
	reg, ok := r.byName[e.Type]
	var chain []func([]byte) ([]byte, error)
	from := max(e.SchemaVersion, 1)
	var upErr error
	if ok {
		chain, upErr = reg.chain(from)
	}
	r.mu.RUnlock()
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrUnknownEventType, e.Type)
	}
	if upErr != nil {
		return nil, upErr
	}
	if e.DataContentType != "" && !sameMediaType(e.DataContentType, r.codec.ContentType()) {
		return nil, fmt.Errorf("%w: %q payload has content type %q, the registry's codec reads %q",
			ErrInvalidEnvelope, e.Type, e.DataContentType, r.codec.ContentType())
	}
	data := e.Data
	for i, up := range chain {
		out, err := up(data)
		if err != nil {
			return nil, &UpcastError{Type: reg.name, From: from + i, To: reg.version, Err: err}
		}
		data = out
	}
	codec := r.codec
	if sc, ok := codec.(SubjectCodec); ok {
		codec = subjectDecoder{SubjectCodec: sc, ctx: ctx, subject: e.Subject}
	}
	v, err := reg.decode(codec, data)
	if err != nil {
		return nil, fmt.Errorf("%w: decoding %q payload at schema version %d: %w", ErrInvalidEnvelope, reg.name, reg.version, err)
	}
	return v, nil
}

// chain returns the upcasters that bring a payload at version from to the
// registered version. Callers hold the registry's read lock.
func (reg *registration) chain(from int) ([]func([]byte) ([]byte, error), error) {
	if from > reg.version {
		return nil, &UpcastError{Type: reg.name, From: from, To: reg.version, Err: errNewerVersion}
	}
	if from == reg.version {
		return nil, nil
	}
	chain := make([]func([]byte) ([]byte, error), 0, reg.version-from)
	for v := from; v < reg.version; v++ {
		up, ok := reg.upcasters[v]
		if !ok {
			return nil, &UpcastError{Type: reg.name, From: v, To: reg.version,
				Err: fmt.Errorf("no upcaster from version %d to %d", v, v+1)}
		}
		chain = append(chain, up)
	}
	return chain, nil
}

var errNewerVersion = errors.New("payload written at a schema version newer than the registered one")

// sameMediaType reports whether two media types name the same type,
// ignoring parameters and case.
func sameMediaType(a, b string) bool {
	if a == b {
		return true
	}
	ma, _, errA := mime.ParseMediaType(a)
	mb, _, errB := mime.ParseMediaType(b)
	return errA == nil && errB == nil && ma == mb
}
