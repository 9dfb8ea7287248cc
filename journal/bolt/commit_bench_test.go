package bolt_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/orchestrix/orchestrix"
	"github.com/orchestrix/orchestrix/journal"
	"github.com/orchestrix/orchestrix/journal/bolt"
)

// BenchmarkJournal_CommitTime_10kStreams measures what the index
// checkpoint does to the latency of the commits that carry it, without the
// disk (NoSync) and without the scheduling noise of a thousand appenders:
// each iteration appends one event to each of 1,000 streams drawn at
// random from 10,000 (AppendAsync, all queued before the first commit can
// finish, which makes one or two commits) and waits for all of them. It
// reports the iteration's wall time at p50, p99 and max; with the default
// IndexEvery (65,536) one iteration in ~65 carries a checkpoint. Run with
// -benchtime 700x or more so that p99 covers several.
func BenchmarkJournal_CommitTime_10kStreams(b *testing.B) {
	const streams, perRound = 10_000, 1_000
	j, err := bolt.Open(filepath.Join(b.TempDir(), "journal.db"), bolt.Config{NoSync: true})
	if err != nil {
		b.Fatal(err)
	}
	defer j.Close()
	ctx := context.Background()
	names := make([]string, streams)
	for i := range names {
		names[i] = fmt.Sprintf("agg-%05d", i)
	}
	heads := make([]uint64, streams)
	perm := make([]int, streams)
	for i := range perm {
		perm[i] = i
	}
	rng := rand.New(rand.NewPCG(1, 2))
	times := make([]time.Duration, 0, b.N)
	var wg sync.WaitGroup
	var failed sync.Once
	b.ResetTimer()
	for range b.N {
		for k := range perRound {
			r := k + rng.IntN(streams-k)
			perm[k], perm[r] = perm[r], perm[k]
		}
		start := time.Now()
		wg.Add(perRound)
		for _, s := range perm[:perRound] {
			ev := benchEnvelope(names[s])
			err := j.AppendAsync(ctx, names[s], journal.Exact(heads[s]), []orchestrix.Envelope{ev}, func(_ journal.AppendResult, err error) {
				if err != nil {
					failed.Do(func() { b.Error(err) })
				}
				wg.Done()
			})
			if err != nil {
				b.Fatal(err)
			}
			heads[s]++
		}
		wg.Wait()
		times = append(times, time.Since(start))
	}
	b.StopTimer()
	slices.Sort(times)
	at := func(q float64) float64 { return float64(times[int(q*float64(len(times)-1))]) / 1e6 }
	b.ReportMetric(at(0.5), "p50-ms")
	b.ReportMetric(at(0.99), "p99-ms")
	b.ReportMetric(at(1), "max-ms")
	b.ReportMetric(float64(j.Stats().Checkpoints), "checkpoints")
}
