package postgres_test

import (
	"context"
	"fmt"
	"iter"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

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

// BenchmarkJournal_AppendIndexCost measures what each index of
// journal_events costs the server per appended event: the same group
// commit workload (256 appenders, each appending one event at a time to
// its own stream) on a schema as shipped and on schemas with an index
// dropped or replaced, on a throwaway server of its own. It reports the
// server's CPU (all its processes, from /proc) and the WAL it wrote per
// event. Variants marked "measure only" break a contract and exist to
// show the index's price. Run alternated, e.g.
//
//	go test ./journal/postgres -run '^$' -bench AppendIndexCost -benchtime 60000x -count 3
func BenchmarkJournal_AppendIndexCost(b *testing.B) {
	srv := pgtest.Start(b)
	variants := []struct{ name, sql string }{
		{"shipped", ``},
		{"event_id-hash", `DROP INDEX journal_events_event_id; CREATE INDEX journal_events_event_id ON journal_events USING hash (event_id)`},
		{"no-event_id-index(measure-only)", `DROP INDEX journal_events_event_id`},
		{"no-stream-version-unique(measure-only)", `ALTER TABLE journal_events DROP CONSTRAINT journal_events_stream_version`},
		{"no-position-pk(measure-only)", `ALTER TABLE journal_events DROP CONSTRAINT journal_events_pkey`},
	}
	for _, v := range variants {
		b.Run(v.name, func(b *testing.B) {
			ctx := context.Background()
			dsn := srv.NewDatabase(b)
			j, err := postgres.Open(ctx, dsn, postgres.Config{MaxConns: 8})
			if err != nil {
				b.Fatal(err)
			}
			defer j.Close()
			conn, err := pgx.Connect(ctx, dsn)
			if err != nil {
				b.Fatal(err)
			}
			defer conn.Close(ctx)
			if v.sql != "" {
				if _, err := conn.Exec(ctx, v.sql); err != nil {
					b.Fatal(err)
				}
			}
			payload := []byte(`{"account":"acc-42","amount":1250,"currency":"EUR","note":"benchmark event"}`)
			const appenders = 256
			var lsn0, lsn1 string
			if err := conn.QueryRow(ctx, `SELECT pg_current_wal_lsn()::text`).Scan(&lsn0); err != nil {
				b.Fatal(err)
			}
			cpu0, err := srv.CPUTime()
			if err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			var left atomic.Int64
			left.Store(int64(b.N))
			var wg sync.WaitGroup
			for a := range appenders {
				wg.Add(1)
				go func() {
					defer wg.Done()
					name := fmt.Sprintf("bench-%d", a)
					var head uint64
					for left.Add(-1) >= 0 {
						ev := orchestrix.Envelope{ID: orchestrix.NewID(), Source: "/bench", Type: "bench.Deposited",
							Subject: name, DataContentType: "application/json", Data: payload}
						if _, err := j.Append(ctx, name, journal.Exact(head), []orchestrix.Envelope{ev}); err != nil {
							b.Error(err)
							return
						}
						head++
					}
				}()
			}
			wg.Wait()
			b.StopTimer()
			cpu1, err := srv.CPUTime()
			if err != nil {
				b.Fatal(err)
			}
			var wal int64
			if err := conn.QueryRow(ctx, `SELECT pg_current_wal_lsn()::text`).Scan(&lsn1); err != nil {
				b.Fatal(err)
			}
			if err := conn.QueryRow(ctx, `SELECT pg_wal_lsn_diff($1::pg_lsn, $2::pg_lsn)::bigint`, lsn1, lsn0).Scan(&wal); err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(cpu1-cpu0)/float64(time.Microsecond)/float64(b.N), "server-us/event")
			b.ReportMetric(float64(wal)/float64(b.N), "WAL-B/event")
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
		})
	}
}

// BenchmarkJournal_ReadStream compares Read and ReadBorrowed over one
// stream of 10,000 events (one op reads all of them; the server shares the
// machine, so read allocs/op and the client's share of ns/op). Run with
//
//	go test ./journal/postgres -run '^$' -bench ReadStream -benchmem
func BenchmarkJournal_ReadStream(b *testing.B) {
	ctx := context.Background()
	j, err := postgres.Open(ctx, pgtest.DSN(b), postgres.Config{MaxConns: 4})
	if err != nil {
		b.Fatal(err)
	}
	defer j.Close()
	const n = 10000
	payload := []byte(`{"amount":1,"memo":"` + strings.Repeat("m", 170) + `"}`)
	for written := 0; written < n; written += 1000 {
		evs := make([]orchestrix.Envelope, 1000)
		for i := range evs {
			evs[i] = orchestrix.Envelope{ID: orchestrix.NewID(), Source: "/bench", Type: "bench.Deposited", Subject: "hot",
				Time: time.Now(), CausationID: orchestrix.NewID(), DataContentType: "application/json", Data: payload}
		}
		if _, err := j.Append(ctx, "acct-hot", journal.Exact(uint64(written)), evs); err != nil {
			b.Fatal(err)
		}
	}
	reads := map[string]func() iter.Seq2[journal.Record, error]{
		"Read":         func() iter.Seq2[journal.Record, error] { return j.Read(ctx, "acct-hot", 1, n, n) },
		"ReadBorrowed": func() iter.Seq2[journal.Record, error] { return j.ReadBorrowed(ctx, "acct-hot", 1, n, n) },
	}
	for _, name := range []string{"Read", "ReadBorrowed"} {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			var bytes int
			for b.Loop() {
				got := 0
				for rec, err := range reads[name]() {
					if err != nil {
						b.Fatal(err)
					}
					bytes += len(rec.Envelope.Data)
					got++
				}
				if got != n {
					b.Fatalf("read %d events, want %d", got, n)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/event")
		})
	}
}
