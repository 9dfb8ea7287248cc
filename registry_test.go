package orchestrix_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/orchestrix/orchestrix"
)

type accountOpened struct {
	Owner   string `json:"owner"`
	Balance int64  `json:"balance"`
}

type moneyDeposited struct {
	Amount int64 `json:"amount"`
}

// accountOpenedV3 is version 3 of the AccountOpened payload: version 2
// renamed "name" to "owner", version 3 added "currency".
type accountOpenedV3 struct {
	Owner    string `json:"owner"`
	Currency string `json:"currency"`
}

func TestRegistry_MarshalUnmarshal_RoundTrip_ReturnsValue(t *testing.T) {
	r := orchestrix.NewRegistry(orchestrix.WithIDFunc(func() string { return "id-1" }))
	if err := orchestrix.Register[accountOpened](r, "bank.AccountOpened", orchestrix.WithSchemaVersion(2)); err != nil {
		t.Fatal(err)
	}
	in := accountOpened{Owner: "Ada", Balance: 100}
	e, err := r.Marshal(in)
	if err != nil {
		t.Fatalf("Marshal() error = %v", err)
	}
	if e.ID != "id-1" || e.Type != "bank.AccountOpened" || e.SchemaVersion != 2 ||
		e.DataContentType != "application/json" || e.SpecVersion != "1.0" {
		t.Fatalf("Marshal() envelope = %+v", e)
	}
	out, err := r.Unmarshal(e)
	if err != nil {
		t.Fatalf("Unmarshal() error = %v", err)
	}
	if got, ok := out.(accountOpened); !ok || got != in {
		t.Fatalf("Unmarshal() = %#v, want %#v", out, in)
	}

	// A pointer to a registered type marshals as the value.
	e, err = r.Marshal(&in)
	if err != nil || e.Type != "bank.AccountOpened" {
		t.Fatalf("Marshal(&v) = %+v, %v", e, err)
	}
}

func TestRegistry_Marshal_DefaultID_IsUUIDv7(t *testing.T) {
	r := orchestrix.NewRegistry()
	if err := orchestrix.Register[moneyDeposited](r, "bank.MoneyDeposited"); err != nil {
		t.Fatal(err)
	}
	e, err := r.Marshal(moneyDeposited{Amount: 1})
	if err != nil {
		t.Fatal(err)
	}
	if len(e.ID) != 36 || e.ID[14] != '7' || e.SchemaVersion != 1 {
		t.Fatalf("Marshal() = %+v, want a UUIDv7 id and schema version 1", e)
	}
}

func TestRegistry_Marshal_UnregisteredType_ReturnsErrUnknownEventType(t *testing.T) {
	r := orchestrix.NewRegistry()
	for _, v := range []any{moneyDeposited{}, nil, (*moneyDeposited)(nil)} {
		if _, err := r.Marshal(v); !errors.Is(err, orchestrix.ErrUnknownEventType) {
			t.Fatalf("Marshal(%#v) = %v, want ErrUnknownEventType", v, err)
		}
	}
	if _, err := r.TypeName(42); !errors.Is(err, orchestrix.ErrUnknownEventType) {
		t.Fatalf("TypeName(42) = %v, want ErrUnknownEventType", err)
	}
}

func TestRegistry_Marshal_NilPointerToRegisteredType_ReturnsError(t *testing.T) {
	r := orchestrix.NewRegistry()
	if err := orchestrix.Register[moneyDeposited](r, "bank.MoneyDeposited"); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Marshal((*moneyDeposited)(nil)); err == nil {
		t.Fatal("Marshal(nil pointer) = nil error")
	}
}

func TestRegistry_Unmarshal_UnknownType_NamesType(t *testing.T) {
	r := orchestrix.NewRegistry()
	_, err := r.Unmarshal(orchestrix.Envelope{Type: "bank.Gone", Data: []byte(`{}`)})
	if !errors.Is(err, orchestrix.ErrUnknownEventType) || !strings.Contains(err.Error(), "bank.Gone") {
		t.Fatalf("Unmarshal() = %v, want ErrUnknownEventType naming bank.Gone", err)
	}
}

func TestRegistry_Unmarshal_UndecodablePayload_ReturnsErrInvalidEnvelope(t *testing.T) {
	r := orchestrix.NewRegistry()
	if err := orchestrix.Register[moneyDeposited](r, "bank.MoneyDeposited"); err != nil {
		t.Fatal(err)
	}
	for name, e := range map[string]orchestrix.Envelope{
		"bad JSON":           {Type: "bank.MoneyDeposited", Data: []byte(`{"amount":`)},
		"wrong field type":   {Type: "bank.MoneyDeposited", Data: []byte(`{"amount":"x"}`)},
		"wrong content type": {Type: "bank.MoneyDeposited", DataContentType: "application/protobuf", Data: []byte(`{}`)},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := r.Unmarshal(e); !errors.Is(err, orchestrix.ErrInvalidEnvelope) {
				t.Fatalf("Unmarshal() = %v, want ErrInvalidEnvelope", err)
			}
		})
	}
	// Parameters on the content type are fine.
	e := orchestrix.Envelope{Type: "bank.MoneyDeposited", DataContentType: "application/json; charset=utf-8", Data: []byte(`{"amount":3}`)}
	if v, err := r.Unmarshal(e); err != nil || v != (moneyDeposited{Amount: 3}) {
		t.Fatalf("Unmarshal() = %v, %v", v, err)
	}
}

func TestRegister_Conflicts_ReturnsRegistrationError(t *testing.T) {
	r := orchestrix.NewRegistry()
	if err := orchestrix.Register[accountOpened](r, "bank.AccountOpened"); err != nil {
		t.Fatal(err)
	}
	if err := orchestrix.Register[accountOpened](r, "bank.AccountOpened"); err != nil {
		t.Fatalf("identical re-registration = %v, want nil", err)
	}
	tests := map[string]func() error{
		"same name, other type": func() error { return orchestrix.Register[moneyDeposited](r, "bank.AccountOpened") },
		"same type, other name": func() error { return orchestrix.Register[accountOpened](r, "bank.Opened") },
		"same name, other version": func() error {
			return orchestrix.Register[accountOpened](r, "bank.AccountOpened", orchestrix.WithSchemaVersion(2))
		},
		"empty name":     func() error { return orchestrix.Register[moneyDeposited](r, " ") },
		"zero version":   func() error { return orchestrix.Register[moneyDeposited](r, "x", orchestrix.WithSchemaVersion(0)) },
		"interface type": func() error { return orchestrix.Register[fmt.Stringer](r, "stringer") },
	}
	for name, fn := range tests {
		t.Run(name, func(t *testing.T) {
			var re *orchestrix.RegistrationError
			if err := fn(); !errors.As(err, &re) {
				t.Fatalf("Register() = %v, want *RegistrationError", err)
			}
		})
	}
	if name, err := r.TypeName(accountOpened{}); err != nil || name != "bank.AccountOpened" {
		t.Fatalf("TypeName() = %q, %v after rejected registrations", name, err)
	}
}

// upcastV3Registry registers accountOpenedV3 at version 3 with upcasters
// 1→2 (rename "name" to "owner") and 2→3 (add "currency").
func upcastV3Registry(t *testing.T) *orchestrix.Registry {
	t.Helper()
	r := orchestrix.NewRegistry()
	if err := orchestrix.Register[accountOpenedV3](r, "bank.AccountOpened", orchestrix.WithSchemaVersion(3)); err != nil {
		t.Fatal(err)
	}
	if err := r.AddUpcaster("bank.AccountOpened", 2, orchestrix.UpcastJSON(func(m map[string]any) error {
		m["currency"] = "EUR"
		return nil
	})); err != nil {
		t.Fatal(err)
	}
	if err := r.AddUpcaster("bank.AccountOpened", 1, orchestrix.UpcastJSON(func(m map[string]any) error {
		m["owner"] = m["name"]
		delete(m, "name")
		return nil
	})); err != nil {
		t.Fatal(err)
	}
	return r
}

func TestRegistry_Unmarshal_V1Event_ReadAsV3(t *testing.T) {
	r := upcastV3Registry(t)
	want := accountOpenedV3{Owner: "Ada", Currency: "EUR"}
	for _, version := range []int{0, 1} { // 0 means unset, read as 1
		e := orchestrix.Envelope{Type: "bank.AccountOpened", SchemaVersion: version, Data: []byte(`{"name":"Ada"}`)}
		v, err := r.Unmarshal(e)
		if err != nil {
			t.Fatalf("Unmarshal(v%d) error = %v", version, err)
		}
		if v != want {
			t.Fatalf("Unmarshal(v%d) = %#v, want %#v", version, v, want)
		}
	}
	v, err := r.Unmarshal(orchestrix.Envelope{Type: "bank.AccountOpened", SchemaVersion: 2, Data: []byte(`{"owner":"Bo"}`)})
	if err != nil || v != (accountOpenedV3{Owner: "Bo", Currency: "EUR"}) {
		t.Fatalf("Unmarshal(v2) = %#v, %v", v, err)
	}
	v, err = r.Unmarshal(orchestrix.Envelope{Type: "bank.AccountOpened", SchemaVersion: 3, Data: []byte(`{"owner":"Cy","currency":"USD"}`)})
	if err != nil || v != (accountOpenedV3{Owner: "Cy", Currency: "USD"}) {
		t.Fatalf("Unmarshal(v3) = %#v, %v", v, err)
	}
}

func TestRegistry_Unmarshal_ThroughJournalForms_Upcasts(t *testing.T) {
	r := upcastV3Registry(t)
	old := orchestrix.Envelope{ID: "1", Source: "/bank", Type: "bank.AccountOpened", SchemaVersion: 1,
		DataContentType: "application/json", Data: []byte(`{"name":"Ada"}`)}
	b, err := old.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	var stored orchestrix.Envelope
	if err := stored.UnmarshalBinary(b); err != nil {
		t.Fatal(err)
	}
	v, err := r.Unmarshal(stored)
	if err != nil || v != (accountOpenedV3{Owner: "Ada", Currency: "EUR"}) {
		t.Fatalf("Unmarshal() = %#v, %v", v, err)
	}
}

func TestRegistry_Unmarshal_MissingUpcaster_ReturnsUpcastError(t *testing.T) {
	r := orchestrix.NewRegistry()
	if err := orchestrix.Register[accountOpenedV3](r, "bank.AccountOpened", orchestrix.WithSchemaVersion(3)); err != nil {
		t.Fatal(err)
	}
	if err := r.AddUpcaster("bank.AccountOpened", 1, func(b []byte) ([]byte, error) { return b, nil }); err != nil {
		t.Fatal(err)
	}
	_, err := r.Unmarshal(orchestrix.Envelope{Type: "bank.AccountOpened", SchemaVersion: 1, Data: []byte(`{}`)})
	var ue *orchestrix.UpcastError
	if !errors.As(err, &ue) || ue.From != 2 || ue.To != 3 || ue.Type != "bank.AccountOpened" {
		t.Fatalf("Unmarshal() = %v, want *UpcastError from 2 to 3", err)
	}
}

func TestRegistry_Unmarshal_NewerVersion_ReturnsUpcastError(t *testing.T) {
	r := orchestrix.NewRegistry()
	if err := orchestrix.Register[moneyDeposited](r, "bank.MoneyDeposited"); err != nil {
		t.Fatal(err)
	}
	_, err := r.Unmarshal(orchestrix.Envelope{Type: "bank.MoneyDeposited", SchemaVersion: 2, Data: []byte(`{}`)})
	var ue *orchestrix.UpcastError
	if !errors.As(err, &ue) || ue.From != 2 || ue.To != 1 {
		t.Fatalf("Unmarshal() = %v, want *UpcastError from 2 to 1", err)
	}
}

func TestRegistry_Unmarshal_FailingUpcaster_WrapsCause(t *testing.T) {
	r := orchestrix.NewRegistry()
	if err := orchestrix.Register[moneyDeposited](r, "bank.MoneyDeposited", orchestrix.WithSchemaVersion(2)); err != nil {
		t.Fatal(err)
	}
	cause := errors.New("boom")
	if err := r.AddUpcaster("bank.MoneyDeposited", 1, func([]byte) ([]byte, error) { return nil, cause }); err != nil {
		t.Fatal(err)
	}
	_, err := r.Unmarshal(orchestrix.Envelope{Type: "bank.MoneyDeposited", SchemaVersion: 1, Data: []byte(`{}`)})
	var ue *orchestrix.UpcastError
	if !errors.Is(err, cause) || !errors.As(err, &ue) || ue.From != 1 {
		t.Fatalf("Unmarshal() = %v, want *UpcastError wrapping the cause", err)
	}
}

func TestRegistry_AddUpcaster_BadArguments_ReturnsError(t *testing.T) {
	r := orchestrix.NewRegistry()
	if err := orchestrix.Register[moneyDeposited](r, "bank.MoneyDeposited", orchestrix.WithSchemaVersion(3)); err != nil {
		t.Fatal(err)
	}
	id := func(b []byte) ([]byte, error) { return b, nil }
	if err := r.AddUpcaster("bank.Unknown", 1, id); !errors.Is(err, orchestrix.ErrUnknownEventType) {
		t.Fatalf("AddUpcaster(unknown type) = %v, want ErrUnknownEventType", err)
	}
	if err := r.AddUpcaster("bank.MoneyDeposited", 1, id); err != nil {
		t.Fatal(err)
	}
	for name, call := range map[string]func() error{
		"duplicate":      func() error { return r.AddUpcaster("bank.MoneyDeposited", 1, id) },
		"nil fn":         func() error { return r.AddUpcaster("bank.MoneyDeposited", 2, nil) },
		"from zero":      func() error { return r.AddUpcaster("bank.MoneyDeposited", 0, id) },
		"from current":   func() error { return r.AddUpcaster("bank.MoneyDeposited", 3, id) },
		"beyond current": func() error { return r.AddUpcaster("bank.MoneyDeposited", 7, id) },
	} {
		t.Run(name, func(t *testing.T) {
			var re *orchestrix.RegistrationError
			if err := call(); !errors.As(err, &re) {
				t.Fatalf("AddUpcaster() = %v, want *RegistrationError", err)
			}
		})
	}
}

func TestUpcastJSON_NotAnObject_ReturnsError(t *testing.T) {
	up := orchestrix.UpcastJSON(func(map[string]any) error { return nil })
	for _, in := range []string{`[1]`, `null`, `{"a":1} {"b":2}`, `{`, ``} {
		if _, err := up([]byte(in)); err == nil {
			t.Fatalf("UpcastJSON(%q) = nil error", in)
		}
	}
	out, err := up([]byte(`{"big":12345678901234567890}`))
	if err != nil || string(out) != `{"big":12345678901234567890}` {
		t.Fatalf("UpcastJSON() = %s, %v, want integers kept exactly", out, err)
	}
}

// upperCodec is a Codec other than JSON, to check WithCodec is used.
type upperCodec struct{}

func (upperCodec) Encode(v any) ([]byte, error) {
	b, err := json.Marshal(v)
	return []byte(strings.ToUpper(string(b))), err
}
func (upperCodec) Decode(data []byte, v any) error {
	return json.Unmarshal([]byte(strings.ToLower(string(data))), v)
}
func (upperCodec) ContentType() string { return "application/x-upper" }

func TestNewRegistry_WithCodec_UsesCodec(t *testing.T) {
	r := orchestrix.NewRegistry(orchestrix.WithCodec(upperCodec{}))
	if err := orchestrix.Register[accountOpened](r, "bank.AccountOpened"); err != nil {
		t.Fatal(err)
	}
	e, err := r.Marshal(accountOpened{Owner: "ada"})
	if err != nil {
		t.Fatal(err)
	}
	if e.DataContentType != "application/x-upper" || !strings.Contains(string(e.Data), `"OWNER":"ADA"`) {
		t.Fatalf("Marshal() = %+v, %s", e, e.Data)
	}
	v, err := r.Unmarshal(e)
	if err != nil || v != (accountOpened{Owner: "ada"}) {
		t.Fatalf("Unmarshal() = %#v, %v", v, err)
	}
}

func TestRegistry_ConcurrentUse_IsSafe(t *testing.T) {
	r := upcastV3Registry(t)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for i := range 8 {
		wg.Go(func() {
			for j := range 200 {
				if i == 0 && j%50 == 0 {
					_ = orchestrix.Register[moneyDeposited](r, "bank.MoneyDeposited")
				}
				e, err := r.Marshal(accountOpenedV3{Owner: "x"})
				if err == nil {
					_, err = r.Unmarshal(e)
				}
				if err == nil {
					_, err = r.Unmarshal(orchestrix.Envelope{Type: "bank.AccountOpened", SchemaVersion: 1, Data: []byte(`{"name":"y"}`)})
				}
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

func BenchmarkRegistry_Unmarshal(b *testing.B) {
	r := orchestrix.NewRegistry()
	if err := orchestrix.Register[accountOpened](r, "bank.AccountOpened"); err != nil {
		b.Fatal(err)
	}
	e, err := r.Marshal(accountOpened{Owner: "Ada", Balance: 100})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := r.Unmarshal(e); err != nil {
			b.Fatal(err)
		}
	}
}
