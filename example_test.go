package orchestrix_test

import (
	"fmt"
	"time"

	"github.com/orchestrix/orchestrix"
)

type AccountOpened struct {
	Owner    string `json:"owner"`
	Currency string `json:"currency"`
}

// Register a payload type, wrap a value in an envelope, store it in the
// binary form and read it back.
func Example() {
	r := orchestrix.NewRegistry(orchestrix.WithIDFunc(func() string { return "evt-1" }))
	if err := orchestrix.Register[AccountOpened](r, "bank.AccountOpened", orchestrix.WithSchemaVersion(2)); err != nil {
		fmt.Println(err)
		return
	}

	e, err := r.Marshal(AccountOpened{Owner: "Ada", Currency: "EUR"})
	if err != nil {
		fmt.Println(err)
		return
	}
	e.Source = "/orchestrix/bank"
	e.Subject = "account-42"
	e.Time = time.Date(2026, 11, 25, 10, 30, 0, 0, time.UTC)

	stored, err := e.MarshalBinary()
	if err != nil {
		fmt.Println(err)
		return
	}
	var read orchestrix.Envelope
	if err := read.UnmarshalBinary(stored); err != nil {
		fmt.Println(err)
		return
	}
	v, err := r.Unmarshal(read)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("%s v%d %s: %+v\n", read.Type, read.SchemaVersion, read.Subject, v.(AccountOpened))

	js, err := read.MarshalJSON()
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(string(js))
	// Output:
	// bank.AccountOpened v2 account-42: {Owner:Ada Currency:EUR}
	// {"specversion":"1.0","id":"evt-1","source":"/orchestrix/bank","type":"bank.AccountOpened","subject":"account-42","time":"2026-11-25T10:30:00Z","datacontenttype":"application/json","schemaversion":2,"data":{"owner":"Ada","currency":"EUR"}}
}

// An event stored at schema version 1, when the payload had a "name"
// field, is read as version 2, which calls it "owner" and adds "currency".
func ExampleUpcastJSON() {
	r := orchestrix.NewRegistry()
	if err := orchestrix.Register[AccountOpened](r, "bank.AccountOpened", orchestrix.WithSchemaVersion(2)); err != nil {
		fmt.Println(err)
		return
	}
	err := r.AddUpcaster("bank.AccountOpened", 1, orchestrix.UpcastJSON(func(m map[string]any) error {
		m["owner"] = m["name"]
		delete(m, "name")
		m["currency"] = "EUR"
		return nil
	}))
	if err != nil {
		fmt.Println(err)
		return
	}

	old := orchestrix.Envelope{Type: "bank.AccountOpened", SchemaVersion: 1, Data: []byte(`{"name":"Ada"}`)}
	v, err := r.Unmarshal(old)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("%+v\n", v)
	// Output:
	// {Owner:Ada Currency:EUR}
}
