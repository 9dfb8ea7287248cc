package mem_test

import (
	"context"
	"fmt"
	"time"

	"github.com/orchestrix/orchestrix/snapshot"
	"github.com/orchestrix/orchestrix/snapshot/mem"
)

func Example() {
	ctx := context.Background()
	store := mem.New(mem.Config{})
	defer store.Close()

	taken := time.Date(2026, time.May, 1, 12, 0, 0, 0, time.UTC)
	for _, v := range []uint64{100, 200, 300} {
		err := store.Save(ctx, snapshot.Snapshot{
			Stream:        "account-42",
			Version:       v,
			Type:          "bank.Account",
			SchemaVersion: 1,
			Time:          taken.Add(time.Duration(v) * time.Second),
			Data:          fmt.Appendf(nil, `{"balance":%d}`, v*10),
		})
		if err != nil {
			fmt.Println("save:", err)
			return
		}
	}

	// Recovering to version 250 starts from the newest snapshot at or below it.
	s, ok, err := store.Load(ctx, "account-42", snapshot.AtOrBelow(250))
	if err != nil {
		fmt.Println("load:", err)
		return
	}
	fmt.Println(ok, s.Version, s.Type, string(s.Data))

	// No snapshot is not an error: replay the whole stream instead.
	_, ok, err = store.Load(ctx, "account-7", snapshot.Latest)
	fmt.Println(ok, err)
	// Output:
	// true 200 bank.Account {"balance":2000}
	// false <nil>
}

func ExampleStore_CorruptForTest() {
	ctx := context.Background()
	store := mem.New(mem.Config{})
	defer store.Close()

	for _, v := range []uint64{1, 2} {
		if err := store.Save(ctx, snapshot.Snapshot{Stream: "s", Version: v, Type: "t"}); err != nil {
			fmt.Println("save:", err)
			return
		}
	}
	if err := store.CorruptForTest("s", 2); err != nil {
		fmt.Println("corrupt:", err)
		return
	}
	// Load skips the snapshot that fails its checksum.
	s, ok, err := store.Load(ctx, "s", snapshot.Latest)
	fmt.Println(s.Version, ok, err)
	// Output:
	// 1 true <nil>
}
