package main

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5"
	bbolt "go.etcd.io/bbolt"

	"github.com/orchestrix/orchestrix"
	"github.com/orchestrix/orchestrix/journal"
	"github.com/orchestrix/orchestrix/journal/bolt"
	pgjournal "github.com/orchestrix/orchestrix/journal/postgres"
)

// journalConfig holds the flags of the journal subcommand.
type journalConfig struct {
	backend   string
	dsn       string
	dir       string
	duration  time.Duration
	appenders []int
	dataSize  int
	baseline  bool
	jsonOut   bool
	noSync    bool
	profile   profileFlags
	// serverCPU reads the PostgreSQL server's CPU time when the bench
	// started the server itself (nil otherwise).
	serverCPU func() (time.Duration, error)
}

// journalResult is one scenario's outcome; with -json it is printed as one
// JSON object per line.
type journalResult struct {
	Scenario        string  `json:"scenario"`
	Backend         string  `json:"backend"`
	Appenders       int     `json:"appenders"`
	Events          uint64  `json:"events"`
	Seconds         float64 `json:"seconds"`
	EventsPerSec    float64 `json:"events_per_sec"`
	P50us           float64 `json:"p50_us"`
	P99us           float64 `json:"p99_us"`
	MaxUs           float64 `json:"max_us"`
	Commits         uint64  `json:"commits"`
	EventsPerCommit float64 `json:"events_per_commit"`
	EventBytes      int     `json:"event_bytes"`
	Errors          uint64  `json:"errors"`
	// CPU microseconds per event of this process and (when the bench
	// started the server) of the PostgreSQL server, over the scenario's
	// appends; 0 when not measured.
	CPUusPerEvent       float64 `json:"cpu_us_per_event,omitempty"`
	ServerCPUusPerEvent float64 `json:"server_cpu_us_per_event,omitempty"`
}

// openedJournal is a journal under test, how to read its commit counters
// (nil when the backend has none), and how to remove what it stored.
type openedJournal struct {
	j       journal.Journal
	stats   func() (commits, events uint64)
	cleanup func() error
}

// journalBackend opens a fresh, empty journal of one backend; file-based
// backends put it in dir, server-based ones in a namespace named after
// the scenario.
type journalBackend func(ctx context.Context, scenario, dir string) (openedJournal, error)

// backendFor returns the opener of a backend by name. Adding a backend is
// one case here; the scenarios only see journal.Journal.
func backendFor(cfg journalConfig) (journalBackend, error) {
	switch cfg.backend {
	case "bolt":
		return func(_ context.Context, _, dir string) (openedJournal, error) {
			j, err := bolt.Open(filepath.Join(dir, "journal.db"), bolt.Config{NoSync: cfg.noSync})
			if err != nil {
				return openedJournal{}, err
			}
			return openedJournal{j: j, stats: func() (uint64, uint64) {
				s := j.Stats()
				return s.Commits, s.Events
			}}, nil
		}, nil
	case "postgres":
		return func(ctx context.Context, scenario, _ string) (openedJournal, error) {
			schema := fmt.Sprintf("orchestrix_bench_%s_%d", strings.ReplaceAll(scenario, "-", "_"), time.Now().UnixNano())
			j, err := pgjournal.Open(ctx, cfg.dsn, pgjournal.Config{Schema: schema})
			if err != nil {
				return openedJournal{}, err
			}
			return openedJournal{
				j: j,
				stats: func() (uint64, uint64) {
					s := j.Stats()
					return s.Commits, s.Events
				},
				cleanup: func() error { return dropSchema(context.Background(), cfg.dsn, schema) },
			}, nil
		}, nil
	}
	return nil, fmt.Errorf("unknown backend %q (want bolt or postgres)", cfg.backend)
}

// dropSchema removes a benchmark's PostgreSQL schema.
func dropSchema(ctx context.Context, dsn, schema string) error {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, "DROP SCHEMA IF EXISTS "+pgx.Identifier{schema}.Sanitize()+" CASCADE")
	return err
}

func parseJournalFlags(args []string, stderr io.Writer) (journalConfig, error) {
	var cfg journalConfig
	fs := flag.NewFlagSet("journal", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&cfg.backend, "backend", "bolt", "journal backend: bolt or postgres")
	fs.StringVar(&cfg.dsn, "dsn", os.Getenv("ORCHESTRIX_PG_DSN"), "PostgreSQL DSN for -backend=postgres (default: start a throwaway server from the installed binaries; each scenario uses a fresh schema orchestrix_bench_<scenario>_<nanos>, dropped afterwards)")
	fs.StringVar(&cfg.dir, "dir", "", "directory for the database files (default: a new temporary directory, removed afterwards)")
	fs.DurationVar(&cfg.duration, "duration", 5*time.Second, "how long each scenario appends")
	appenders := fs.String("appenders", "1,64,1024", "comma-separated numbers of concurrent appenders, one scenario each")
	fs.IntVar(&cfg.dataSize, "data", 96, "bytes of payload per event (the encoded envelope is about 100 bytes more)")
	fs.BoolVar(&cfg.baseline, "baseline", true, "also run the baseline: one bbolt Update (and fsync) per event")
	fs.BoolVar(&cfg.jsonOut, "json", false, "print one JSON object per scenario and line instead of a table")
	fs.BoolVar(&cfg.noSync, "nosync", false, "open bolt journals with NoSync (diagnosis only: shows the CPU-bound ceiling)")
	cfg.profile.register(fs)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: go run ./bench journal [flags]\n\n"+
			"Each scenario runs N appenders, each appending one event at a time to\n"+
			"its own stream with an exact expected version, fsync on, for -duration.\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	if fs.NArg() > 0 {
		return cfg, fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	for _, s := range strings.Split(*appenders, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n <= 0 {
			return cfg, fmt.Errorf("bad -appenders entry %q", s)
		}
		cfg.appenders = append(cfg.appenders, n)
	}
	if cfg.duration <= 0 {
		return cfg, errors.New("-duration must be positive")
	}
	if cfg.dataSize < 0 {
		return cfg, errors.New("-data must not be negative")
	}
	return cfg, nil
}

func runJournal(args []string, stdout, stderr io.Writer) int {
	cfg, err := parseJournalFlags(args, stderr)
	if code, done := flagsFailed("journal", err, stderr); done {
		return code
	}
	if cfg.backend == "postgres" && cfg.dsn == "" {
		dsn, serverCPU, stop, err := throwawayPG("journal", stderr)
		if err != nil {
			fmt.Fprintln(stderr, "bench journal:", err)
			return 1
		}
		defer stop()
		cfg.dsn, cfg.serverCPU = dsn, serverCPU
	}
	open, err := backendFor(cfg)
	if err != nil {
		fmt.Fprintln(stderr, "bench journal:", err)
		return 2
	}
	root := cfg.dir
	if root == "" {
		root, err = os.MkdirTemp("", "orchestrix-bench-")
		if err != nil {
			fmt.Fprintln(stderr, "bench journal:", err)
			return 1
		}
		defer os.RemoveAll(root)
	}
	stop, err := cfg.profile.start()
	if err != nil {
		fmt.Fprintln(stderr, "bench journal:", err)
		return 1
	}
	defer stop()
	ctx := context.Background()
	template := benchEvent(cfg.dataSize)
	var results []journalResult
	emit := func(r journalResult) {
		results = append(results, r)
		if cfg.jsonOut {
			b, _ := json.Marshal(r)
			fmt.Fprintln(stdout, string(b))
		}
	}
	// The disk is shared with whatever else runs on the machine; a probe
	// before the scenarios says how fast it syncs right now.
	probe, err := fsyncProbe(root, min(cfg.duration, time.Second))
	if err != nil {
		fmt.Fprintln(stderr, "bench journal:", err)
		return 1
	}
	emit(probe)
	for _, n := range cfg.appenders {
		dir, err := os.MkdirTemp(root, fmt.Sprintf("%s-%d-", cfg.backend, n))
		if err != nil {
			fmt.Fprintln(stderr, "bench journal:", err)
			return 1
		}
		r, err := groupCommitScenario(ctx, open, dir, n, cfg.duration, template, cfg.serverCPU)
		if err != nil {
			fmt.Fprintln(stderr, "bench journal:", err)
			return 1
		}
		r.Backend = cfg.backend
		emit(r)
	}
	if cfg.baseline {
		n := slices.Max(cfg.appenders)
		dir, err := os.MkdirTemp(root, "baseline-")
		if err != nil {
			fmt.Fprintln(stderr, "bench journal:", err)
			return 1
		}
		r, err := baselineScenario(dir, n, cfg.duration, template)
		if err != nil {
			fmt.Fprintln(stderr, "bench journal:", err)
			return 1
		}
		emit(r)
	}
	if !cfg.jsonOut {
		printTable(stdout, results)
	}
	return 0
}

// benchEvent returns the event every appender appends (with a fresh id).
func benchEvent(dataSize int) orchestrix.Envelope {
	data := make([]byte, 0, dataSize)
	data = append(data, `{"amount":`...)
	for len(data) < dataSize-1 {
		data = append(data, '1')
	}
	data = append(data, '}')
	return orchestrix.Envelope{
		Source:          "/orchestrix/bench",
		Type:            "bench.Deposited",
		Time:            time.Date(2026, time.November, 25, 12, 0, 0, 0, time.UTC),
		DataContentType: "application/json",
		SchemaVersion:   1,
		Data:            data[:max(dataSize, 0)],
	}
}

func groupCommitScenario(ctx context.Context, open journalBackend, dir string, n int, d time.Duration, template orchestrix.Envelope,
	serverCPU func() (time.Duration, error)) (journalResult, error) {
	name := fmt.Sprintf("group-commit-%d", n)
	oj, err := open(ctx, name, dir)
	if err != nil {
		return journalResult{}, err
	}
	defer func() {
		_ = oj.j.Close()
		if oj.cleanup != nil {
			_ = oj.cleanup()
		}
	}()
	streams := make([]string, n)
	for i := range streams {
		streams[i] = fmt.Sprintf("bench-%05d", i)
	}
	cpu := startCPU(serverCPU)
	load := closedLoop(n, d, func(i int, done uint64, _ *rand.Rand) error {
		ev := template
		ev.ID = orchestrix.NewID()
		ev.Subject = streams[i]
		_, err := oj.j.Append(ctx, streams[i], journal.Exact(done), []orchestrix.Envelope{ev})
		return err
	})
	var used aggResult
	used.Commands = load.done
	cpu.stop(&used)
	if err := load.err("appends"); err != nil {
		return journalResult{}, fmt.Errorf("%d appenders: %w", n, err)
	}
	r := summarize(name, n, load)
	r.CPUusPerEvent, r.ServerCPUusPerEvent = used.CPUusPerCommand, used.ServerCPUusPerCommand
	if oj.stats != nil {
		commits, committed := oj.stats()
		r.Commits = commits
		if commits > 0 {
			r.EventsPerCommit = float64(committed) / float64(commits)
		}
	}
	r.EventBytes = encodedSize(template)
	return r, nil
}

// baselineScenario is "the usual design": every append is its own bbolt
// read-write transaction with its own fsync, keyed by stream and version.
func baselineScenario(dir string, n int, d time.Duration, template orchestrix.Envelope) (journalResult, error) {
	db, err := bbolt.Open(filepath.Join(dir, "baseline.db"), 0o600, &bbolt.Options{Timeout: time.Second})
	if err != nil {
		return journalResult{}, err
	}
	defer db.Close()
	bucket := []byte("events")
	if err := db.Update(func(tx *bbolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists(bucket)
		return err
	}); err != nil {
		return journalResult{}, err
	}
	streams := make([]string, n)
	for i := range streams {
		streams[i] = fmt.Sprintf("bench-%05d", i)
	}
	load := closedLoop(n, d, func(i int, done uint64, _ *rand.Rand) error {
		ev := template
		ev.ID = orchestrix.NewID()
		ev.Subject = streams[i]
		ev.Sequence = done + 1
		body, err := ev.MarshalBinary()
		if err != nil {
			return err
		}
		key := binary.BigEndian.AppendUint64([]byte(streams[i]+"\x00"), done+1)
		return db.Update(func(tx *bbolt.Tx) error { return tx.Bucket(bucket).Put(key, body) })
	})
	if err := load.err("appends"); err != nil {
		return journalResult{}, fmt.Errorf("baseline: %w", err)
	}
	r := summarize(fmt.Sprintf("baseline-update-per-event-%d", n), n, load)
	r.Backend = "bbolt"
	r.Commits = load.done // one transaction per event
	r.EventsPerCommit = 1
	r.EventBytes = encodedSize(template)
	return r, nil
}

// fsyncProbe appends 4 KiB blocks to a file, each followed by an fsync,
// for d: the disk's sync rate, the ceiling of any one-fsync-per-event
// design.
func fsyncProbe(dir string, d time.Duration) (journalResult, error) {
	f, err := os.CreateTemp(dir, "fsync-probe-")
	if err != nil {
		return journalResult{}, err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	block := make([]byte, 4096)
	load := closedLoop(1, d, func(int, uint64, *rand.Rand) error {
		if _, err := f.Write(block); err != nil {
			return err
		}
		return f.Sync()
	})
	if err := load.err("writes"); err != nil {
		return journalResult{}, fmt.Errorf("fsync probe: %w", err)
	}
	r := summarize("fsync-probe-4k", 1, load)
	r.Backend = "file"
	r.Commits = load.done
	r.EventsPerCommit = 1
	r.EventBytes = len(block)
	return r, nil
}

func encodedSize(e orchestrix.Envelope) int {
	e.ID = orchestrix.NewID()
	b, err := e.MarshalBinary()
	if err != nil {
		return 0
	}
	return len(b)
}

func summarize(name string, n int, load loadResult) journalResult {
	r := journalResult{
		Scenario:     name,
		Appenders:    n,
		Events:       load.done,
		Seconds:      load.elapsed.Seconds(),
		EventsPerSec: load.perSec(),
		P50us:        load.percentileUs(0.50),
		P99us:        load.percentileUs(0.99),
		MaxUs:        load.percentileUs(1),
	}
	return r
}

func printTable(w io.Writer, results []journalResult) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "scenario\tbackend\tappenders\tevents/s\tp50 µs\tp99 µs\tmax µs\tevents/commit\tevent bytes\tCPU µs/event\tserver CPU µs/event\t\n")
	for _, r := range results {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%.0f\t%.0f\t%.0f\t%.0f\t%.1f\t%d\t%.1f\t%.1f\t\n",
			r.Scenario, r.Backend, r.Appenders, r.EventsPerSec, r.P50us, r.P99us, r.MaxUs, r.EventsPerCommit, r.EventBytes,
			r.CPUusPerEvent, r.ServerCPUusPerEvent)
	}
	tw.Flush()
	fmt.Fprintf(w, "\nGOMAXPROCS=%d, %s %s/%s\n", runtime.GOMAXPROCS(0), runtime.Version(), runtime.GOOS, runtime.GOARCH)
}
