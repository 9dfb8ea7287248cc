package orchestrix_test

import (
	"reflect"
	"testing"

	"github.com/orchestrix/orchestrix"
)

type boxEmpty struct{}

type boxPointerShaped struct{ P *int64 }

type boxMixed struct {
	N    int64
	S    string
	L    []int
	Next *boxMixed
}

// roundTrip registers T under name, marshals v and unmarshals it back.
func roundTrip[T any](t *testing.T, r *orchestrix.Registry, name string, v T) any {
	t.Helper()
	if err := orchestrix.Register[T](r, name); err != nil {
		t.Fatal(err)
	}
	env, err := r.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	got, err := r.Unmarshal(env)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// Unmarshal hands back each registered type as itself, whether an
// interface holds it in place (pointer-shaped: a map, a struct of one
// pointer) or by a pointer to it (everything else, including values of a
// pointer's size without pointers and zero-size ones), and two decodes
// never share memory.
func TestRegistry_Unmarshal_EveryShapeOfType(t *testing.T) {
	r := orchestrix.NewRegistry()
	seven := int64(7)
	cases := []struct {
		name   string
		v, got any
	}{}
	add := func(name string, v, got any) {
		cases = append(cases, struct {
			name   string
			v, got any
		}{name, v, got})
	}
	add("int64", int64(-42), roundTrip(t, r, "box.int64", int64(-42)))
	add("string", "hello", roundTrip(t, r, "box.string", "hello"))
	add("empty struct", boxEmpty{}, roundTrip(t, r, "box.empty", boxEmpty{}))
	add("map", map[string]int{"a": 1}, roundTrip(t, r, "box.map", map[string]int{"a": 1}))
	add("pointer-shaped struct", boxPointerShaped{P: &seven}, roundTrip(t, r, "box.ptrshaped", boxPointerShaped{P: &seven}))
	mixed := boxMixed{N: 1, S: "s", L: []int{1, 2}, Next: &boxMixed{N: 2}}
	add("mixed struct", mixed, roundTrip(t, r, "box.mixed", mixed))
	add("array", [3]int32{1, 2, 3}, roundTrip(t, r, "box.array", [3]int32{1, 2, 3}))
	for _, c := range cases {
		if reflect.TypeOf(c.got) != reflect.TypeOf(c.v) || !reflect.DeepEqual(c.got, c.v) {
			t.Errorf("%s: got %#v (%T), want %#v (%T)", c.name, c.got, c.got, c.v, c.v)
		}
	}

	// Two decodes of one envelope are two values.
	env, err := r.Marshal(mixed)
	if err != nil {
		t.Fatal(err)
	}
	a, err := r.Unmarshal(env)
	if err != nil {
		t.Fatal(err)
	}
	b, err := r.Unmarshal(env)
	if err != nil {
		t.Fatal(err)
	}
	ma, mb := a.(boxMixed), b.(boxMixed)
	ma.L[0] = 99
	if mb.L[0] != 1 || a.(boxMixed).L[0] != 99 {
		t.Fatalf("two decodes share memory: %v, %v", a, b)
	}
}
