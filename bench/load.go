package main

import (
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/orchestrix/orchestrix/internal/pgtest"
)

// loadResult is what one closed-loop run measured.
type loadResult struct {
	done, failed uint64
	latencies    []time.Duration // of the successful calls, sorted
	elapsed      time.Duration
	firstErr     error
}

// closedLoop runs n workers for d. Each worker calls step again as soon as
// the previous call returned, passing its index, the number of its calls
// that succeeded so far and a random source of its own, and records the
// latency of every successful call. A worker gives up after 100 failures.
func closedLoop(n int, d time.Duration, step func(worker int, done uint64, rng *rand.Rand) error) loadResult {
	var (
		wg  sync.WaitGroup
		mu  sync.Mutex
		res loadResult
	)
	start := make(chan struct{})
	var deadline time.Time
	for i := range n {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(i), 42))
			lat := make([]time.Duration, 0, 1024)
			var done, failed uint64
			var firstErr error
			<-start
			for {
				t0 := time.Now()
				if !t0.Before(deadline) {
					break
				}
				if err := step(i, done, rng); err != nil {
					if firstErr == nil {
						firstErr = err
					}
					if failed++; failed > 100 {
						break
					}
					continue
				}
				lat = append(lat, time.Since(t0))
				done++
			}
			mu.Lock()
			res.latencies = append(res.latencies, lat...)
			res.done += done
			res.failed += failed
			if res.firstErr == nil {
				res.firstErr = firstErr
			}
			mu.Unlock()
		})
	}
	t0 := time.Now()
	deadline = t0.Add(d)
	close(start)
	wg.Wait()
	res.elapsed = time.Since(t0)
	slices.Sort(res.latencies)
	return res
}

// err reports the failed calls, or nil when there were none.
func (r loadResult) err(what string) error {
	if r.failed == 0 {
		return nil
	}
	return fmt.Errorf("%d %s failed, first: %w", r.failed, what, r.firstErr)
}

// percentileUs is the latency at quantile p in microseconds (0 without
// latencies).
func (r loadResult) percentileUs(p float64) float64 {
	if len(r.latencies) == 0 {
		return 0
	}
	i := min(int(p*float64(len(r.latencies))), len(r.latencies)-1)
	return float64(r.latencies[i].Nanoseconds()) / 1e3
}

// perSec is the rate of successful calls.
func (r loadResult) perSec() float64 {
	if r.elapsed <= 0 {
		return 0
	}
	return float64(r.done) / r.elapsed.Seconds()
}

// throwawayPG starts a throwaway PostgreSQL server (fsync and synchronous
// commit on) for subcommand when no DSN was given, as the tests do, and
// says so on stderr. It returns the server's DSN, a reader of its CPU
// time and the function that stops it.
func throwawayPG(subcommand string, stderr io.Writer) (dsn string, serverCPU func() (time.Duration, error), stop func(), err error) {
	srv, err := pgtest.StartServer()
	if err != nil {
		return "", nil, nil, fmt.Errorf("no -dsn or ORCHESTRIX_PG_DSN, and starting a throwaway PostgreSQL failed: %w", err)
	}
	fmt.Fprintf(stderr, "bench %s: started a throwaway PostgreSQL server (fsync and synchronous commit on), stopped at exit\n", subcommand)
	return srv.DSN(), srv.CPUTime, func() { srv.Stop() }, nil
}
