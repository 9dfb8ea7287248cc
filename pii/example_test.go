package pii_test

import (
	"context"
	"fmt"

	"github.com/orchestrix/orchestrix"
	"github.com/orchestrix/orchestrix/journal"
	"github.com/orchestrix/orchestrix/journal/mem"
	"github.com/orchestrix/orchestrix/pii"
)

type SignedUp struct {
	Email string `pii:"data"`
	Plan  string
}

func Example() {
	ctx := context.Background()
	keys := pii.NewMemKeyStore() // pii/bolt in production
	codec, err := pii.NewCodec(pii.Config{Keys: keys})
	if err != nil {
		fmt.Println(err)
		return
	}
	reg := orchestrix.NewRegistry(orchestrix.WithCodec(codec))
	if err := orchestrix.Register[SignedUp](reg, "shop.signed_up"); err != nil {
		fmt.Println(err)
		return
	}
	j, err := mem.New(mem.Config{})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer j.Close()

	env, err := reg.MarshalFor(ctx, "user-1", SignedUp{Email: "ann@example.com", Plan: "pro"})
	if err != nil {
		fmt.Println(err)
		return
	}
	env.Source = "/shop"
	if _, err := j.Append(ctx, "user-user-1", journal.NoStream, []orchestrix.Envelope{env}); err != nil {
		fmt.Println(err)
		return
	}
	read := func() {
		for rec, err := range j.Read(ctx, "user-user-1", 1, 1, 1) {
			if err != nil {
				fmt.Println(err)
				return
			}
			v, err := reg.Unmarshal(rec.Envelope)
			fmt.Printf("%+v %v\n", v, err)
		}
	}
	read()

	eraser := &pii.Eraser{Keys: keys, Journal: j}
	if _, err := eraser.Erase(ctx, "user-1", "user request"); err != nil {
		fmt.Println(err)
		return
	}
	read()
	// Output:
	// {Email:ann@example.com Plan:pro} <nil>
	// {Email:[erased] Plan:pro} <nil>
}
