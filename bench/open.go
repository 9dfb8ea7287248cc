package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/orchestrix/orchestrix"
	"github.com/orchestrix/orchestrix/internal/boltsafe"
	"github.com/orchestrix/orchestrix/journal"
	"github.com/orchestrix/orchestrix/journal/bolt"
)

// The open subcommand measures how long opening a bbolt journal takes as
// the file grows (issue 12: it must not grow with the journal's size).
// It builds a journal of -events events spread over -streams streams
// (or reuses the file given with -file when it already holds them), then
// opens it -runs times and reports, per run: the whole bolt.Open, the
// bounds-checked walk alone (internal/boltsafe.Verify), the first read of
// one stream after the open, and the heap the open Journal keeps. With
// -dropcaches it drops the kernel's page cache before each run (root
// only; the whole machine's cache goes, which slows everything else
// running for a moment).
func init() {
	subcommands["open"] = subcommand{
		summary: "bbolt journal open time and heap after open at a given size (builds the file once, -file reuses it)",
		run:     runOpen,
	}
}

type openConfig struct {
	file       string
	events     int
	streams    int
	batch      int
	dataSize   int
	runs       int
	dropCaches bool
	jsonOut    bool
	profile    profileFlags

	// -touch: after the opens, append to every stream (see touchStreams).
	touch       bool
	cachedHeads int
}

// openResult is one measured open (one JSON object per line with -json).
type openResult struct {
	Scenario  string  `json:"scenario"`
	Events    uint64  `json:"events"`
	Streams   int     `json:"streams"`
	FileBytes int64   `json:"file_bytes"`
	Cold      bool    `json:"cold_cache"`
	Run       int     `json:"run"`
	Ms        float64 `json:"ms"`
	CPUMs     float64 `json:"cpu_ms"`
	HeapBytes int64   `json:"heap_bytes,omitempty"`
	// FreePages and FreelistBytes describe bbolt's free list after the
	// open: what a commit writes besides its own pages.
	FreePages     int     `json:"free_pages,omitempty"`
	FreelistBytes int     `json:"freelist_bytes,omitempty"`
	Seconds       float64 `json:"seconds,omitempty"`
	// -touch passes.
	AppendsPerSec float64 `json:"appends_per_sec,omitempty"`
	CachedHeads   int     `json:"cached_heads,omitempty"`
	CachedStreams int     `json:"cached_streams,omitempty"`
}

func parseOpenFlags(args []string, stderr io.Writer) (openConfig, error) {
	var cfg openConfig
	fs := flag.NewFlagSet("open", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&cfg.file, "file", "", "journal file to measure; built with -events and -streams when it does not exist, kept afterwards (default: a temporary file, removed afterwards)")
	fs.IntVar(&cfg.events, "events", 1_000_000, "events in a newly built journal")
	fs.IntVar(&cfg.streams, "streams", 1000, "streams in a newly built journal (events are spread evenly over them)")
	fs.IntVar(&cfg.batch, "batch", 1000, "events per append while building (at most the events of one stream)")
	fs.IntVar(&cfg.dataSize, "data", 96, "bytes of payload per event")
	fs.IntVar(&cfg.runs, "runs", 3, "opens measured")
	fs.BoolVar(&cfg.dropCaches, "dropcaches", false, "drop the page cache (sync; echo 3 > /proc/sys/vm/drop_caches, root only) before each measured open")
	fs.BoolVar(&cfg.jsonOut, "json", false, "print one JSON object per line instead of a table")
	fs.BoolVar(&cfg.touch, "touch", false, "after the opens, append one event to every stream and then 200,000 to 10,000 hot streams (NoSync, 256 appenders), reporting appends/s and the heap the journal keeps (bounded by -cachedheads)")
	fs.IntVar(&cfg.cachedHeads, "cachedheads", 0, "bolt.Config.CachedHeads for -touch (0: the default)")
	cfg.profile.register(fs)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: go run ./bench open [flags]\n\n"+
			"Builds a bbolt journal once (NoSync, -batch events per append) and measures\n"+
			"how long bolt.Open takes on it, the walk alone, the first read after the\n"+
			"open, and the heap the open journal keeps.\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	switch {
	case fs.NArg() > 0:
		return cfg, fmt.Errorf("unexpected arguments: %v", fs.Args())
	case cfg.events <= 0:
		return cfg, errors.New("-events must be positive")
	case cfg.streams <= 0 || cfg.streams > cfg.events:
		return cfg, errors.New("-streams must be from 1 to -events")
	case cfg.batch <= 0:
		return cfg, errors.New("-batch must be positive")
	case cfg.dataSize < 0:
		return cfg, errors.New("-data must not be negative")
	case cfg.runs <= 0:
		return cfg, errors.New("-runs must be positive")
	case cfg.cachedHeads < 0:
		return cfg, errors.New("-cachedheads must not be negative")
	}
	return cfg, nil
}

func runOpen(args []string, stdout, stderr io.Writer) int {
	cfg, err := parseOpenFlags(args, stderr)
	if code, done := flagsFailed("open", err, stderr); done {
		return code
	}
	stop, err := cfg.profile.start()
	if err != nil {
		fmt.Fprintln(stderr, "bench open:", err)
		return 1
	}
	defer stop()
	if err := benchOpen(cfg, stdout, stderr); err != nil {
		fmt.Fprintln(stderr, "bench open:", err)
		return 1
	}
	return 0
}

func benchOpen(cfg openConfig, stdout, stderr io.Writer) error {
	path := cfg.file
	if path == "" {
		dir, err := os.MkdirTemp("", "orchestrix-bench-open-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		path = filepath.Join(dir, "journal.db")
	}
	var results []openResult
	emit := func(r openResult) {
		results = append(results, r)
		if cfg.jsonOut {
			b, _ := json.Marshal(r)
			fmt.Fprintln(stdout, string(b))
		}
	}
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		start := time.Now()
		if err := buildJournal(path, cfg); err != nil {
			return fmt.Errorf("build %s: %w", path, err)
		}
		emit(openResult{Scenario: "build", Events: uint64(cfg.events), Streams: cfg.streams, Seconds: time.Since(start).Seconds()})
	} else if err != nil {
		return err
	}
	st, err := os.Stat(path)
	if err != nil {
		return err
	}
	ctx := context.Background()
	for run := 1; run <= cfg.runs; run++ {
		base := openResult{FileBytes: st.Size(), Cold: cfg.dropCaches, Run: run}
		if err := maybeDropCaches(cfg.dropCaches); err != nil {
			return err
		}
		// The walk alone, as Open runs it first.
		start, cpu := time.Now(), cpuTime()
		if _, err := boltsafe.Verify(path); err != nil {
			return err
		}
		r := base
		r.Scenario, r.Ms, r.CPUMs = "walk", ms(time.Since(start)), ms(cpuTime()-cpu)
		emit(r)

		if err := maybeDropCaches(cfg.dropCaches); err != nil {
			return err
		}
		heap0 := liveHeap()
		start, cpu = time.Now(), cpuTime()
		j, err := bolt.Open(path, bolt.Config{})
		if err != nil {
			return err
		}
		opened, openCPU := time.Since(start), cpuTime()-cpu
		heap := liveHeap() - heap0
		dbStats := j.DB().Stats()
		last, err := j.LastPosition(ctx)
		if err != nil {
			_ = j.Close()
			return err
		}
		var stream string
		streams := 0
		for info, err := range j.Streams(ctx) {
			if err != nil {
				_ = j.Close()
				return err
			}
			if streams == 0 {
				stream = info.Name
			}
			streams++
		}
		// The first read after the open: one stream's first events.
		start = time.Now()
		for _, err := range j.Read(ctx, stream, 1, ^uint64(0), 100) {
			if err != nil {
				_ = j.Close()
				return err
			}
		}
		firstRead := time.Since(start)
		if err := j.Close(); err != nil {
			return err
		}
		r = base
		r.Scenario, r.Events, r.Streams, r.Ms, r.CPUMs, r.HeapBytes = "open", last, streams, ms(opened), ms(openCPU), heap
		r.FreePages, r.FreelistBytes = dbStats.FreePageN+dbStats.PendingPageN, dbStats.FreelistInuse
		emit(r)
		r = base
		r.Scenario, r.Events, r.Streams, r.Ms = "first-read-after-open", last, streams, ms(firstRead)
		emit(r)
	}
	if cfg.touch {
		if err := touchStreams(path, cfg, emit); err != nil {
			return err
		}
	}
	if !cfg.jsonOut {
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "scenario\trun\tcold\tevents\tstreams\tfile MiB\tms\tcpu ms\theap KiB\t")
		for _, r := range results {
			fmt.Fprintf(tw, "%s\t%d\t%v\t%d\t%d\t%.0f\t%.2f\t%.1f\t%.0f\t\n", r.Scenario, r.Run, r.Cold, r.Events, r.Streams,
				float64(r.FileBytes)/(1<<20), r.Ms+r.Seconds*1000, r.CPUMs, float64(r.HeapBytes)/(1<<10))
		}
		_ = tw.Flush()
	}
	return nil
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// liveHeap returns the bytes of live heap objects after a full collection.
func liveHeap() int64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapAlloc)
}

// maybeDropCaches empties the kernel's page cache when asked (root only).
func maybeDropCaches(drop bool) error {
	if !drop {
		return nil
	}
	if err := exec.Command("sync").Run(); err != nil {
		return fmt.Errorf("-dropcaches: sync: %w", err)
	}
	if err := os.WriteFile("/proc/sys/vm/drop_caches", []byte("3\n"), 0); err != nil {
		return fmt.Errorf("-dropcaches: %w (needs root and a writable /proc/sys)", err)
	}
	return nil
}

// buildJournal appends cfg.events events to cfg.streams streams, batch by
// batch, on a NoSync journal, from a few goroutines that each own a share
// of the streams.
func buildJournal(path string, cfg openConfig) error {
	j, err := bolt.Open(path, bolt.Config{NoSync: true})
	if err != nil {
		return err
	}
	// Few appenders when each appends large batches; many when streams
	// hold a few events each, so that group commits stay large.
	workers := 4
	if cfg.events/cfg.streams < 64 {
		workers = 256
	}
	template := benchEvent(cfg.dataSize)
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	perStream := cfg.events / cfg.streams
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			batch := make([]orchestrix.Envelope, 0, cfg.batch)
			for s := w; s < cfg.streams; s += workers {
				n := perStream
				if s < cfg.events%cfg.streams {
					n++
				}
				name := fmt.Sprintf("open-%08d", s)
				for done := 0; done < n; {
					batch = batch[:0]
					for range min(cfg.batch, n-done) {
						ev := template
						ev.ID = orchestrix.NewID()
						ev.Subject = name
						batch = append(batch, ev)
					}
					if _, err := j.Append(ctx, name, journal.Exact(uint64(done)), batch); err != nil {
						errs <- err
						return
					}
					done += len(batch)
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		_ = j.Close()
		return err
	}
	return j.Close()
}

// touchStreams measures appends when the streams outnumber the cached
// heads (issue 12): one event to every stream of the file (in name order,
// so nearly every append misses the cache), then 200,000 events to the
// first 10,000 streams (hot: cached after their first miss). Each pass
// reports appends/s, the CPU per append and the heap the open journal
// keeps afterwards.
func touchStreams(path string, cfg openConfig, emit func(openResult)) error {
	var names []string
	var heads []uint64
	results, err := touchPasses(path, cfg, &names, &heads)
	if err != nil {
		return err
	}
	// What the journal kept: the heap after each pass less the heap once
	// it is closed and unreachable (the names and heads are still live).
	base := liveHeap()
	for _, r := range results {
		r.HeapBytes -= base
		emit(r)
	}
	runtime.KeepAlive(names)
	runtime.KeepAlive(heads)
	return nil
}

// touchPasses runs the passes of touchStreams; each result's HeapBytes is
// the whole live heap after its pass.
func touchPasses(path string, cfg openConfig, namesOut *[]string, headsOut *[]uint64) ([]openResult, error) {
	ctx := context.Background()
	j, err := bolt.Open(path, bolt.Config{NoSync: true, CachedHeads: cfg.cachedHeads})
	if err != nil {
		return nil, err
	}
	defer j.Close()
	var names []string
	var heads []uint64
	for info, err := range j.Streams(ctx) {
		if err != nil {
			return nil, err
		}
		names, heads = append(names, info.Name), append(heads, info.Head)
	}
	*namesOut, *headsOut = names, heads
	template := benchEvent(cfg.dataSize)
	const workers = 256
	var results []openResult
	// pass appends rounds events to each stream below limit; worker w
	// appends to the streams s with s % workers == w, one at a time.
	pass := func(scenario string, limit, rounds int) error {
		var mu sync.Mutex
		var firstErr error
		start, cpu := time.Now(), cpuTime()
		var wg sync.WaitGroup
		for w := range workers {
			wg.Go(func() {
				for range rounds {
					for s := w; s < limit; s += workers {
						ev := template
						ev.ID = orchestrix.NewID()
						if _, err := j.Append(ctx, names[s], journal.Exact(heads[s]), []orchestrix.Envelope{ev}); err != nil {
							mu.Lock()
							firstErr = cmp.Or(firstErr, err)
							mu.Unlock()
							return
						}
						heads[s]++
					}
				}
			})
		}
		wg.Wait()
		if firstErr != nil {
			return firstErr
		}
		d, c := time.Since(start), cpuTime()-cpu
		count := limit * rounds
		results = append(results, openResult{Scenario: scenario, Events: uint64(count), Streams: limit, Ms: ms(d), CPUMs: ms(c),
			HeapBytes: liveHeap(), AppendsPerSec: float64(count) / d.Seconds(), CachedHeads: cfg.cachedHeads,
			CachedStreams: j.Stats().CachedStreams})
		return nil
	}
	if err := pass("touch-every-stream", len(names), 1); err != nil {
		return nil, err
	}
	hot := min(len(names), 10_000)
	if err := pass("hot-streams", hot, 200_000/hot); err != nil {
		return nil, err
	}
	return results, j.Close()
}
