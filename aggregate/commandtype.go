package aggregate

import (
	"fmt"
	"reflect"

	"github.com/orchestrix/orchestrix"
)

// CommandType is a command type with its stable name, as listed in
// Definition.Commands. Create one with CommandOf.
//
// Command types are what lets a command travel between processes: the
// runtime encodes a command into an envelope under its registered name and
// decodes it back to the typed command on the receiving side. A
// single-process system does not need them; cluster mode requires every
// command type a definition accepts to be listed.
type CommandType struct {
	name     string
	goType   reflect.Type
	register func(r *orchestrix.Registry) error
}

// CommandOf declares command type T under the stable type name name (for
// example "bank.account.deposit"). opts are passed to orchestrix.Register,
// e.g. orchestrix.WithSchemaVersion(2), so commands can be upcast like
// events during a rolling upgrade.
func CommandOf[T any](name string, opts ...orchestrix.RegisterOption) CommandType {
	return CommandType{
		name:   name,
		goType: reflect.TypeFor[T](),
		register: func(r *orchestrix.Registry) error {
			return orchestrix.Register[T](r, name, opts...)
		},
	}
}

// Name returns the stable type name.
func (t CommandType) Name() string { return t.name }

// GoType returns the Go type of the command.
func (t CommandType) GoType() reflect.Type { return t.goType }

// commandProblems lists what is wrong with d.Commands: entries not made by
// CommandOf, names listed twice or shared with an event type, and Go types
// that are not command types of d (not assignable to C).
func (d *Definition[S, C, E]) commandProblems() []string {
	var problems []string
	events := make(map[string]bool, len(d.Events))
	for _, et := range d.Events {
		events[et.name] = true
	}
	cType := reflect.TypeFor[C]()
	seen := make(map[string]bool, len(d.Commands))
	for i, ct := range d.Commands {
		switch {
		case ct.register == nil || ct.name == "":
			problems = append(problems, fmt.Sprintf("Commands[%d] was not created with aggregate.CommandOf", i))
			continue
		case seen[ct.name]:
			problems = append(problems, fmt.Sprintf("command type name %q listed twice", ct.name))
		case events[ct.name]:
			problems = append(problems, fmt.Sprintf("command type name %q is also an event type name", ct.name))
		}
		if !ct.goType.AssignableTo(cType) {
			problems = append(problems, fmt.Sprintf("command type %q: %v is not a command of this aggregate (%v)", ct.name, ct.goType, cType))
		}
		seen[ct.name] = true
	}
	return problems
}

// RegisterCommands registers the definition's command types in r, the same
// way RegisterEvents registers event types. A type name already registered
// for the same Go type is accepted.
func (d *Definition[S, C, E]) RegisterCommands(r *orchestrix.Registry) error {
	for _, ct := range d.Commands {
		if ct.register == nil {
			return fmt.Errorf("%w %q: command type not created with aggregate.CommandOf", ErrInvalidDefinition, d.Kind)
		}
		if name, err := r.TypeName(reflect.New(ct.goType).Elem().Interface()); err == nil && name == ct.name {
			continue
		}
		if err := ct.register(r); err != nil {
			return fmt.Errorf("aggregate %q: register command type %q: %w", d.Kind, ct.name, err)
		}
	}
	return nil
}

// CommandTypeName returns the registered name of cmd's dynamic type among
// d.Commands, and whether it is listed.
func (d *Definition[S, C, E]) CommandTypeName(cmd C) (string, bool) {
	v := any(cmd)
	if v == nil {
		return "", false
	}
	t := reflect.TypeOf(v)
	for _, ct := range d.Commands {
		if ct.goType == t {
			return ct.name, true
		}
	}
	return "", false
}

// HasCommandType reports whether name is one of d.Commands.
func (d *Definition[S, C, E]) HasCommandType(name string) bool {
	for _, ct := range d.Commands {
		if ct.name == name {
			return true
		}
	}
	return false
}
