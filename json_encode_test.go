package orchestrix_test

import (
	"encoding/json"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/orchestrix/orchestrix"
)

type encodedEvent struct {
	Text  string         `json:"text"`
	N     int            `json:"n"`
	When  time.Time      `json:"when"`
	Tags  []string       `json:"tags,omitempty"`
	Extra map[string]any `json:"extra,omitempty"`
	Raw   json.RawMessage
	Self  selfMarshaled
}

type selfMarshaled struct{ v string }

func (s selfMarshaled) MarshalJSON() ([]byte, error) {
	if s.v == "fail" {
		return nil, errSelfMarshal
	}
	// Spaces and HTML, which json.Marshal compacts and escapes.
	return []byte(`{ "v" : "` + s.v + `<&>" }`), nil
}

var errSelfMarshal = &json.UnsupportedValueError{Str: "fail"}

type unencodable struct{ C chan int }

var uuidV7 = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

// With the default codec and ids, Marshal's payload is byte for byte
// json.Marshal's, its id a fresh UUIDv7, and the two do not overlap: an
// append to Data leaves the id (and anything else) alone.
func TestRegistry_Marshal_DefaultJSON_PayloadIsJSONMarshalsAndIDIsApart(t *testing.T) {
	reg := orchestrix.NewRegistry()
	if err := orchestrix.Register[encodedEvent](reg, "test.Encoded"); err != nil {
		t.Fatal(err)
	}
	if err := orchestrix.Register[unencodable](reg, "test.Unencodable"); err != nil {
		t.Fatal(err)
	}
	values := []encodedEvent{
		{},
		{Text: "<script>&amp;\u2028\u2029", N: -7, When: time.Date(2026, 12, 7, 1, 2, 3, 4, time.UTC), Tags: []string{"a", "b"}},
		{Extra: map[string]any{"z": 1, "a": []any{"x", nil, true}}, Raw: json.RawMessage(`{"k" :  [1, 2]}`), Self: selfMarshaled{v: "s"}},
		{Text: strings.Repeat("long ", 40_000)}, // past the pooled buffer's limit
		{Text: "after the long one"},
	}
	ids := map[string]bool{}
	for i, v := range values {
		want, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		for _, arg := range []any{v, &v} {
			env, err := reg.Marshal(arg)
			if err != nil {
				t.Fatalf("value %d: %v", i, err)
			}
			if string(env.Data) != string(want) {
				t.Fatalf("value %d: Data\n%s\nwant json.Marshal's\n%s", i, env.Data, want)
			}
			if !uuidV7.MatchString(env.ID) || ids[env.ID] {
				t.Fatalf("value %d: id %q is not a new UUIDv7", i, env.ID)
			}
			ids[env.ID] = true
			if cap(env.Data) != len(env.Data) {
				t.Fatalf("value %d: Data has room past its end (len %d, cap %d)", i, len(env.Data), cap(env.Data))
			}
			id := strings.Clone(env.ID)
			grown := append(env.Data, "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"...)
			if env.ID != id || string(env.Data) != string(want) || string(grown[:len(want)]) != string(want) {
				t.Fatalf("value %d: appending to Data changed the envelope", i)
			}
		}
	}
	// Errors are json.Marshal's, wrapped.
	for _, v := range []any{unencodable{C: make(chan int)}, encodedEvent{Self: selfMarshaled{v: "fail"}}} {
		_, want := json.Marshal(v)
		_, err := reg.Marshal(v)
		if err == nil || want == nil || !strings.HasSuffix(err.Error(), want.Error()) {
			t.Fatalf("Marshal(%T): error %v, want one ending in json.Marshal's %v", v, err, want)
		}
	}
}

// The id and the payload of an event take one allocation between them
// (json.Marshal's own and NewID's string were two).
func TestRegistry_Marshal_DefaultJSON_OneAllocationForIDAndPayload(t *testing.T) {
	if raceOn {
		t.Skip("the race detector makes sync.Pool drop buffers at random")
	}
	reg := orchestrix.NewRegistry()
	if err := orchestrix.Register[moneyDeposited](reg, "test.Deposited"); err != nil {
		t.Fatal(err)
	}
	var v any = moneyDeposited{Amount: 5} // boxed once, outside the measurement
	if _, err := reg.Marshal(v); err != nil {
		t.Fatal(err)
	}
	allocs := testing.AllocsPerRun(1000, func() {
		if _, err := reg.Marshal(v); err != nil {
			t.Fatal(err)
		}
	})
	if allocs > 1 {
		t.Fatalf("Marshal made %v allocations per event, want 1", allocs)
	}
}
