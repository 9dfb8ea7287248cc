package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"text/tabwriter"
	"time"

	bbolt "go.etcd.io/bbolt"

	"github.com/orchestrix/orchestrix"
	"github.com/orchestrix/orchestrix/actor"
	"github.com/orchestrix/orchestrix/aggregate"
	"github.com/orchestrix/orchestrix/journal"
	"github.com/orchestrix/orchestrix/journal/bolt"
	"github.com/orchestrix/orchestrix/snapshot"
	snapbolt "github.com/orchestrix/orchestrix/snapshot/bolt"
	snappg "github.com/orchestrix/orchestrix/snapshot/postgres"
)

// The aggregates subcommand measures the actor runtime on the bbolt
// journal (or, with -backend=postgres, journal/postgres and
// snapshot/postgres; fsync on either way): many aggregates and one hot
// aggregate under 1024 concurrent senders, against baselines of a mutex
// per aggregate and one bbolt Update (or one PostgreSQL INSERT
// transaction) per command, and on bbolt also a mutex per aggregate with
// bbolt's own group commit (db.Batch), each with the ratio of the
// many-aggregates figure to it; recovery replay rate against a hand-written
// replay loop over the same store; activation time from a snapshot; and
// heap bytes per active idle aggregate.
func init() {
	subcommands["aggregates"] = subcommand{
		summary: "actor runtime: commands/s and latency on bbolt or PostgreSQL against hand-written baselines, recovery rate, memory per aggregate",
		run:     runAggregates,
	}
}

type aggConfig struct {
	backend    string
	dsn        string
	dir        string
	duration   time.Duration
	aggregates int
	senders    int
	replay     int
	idle       int
	only       string
	jsonOut    bool
	noSync     bool
	// warm sends one command to every aggregate before the measured part
	// of the throughput scenarios, so that their per-command figures
	// leave out activation (spawn and recovery of each aggregate).
	warm    bool
	profile profileFlags
	// serverCPU reads the PostgreSQL server's CPU time when the benchmark
	// started the server itself (nil otherwise, and for bolt).
	serverCPU func() (time.Duration, error)
}

// aggResult is one scenario's outcome (one JSON object per line with -json).
type aggResult struct {
	Scenario       string  `json:"scenario"`
	Backend        string  `json:"backend"`
	Aggregates     int     `json:"aggregates,omitempty"`
	Senders        int     `json:"senders,omitempty"`
	Commands       uint64  `json:"commands,omitempty"`
	Seconds        float64 `json:"seconds,omitempty"`
	CommandsPerSec float64 `json:"commands_per_sec"`
	P50us          float64 `json:"p50_us"`
	P99us          float64 `json:"p99_us"`
	EventsPerSec   float64 `json:"events_per_sec,omitempty"`
	ActivationUs   float64 `json:"activation_us,omitempty"`
	BytesPerAgg    float64 `json:"bytes_per_aggregate,omitempty"`
	// EventsPerCommit is the journal's mean group-commit size.
	EventsPerCommit float64 `json:"events_per_commit,omitempty"`
	// WriterMsPerCommit is, on bbolt, where the journal writer's time
	// went per commit during the run (bolt.Stats): build, commit,
	// answer, settle.
	WriterMsPerCommit map[string]float64 `json:"writer_ms_per_commit,omitempty"`
	Errors            uint64             `json:"errors,omitempty"`
	// CPUusPerCommand is this process's CPU time (user + system) per
	// command; on PostgreSQL the server's CPU is not included.
	CPUusPerCommand float64 `json:"cpu_us_per_command,omitempty"`
	// ServerCPUusPerCommand is the PostgreSQL server's CPU time per
	// command, when the benchmark started the server itself.
	ServerCPUusPerCommand float64 `json:"server_cpu_us_per_command,omitempty"`
	// CPUusPerEvent is this process's CPU time per replayed event in the
	// recovery scenarios (median of the rounds): unlike events/s it does
	// not move with the other load on the machine, and it adds up the
	// work of every core the replay used.
	CPUusPerEvent float64 `json:"cpu_us_per_event,omitempty"`
	// ServerCPUusPerEvent is the PostgreSQL server's CPU time per
	// replayed event (median of the rounds), when the benchmark started
	// the server itself.
	ServerCPUusPerEvent float64 `json:"server_cpu_us_per_event,omitempty"`
	// AllocsPerCommand and AllocBytesPerCommand are this process's heap
	// allocations (objects and bytes, runtime.MemStats) per command.
	AllocsPerCommand     float64 `json:"allocs_per_command,omitempty"`
	AllocBytesPerCommand float64 `json:"alloc_bytes_per_command,omitempty"`
	// Ratio is, on the ratio line, the many-aggregates scenario's
	// commands/s divided by the baseline's of the same run.
	Ratio float64 `json:"ratio,omitempty"`
}

// ---- the benchmark aggregate: an account with ~200-byte events ----

type benchAccount struct {
	Balance int64
}

type benchDeposit struct{ Amount int64 }

type benchDeposited struct {
	Amount int64  `json:"amount"`
	Memo   string `json:"memo"`
}

// memo pads each event's JSON payload to about 200 bytes.
var memo = strings.Repeat("m", 170)

var benchAccounts = aggregate.Definition[benchAccount, benchDeposit, benchDeposited]{
	Kind:    "acct",
	Initial: func(string) benchAccount { return benchAccount{} },
	Decide: func(_ benchAccount, c benchDeposit) ([]benchDeposited, error) {
		return []benchDeposited{{Amount: c.Amount, Memo: memo}}, nil
	},
	Evolve: func(s benchAccount, e benchDeposited) benchAccount {
		s.Balance += e.Amount
		return s
	},
	Events:        []aggregate.EventType{aggregate.Event[benchDeposited]("bench.acct.deposited")},
	SnapshotEvery: -1, // measured separately
}

func parseAggFlags(args []string, stderr io.Writer) (aggConfig, error) {
	var cfg aggConfig
	fs := flag.NewFlagSet("aggregates", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&cfg.backend, "backend", "bolt", "journal and snapshot backend: bolt or postgres")
	fs.StringVar(&cfg.dsn, "dsn", os.Getenv("ORCHESTRIX_PG_DSN"), "PostgreSQL DSN for -backend=postgres (default: start a throwaway server from the installed binaries; each scenario uses fresh schemas orchestrix_bench_<scenario>_<nanos>, dropped afterwards)")
	fs.StringVar(&cfg.dir, "dir", "", "directory for database files (default: a temporary directory, removed afterwards)")
	fs.DurationVar(&cfg.duration, "duration", 5*time.Second, "how long each throughput scenario runs")
	fs.IntVar(&cfg.aggregates, "aggregates", 10000, "aggregates in the many-aggregates and baseline scenarios")
	fs.IntVar(&cfg.senders, "senders", 1024, "concurrent senders")
	fs.IntVar(&cfg.replay, "replay-events", 1000000, "events in the stream of the recovery scenario")
	fs.IntVar(&cfg.idle, "idle", 100000, "aggregates activated in the memory scenario")
	fs.StringVar(&cfg.only, "only", "many,hot,baseline,recovery,memory", "comma-separated scenarios to run")
	fs.BoolVar(&cfg.jsonOut, "json", false, "print one JSON object per scenario and line instead of a table")
	fs.BoolVar(&cfg.noSync, "nosync", false, "open the journal with NoSync (diagnosis only: the CPU-bound ceiling)")
	fs.BoolVar(&cfg.warm, "warm", false, "activate every aggregate (one command each) before measuring the runtime throughput scenarios, so that CPU and allocations per command leave out activation")
	cfg.profile.register(fs)
	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	if fs.NArg() > 0 {
		return cfg, fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	if cfg.duration <= 0 || cfg.aggregates <= 0 || cfg.senders <= 0 || cfg.replay <= 0 || cfg.idle <= 0 {
		return cfg, errors.New("-duration, -aggregates, -senders, -replay-events and -idle must be positive")
	}
	if cfg.backend != "bolt" && cfg.backend != "postgres" {
		return cfg, fmt.Errorf("unknown backend %q (want bolt or postgres)", cfg.backend)
	}
	if cfg.noSync && cfg.backend != "bolt" {
		return cfg, errors.New("-nosync applies to -backend=bolt only")
	}
	return cfg, nil
}

func runAggregates(args []string, stdout, stderr io.Writer) int {
	cfg, err := parseAggFlags(args, stderr)
	if code, done := flagsFailed("aggregates", err, stderr); done {
		return code
	}
	if cfg.backend == "postgres" && cfg.dsn == "" {
		dsn, serverCPU, stop, err := throwawayPG("aggregates", stderr)
		if err != nil {
			fmt.Fprintln(stderr, "bench aggregates:", err)
			return 1
		}
		defer stop()
		cfg.dsn, cfg.serverCPU = dsn, serverCPU
	}
	root := cfg.dir
	if root == "" {
		root, err = os.MkdirTemp("", "orchestrix-bench-agg-")
		if err != nil {
			fmt.Fprintln(stderr, "bench aggregates:", err)
			return 1
		}
		defer os.RemoveAll(root)
	}
	stop, err := cfg.profile.start()
	if err != nil {
		fmt.Fprintln(stderr, "bench aggregates:", err)
		return 1
	}
	defer stop()
	want := map[string]bool{}
	for _, s := range strings.Split(cfg.only, ",") {
		want[strings.TrimSpace(s)] = true
	}
	var results []aggResult
	emit := func(r aggResult) {
		r.Backend = cfg.backend
		results = append(results, r)
		if cfg.jsonOut {
			b, _ := json.Marshal(r)
			fmt.Fprintln(stdout, string(b))
		}
	}
	type scenario struct {
		name string
		run  func(dir string) ([]aggResult, error)
	}
	stores := aggStores{cfg: cfg}
	baseline := func(dir string) ([]aggResult, error) {
		if cfg.backend == "postgres" {
			r, err := pgInsertBaseline(cfg.dsn, cfg.serverCPU, cfg.aggregates, cfg.senders, cfg.duration)
			return []aggResult{r}, err
		}
		r, err := mutexBaseline(dir, cfg.aggregates, cfg.senders, cfg.duration, false)
		if err != nil {
			return nil, err
		}
		b, err := mutexBaseline(dir, cfg.aggregates, cfg.senders, cfg.duration, true)
		return []aggResult{r, b}, err
	}
	scenarios := []scenario{
		{"many", func(dir string) ([]aggResult, error) {
			r, err := runtimeThroughput(stores, dir, "many-aggregates", cfg.aggregates, cfg.senders, cfg.duration)
			return []aggResult{r}, err
		}},
		{"hot", func(dir string) ([]aggResult, error) {
			r, err := runtimeThroughput(stores, dir, "hot-aggregate", 1, cfg.senders, cfg.duration)
			return []aggResult{r}, err
		}},
		{"baseline", baseline},
		{"recovery", func(dir string) ([]aggResult, error) { return recoveryScenario(stores, dir, cfg.replay) }},
		{"memory", func(dir string) ([]aggResult, error) {
			r, err := memoryScenario(stores, dir, cfg.idle)
			return []aggResult{r}, err
		}},
	}
	for _, sc := range scenarios {
		if !want[sc.name] {
			continue
		}
		dir, err := os.MkdirTemp(root, sc.name+"-")
		if err != nil {
			fmt.Fprintln(stderr, "bench aggregates:", err)
			return 1
		}
		rs, err := sc.run(dir)
		if err != nil {
			fmt.Fprintf(stderr, "bench aggregates: %s: %v\n", sc.name, err)
			return 1
		}
		for _, r := range rs {
			emit(r)
		}
		os.RemoveAll(dir)
	}
	for _, r := range manyToBaselines(results) {
		emit(r)
	}
	if !cfg.jsonOut {
		printAggTable(stdout, results)
	}
	return 0
}

// latencyResult is the aggregate scenario result of a closed-loop run.
func latencyResult(name string, aggs, senders int, load loadResult) aggResult {
	return aggResult{
		Scenario: name, Aggregates: aggs, Senders: senders, Commands: load.done, Seconds: load.elapsed.Seconds(),
		CommandsPerSec: load.perSec(), P50us: load.percentileUs(0.5), P99us: load.percentileUs(0.99), Errors: load.failed,
	}
}

// manyToBaselines are the lines that divide the many-aggregates
// scenario's commands/s by each baseline's, when both ran.
func manyToBaselines(results []aggResult) []aggResult {
	var many *aggResult
	var bases []*aggResult
	for i := range results {
		switch {
		case strings.HasPrefix(results[i].Scenario, "many-aggregates-"):
			many = &results[i]
		case strings.HasPrefix(results[i].Scenario, "baseline-") && results[i].CommandsPerSec > 0:
			bases = append(bases, &results[i])
		}
	}
	if many == nil {
		return nil
	}
	var ratios []aggResult
	for _, base := range bases {
		ratios = append(ratios, aggResult{
			Scenario: "ratio-" + many.Scenario + "-to-" + base.Scenario,
			Ratio:    many.CommandsPerSec / base.CommandsPerSec,
		})
	}
	return ratios
}

// aggStores opens the journal and snapshot store of the configured
// backend: files in a scenario's directory for bolt, fresh schemas named
// after the scenario for postgres (dropped by the returned close).
type aggStores struct{ cfg aggConfig }

// openedStores is a journal (and, when asked for, a snapshot store) under
// test; close closes both and removes what they stored on a server.
type openedStores struct {
	j     journal.Journal
	snaps snapshot.Store
	stats func() (commits, events uint64)
	close func() error
}

func (a aggStores) open(ctx context.Context, scenario, dir string, withSnapshots bool) (openedStores, error) {
	open, err := backendFor(journalConfig{backend: a.cfg.backend, dsn: a.cfg.dsn, noSync: a.cfg.noSync})
	if err != nil {
		return openedStores{}, err
	}
	oj, err := open(ctx, scenario, dir)
	if err != nil {
		return openedStores{}, err
	}
	closers := []func() error{oj.j.Close}
	if oj.cleanup != nil {
		closers = append(closers, oj.cleanup)
	}
	out := openedStores{j: oj.j, stats: oj.stats}
	out.close = func() error {
		var errs []error
		for i := len(closers) - 1; i >= 0; i-- {
			errs = append(errs, closers[i]())
		}
		return errors.Join(errs...)
	}
	if !withSnapshots {
		return out, nil
	}
	switch a.cfg.backend {
	case "postgres":
		schema := pgSchemaName(scenario + "_snapshots")
		s, err := snappg.Open(ctx, a.cfg.dsn, snappg.Config{Schema: schema})
		if err != nil {
			_ = out.close()
			return openedStores{}, err
		}
		out.snaps = s
		closers = append(closers, func() error { return dropSchema(context.Background(), a.cfg.dsn, schema) }, s.Close)
	default:
		s, err := snapbolt.Open(filepath.Join(dir, "snapshots.db"), snapbolt.Config{})
		if err != nil {
			_ = out.close()
			return openedStores{}, err
		}
		out.snaps = s
		closers = append(closers, s.Close)
	}
	return out, nil
}

// pgSchemaName is a fresh schema name for a benchmark scenario.
func pgSchemaName(scenario string) string {
	return fmt.Sprintf("orchestrix_bench_%s_%d", strings.ReplaceAll(scenario, "-", "_"), time.Now().UnixNano())
}

func openSystem(stores aggStores, scenario, dir string) (*actor.System, *actor.Handle[benchAccount, benchDeposit, benchDeposited], openedStores, error) {
	st, err := stores.open(context.Background(), scenario, dir, false)
	if err != nil {
		return nil, nil, openedStores{}, err
	}
	sys, err := actor.NewSystem(actor.Config{Journal: st.j})
	if err != nil {
		_ = st.close()
		return nil, nil, openedStores{}, err
	}
	h, err := actor.Register(sys, benchAccounts)
	if err != nil {
		sys.Close()
		_ = st.close()
		return nil, nil, openedStores{}, err
	}
	return sys, h, st, nil
}

// cpuMeter measures the CPU time of a scenario: this process's, and the
// PostgreSQL server's when it can be read; and this process's heap
// allocations.
type cpuMeter struct {
	server             func() (time.Duration, error)
	client0, server0   time.Duration
	serverOK           bool
	mallocs0, alloced0 uint64
}

func startCPU(server func() (time.Duration, error)) *cpuMeter {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	m := &cpuMeter{server: server, client0: cpuTime(), mallocs0: ms.Mallocs, alloced0: ms.TotalAlloc}
	if server != nil {
		t, err := server()
		m.server0, m.serverOK = t, err == nil
	}
	return m
}

// stop records the CPU per command of the scenario since startCPU in r.
func (m *cpuMeter) stop(r *aggResult) {
	r.CPUusPerCommand = perCommandUs(cpuTime()-m.client0, r.Commands)
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	if r.Commands > 0 {
		r.AllocsPerCommand = float64(ms.Mallocs-m.mallocs0) / float64(r.Commands)
		r.AllocBytesPerCommand = float64(ms.TotalAlloc-m.alloced0) / float64(r.Commands)
	}
	if m.serverOK {
		if t, err := m.server(); err == nil {
			r.ServerCPUusPerCommand = perCommandUs(t-m.server0, r.Commands)
		}
	}
}

// cpuTime is this process's user + system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// perCommandUs is CPU microseconds per command, 0 when nothing ran.
func perCommandUs(cpu time.Duration, commands uint64) float64 {
	if commands == 0 || cpu <= 0 {
		return 0
	}
	return float64(cpu.Microseconds()) / float64(commands)
}

// runtimeThroughput: senders send Deposit commands to random aggregates
// among aggs, each waiting for its reply (events durable) before the next.
func runtimeThroughput(stores aggStores, dir, name string, aggs, senders int, d time.Duration) (aggResult, error) {
	sys, h, st, err := openSystem(stores, name, dir)
	if err != nil {
		return aggResult{}, err
	}
	defer st.close()
	defer sys.Close()
	ids := make([]string, aggs)
	for i := range ids {
		ids[i] = fmt.Sprintf("a%06d", i)
	}
	ctx := context.Background()
	if stores.cfg.warm {
		if err := warmUp(ctx, h, ids, senders); err != nil {
			return aggResult{}, err
		}
	}
	bj, _ := st.j.(*bolt.Journal)
	var before bolt.Stats
	if bj != nil {
		before = bj.Stats()
	}
	cpu := startCPU(stores.cfg.serverCPU)
	load := closedLoop(senders, d, func(_ int, _ uint64, rng *rand.Rand) error {
		_, err := h.Send(ctx, ids[rng.IntN(len(ids))], benchDeposit{Amount: 1})
		return err
	})
	if err := load.err("commands"); err != nil {
		return aggResult{}, err
	}
	r := latencyResult(fmt.Sprintf("%s-%d", name, senders), aggs, senders, load)
	cpu.stop(&r)
	if bj != nil {
		r.WriterMsPerCommit = writerPhases(before, bj.Stats())
	}
	if commits, events := st.stats(); commits > 0 {
		r.EventsPerCommit = float64(events) / float64(commits)
	}
	return r, nil
}

// writerPhases is the mean time per commit the bbolt writer spent in
// each phase between two Stats, in milliseconds.
func writerPhases(a, b bolt.Stats) map[string]float64 {
	n := float64(b.Commits - a.Commits)
	if n == 0 {
		return nil
	}
	ms := func(d time.Duration) float64 { return math.Round(float64(d)/1e6/n*1000) / 1000 }
	return map[string]float64{
		"build":  ms(b.BuildTime - a.BuildTime),
		"commit": ms(b.CommitTime - a.CommitTime),
		"answer": ms(b.AnswerTime - a.AnswerTime),
		"settle": ms(b.SettleTime - a.SettleTime),
	}
}

// warmUp activates every aggregate of ids with one command each, from up
// to senders goroutines.
func warmUp(ctx context.Context, h *actor.Handle[benchAccount, benchDeposit, benchDeposited], ids []string, senders int) error {
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make([]error, min(senders, len(ids)))
	for w := range errs {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= len(ids) {
					return
				}
				if _, err := h.Send(ctx, ids[i], benchDeposit{Amount: 1}); err != nil {
					errs[w] = fmt.Errorf("warm-up: %w", err)
					return
				}
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// mutexBaseline is the usual design without actors: a mutex per aggregate
// and one bbolt Update (one fsync) per command or, with batch, bbolt's own
// group commit (db.Batch with its defaults: calls from concurrent
// goroutines within 10 ms share one transaction, at most 1,000 of them).
func mutexBaseline(dir string, aggs, senders int, d time.Duration, batch bool) (aggResult, error) {
	name, file := "baseline-mutex-update-per-command", "baseline.db"
	if batch {
		name, file = "baseline-mutex-db-batch", "baseline-batch.db"
	}
	db, err := bbolt.Open(filepath.Join(dir, file), 0o600, &bbolt.Options{Timeout: time.Second})
	if err != nil {
		return aggResult{}, err
	}
	defer db.Close()
	bucket := []byte("events")
	if err := db.Update(func(tx *bbolt.Tx) error { _, err := tx.CreateBucketIfNotExists(bucket); return err }); err != nil {
		return aggResult{}, err
	}
	write := db.Update
	if batch {
		write = db.Batch
	}
	return perCommandBaseline(fmt.Sprintf("%s-%d", name, senders), aggs, senders, d, nil,
		func(stream string, version uint64, body []byte) error {
			key := binary.BigEndian.AppendUint64([]byte(stream+"\x00"), version)
			return write(func(tx *bbolt.Tx) error { return tx.Bucket(bucket).Put(key, body) })
		})
}

// perCommandBaseline drives a design without actors: a mutex per
// aggregate; each command decided and its event encoded as the runtime
// does, then stored by store (one durable write per command) before the
// next command of that aggregate. serverCPU, when not nil, reads a
// database server's CPU time for the result.
func perCommandBaseline(name string, aggs, senders int, d time.Duration, serverCPU func() (time.Duration, error),
	store func(stream string, version uint64, body []byte) error) (aggResult, error) {
	type agg struct {
		mu      sync.Mutex
		stream  string
		version uint64
		state   benchAccount
	}
	all := make([]*agg, aggs)
	for i := range all {
		all[i] = &agg{stream: fmt.Sprintf("acct-a%06d", i)}
	}
	reg := orchestrix.NewRegistry()
	if err := benchAccounts.RegisterEvents(reg); err != nil {
		return aggResult{}, err
	}
	cpu := startCPU(serverCPU)
	load := closedLoop(senders, d, func(_ int, _ uint64, rng *rand.Rand) error {
		a := all[rng.IntN(len(all))]
		a.mu.Lock()
		defer a.mu.Unlock()
		events, err := benchAccounts.Decide(a.state, benchDeposit{Amount: 1})
		if err != nil {
			return err
		}
		env, err := reg.Marshal(events[0])
		if err != nil {
			return err
		}
		env.Source, env.Subject, env.Sequence = "/bench", a.stream, a.version+1
		body, err := env.MarshalBinary()
		if err != nil {
			return err
		}
		if err := store(a.stream, a.version+1, body); err != nil {
			return err
		}
		a.version++
		a.state = benchAccounts.Evolve(a.state, events[0])
		return nil
	})
	if err := load.err("commands"); err != nil {
		return aggResult{}, err
	}
	r := latencyResult(name, aggs, senders, load)
	cpu.stop(&r)
	return r, nil
}

// recoveryScenario writes n events to one stream, then measures a cold
// activation replaying all of them, and one starting from a snapshot.
func recoveryScenario(stores aggStores, dir string, n int) ([]aggResult, error) {
	ctx := context.Background()
	st, err := stores.open(ctx, "recovery", dir, true)
	if err != nil {
		return nil, err
	}
	defer st.close()
	j, snaps := st.j, st.snaps
	reg := orchestrix.NewRegistry()
	if err := benchAccounts.RegisterEvents(reg); err != nil {
		return nil, err
	}
	const chunk = 1000
	stream := "acct-hot"
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for written := 0; written < n; {
		k := min(chunk, n-written)
		envs := make([]orchestrix.Envelope, k)
		for i := range envs {
			env, err := reg.Marshal(benchDeposited{Amount: 1, Memo: memo})
			if err != nil {
				return nil, err
			}
			env.Source, env.Subject, env.Time = "/bench", "hot", t0
			env.CausationID = env.ID
			envs[i] = env
		}
		if _, err := j.Append(ctx, stream, journal.Exact(uint64(written)), envs); err != nil {
			return nil, err
		}
		written += k
	}

	// serverTime reads the PostgreSQL server's CPU time, 0 when unknown.
	serverTime := func() time.Duration {
		if stores.cfg.serverCPU == nil {
			return 0
		}
		t, err := stores.cfg.serverCPU()
		if err != nil {
			return 0
		}
		return t
	}
	var lastCPU, lastServerCPU time.Duration // CPU time of the last activation
	activate := func(withSnapshots bool) (time.Duration, uint64, error) {
		cfg := actor.Config{Journal: j, Registry: reg}
		if withSnapshots {
			cfg.Snapshots = snaps
		}
		sys, err := actor.NewSystem(cfg)
		if err != nil {
			return 0, 0, err
		}
		defer sys.Close() // saves the passivation snapshot when a store is set
		h, err := actor.Register(sys, benchAccounts)
		if err != nil {
			return 0, 0, err
		}
		start, cpu0, srv0 := time.Now(), cpuTime(), serverTime()
		s, v, err := h.State(ctx, "hot")
		el := time.Since(start)
		lastCPU, lastServerCPU = cpuTime()-cpu0, serverTime()-srv0
		if err == nil && s.Balance != int64(n) {
			err = fmt.Errorf("recovered balance %d, want %d", s.Balance, n)
		}
		return el, v, err
	}
	var base replayer
	if stores.cfg.backend == "postgres" {
		base, err = newPGReplayBaseline(ctx, stores.cfg.dsn, reg, n)
	} else {
		base, err = newReplayBaseline(filepath.Join(dir, "baseline.db"), reg, n)
	}
	if err != nil {
		return nil, err
	}
	defer base.Close()
	// Alternate the two, three rounds each, and report the medians: the
	// machine's load moves both alike within a round.
	var runtimeTimes, baseTimes, runtimeCPU, baseCPU, runtimeSrv, baseSrv []time.Duration
	var v uint64
	for range 3 {
		replayTime, ver, err := activate(false)
		if err != nil {
			return nil, err
		}
		v = ver
		runtimeTimes = append(runtimeTimes, replayTime)
		runtimeCPU = append(runtimeCPU, lastCPU)
		runtimeSrv = append(runtimeSrv, lastServerCPU)
		cpu0, srv0 := cpuTime(), serverTime()
		bt, err := base.replay(n)
		if err != nil {
			return nil, err
		}
		baseTimes = append(baseTimes, bt)
		baseCPU = append(baseCPU, cpuTime()-cpu0)
		baseSrv = append(baseSrv, serverTime()-srv0)
	}
	replayTime, baseTime := medianDuration(runtimeTimes), medianDuration(baseTimes)
	out := []aggResult{{
		Scenario: fmt.Sprintf("recovery-replay-%d-events", n), Aggregates: 1,
		EventsPerSec: float64(v) / replayTime.Seconds(), ActivationUs: float64(replayTime.Microseconds()),
		CPUusPerEvent:       perCommandUs(medianDuration(runtimeCPU), v),
		ServerCPUusPerEvent: perCommandUs(medianDuration(runtimeSrv), v),
	}, {
		Scenario: fmt.Sprintf("baseline-replay-loop-%d-events", n), Aggregates: 1,
		EventsPerSec: float64(n) / baseTime.Seconds(), ActivationUs: float64(baseTime.Microseconds()),
		CPUusPerEvent:       perCommandUs(medianDuration(baseCPU), uint64(n)),
		ServerCPUusPerEvent: perCommandUs(medianDuration(baseSrv), uint64(n)),
	}}
	// The first activation with the store replays and, on shutdown, saves
	// a snapshot at the head; the second starts from it.
	if _, _, err := activate(true); err != nil {
		return nil, err
	}
	snapTime, _, err := activate(true)
	if err != nil {
		return nil, err
	}
	out = append(out, aggResult{
		Scenario: "recovery-activation-from-snapshot", Aggregates: 1,
		ActivationUs: float64(snapTime.Nanoseconds()) / 1e3,
	})
	return out, nil
}

// replayer is a hand-written replay loop over one backend's store.
type replayer interface {
	// replay rebuilds the account from its n events and returns the time taken.
	replay(n int) (time.Duration, error)
	Close() error
}

// replayBaseline is what a team would write instead of the runtime's
// recovery: the same events' JSON payloads (the bytes the registry's
// default codec produced) stored in bbolt under stream name and
// big-endian version, replayed by one loop that walks a cursor, decodes
// each payload with encoding/json and folds it with the same Evolve. It
// has no envelope, no checksums and no index to consult.
type replayBaseline struct {
	db     *bbolt.DB
	bucket []byte
	prefix []byte
}

func newReplayBaseline(path string, reg *orchestrix.Registry, n int) (*replayBaseline, error) {
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: time.Second, NoSync: true})
	if err != nil {
		return nil, err
	}
	b := &replayBaseline{db: db, bucket: []byte("events"), prefix: []byte("acct-hot\x00")}
	const chunk = 1000
	for written := 0; written < n; {
		k := min(chunk, n-written)
		err := db.Update(func(tx *bbolt.Tx) error {
			bk, err := tx.CreateBucketIfNotExists(b.bucket)
			if err != nil {
				return err
			}
			bk.FillPercent = 1 // keys are appended in order
			for i := range k {
				env, err := reg.Marshal(benchDeposited{Amount: 1, Memo: memo})
				if err != nil {
					return err
				}
				key := binary.BigEndian.AppendUint64(append([]byte(nil), b.prefix...), uint64(written+i+1))
				if err := bk.Put(key, env.Data); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			db.Close()
			return nil, err
		}
		written += k
	}
	return b, nil
}

func (b *replayBaseline) Close() error { return b.db.Close() }

// replay rebuilds the account from its n events and returns the time taken.
func (b *replayBaseline) replay(n int) (time.Duration, error) {
	start := time.Now()
	var s benchAccount
	var version uint64
	err := b.db.View(func(tx *bbolt.Tx) error {
		c := tx.Bucket(b.bucket).Cursor()
		for k, v := c.Seek(b.prefix); k != nil && bytes.HasPrefix(k, b.prefix); k, v = c.Next() {
			var e benchDeposited
			if err := json.Unmarshal(v, &e); err != nil {
				return err
			}
			s = benchAccounts.Evolve(s, e)
			version = binary.BigEndian.Uint64(k[len(b.prefix):])
		}
		return nil
	})
	el := time.Since(start)
	if err == nil && (s.Balance != int64(n) || version != uint64(n)) {
		err = fmt.Errorf("baseline replayed balance %d at version %d, want %d", s.Balance, version, n)
	}
	return el, err
}

func medianDuration(ds []time.Duration) time.Duration {
	s := append([]time.Duration(nil), ds...)
	slices.Sort(s)
	return s[len(s)/2]
}

// memoryScenario activates n aggregates that each have one event, and
// reports the heap growth per active, idle aggregate.
func memoryScenario(stores aggStores, dir string, n int) (aggResult, error) {
	ctx := context.Background()
	sys, h, st, err := openSystem(stores, "memory", dir)
	if err != nil {
		return aggResult{}, err
	}
	defer st.close()
	j := st.j
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("a%06d", i)
	}
	// Write one event per aggregate, then restart the system so that only
	// the journal's own state is in memory.
	var wg sync.WaitGroup
	errs := make(chan error, 1)
	for w := range 256 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += 256 {
				if _, err := h.Send(ctx, ids[i], benchDeposit{Amount: 1}); err != nil {
					select {
					case errs <- err:
					default:
					}
					return
				}
			}
		}()
	}
	wg.Wait()
	select {
	case err := <-errs:
		return aggResult{}, err
	default:
	}
	if err := sys.Close(); err != nil {
		return aggResult{}, err
	}
	sys2, err := actor.NewSystem(actor.Config{Journal: j})
	if err != nil {
		return aggResult{}, err
	}
	defer sys2.Close()
	h2, err := actor.Register(sys2, benchAccounts)
	if err != nil {
		return aggResult{}, err
	}
	before := heapInUse()
	for i := range n {
		if _, _, err := h2.State(ctx, ids[i]); err != nil {
			return aggResult{}, err
		}
	}
	after := heapInUse()
	if h2.Active() != n {
		return aggResult{}, fmt.Errorf("%d aggregates active, want %d", h2.Active(), n)
	}
	return aggResult{
		Scenario: fmt.Sprintf("memory-%d-idle-aggregates", n), Aggregates: n,
		BytesPerAgg: float64(after-before) / float64(n),
	}, nil
}

func heapInUse() int64 {
	var ms runtime.MemStats
	for range 2 {
		runtime.GC()
	}
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapAlloc)
}

func printAggTable(w io.Writer, results []aggResult) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "scenario\tbackend\taggregates\tsenders\tcommands/s\tp50 µs\tp99 µs\tCPU µs/command\tserver CPU µs/command\tallocs/command\tevents/s\tactivation µs\tbytes/aggregate\tevents/commit\tratio\t\n")
	f := func(v float64) string {
		if v == 0 || math.IsNaN(v) {
			return "-"
		}
		return fmt.Sprintf("%.0f", v)
	}
	for _, r := range results {
		ratio := "-"
		if r.Ratio > 0 {
			ratio = fmt.Sprintf("%.2f×", r.Ratio)
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n", r.Scenario, r.Backend, r.Aggregates, r.Senders,
			f(r.CommandsPerSec), f(r.P50us), f(r.P99us), fmt.Sprintf("%.1f", r.CPUusPerCommand), fmt.Sprintf("%.1f", r.ServerCPUusPerCommand), fmt.Sprintf("%.1f", r.AllocsPerCommand), f(r.EventsPerSec), f(r.ActivationUs), f(r.BytesPerAgg), f(r.EventsPerCommit), ratio)
	}
	tw.Flush()
	fmt.Fprintf(w, "\nGOMAXPROCS=%d, %s %s/%s\n", runtime.GOMAXPROCS(0), runtime.Version(), runtime.GOOS, runtime.GOARCH)
}
