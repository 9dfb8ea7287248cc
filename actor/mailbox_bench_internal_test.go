package actor

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/orchestrix/orchestrix/internal/banktest"
	"github.com/orchestrix/orchestrix/journal/bolt"
)

// BenchmarkSend_ManyAggregates compares, in one process, the runtime with
// and without the mailbox's inline path (inlineCommands): 512 senders
// depositing into 10,000 warm accounts at random, on a bbolt journal
// without fsync. cpu-ns/op is the process's user + system CPU per
// command (getrusage). Alternate the two with -count to compare them
// under the same load:
//
//	go test -run XXX -bench Send_ManyAggregates -benchtime 200000x -count 4 ./actor
func BenchmarkSend_ManyAggregates(b *testing.B) {
	for _, inline := range []bool{false, true} {
		b.Run(fmt.Sprintf("inline=%v", inline), func(b *testing.B) {
			defer func(was bool) { inlineCommands = was }(inlineCommands)
			inlineCommands = inline
			benchManyAggregates(b, 10000)
		})
	}
}

// BenchmarkSend_HotAggregate is BenchmarkSend_ManyAggregates with every
// sender on one account, where the mailbox is almost never idle.
func BenchmarkSend_HotAggregate(b *testing.B) {
	for _, inline := range []bool{false, true} {
		b.Run(fmt.Sprintf("inline=%v", inline), func(b *testing.B) {
			defer func(was bool) { inlineCommands = was }(inlineCommands)
			inlineCommands = inline
			benchManyAggregates(b, 1)
		})
	}
}

func benchManyAggregates(b *testing.B, aggregates int) {
	j, err := bolt.Open(filepath.Join(b.TempDir(), "journal.db"), bolt.Config{NoSync: true})
	if err != nil {
		b.Fatal(err)
	}
	defer j.Close()
	sys, err := NewSystem(Config{Journal: j, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	defer sys.Close()
	h, err := Register(sys, banktest.Accounts())
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	ids := make([]string, aggregates)
	for i := range ids {
		ids[i] = fmt.Sprint("acc-", i)
		if _, err := h.Send(ctx, ids[i], banktest.OpenAccount{Owner: "o"}); err != nil {
			b.Fatal(err)
		}
	}
	var seed atomic.Uint64
	b.SetParallelism(256) // × GOMAXPROCS senders
	b.ReportAllocs()
	cpu0 := rusage()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		x := seed.Add(0x9E3779B97F4A7C15)
		for pb.Next() {
			x ^= x << 13
			x ^= x >> 7
			x ^= x << 17
			if _, err := h.Send(ctx, ids[x%uint64(aggregates)], banktest.Deposit{Amount: 1}); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	b.ReportMetric(float64(rusage()-cpu0)/float64(b.N), "cpu-ns/op")
}

func rusage() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		panic(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
