package aggregatetest

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"testing"

	"github.com/orchestrix/orchestrix"
	"github.com/orchestrix/orchestrix/aggregate"
	"github.com/orchestrix/orchestrix/internal/aggexec"
	"github.com/orchestrix/orchestrix/internal/roundtrip"
)

// ErrNotSerializable is matched (errors.Is) by every *SerializationError.
var ErrNotSerializable = errors.New("aggregatetest: value does not survive serialization")

// SerializationError reports one value that did not come back equal from
// its round trip, or could not be encoded or decoded at all.
type SerializationError struct {
	// Role is "command", "event" or "state".
	Role string
	// Name is the registered type name ("" for the state).
	Name string
	// GoType is the value's Go type.
	GoType reflect.Type
	// Reason names the field that did not survive and how, or the codec
	// error.
	Reason string
}

func (e *SerializationError) Error() string {
	if e.Name == "" {
		return fmt.Sprintf("aggregatetest: %s %v does not survive serialization: %s", e.Role, e.GoType, e.Reason)
	}
	return fmt.Sprintf("aggregatetest: %s %q (%v) does not survive serialization: %s", e.Role, e.Name, e.GoType, e.Reason)
}

// Is makes errors.Is(err, ErrNotSerializable) true.
func (e *SerializationError) Is(target error) bool { return target == ErrNotSerializable }

// SerializationOption adjusts CheckSerialization and VerifySerialization.
type SerializationOption func(*serialConfig)

type serialConfig struct {
	reg     *orchestrix.Registry
	samples []any
	ctx     context.Context
}

// WithRegistry checks against r, the registry (and so the codec, upcasters
// and schema versions) the application configures, instead of a new
// registry with the default JSON codec. The definition's event and command
// types are registered in r if they are not already.
func WithRegistry(r *orchestrix.Registry) SerializationOption {
	return func(c *serialConfig) { c.reg = r }
}

// WithSamples gives example values to round-trip: commands, events or
// states of the definition. For every type that has samples, only the
// samples are checked; every other type is checked with a generated value
// that has each field set (see VerifySerialization). Give samples for
// types with interface fields, with invariants a generated value breaks,
// or with values that matter (times in a zone, NaN, large numbers).
func WithSamples(values ...any) SerializationOption {
	return func(c *serialConfig) { c.samples = append(c.samples, values...) }
}

// WithContext passes ctx to a subject-aware codec (package pii fetches
// keys with it). The default is context.Background().
func WithContext(ctx context.Context) SerializationOption {
	return func(c *serialConfig) { c.ctx = ctx }
}

// CheckSerialization fails t with one error per value of def that does not
// survive serialization; see VerifySerialization for what is checked. Add
// it to the tests of each definition:
//
//	func TestAccountsSerialize(t *testing.T) { aggregatetest.CheckSerialization(t, bank.Accounts) }
func CheckSerialization[S, C, E any](t testing.TB, def aggregate.Definition[S, C, E], opts ...SerializationOption) {
	t.Helper()
	if err := VerifySerialization(def, opts...); err != nil {
		for _, e := range unjoin(err) {
			t.Error(e)
		}
	}
}

func unjoin(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

// VerifySerialization round-trips every command type listed in
// def.Commands and every event type in def.Events through the registry's
// codec and the binary envelope (orchestrix.Envelope.MarshalBinary, the
// form commands cross processes in and events are stored in), and the state
// through the snapshot encoding the runtime uses (EncodeState/DecodeState,
// the registry's codec when it is an orchestrix.SubjectCodec, JSON
// otherwise). Each decoded value must equal the original; nil and empty
// slices and maps count as equal, NaN equals NaN, and times must be the
// same instant in the same zone.
//
// Without samples (WithSamples) a type is checked with a generated value in
// which every field, exported or not, is set: an unexported field, a
// field the codec drops or a type it cannot encode (funcs, channels,
// complex numbers under JSON) is caught. Interface fields stay nil in
// generated values; give a sample to check them. The state is also checked
// as Initial(DefaultID) returns it.
//
// The result is nil or the errors.Join of one *SerializationError per
// failing value (errors matching ErrNotSerializable), or an error matching
// aggregate.ErrInvalidDefinition when def is invalid.
func VerifySerialization[S, C, E any](def aggregate.Definition[S, C, E], opts ...SerializationOption) error {
	cfg := serialConfig{ctx: context.Background()}
	for _, o := range opts {
		o(&cfg)
	}
	if err := def.Validate(); err != nil {
		return err
	}
	reg := cfg.reg
	if reg == nil {
		reg = orchestrix.NewRegistry()
	}
	if err := def.RegisterEvents(reg); err != nil {
		return err
	}
	if err := def.RegisterCommands(reg); err != nil {
		return err
	}
	stateType := reflect.TypeFor[S]()
	byType := map[reflect.Type][]reflect.Value{}
	var problems []error
	known := map[reflect.Type]bool{stateType: true}
	for _, ct := range def.Commands {
		known[ct.GoType()] = true
	}
	for _, et := range def.Events {
		known[et.GoType()] = true
	}
	for _, s := range cfg.samples {
		t := reflect.TypeOf(s)
		if !known[t] {
			problems = append(problems, fmt.Errorf("aggregatetest: sample of type %v is neither the state nor a listed command or event type of %q", t, def.Kind))
			continue
		}
		byType[t] = append(byType[t], reflect.ValueOf(s))
	}
	samplesOf := func(t reflect.Type) []reflect.Value {
		if s := byType[t]; len(s) > 0 {
			return s
		}
		return []reflect.Value{roundtrip.Fill(t)}
	}
	for _, ct := range def.Commands {
		for _, v := range samplesOf(ct.GoType()) {
			if reason := payloadTrip(cfg.ctx, reg, v.Interface()); reason != "" {
				problems = append(problems, &SerializationError{Role: "command", Name: ct.Name(), GoType: ct.GoType(), Reason: reason})
			}
		}
	}
	for _, et := range def.Events {
		for _, v := range samplesOf(et.GoType()) {
			if reason := payloadTrip(cfg.ctx, reg, v.Interface()); reason != "" {
				problems = append(problems, &SerializationError{Role: "event", Name: et.Name(), GoType: et.GoType(), Reason: reason})
			}
		}
	}
	d := aggexec.Of(def)
	states := samplesOf(stateType)
	if len(byType[stateType]) == 0 {
		if s, err := d.InitialState(DefaultID); err == nil {
			states = append(states, reflect.ValueOf(&s).Elem())
		}
	}
	for _, v := range states {
		if reason := stateTrip(cfg.ctx, reg, &d, v.Interface().(S)); reason != "" {
			problems = append(problems, &SerializationError{Role: "state", GoType: stateType, Reason: reason})
		}
	}
	return errors.Join(problems...)
}

// payloadTrip sends v through the registry and the binary envelope and
// back, returning what did not survive ("" when it all did).
func payloadTrip(ctx context.Context, reg *orchestrix.Registry, v any) (reason string) {
	defer func() {
		if r := recover(); r != nil {
			reason = fmt.Sprintf("the codec panicked: %v", r)
		}
	}()
	env, err := reg.MarshalFor(ctx, DefaultID, v)
	if err != nil {
		return encodeFailure(v, err)
	}
	env.ID = "serialization-check"
	env.Source = "/orchestrix/aggregatetest"
	env.Time = roundtrip.SampleTime
	data, err := env.MarshalBinary()
	if err != nil {
		return fmt.Sprintf("binary envelope: %v", err)
	}
	var back orchestrix.Envelope
	if err := back.UnmarshalBinary(data); err != nil {
		return fmt.Sprintf("binary envelope: %v", err)
	}
	got, err := reg.UnmarshalFor(ctx, back)
	if err != nil {
		return fmt.Sprintf("decoding: %v", err)
	}
	return roundtrip.Diff(v, got)
}

func encodeFailure(v any, err error) string {
	if p := roundtrip.NonFinite(reflect.ValueOf(v)); p != "" {
		return fmt.Sprintf("encoding: %v (%s, which the codec cannot represent)", err, p)
	}
	return fmt.Sprintf("encoding: %v", err)
}

// stateTrip round-trips a state the way the runtime writes snapshots.
func stateTrip[S, C, E any](ctx context.Context, reg *orchestrix.Registry, d *aggexec.Def[S, C, E], s S) (reason string) {
	defer func() {
		if r := recover(); r != nil {
			reason = fmt.Sprintf("the state codec panicked: %v", r)
		}
	}()
	var back S
	if sc, ok := reg.Codec().(orchestrix.SubjectCodec); ok && d.EncodeState == nil {
		data, err := sc.EncodeFor(ctx, DefaultID, s)
		if err != nil {
			return encodeFailure(s, err)
		}
		if err := sc.DecodeFor(ctx, DefaultID, data, &back); err != nil {
			return fmt.Sprintf("decoding: %v", err)
		}
	} else {
		data, err := d.EncodeSnapshot(s)
		if err != nil {
			return encodeFailure(s, err)
		}
		if back, err = d.DecodeSnapshot(data); err != nil {
			return fmt.Sprintf("decoding: %v", err)
		}
	}
	return roundtrip.Diff(s, back)
}
