package orchestrix_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/orchestrix/orchestrix"
)

type benchDeposit struct {
	Amount int64  `json:"amount"`
	Memo   string `json:"memo"`
}

// BenchmarkRegistry_Marshal encodes a small event (as a command handler's
// events are) with the default codec and ids, from every processor.
func BenchmarkRegistry_Marshal(b *testing.B) {
	reg := orchestrix.NewRegistry()
	if err := orchestrix.Register[benchDeposit](reg, "bench.Deposited"); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := reg.Marshal(benchDeposit{Amount: 1, Memo: "deposit"}); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkRegistry_MarshalFor_Paths compares, on one goroutine, the ways a
// command's event is encoded: MarshalFor with the event boxed (the path
// before the compiled encoder), and AppendMarshalFor into a reused buffer
// with the event passed by pointer (the actor's path). The memo is as long
// as bench aggregates' (170 bytes).
func BenchmarkRegistry_MarshalFor_Paths(b *testing.B) {
	reg := orchestrix.NewRegistry()
	if err := orchestrix.Register[benchDeposit](reg, "bench.Deposited"); err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	events := []benchDeposit{{Amount: 12345, Memo: strings.Repeat("m", 170)}}
	b.Run("MarshalFor", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := reg.MarshalFor(ctx, "acct-1", events[0]); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("AppendMarshalFor", func(b *testing.B) {
		b.ReportAllocs()
		var buf []byte
		for b.Loop() {
			_, out, err := reg.AppendMarshalFor(ctx, buf[:0], "acct-1", &events[0])
			if err != nil {
				b.Fatal(err)
			}
			buf = out
		}
	})
	b.Run("json.Marshal", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := json.Marshal(events[0]); err != nil {
				b.Fatal(err)
			}
		}
	})
}
