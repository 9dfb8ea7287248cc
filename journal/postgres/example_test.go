package postgres_test

import (
	"context"
	"fmt"
	"math"
	"os"

	"github.com/orchestrix/orchestrix"
	"github.com/orchestrix/orchestrix/journal"
	"github.com/orchestrix/orchestrix/journal/postgres"
)

// Open connects to the database named by a connection string (here from
// the environment, e.g. "postgres://app@db.internal/orders"), creates the
// journal's tables in the schema on first use, and serves every member of
// a service that opens the same database and schema. The example needs a
// server, so it has no checked output; TestExampleOpen runs it on a
// throwaway server and checks what it prints.
func ExampleOpen() {
	ctx := context.Background()
	j, err := postgres.Open(ctx, os.Getenv("DATABASE_URL"), postgres.Config{Schema: "orders"})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer j.Close()

	placed := orchestrix.Envelope{ID: orchestrix.NewID(), Source: "/shop", Type: "shop.order.placed", Data: []byte(`{}`)}
	res, err := j.Append(ctx, "order-42", journal.NoStream, []orchestrix.Envelope{placed})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("stored at version", res.FirstVersion)

	// A retry with the same event id (after a lost reply, say) is
	// recognised and stores nothing.
	res, err = j.Append(ctx, "order-42", journal.NoStream, []orchestrix.Envelope{placed})
	fmt.Println("retry duplicate:", res.Duplicate, err)

	for rec, err := range j.Read(ctx, "order-42", 1, math.MaxUint64, math.MaxInt) {
		if err != nil {
			fmt.Println(err)
			return
		}
		fmt.Println(rec.Version, rec.Envelope.Type)
	}
}
