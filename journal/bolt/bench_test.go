package bolt_test

import (
	"context"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/orchestrix/orchestrix"
	"github.com/orchestrix/orchestrix/journal"
	"github.com/orchestrix/orchestrix/journal/bolt"
)

// benchEnvelope is a ~200-byte encoded event.
func benchEnvelope(stream string) orchestrix.Envelope {
	return orchestrix.Envelope{
		ID:              orchestrix.NewID(),
		Source:          "/orchestrix/bench",
		Type:            "bench.Deposited",
		Subject:         stream,
		Time:            time.Date(2026, time.November, 25, 12, 0, 0, 0, time.UTC),
		DataContentType: "application/json",
		SchemaVersion:   1,
		Data:            []byte(`{"amount":1111111111111111111111111111111111111111111111111111111111111111111111111111111111111}`),
	}
}

// benchmarkAppend runs appenders goroutines, each appending one event at a
// time to its own stream, with fsync on.
func benchmarkAppend(b *testing.B, appenders int) {
	j, err := bolt.Open(filepath.Join(b.TempDir(), "journal.db"), bolt.Config{})
	if err != nil {
		b.Fatal(err)
	}
	defer j.Close()
	var next atomic.Int64
	ctx := context.Background()
	b.SetParallelism((appenders + 1) / 2)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		stream := fmt.Sprintf("bench-%05d", next.Add(1))
		var version uint64
		for pb.Next() {
			if _, err := j.Append(ctx, stream, journal.Exact(version), []orchestrix.Envelope{benchEnvelope(stream)}); err != nil {
				b.Error(err)
				return
			}
			version++
		}
	})
	b.StopTimer()
	s := j.Stats()
	if s.Commits > 0 {
		b.ReportMetric(float64(s.Events)/float64(s.Commits), "events/commit")
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

func BenchmarkJournal_Append_1Appender(b *testing.B)     { benchmarkAppend(b, 1) }
func BenchmarkJournal_Append_64Appenders(b *testing.B)   { benchmarkAppend(b, 64) }
func BenchmarkJournal_Append_1024Appenders(b *testing.B) { benchmarkAppend(b, 1024) }

// BenchmarkJournal_Append_1024Appenders_NoSync shows the CPU ceiling of the
// group commit path with fsync off (not a durable configuration).
func BenchmarkJournal_Append_1024Appenders_NoSync(b *testing.B) {
	j, err := bolt.Open(filepath.Join(b.TempDir(), "journal.db"), bolt.Config{NoSync: true})
	if err != nil {
		b.Fatal(err)
	}
	defer j.Close()
	var next atomic.Int64
	ctx := context.Background()
	b.SetParallelism(512)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		stream := fmt.Sprintf("bench-%05d", next.Add(1))
		var version uint64
		for pb.Next() {
			if _, err := j.Append(ctx, stream, journal.Exact(version), []orchestrix.Envelope{benchEnvelope(stream)}); err != nil {
				b.Error(err)
				return
			}
			version++
		}
	})
	b.StopTimer()
	s := j.Stats()
	if s.Commits > 0 {
		b.ReportMetric(float64(s.Events)/float64(s.Commits), "events/commit")
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkJournal_Append_1024Appenders_Freelist compares the per-commit
// cost of persisting bbolt's free list (one more page per commit, the
// default since issue 12) with rebuilding it on Open (NoFreelistSync),
// in one run: go test -run XXX -bench Freelist -count 5 alternates them.
// cpu-ns/event is the process's user+system CPU per appended event.
func BenchmarkJournal_Append_1024Appenders_Freelist(b *testing.B) {
	for _, mode := range []struct {
		name           string
		noFreelistSync bool
	}{{"persisted", false}, {"scanned", true}} {
		b.Run(mode.name, func(b *testing.B) {
			defer bolt.SetNoFreelistSync(mode.noFreelistSync)()
			cpu0 := cpuTime()
			benchmarkAppend(b, 1024)
			b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N), "cpu-ns/event")
		})
	}
}
