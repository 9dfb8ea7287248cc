package pii

import (
	"fmt"
	"reflect"
	"strings"
	"sync"
)

// TagName is the struct tag key that marks personal data.
const TagName = "pii"

// fieldKind is the shape of a personal-data field.
type fieldKind uint8

const (
	kindString  fieldKind = iota + 1 // string (or a named string type)
	kindBytes                        // []byte
	kindStrings                      // []string (each element on its own)
)

// field is one personal-data field of a struct.
type field struct {
	index int
	name  string
	kind  fieldKind
	// subject is the index of the string field holding the subject id,
	// or -1 for the subject given to EncodeFor (the envelope's subject).
	subject int
}

// child is a field of a struct whose type leads to personal data.
type child struct {
	index int
	node  *node
}

// node says where the personal data of one type is. Kind is Struct,
// Pointer, Slice or Array; only types that lead to personal data have
// nodes.
type node struct {
	kind     reflect.Kind
	fields   []field // Struct
	children []child // Struct
	elem     *node   // Pointer, Slice, Array
}

// typePlan is the cached outcome of planning one top-level type: root is
// nil for a type without personal data (the fast path).
type typePlan struct {
	root *node
	err  error
}

// plans caches a typePlan per reflect.Type, for every Codec.
var plans sync.Map // reflect.Type → *typePlan

// planFor returns the (cached) plan of t.
func planFor(t reflect.Type) *typePlan {
	if p, ok := plans.Load(t); ok {
		return p.(*typePlan)
	}
	b := planner{reach: map[reflect.Type]bool{}, nodes: map[reflect.Type]*node{}}
	p := &typePlan{}
	if b.reaches(t, map[reflect.Type]bool{}) {
		p.root, p.err = b.build(t)
	}
	actual, _ := plans.LoadOrStore(t, p)
	return actual.(*typePlan)
}

type planner struct {
	reach map[reflect.Type]bool
	nodes map[reflect.Type]*node
}

// reaches reports whether a value of type t can contain a pii-tagged
// field (through structs, pointers, slices, arrays and maps).
func (b *planner) reaches(t reflect.Type, visiting map[reflect.Type]bool) bool {
	if r, ok := b.reach[t]; ok {
		return r
	}
	if visiting[t] {
		return false // the first visit explores everything t reaches
	}
	visiting[t] = true
	r := false
	switch t.Kind() {
	case reflect.Struct:
		for i := range t.NumField() {
			f := t.Field(i)
			if _, tagged := f.Tag.Lookup(TagName); tagged || b.reaches(f.Type, visiting) {
				r = true
			}
		}
	case reflect.Pointer, reflect.Slice, reflect.Array:
		r = b.reaches(t.Elem(), visiting)
	case reflect.Map:
		r = b.reaches(t.Key(), visiting) || b.reaches(t.Elem(), visiting)
	}
	delete(visiting, t)
	if r || len(visiting) == 0 {
		b.reach[t] = r // a negative answer inside a cycle may be partial
	}
	return r
}

// build returns the node of t, which reaches personal data.
func (b *planner) build(t reflect.Type) (*node, error) {
	if n, ok := b.nodes[t]; ok {
		return n, nil // recursive type: the node is being filled in
	}
	n := &node{kind: t.Kind()}
	b.nodes[t] = n
	switch t.Kind() {
	case reflect.Struct:
		return n, b.buildStruct(t, n)
	case reflect.Pointer, reflect.Slice, reflect.Array:
		elem, err := b.build(t.Elem())
		n.elem = elem
		return n, err
	}
	return nil, fmt.Errorf("%w: %v holds personal data inside a %v, which is not supported", ErrUnsupportedField, t, t.Kind())
}

func (b *planner) buildStruct(t reflect.Type, n *node) error {
	for i := range t.NumField() {
		f := t.Field(i)
		tag, tagged := f.Tag.Lookup(TagName)
		if !tagged {
			if b.reaches(f.Type, map[reflect.Type]bool{}) {
				if !f.IsExported() {
					return fmt.Errorf("%w: %v.%s is unexported", ErrUnsupportedField, t, f.Name)
				}
				c, err := b.build(f.Type)
				if err != nil {
					return err
				}
				n.children = append(n.children, child{index: i, node: c})
			}
			continue
		}
		pf, err := parseField(t, f, tag)
		if err != nil {
			return err
		}
		n.fields = append(n.fields, pf)
	}
	return nil
}

// parseField checks one tagged field. Grammar: `pii:"data"` or
// `pii:"data,subject=FieldName"`.
func parseField(t reflect.Type, f reflect.StructField, tag string) (field, error) {
	bad := func(format string, args ...any) (field, error) {
		return field{}, fmt.Errorf("%w: %v.%s: %s", ErrUnsupportedField, t, f.Name, fmt.Sprintf(format, args...))
	}
	if !f.IsExported() {
		return bad("unexported fields cannot be encrypted")
	}
	pf := field{index: f.Index[0], name: f.Name, subject: -1}
	switch {
	case f.Type.Kind() == reflect.String:
		pf.kind = kindString
	case f.Type.Kind() == reflect.Slice && f.Type.Elem().Kind() == reflect.Uint8:
		pf.kind = kindBytes
	case f.Type.Kind() == reflect.Slice && f.Type.Elem().Kind() == reflect.String:
		pf.kind = kindStrings
	default:
		return bad("type %v; personal data must be a string, []byte or []string", f.Type)
	}
	opts := strings.Split(tag, ",")
	if opts[0] != "data" {
		return bad("tag %q must start with \"data\"", tag)
	}
	for _, o := range opts[1:] {
		name, ok := strings.CutPrefix(o, "subject=")
		if !ok || name == "" {
			return bad("unknown tag option %q", o)
		}
		sf, found := t.FieldByName(name)
		switch {
		case !found || len(sf.Index) != 1:
			return bad("subject field %q is not a field of %v", name, t)
		case sf.Type.Kind() != reflect.String || !sf.IsExported():
			return bad("subject field %q must be an exported string", name)
		}
		if _, tagged := sf.Tag.Lookup(TagName); tagged {
			return bad("subject field %q is itself personal data", name)
		}
		pf.subject = sf.Index[0]
	}
	return pf, nil
}
