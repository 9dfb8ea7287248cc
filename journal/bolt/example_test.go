package bolt_test

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"

	"github.com/orchestrix/orchestrix"
	"github.com/orchestrix/orchestrix/journal"
	"github.com/orchestrix/orchestrix/journal/bolt"
)

func ExampleOpen() {
	dir, err := os.MkdirTemp("", "journal-example-")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)

	j, err := bolt.Open(filepath.Join(dir, "journal.db"), bolt.Config{})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer j.Close()

	ctx := context.Background()
	opened := orchestrix.Envelope{ID: orchestrix.NewID(), Source: "/bank", Type: "bank.AccountOpened", Data: []byte(`{}`)}
	res, err := j.Append(ctx, "account-42", journal.NoStream, []orchestrix.Envelope{opened})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("stored at version", res.FirstVersion)

	// A retry with the same event id is recognised and stores nothing.
	res, err = j.Append(ctx, "account-42", journal.NoStream, []orchestrix.Envelope{opened})
	fmt.Println("retry duplicate:", res.Duplicate, err)

	// A writer that is behind gets a conflict.
	_, err = j.Append(ctx, "account-42", journal.NoStream, []orchestrix.Envelope{
		{ID: orchestrix.NewID(), Source: "/bank", Type: "bank.AccountOpened"},
	})
	fmt.Println(err)

	for rec, err := range j.Read(ctx, "account-42", 1, math.MaxUint64, math.MaxInt) {
		if err != nil {
			fmt.Println(err)
			return
		}
		fmt.Println(rec.Version, rec.Envelope.Type)
	}
	// Output:
	// stored at version 1
	// retry duplicate: true <nil>
	// journal: version conflict on stream "account-42": expected no-stream, actual 1
	// 1 bank.AccountOpened
}
