package postgres_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/orchestrix/orchestrix"
	"github.com/orchestrix/orchestrix/internal/pgtest"
	"github.com/orchestrix/orchestrix/journal"
	"github.com/orchestrix/orchestrix/journal/postgres"
)

// BenchmarkJournal_Append measures group-commit throughput: appenders
// goroutines, each appending one event at a time to its own stream with an
// exact expected version. Run with e.g.
//
//	go test ./journal/postgres -run '^$' -bench Append -benchtime 100000x
func BenchmarkJournal_Append(b *testing.B) {
	for _, appenders := range []int{1, 64, 1024} {
		b.Run(fmt.Sprintf("appenders=%d", appenders), func(b *testing.B) {
			j, err := postgres.Open(context.Background(), pgtest.DSN(b), postgres.Config{MaxConns: 8})
			if err != nil {
				b.Fatal(err)
			}
			defer j.Close()
			payload := []byte(`{"account":"acc-42","amount":1250,"currency":"EUR","note":"benchmark event"}`)
			var next atomic.Int64
			var stream atomic.Int64
			b.SetParallelism((appenders + 1) / 2) // GOMAXPROCS is 2 here
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				name := fmt.Sprintf("bench-%d", stream.Add(1))
				var head uint64
				for pb.Next() {
					ev := orchestrix.Envelope{ID: orchestrix.NewID(), Source: "/bench", Type: "bench.Deposited",
						Subject: name, DataContentType: "application/json", Data: payload}
					if _, err := j.Append(context.Background(), name, journal.Exact(head), []orchestrix.Envelope{ev}); err != nil {
						b.Error(err)
						return
					}
					head++
					next.Add(1)
				}
			})
			b.ReportMetric(float64(next.Load())/b.Elapsed().Seconds(), "events/s")
		})
	}
}
