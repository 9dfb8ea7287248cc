package mem_test

import (
	"context"
	"fmt"
	"math"
	"time"

	"github.com/orchestrix/orchestrix"
	"github.com/orchestrix/orchestrix/journal"
	"github.com/orchestrix/orchestrix/journal/mem"
)

func Example() {
	j, err := mem.New(mem.Config{})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer j.Close()
	ctx := context.Background()

	opened := orchestrix.Envelope{
		ID:              "0193a1b2-0000-7000-8000-000000000001",
		Source:          "/bank",
		Type:            "bank.AccountOpened",
		Subject:         "account-42",
		Time:            time.Date(2026, 11, 25, 9, 0, 0, 0, time.UTC),
		DataContentType: "application/json",
		Data:            []byte(`{"owner":"Ada"}`),
	}
	deposited := opened
	deposited.ID = "0193a1b2-0000-7000-8000-000000000002"
	deposited.Type = "bank.MoneyDeposited"
	deposited.Data = []byte(`{"amount":100}`)

	// A new stream: expect it not to exist yet.
	res, err := j.Append(ctx, "account-42", journal.NoStream, []orchestrix.Envelope{opened, deposited})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("appended versions %d-%d\n", res.FirstVersion, res.LastVersion)

	// A writer that still believes the stream is new loses.
	_, err = j.Append(ctx, "account-42", journal.NoStream, []orchestrix.Envelope{{ID: "x", Source: "/bank", Type: "bank.AccountOpened"}})
	fmt.Println("conflict:", err != nil)

	for rec, err := range j.Read(ctx, "account-42", 1, math.MaxUint64, math.MaxInt) {
		if err != nil {
			fmt.Println(err)
			return
		}
		fmt.Printf("v%d %s %s\n", rec.Version, rec.Envelope.Type, rec.Envelope.Data)
	}
	// Output:
	// appended versions 1-2
	// conflict: true
	// v1 bank.AccountOpened {"owner":"Ada"}
	// v2 bank.MoneyDeposited {"amount":100}
}
