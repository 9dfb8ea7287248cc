package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/orchestrix/orchestrix"
	"github.com/orchestrix/orchestrix/journal"
	"github.com/orchestrix/orchestrix/projection"
)

// The projections subcommand measures how late a live projection sees
// what was committed: events are appended open-loop at a fixed rate (the
// pace does not slow down when the journal or the projection lags), and a
// projection that has caught up handles them as they commit. For every
// event the handler records two delays: from the moment its append was
// acknowledged (the journal's completion callback: the commit is durable)
// and from the moment the append was issued (commit wait included).
func init() {
	subcommands["projections"] = subcommand{
		summary: "live projection lag: delay from commit to handler at a fixed append rate",
		run:     runProjections,
	}
}

type projConfig struct {
	backend  string
	dsn      string
	dir      string
	rate     int
	duration time.Duration
	warmup   time.Duration
	streams  int
	batch    int
	readSize int
	jsonOut  bool
	noSync   bool
	profile  profileFlags
}

// lagResult is the outcome of one projection-lag run.
type lagResult struct {
	Scenario      string  `json:"scenario"`
	Backend       string  `json:"backend"`
	TargetRate    int     `json:"target_events_per_sec"`
	AppendedRate  float64 `json:"appended_events_per_sec"`
	Events        uint64  `json:"events"`
	Measured      int     `json:"measured_events"`
	CommitP50ms   float64 `json:"commit_to_handler_p50_ms"`
	CommitP99ms   float64 `json:"commit_to_handler_p99_ms"`
	CommitMaxms   float64 `json:"commit_to_handler_max_ms"`
	AppendP50ms   float64 `json:"append_to_handler_p50_ms"`
	AppendP99ms   float64 `json:"append_to_handler_p99_ms"`
	HandlerCalls  uint64  `json:"handler_calls"`
	EventsPerCall float64 `json:"events_per_handler_call"`
	Behind        uint64  `json:"appends_behind_schedule"`
	Errors        uint64  `json:"errors"`
}

// lagEvent is the payload: its sequence number indexes the timestamps.
type lagEvent struct {
	Seq  uint64 `json:"seq"`
	Memo string `json:"memo"`
}

func parseProjFlags(args []string, stderr io.Writer) (projConfig, error) {
	var cfg projConfig
	fs := flag.NewFlagSet("projections", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&cfg.backend, "backend", "bolt", "journal backend: bolt or postgres")
	fs.StringVar(&cfg.dsn, "dsn", os.Getenv("ORCHESTRIX_PG_DSN"), "PostgreSQL DSN for -backend=postgres (default: start a throwaway server)")
	fs.StringVar(&cfg.dir, "dir", "", "directory for the database files (default: a new temporary directory, removed afterwards)")
	fs.IntVar(&cfg.rate, "rate", 100_000, "events appended per second (open loop)")
	fs.DurationVar(&cfg.duration, "duration", 5*time.Second, "how long events are appended")
	fs.DurationVar(&cfg.warmup, "warmup", time.Second, "leading part of the run left out of the delay percentiles")
	fs.IntVar(&cfg.streams, "streams", 10_000, "streams the events are spread over")
	fs.IntVar(&cfg.batch, "batch", 1, "events per append")
	fs.IntVar(&cfg.readSize, "read-batch", 0, "the projection's BatchSize (0: projection.DefaultBatchSize)")
	fs.BoolVar(&cfg.jsonOut, "json", false, "print one JSON object per line instead of a table")
	fs.BoolVar(&cfg.noSync, "nosync", false, "open bolt journals with NoSync (diagnosis only)")
	cfg.profile.register(fs)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: go run ./bench projections [flags]\n\n"+
			"Appends events at -rate per second (open loop, -batch events per append,\n"+
			"fsync on) while one live projection handles them, and reports the\n"+
			"delay from each event's acknowledged commit to its handler call.\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	switch {
	case fs.NArg() > 0:
		return cfg, fmt.Errorf("unexpected arguments %q", fs.Args())
	case cfg.rate <= 0:
		return cfg, errors.New("-rate must be positive")
	case cfg.duration <= 0:
		return cfg, errors.New("-duration must be positive")
	case cfg.warmup < 0 || cfg.warmup >= cfg.duration:
		return cfg, errors.New("-warmup must be at least 0 and shorter than -duration")
	case cfg.streams <= 0:
		return cfg, errors.New("-streams must be positive")
	case cfg.batch <= 0:
		return cfg, errors.New("-batch must be positive")
	case cfg.readSize < 0:
		return cfg, errors.New("-read-batch must not be negative")
	}
	return cfg, nil
}

func runProjections(args []string, stdout, stderr io.Writer) int {
	cfg, err := parseProjFlags(args, stderr)
	if code, done := flagsFailed("projections", err, stderr); done {
		return code
	}
	if cfg.backend == "postgres" && cfg.dsn == "" {
		dsn, _, stop, err := throwawayPG("projections", stderr)
		if err != nil {
			fmt.Fprintln(stderr, "bench projections:", err)
			return 1
		}
		defer stop()
		cfg.dsn = dsn
	}
	open, err := backendFor(journalConfig{backend: cfg.backend, dsn: cfg.dsn, noSync: cfg.noSync})
	if err != nil {
		fmt.Fprintln(stderr, "bench projections:", err)
		return 2
	}
	dir := cfg.dir
	if dir == "" {
		if dir, err = os.MkdirTemp("", "orchestrix-bench-"); err != nil {
			fmt.Fprintln(stderr, "bench projections:", err)
			return 1
		}
		defer os.RemoveAll(dir)
	}
	stop, err := cfg.profile.start()
	if err != nil {
		fmt.Fprintln(stderr, "bench projections:", err)
		return 1
	}
	defer stop()
	r, err := lagScenario(context.Background(), open, dir, cfg)
	if err != nil {
		fmt.Fprintln(stderr, "bench projections:", err)
		return 1
	}
	r.Backend = cfg.backend
	if cfg.jsonOut {
		b, _ := json.Marshal(r)
		fmt.Fprintln(stdout, string(b))
		return 0
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "scenario\tbackend\ttarget/s\tappended/s\tcommit→handler p50 ms\tp99 ms\tmax ms\tappend→handler p99 ms\tevents/call\t")
	fmt.Fprintf(tw, "%s\t%s\t%d\t%.0f\t%.2f\t%.2f\t%.2f\t%.2f\t%.1f\t\n", r.Scenario, r.Backend, r.TargetRate, r.AppendedRate,
		r.CommitP50ms, r.CommitP99ms, r.CommitMaxms, r.AppendP99ms, r.EventsPerCall)
	tw.Flush()
	return 0
}

// lagStamps holds, per event sequence number, when its append was issued
// and when it was acknowledged (UnixNano offsets from start; 0 = not yet).
type lagStamps struct {
	start    time.Time
	issued   []atomic.Int64
	acked    []atomic.Int64
	handled  []atomic.Int64
	nextSeq  atomic.Uint64
	errors   atomic.Uint64
	firstErr atomic.Pointer[error]
}

func (s *lagStamps) since() int64 { return int64(time.Since(s.start)) + 1 } // never 0

func (s *lagStamps) fail(err error) {
	s.errors.Add(1)
	s.firstErr.CompareAndSwap(nil, &err)
}

func lagScenario(ctx context.Context, open journalBackend, dir string, cfg projConfig) (lagResult, error) {
	name := fmt.Sprintf("projection-lag-%d", cfg.rate)
	oj, err := open(ctx, name, dir)
	if err != nil {
		return lagResult{}, err
	}
	defer func() {
		oj.j.Close()
		if oj.cleanup != nil {
			oj.cleanup()
		}
	}()
	aj, ok := oj.j.(journal.AsyncAppender)
	if !ok {
		return lagResult{}, fmt.Errorf("journal %T has no AppendAsync", oj.j)
	}
	reg := orchestrix.NewRegistry()
	if err := orchestrix.Register[lagEvent](reg, "bench.LagEvent"); err != nil {
		return lagResult{}, err
	}
	// Room for every event of the run plus the pacer's slack.
	capacity := int(float64(cfg.rate)*cfg.duration.Seconds()*1.1) + 4*cfg.batch + 1024
	st := &lagStamps{issued: make([]atomic.Int64, capacity), acked: make([]atomic.Int64, capacity),
		handled: make([]atomic.Int64, capacity)}

	m, err := projection.NewManager(projection.Config{Journal: oj.j, Registry: reg, Checkpoints: projection.NewMemCheckpoints()})
	if err != nil {
		return lagResult{}, err
	}
	defer m.Close()
	var calls atomic.Uint64
	h := projection.HandlerFunc(func(_ context.Context, batch []projection.Event) error {
		calls.Add(1)
		now := st.since()
		for _, ev := range batch {
			if e, ok := ev.Data.(lagEvent); ok && e.Seq < uint64(len(st.handled)) {
				st.handled[e.Seq].Store(now)
			}
		}
		return nil
	})
	if err := m.Add(ctx, projection.Projection{Name: "lag", Handler: h, BatchSize: cfg.readSize}); err != nil {
		return lagResult{}, err
	}
	if _, err := m.Wait(ctx, "lag", func(s projection.Status) bool { return s.Live }); err != nil {
		return lagResult{}, err
	}

	memo := string(slices.Repeat([]byte("x"), 48))
	st.start = time.Now()
	var behind atomic.Uint64
	// The pacer: a few goroutines share the rate, each issuing its share
	// of what is due every millisecond. Being behind schedule is
	// reported, not hidden: the appends that are due are issued at once.
	pacers := max(1, min(4, runtime.GOMAXPROCS(0)*2))
	perPacer := float64(cfg.rate) / float64(pacers)
	var wg sync.WaitGroup
	for p := range pacers {
		wg.Go(func() {
			var issued float64
			tick := time.NewTicker(time.Millisecond)
			defer tick.Stop()
			for {
				elapsed := time.Since(st.start)
				if elapsed >= cfg.duration {
					return
				}
				due := perPacer*elapsed.Seconds() - issued
				if due > float64(cfg.rate)/100 { // more than 10 ms of this pacer's share late
					behind.Add(uint64(due))
				}
				for ; due >= float64(cfg.batch); due -= float64(cfg.batch) {
					issued += float64(cfg.batch)
					lagAppend(ctx, aj, reg, st, cfg, memo, p)
				}
				<-tick.C
			}
		})
	}
	wg.Wait()
	appended := time.Since(st.start)
	total := st.nextSeq.Load()

	// Wait until every event was acknowledged and handled.
	wctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	for seq := uint64(0); seq < min(total, uint64(capacity)); seq++ {
		for st.errors.Load() == 0 && (st.acked[seq].Load() == 0 || st.handled[seq].Load() == 0) {
			if wctx.Err() != nil {
				return lagResult{}, fmt.Errorf("event %d not acknowledged and handled within 2 minutes", seq)
			}
			time.Sleep(time.Millisecond)
		}
	}
	if n := st.errors.Load(); n > 0 {
		return lagResult{}, fmt.Errorf("%d appends failed, first: %w", n, *st.firstErr.Load())
	}

	warm := int64(cfg.warmup)
	var fromCommit, fromAppend []time.Duration
	for seq := range min(total, uint64(capacity)) {
		is, ack, hd := st.issued[seq].Load(), st.acked[seq].Load(), st.handled[seq].Load()
		if is < warm || ack == 0 || hd == 0 {
			continue
		}
		// The handler can run before the completion callback that
		// records the acknowledgement: the commit was then earlier
		// still, and the delay counts as 0.
		fromCommit = append(fromCommit, time.Duration(max(hd-ack, 0)))
		fromAppend = append(fromAppend, time.Duration(hd-is))
	}
	slices.Sort(fromCommit)
	slices.Sort(fromAppend)
	ms := func(ds []time.Duration, p float64) float64 {
		if len(ds) == 0 {
			return 0
		}
		return float64(ds[min(int(p*float64(len(ds))), len(ds)-1)]) / 1e6
	}
	r := lagResult{
		Scenario: name, TargetRate: cfg.rate, Events: total,
		AppendedRate: float64(total) / appended.Seconds(), Measured: len(fromCommit),
		CommitP50ms: ms(fromCommit, 0.50), CommitP99ms: ms(fromCommit, 0.99), CommitMaxms: ms(fromCommit, 1),
		AppendP50ms: ms(fromAppend, 0.50), AppendP99ms: ms(fromAppend, 0.99),
		HandlerCalls: calls.Load(), Behind: behind.Load(),
	}
	if r.HandlerCalls > 0 {
		r.EventsPerCall = float64(total) / float64(r.HandlerCalls)
	}
	return r, nil
}

// lagAppend issues one append of cfg.batch events to one of the streams
// and records its timestamps.
func lagAppend(ctx context.Context, aj journal.AsyncAppender, reg *orchestrix.Registry, st *lagStamps, cfg projConfig, memo string, pacer int) {
	first := st.nextSeq.Add(uint64(cfg.batch)) - uint64(cfg.batch)
	if first+uint64(cfg.batch) > uint64(len(st.issued)) {
		st.fail(errors.New("more events than the run has room for"))
		return
	}
	events := make([]orchestrix.Envelope, cfg.batch)
	for i := range events {
		env, err := reg.Marshal(lagEvent{Seq: first + uint64(i), Memo: memo})
		if err != nil {
			st.fail(err)
			return
		}
		env.Source = "/orchestrix/bench"
		events[i] = env
	}
	stream := "lag-" + strconv.FormatUint((first/uint64(cfg.batch))%uint64(cfg.streams), 10)
	now := st.since()
	for i := range cfg.batch {
		st.issued[first+uint64(i)].Store(now)
	}
	err := aj.AppendAsync(ctx, stream, journal.Any, events, func(_ journal.AppendResult, err error) {
		if err != nil {
			st.fail(fmt.Errorf("append to %s: %w", stream, err))
			return
		}
		now := st.since()
		for i := range cfg.batch {
			st.acked[first+uint64(i)].Store(now)
		}
	})
	if err != nil {
		st.fail(fmt.Errorf("pacer %d: append to %s: %w", pacer, stream, err))
	}
}
