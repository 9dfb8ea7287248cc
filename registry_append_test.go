package orchestrix_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"math"
	"testing"
	"time"

	"github.com/orchestrix/orchestrix"
)

// compiledEvent is a type the registry compiles a JSON encoder for.
type compiledEvent struct {
	Amount int64             `json:"amount"`
	Memo   string            `json:"memo,omitempty"`
	Rate   float64           `json:"rate"`
	Tags   []string          `json:"tags"`
	Next   *compiledEventRef `json:"next,omitempty"`
}

type compiledEventRef struct {
	ID string `json:"id"`
}

// mapEvent is left to json.Marshal (a map, a time.Time).
type mapEvent struct {
	Attrs map[string]int `json:"attrs"`
	At    time.Time      `json:"at"`
}

func newAppendRegistry(t *testing.T, opts ...orchestrix.RegistryOption) *orchestrix.Registry {
	t.Helper()
	r := orchestrix.NewRegistry(opts...)
	if err := orchestrix.Register[compiledEvent](r, "test.Compiled", orchestrix.WithSchemaVersion(3)); err != nil {
		t.Fatal(err)
	}
	if err := orchestrix.Register[mapEvent](r, "test.Map"); err != nil {
		t.Fatal(err)
	}
	return r
}

// sameEnvelope fails t unless got is want apart from the id, which must be
// set and differ.
func sameEnvelope(t *testing.T, got, want orchestrix.Envelope) {
	t.Helper()
	if got.ID == "" || got.ID == want.ID {
		t.Fatalf("ids %q and %q", got.ID, want.ID)
	}
	got.ID = want.ID
	if got.SpecVersion != want.SpecVersion || got.Type != want.Type || got.Subject != want.Subject ||
		got.SchemaVersion != want.SchemaVersion || got.DataContentType != want.DataContentType ||
		!bytes.Equal(got.Data, want.Data) {
		t.Fatalf("envelope\n got %+v (data %s)\nwant %+v (data %s)", got, got.Data, want, want.Data)
	}
}

func TestRegistry_AppendMarshalFor_SameAsMarshalFor(t *testing.T) {
	r := newAppendRegistry(t)
	ctx := context.Background()
	compiled := compiledEvent{Amount: 42, Memo: "<b>&co\u2028 \xff", Rate: 1e-7, Tags: []string{"a"}, Next: &compiledEventRef{ID: "x"}}
	for _, v := range []any{
		compiled, &compiled, compiledEvent{},
		mapEvent{Attrs: map[string]int{"b": 2, "a": 1}, At: time.Unix(1700000000, 5).UTC()}, &mapEvent{},
	} {
		want, err := r.MarshalFor(ctx, "subject-1", v)
		if err != nil {
			t.Fatal(err)
		}
		plain, _ := json.Marshal(v)
		if !bytes.Equal(want.Data, plain) {
			t.Fatalf("%T: MarshalFor data %s, json.Marshal %s", v, want.Data, plain)
		}
		buf := append(make([]byte, 0, 8), "head"...)
		got, out, err := r.AppendMarshalFor(ctx, buf, "subject-1", v)
		if err != nil {
			t.Fatal(err)
		}
		sameEnvelope(t, got, want)
		if string(out[:4]) != "head" {
			t.Fatalf("%T: buffer's head overwritten: %q", v, out)
		}
		_, isMap := v.(mapEvent)
		if p, ok := v.(*mapEvent); ok && p != nil {
			isMap = true
		}
		if isMap {
			if len(out) != 4 {
				t.Fatalf("%T (not compiled): buffer grew to %q", v, out)
			}
			continue
		}
		if len(out) != 4+len(got.Data) || &out[4] != &got.Data[0] || cap(got.Data) != len(got.Data) {
			t.Fatalf("%T: data is not the appended tail of the buffer (len %d, data %d, cap %d)", v, len(out), len(got.Data), cap(got.Data))
		}
	}
}

func TestRegistry_AppendMarshalFor_Errors_SameAsMarshalFor(t *testing.T) {
	r := newAppendRegistry(t)
	ctx := context.Background()
	buf := []byte("head")
	for _, v := range []any{compiledEvent{Rate: math.NaN()}, &compiledEvent{Rate: math.Inf(-1)}, moneyDeposited{}, (*compiledEvent)(nil), nil} {
		_, want := r.MarshalFor(ctx, "s", v)
		if want == nil {
			t.Fatalf("%T: MarshalFor succeeded", v)
		}
		_, out, err := r.AppendMarshalFor(ctx, buf, "s", v)
		if err == nil || err.Error() != want.Error() {
			t.Fatalf("%T: error %v, want %v", v, err, want)
		}
		if string(out) != "head" {
			t.Fatalf("%T: buffer %q after an error", v, out)
		}
	}
	if _, _, err := r.AppendMarshalFor(ctx, nil, "s", moneyDeposited{}); !errors.Is(err, orchestrix.ErrUnknownEventType) {
		t.Fatalf("unregistered: %v", err)
	}
}

// upperCodec (registry_test.go) is a codec other than JSONCodec.
func TestRegistry_AppendMarshalFor_OtherCodec_EncodesWithIt(t *testing.T) {
	r := newAppendRegistry(t, orchestrix.WithCodec(upperCodec{}))
	env, out, err := r.AppendMarshalFor(context.Background(), nil, "s", compiledEvent{Memo: "m"})
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != 0 || string(env.Data) != `{"AMOUNT":0,"MEMO":"M","RATE":0,"TAGS":NULL}` || env.DataContentType != "application/x-upper" {
		t.Fatalf("data %s, buffer %q", env.Data, out)
	}
}

func TestRegistry_Marshal_CompiledType_SameBytesAsJSONMarshal(t *testing.T) {
	r := newAppendRegistry(t)
	v := compiledEvent{Amount: -7, Memo: "\"quoted\"\n", Rate: 1e21, Tags: []string{}, Next: &compiledEventRef{}}
	env, err := r.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := json.Marshal(v)
	if !bytes.Equal(env.Data, want) || env.Type != "test.Compiled" || env.SchemaVersion != 3 {
		t.Fatalf("Marshal = %+v (data %s), want data %s", env, env.Data, want)
	}
	back, err := r.Unmarshal(env)
	if err != nil {
		t.Fatal(err)
	}
	if got := back.(compiledEvent); got.Amount != v.Amount || got.Memo != v.Memo || got.Rate != v.Rate || got.Next == nil {
		t.Fatalf("round trip: %+v", got)
	}
}
