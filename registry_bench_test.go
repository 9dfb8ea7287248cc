package orchestrix_test

import (
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
