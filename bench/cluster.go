package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"net/http"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/orchestrix/orchestrix"
	"github.com/orchestrix/orchestrix/actor"
	"github.com/orchestrix/orchestrix/aggregate"
	"github.com/orchestrix/orchestrix/cluster"
	"github.com/orchestrix/orchestrix/internal/localcluster"
	pgjournal "github.com/orchestrix/orchestrix/journal/postgres"
)

// The cluster subcommand measures package cluster: members on loopback,
// one process each (this program started again, internal/localcluster),
// over one PostgreSQL journal. Senders run inside the members, spread
// over them, each sending Deposit commands to random aggregates and
// waiting for the reply; a command whose owner is another member crosses
// the wire. In the same run, the same load on one process without a
// cluster gives the single-member PostgreSQL throughput the cluster is
// compared with. Then, with the load running, the last member is killed
// with SIGKILL, and the survivors send one command to each aggregate it
// owned (one goroutine per aggregate, retrying with the same command id)
// and record when each first succeeds: failover is the time from the
// kill to the first success, and to 99% of the aggregates served again.
//
// As root the run moves into a loopback-only network namespace first
// (automanaged binds its health server to 0.0.0.0); a -dsn server outside
// it is then reachable only through a unix socket, or pass -netns=false.
func init() {
	subcommands["cluster"] = subcommand{
		summary: "members on loopback over one PostgreSQL: commands/s, latency and remote share against one process, failover after SIGKILL",
		run:     runCluster,
	}
}

type clusterConfig struct {
	dsn             string
	members         int
	senders         int
	aggregates      int
	duration        time.Duration
	failoverTimeout time.Duration
	refreshTTL      time.Duration
	requestTimeout  time.Duration
	netns           bool
	jsonOut         bool
	warm            bool
	memberMaxConns  int
	// memberProcs, when positive, is each member's GOMAXPROCS (a
	// diagnosis: three runtimes sharing 2 cores; 0 leaves Go's default).
	memberProcs int
	// cpuprofile, when set, makes each member write a CPU profile of its
	// throughput phase (/load) to cpuprofile + ".member<index>".
	cpuprofile string
}

// clusterResult is one line of the cluster subcommand's output.
type clusterResult struct {
	Scenario       string  `json:"scenario"`
	Backend        string  `json:"backend"`
	Members        int     `json:"members"`
	Aggregates     int     `json:"aggregates,omitempty"`
	Senders        int     `json:"senders,omitempty"`
	Commands       uint64  `json:"commands,omitempty"`
	Seconds        float64 `json:"seconds,omitempty"`
	CommandsPerSec float64 `json:"commands_per_sec,omitempty"`
	P50us          float64 `json:"p50_us,omitempty"`
	P99us          float64 `json:"p99_us,omitempty"`
	// RemoteShare is the share of commands whose owner, in the sending
	// member's view, was another member (they crossed the wire).
	RemoteShare float64 `json:"remote_share,omitempty"`
	// LocalP50us and RemoteP50us split P50us by where the command ran:
	// on the sending member (it owned the aggregate) or over the wire.
	LocalP50us  float64 `json:"local_p50_us,omitempty"`
	RemoteP50us float64 `json:"remote_p50_us,omitempty"`
	// EventsPerCommit is the journal's mean batch size (all members').
	EventsPerCommit float64 `json:"events_per_commit,omitempty"`
	// InFlight lists each member's journal batches-in-flight limit at the
	// end of the load.
	InFlight []int `json:"in_flight,omitempty"`
	// CPUusPerCommand is the CPU time (user + system) per command of the
	// process (single) or of all members together (cluster);
	// ServerCPUusPerCommand the PostgreSQL server's, when it can be read.
	// On this shared machine they are steadier than commands/s.
	CPUusPerCommand       float64 `json:"cpu_us_per_command,omitempty"`
	ServerCPUusPerCommand float64 `json:"server_cpu_us_per_command,omitempty"`
	Errors                uint64  `json:"errors,omitempty"`
	// Ratio is, on the ratio line, the cluster's commands/s divided by
	// the single process's of the same run.
	Ratio float64 `json:"ratio,omitempty"`

	*failoverFigures
}

// failoverFigures are the failover line's own fields.
type failoverFigures struct {
	// VictimAggregates is how many of the aggregates the killed member
	// owned; each is probed until it takes a command again.
	VictimAggregates int `json:"victim_aggregates"`
	// SurvivorsSeeMs: from the kill until every survivor sees one member
	// fewer and is not fenced (polled every 100 ms).
	SurvivorsSeeMs float64 `json:"survivors_see_ms"`
	// FirstSuccessMs: from the kill to the first command that succeeded
	// on one of the killed member's aggregates (sent after the kill).
	FirstSuccessMs float64 `json:"first_success_ms"`
	// P50ServedMs, P99ServedMs, MaxServedMs: from the kill until 50%, 99%
	// and all of its aggregates took a command again.
	P50ServedMs float64 `json:"p50_served_ms"`
	P99ServedMs float64 `json:"p99_served_ms"`
	MaxServedMs float64 `json:"max_served_ms"`
	// NotServed: aggregates not served again within -failover-timeout.
	NotServed int `json:"not_served"`
	// LoadCommands and LoadOutcomeUnknown: commands of the survivors'
	// ongoing load acknowledged, and ended in an unknown outcome, from
	// the kill until the probe ended.
	LoadCommands       uint64  `json:"load_commands"`
	LoadOutcomeUnknown uint64  `json:"load_outcome_unknown"`
	RefreshTTLms       float64 `json:"refresh_ttl_ms"`
	RequestTimeoutMs   float64 `json:"request_timeout_ms"`
}

// clusterAccounts is the benchmark account with its command type listed:
// in cluster mode commands cross members.
var clusterAccounts = func() aggregate.Definition[benchAccount, benchDeposit, benchDeposited] {
	d := benchAccounts
	d.Commands = []aggregate.CommandType{aggregate.CommandOf[benchDeposit]("bench.acct.deposit")}
	return d
}()

func parseClusterFlags(args []string, stderr io.Writer) (clusterConfig, error) {
	var cfg clusterConfig
	fs := flag.NewFlagSet("cluster", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&cfg.dsn, "dsn", os.Getenv("ORCHESTRIX_PG_DSN"), "PostgreSQL DSN (default: start a throwaway server from the installed binaries; the run uses fresh schemas, dropped afterwards). Inside the network namespace only a unix-socket DSN reaches a server outside it")
	fs.IntVar(&cfg.members, "members", 3, "member processes (at least 2: one is killed)")
	fs.IntVar(&cfg.senders, "senders", 1024, "concurrent senders, spread over the members")
	fs.IntVar(&cfg.aggregates, "aggregates", 10000, "aggregates the commands go to")
	fs.DurationVar(&cfg.duration, "duration", 10*time.Second, "how long each throughput scenario runs")
	fs.DurationVar(&cfg.failoverTimeout, "failover-timeout", 60*time.Second, "how long the survivors may take to serve the killed member's aggregates again")
	fs.DurationVar(&cfg.refreshTTL, "refresh-ttl", 0, "cluster.Config.RefreshTTL of the members (0: the package default)")
	fs.DurationVar(&cfg.requestTimeout, "request-timeout", 0, "cluster.Config.RequestTimeout of the members (0: the package default)")
	fs.BoolVar(&cfg.netns, "netns", true, "as root, run inside a loopback-only network namespace (unshare -n)")
	fs.BoolVar(&cfg.jsonOut, "json", false, "print one JSON object per line instead of a table")
	fs.IntVar(&cfg.memberMaxConns, "member-max-conns", 0, "journal connection pool size of each member (0: journal/postgres's default, pgxpool's)")
	fs.IntVar(&cfg.memberProcs, "member-procs", 0, "GOMAXPROCS of each member process (0: Go's default, every core; a diagnosis of co-located members, the goal is stated with the default)")
	fs.BoolVar(&cfg.warm, "warm", false, "activate every aggregate (one command each, on its owner) before each throughput phase, so that CPU per command leaves out activation (diagnosis; the default stays cold, as the issue's goal is stated)")
	fs.StringVar(&cfg.cpuprofile, "cpuprofile", "", "each member writes a CPU profile of the cluster throughput phase to this path + \".member<index>\" (0, 1, …)")
	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	if fs.NArg() > 0 {
		return cfg, fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	if cfg.members < 2 {
		return cfg, errors.New("-members must be at least 2 (one is killed)")
	}
	if cfg.senders < cfg.members || cfg.aggregates <= 0 || cfg.duration <= 0 || cfg.failoverTimeout <= 0 {
		return cfg, errors.New("-senders must be at least -members; -aggregates, -duration and -failover-timeout must be positive")
	}
	if cfg.refreshTTL < 0 || cfg.requestTimeout < 0 {
		return cfg, errors.New("-refresh-ttl and -request-timeout must not be negative")
	}
	if cfg.memberProcs < 0 || cfg.memberProcs > 1024 {
		return cfg, fmt.Errorf("-member-procs %d: want 0 (Go's default) to 1024", cfg.memberProcs)
	}
	if cfg.memberMaxConns < 0 || cfg.memberMaxConns > math.MaxInt32 {
		return cfg, errors.New("-member-max-conns must be between 0 and 2^31-1")
	}
	return cfg, nil
}

func runCluster(args []string, stdout, stderr io.Writer) int {
	cfg, err := parseClusterFlags(args, stderr)
	if code, done := flagsFailed("cluster", err, stderr); done {
		return code
	}
	if !cfg.netns {
		fmt.Fprintf(stderr, "bench cluster: -netns=false: %s\n", localcluster.Exposure)
	} else if reason := localcluster.EnterNetns(); reason != "" {
		fmt.Fprintf(stderr, "bench cluster: %s; running on 127.0.0.1 without a namespace: %s\n", reason, localcluster.Exposure)
	}
	givenDSN := cfg.dsn != ""
	if err := benchCluster(cfg, stdout, stderr); err != nil {
		fmt.Fprintln(stderr, "bench cluster:", err)
		if givenDSN && localcluster.Isolated() {
			fmt.Fprintln(stderr, "bench cluster: this run is inside a loopback-only network namespace: a server outside it is reachable only through a unix-socket DSN (host=/var/run/postgresql …), or run with -netns=false")
		}
		return 1
	}
	return 0
}

func benchCluster(cfg clusterConfig, stdout, stderr io.Writer) error {
	ctx := context.Background()
	var serverCPU func() (time.Duration, error)
	if cfg.dsn == "" {
		dsn, cpu, stop, err := throwawayPG("cluster", stderr)
		if err != nil {
			return err
		}
		defer stop()
		cfg.dsn, serverCPU = dsn, cpu
	}
	var results []clusterResult
	emit := func(r clusterResult) {
		r.Backend = "postgres"
		results = append(results, r)
		if cfg.jsonOut {
			b, _ := json.Marshal(r)
			fmt.Fprintln(stdout, string(b))
		}
	}

	// One process, no cluster: the single-member figure.
	single, err := runtimeThroughput(aggStores{cfg: aggConfig{backend: "postgres", dsn: cfg.dsn, serverCPU: serverCPU, warm: cfg.warm}},
		"", "single-process", cfg.aggregates, cfg.senders, cfg.duration)
	if err != nil {
		return fmt.Errorf("single process: %w", err)
	}
	emit(clusterResult{Scenario: single.Scenario, Members: 1, Aggregates: single.Aggregates, Senders: single.Senders,
		Commands: single.Commands, Seconds: single.Seconds, CommandsPerSec: single.CommandsPerSec,
		P50us: single.P50us, P99us: single.P99us, LocalP50us: single.P50us, EventsPerCommit: single.EventsPerCommit,
		CPUusPerCommand: single.CPUusPerCommand, ServerCPUusPerCommand: single.ServerCPUusPerCommand, Errors: single.Errors})

	// The cluster.
	schema := pgSchemaName("cluster")
	defer dropSchema(context.Background(), cfg.dsn, schema)
	logDir, err := os.MkdirTemp("", "orchestrix-bench-cluster-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(logDir)
	ms, err := localcluster.Start(ctx, localcluster.Options{Members: cfg.members, LogDir: logDir, Params: map[string]string{
		"dsn": cfg.dsn, "schema": schema,
		"refresh_ttl": cfg.refreshTTL.String(), "request_timeout": cfg.requestTimeout.String(),
		"cpuprofile": cfg.cpuprofile, "max_conns": strconv.Itoa(cfg.memberMaxConns), "procs": strconv.Itoa(cfg.memberProcs),
	}})
	if err != nil {
		return err
	}
	defer localcluster.StopAll(ms, 0)
	failed := func(err error) error {
		for _, m := range ms {
			fmt.Fprintf(stderr, "--- log of member %d:\n%s\n", m.Index, m.LogTail(2000))
		}
		return err
	}
	shares := spread(cfg.senders, len(ms))

	if cfg.warm {
		var wg sync.WaitGroup
		errs := make([]error, len(ms))
		for i, m := range ms {
			wg.Go(func() {
				errs[i] = m.Call(ctx, "/warm", loadRequest{Senders: shares[i], Aggregates: cfg.aggregates}, nil)
			})
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			return failed(err)
		}
	}
	var server0 time.Duration
	serverOK := serverCPU != nil
	if serverOK {
		server0, err = serverCPU()
		serverOK = err == nil
	}
	steady, err := clusterThroughput(ctx, ms, shares, cfg)
	if err != nil {
		return failed(err)
	}
	if serverOK {
		if t, err := serverCPU(); err == nil {
			steady.ServerCPUusPerCommand = perCommandUs(t-server0, steady.Commands)
		}
	}
	emit(steady)
	emit(clusterResult{Scenario: "ratio-" + steady.Scenario + "-to-" + single.Scenario, Members: len(ms),
		Ratio: steady.CommandsPerSec / single.CommandsPerSec})

	fo, err := clusterFailover(ctx, ms, shares, cfg)
	if err != nil {
		return failed(err)
	}
	emit(fo)
	localcluster.StopAll(ms, 0)
	// A member built with -race (the test) reports races in its log.
	if err := localcluster.CheckRaces(ms); err != nil {
		return err
	}
	if !cfg.jsonOut {
		printClusterTable(stdout, results)
	}
	return nil
}

// spread divides n senders over k members.
func spread(n, k int) []int {
	out := make([]int, k)
	for i := range out {
		out[i] = n / k
		if i < n%k {
			out[i]++
		}
	}
	return out
}

// loadRequest starts a closed-loop load on a member.
type loadRequest struct {
	Senders    int   `json:"senders"`
	Aggregates int   `json:"aggregates"`
	DurationNs int64 `json:"duration_ns,omitempty"`
}

// loadReply is what a member's load did.
type loadReply struct {
	Done           uint64  `json:"done"`
	Failed         uint64  `json:"failed"`
	OutcomeUnknown uint64  `json:"outcome_unknown"`
	Remote         uint64  `json:"remote"`
	Seconds        float64 `json:"seconds"`
	FirstErr       string  `json:"first_err,omitempty"`
	// LocalUs and RemoteUs are the latencies of the successful commands
	// that ran on this member and on another one.
	LocalUs  []uint32 `json:"local_us,omitempty"`
	RemoteUs []uint32 `json:"remote_us,omitempty"`
	// Commits and Events: the member's journal batches during the load.
	Commits uint64 `json:"commits,omitempty"`
	Events  uint64 `json:"events,omitempty"`
	// InFlight is the member's journal's batches-in-flight limit at the
	// end of the load (journal/postgres adapts it to other writers).
	InFlight int `json:"in_flight,omitempty"`
	// CPUNs is the member process's CPU time (user + system) during the
	// load: its own senders' and what it served for the other members.
	CPUNs int64 `json:"cpu_ns,omitempty"`
}

// clusterThroughput runs the closed-loop load on every member at once for
// cfg.duration and merges what they measured.
func clusterThroughput(ctx context.Context, ms []*localcluster.Member, shares []int, cfg clusterConfig) (clusterResult, error) {
	replies := make([]loadReply, len(ms))
	errs := make([]error, len(ms))
	var wg sync.WaitGroup
	for i, m := range ms {
		wg.Go(func() {
			errs[i] = m.Call(ctx, "/load", loadRequest{Senders: shares[i], Aggregates: cfg.aggregates, DurationNs: int64(cfg.duration)}, &replies[i])
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return clusterResult{}, err
	}
	var all, local, remoteLat loadResult
	var remote, attempts, commits, events uint64
	var inFlight []int
	var cpu time.Duration
	var firstErr string
	var longest float64
	us := func(ls []uint32) []time.Duration {
		out := make([]time.Duration, len(ls))
		for i, l := range ls {
			out[i] = time.Duration(l) * time.Microsecond
		}
		return out
	}
	for _, r := range replies {
		all.done += r.Done
		all.failed += r.Failed
		remote += r.Remote
		attempts += r.Done + r.Failed
		commits += r.Commits
		inFlight = append(inFlight, r.InFlight)
		events += r.Events
		cpu += time.Duration(r.CPUNs)
		longest = max(longest, r.Seconds)
		local.latencies = append(local.latencies, us(r.LocalUs)...)
		remoteLat.latencies = append(remoteLat.latencies, us(r.RemoteUs)...)
		if firstErr == "" {
			firstErr = r.FirstErr
		}
	}
	all.elapsed = time.Duration(longest * float64(time.Second))
	slices.Sort(local.latencies)
	slices.Sort(remoteLat.latencies)
	all.latencies = append(append(all.latencies, local.latencies...), remoteLat.latencies...)
	slices.Sort(all.latencies)
	if all.done == 0 {
		return clusterResult{}, fmt.Errorf("no command succeeded; first error: %s", firstErr)
	}
	r := clusterResult{Scenario: fmt.Sprintf("cluster-%d-members-%d", len(ms), cfg.senders), Members: len(ms),
		Aggregates: cfg.aggregates, Senders: cfg.senders, Commands: all.done, Seconds: all.elapsed.Seconds(),
		CommandsPerSec: all.perSec(), P50us: all.percentileUs(0.5), P99us: all.percentileUs(0.99),
		RemoteShare: float64(remote) / float64(attempts), Errors: all.failed,
		LocalP50us: local.percentileUs(0.5), RemoteP50us: remoteLat.percentileUs(0.5),
		CPUusPerCommand: perCommandUs(cpu, all.done), InFlight: inFlight}
	if commits > 0 {
		r.EventsPerCommit = float64(events) / float64(commits)
	}
	return r, nil
}

// probeRequest asks a survivor to send one command to each of the given
// aggregates until it succeeds.
type probeRequest struct {
	KillUnixNano int64 `json:"kill_unix_nano"`
	Aggregates   []int `json:"aggregates"`
	TimeoutNs    int64 `json:"timeout_ns"`
}

// probeReply holds, per aggregate, the milliseconds from the kill to its
// first success, or -1 when it did not succeed in time.
type probeReply struct {
	ServedMs []float64 `json:"served_ms"`
}

// clusterFailover runs the load on every member, kills the last one, and
// measures how soon the survivors serve its aggregates again.
func clusterFailover(ctx context.Context, ms []*localcluster.Member, shares []int, cfg clusterConfig) (clusterResult, error) {
	victim, survivors := ms[len(ms)-1], ms[:len(ms)-1]
	var owned []int
	if err := survivors[0].Call(ctx, "/owned", map[string]any{"aggregates": cfg.aggregates, "address": victim.Address}, &owned); err != nil {
		return clusterResult{}, err
	}
	if len(owned) == 0 {
		return clusterResult{}, fmt.Errorf("the member to be killed owns none of %d aggregates", cfg.aggregates)
	}
	for i, m := range ms {
		if err := m.Call(ctx, "/flow/start", loadRequest{Senders: shares[i], Aggregates: cfg.aggregates}, nil); err != nil {
			return clusterResult{}, err
		}
	}
	time.Sleep(min(time.Second, cfg.duration)) // the load in its stride
	killedAt := time.Now()
	if err := victim.Kill(); err != nil {
		return clusterResult{}, err
	}
	// Probe: each survivor takes every other aggregate of the victim.
	served := make([][]float64, len(survivors))
	errs := make([]error, len(survivors)+1)
	var seeMs float64
	var wg sync.WaitGroup
	for i, m := range survivors {
		var part []int
		for k := i; k < len(owned); k += len(survivors) {
			part = append(part, owned[k])
		}
		wg.Go(func() {
			var r probeReply
			errs[i] = m.Call(ctx, "/probe", probeRequest{KillUnixNano: killedAt.UnixNano(), Aggregates: part, TimeoutNs: int64(cfg.failoverTimeout)}, &r)
			served[i] = r.ServedMs
		})
	}
	wg.Go(func() {
		wctx, cancel := context.WithTimeout(ctx, cfg.failoverTimeout)
		defer cancel()
		errs[len(survivors)] = localcluster.WaitMembers(wctx, survivors, len(survivors))
		seeMs = float64(time.Since(killedAt).Microseconds()) / 1e3
	})
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return clusterResult{}, err
	}
	var load loadReply
	for _, m := range survivors {
		var r loadReply
		if err := m.Call(ctx, "/flow/stop", nil, &r); err != nil {
			return clusterResult{}, err
		}
		load.Done += r.Done
		load.OutcomeUnknown += r.OutcomeUnknown
	}
	var times []float64
	notServed := 0
	for _, s := range served {
		for _, ms := range s {
			if ms < 0 {
				notServed++
				continue
			}
			times = append(times, ms)
		}
	}
	slices.Sort(times)
	// Quantiles over all of the victim's aggregates: one not served ranks
	// above every served one (+Inf).
	q := func(p float64) float64 {
		i := int(math.Ceil(p*float64(len(owned)))) - 1
		if i < 0 {
			i = 0
		}
		if i >= len(times) {
			return math.Inf(1)
		}
		return times[i]
	}
	f := &failoverFigures{VictimAggregates: len(owned), SurvivorsSeeMs: seeMs, NotServed: notServed,
		LoadCommands: load.Done, LoadOutcomeUnknown: load.OutcomeUnknown,
		RefreshTTLms: float64(orDefault(cfg.refreshTTL, cluster.DefaultRefreshTTL).Milliseconds()), RequestTimeoutMs: float64(orDefault(cfg.requestTimeout, 5*time.Second).Milliseconds())}
	if len(times) > 0 {
		f.FirstSuccessMs, f.P50ServedMs, f.P99ServedMs, f.MaxServedMs = times[0], q(0.5), q(0.99), q(1)
	}
	if notServed > 0 {
		return clusterResult{}, fmt.Errorf("%d of the killed member's %d aggregates were not served again within %v", notServed, len(owned), cfg.failoverTimeout)
	}
	return clusterResult{Scenario: "failover-sigkill", Members: len(ms), Aggregates: cfg.aggregates, Senders: cfg.senders, failoverFigures: f}, nil
}

// orDefault is d, or def when d is zero (a member's Config default).
func orDefault(d, def time.Duration) time.Duration {
	if d == 0 {
		return def
	}
	return d
}

func printClusterTable(w io.Writer, results []clusterResult) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "scenario\tmembers\taggregates\tsenders\tcommands/s\tp50 µs\tp99 µs\tlocal p50 µs\tremote p50 µs\tremote share\tevents/commit\terrors\tratio\t\n")
	for _, r := range results {
		if r.failoverFigures != nil {
			continue
		}
		ratio := "-"
		if r.Ratio > 0 {
			ratio = fmt.Sprintf("%.2f×", r.Ratio)
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%.0f\t%.0f\t%.0f\t%.0f\t%.0f\t%.2f\t%.1f\t%d\t%s\t\n", r.Scenario, r.Members, r.Aggregates, r.Senders,
			r.CommandsPerSec, r.P50us, r.P99us, r.LocalP50us, r.RemoteP50us, r.RemoteShare, r.EventsPerCommit, r.Errors, ratio)
	}
	tw.Flush()
	for _, r := range results {
		if f := r.failoverFigures; f != nil {
			fmt.Fprintf(w, "\nfailover after SIGKILL of 1 of %d members (refresh TTL %.0f ms, request timeout %.0f ms): %d aggregates; "+
				"survivors see it gone after %.0f ms; first success %.0f ms; 50%% served %.0f ms, 99%% %.0f ms, all %.0f ms; "+
				"meanwhile %d commands acknowledged, %d with an unknown outcome\n",
				r.Members, f.RefreshTTLms, f.RequestTimeoutMs, f.VictimAggregates, f.SurvivorsSeeMs, f.FirstSuccessMs,
				f.P50ServedMs, f.P99ServedMs, f.MaxServedMs, f.LoadCommands, f.LoadOutcomeUnknown)
		}
	}
}

// ---- the member process ----

// runClusterMember is a member process of the cluster subcommand.
func runClusterMember(spec localcluster.Spec, specErr error) int {
	fail := func(err error) int {
		fmt.Fprintf(os.Stderr, "bench cluster member %d: %v\n", spec.Index, err)
		return 1
	}
	if specErr != nil {
		return fail(specErr)
	}
	ctx := context.Background()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	if n, err := strconv.Atoi(spec.Params["procs"]); err == nil && n > 0 {
		runtime.GOMAXPROCS(n)
	}
	maxConns, err := strconv.Atoi(spec.Params["max_conns"])
	if err != nil || maxConns < 0 || maxConns > math.MaxInt32 {
		return fail(fmt.Errorf("bad max_conns %q", spec.Params["max_conns"]))
	}
	j, err := pgjournal.Open(ctx, spec.Params["dsn"], pgjournal.Config{Schema: spec.Params["schema"], MaxConns: int32(maxConns)})
	if err != nil {
		return fail(err)
	}
	sys, err := actor.NewSystem(actor.Config{Journal: j, Logger: log})
	if err != nil {
		return fail(err)
	}
	h, err := actor.Register(sys, clusterAccounts)
	if err != nil {
		return fail(err)
	}
	cfg := spec.Config()
	cfg.Logger = log
	if cfg.RefreshTTL, err = time.ParseDuration(spec.Params["refresh_ttl"]); err != nil {
		return fail(err)
	}
	if cfg.RequestTimeout, err = time.ParseDuration(spec.Params["request_timeout"]); err != nil {
		return fail(err)
	}
	m, err := cluster.Start(ctx, sys, cfg)
	if err != nil {
		return fail(err)
	}
	b := &benchMember{m: m, h: h, j: j}
	if p := spec.Params["cpuprofile"]; p != "" {
		b.cpuprofile = p + ".member" + strconv.Itoa(spec.Index)
	}
	mux := http.NewServeMux()
	localcluster.HandleReady(mux, m)
	localcluster.Handle(mux, "/owned", b.owned)
	localcluster.Handle(mux, "/load", b.load)
	localcluster.Handle(mux, "/warm", b.warm)
	localcluster.Handle(mux, "/flow/start", b.flowStart)
	localcluster.Handle(mux, "/flow/stop", b.flowStop)
	localcluster.Handle(mux, "/probe", b.probe)
	return fail(spec.Serve(mux))
}

type benchMember struct {
	m *cluster.Member
	h *actor.Handle[benchAccount, benchDeposit, benchDeposited]
	j *pgjournal.Journal

	cpuprofile string // where /load writes its CPU profile ("": none)

	mu   sync.Mutex
	flow *flowLoad
}

func aggregateIDs(n int) []string {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("a%06d", i)
	}
	return ids
}

func (b *benchMember) owned(_ context.Context, req struct {
	Aggregates int    `json:"aggregates"`
	Address    string `json:"address"`
}) ([]int, error) {
	out := []int{}
	for i, id := range aggregateIDs(req.Aggregates) {
		if o, _ := b.m.Owner(clusterAccounts.Kind, id); o == req.Address {
			out = append(out, i)
		}
	}
	return out, nil
}

// send sends one command to id and says whether it went to another
// member (the owner of id in this member's view when it was sent).
func (b *benchMember) send(id string) (remote bool, err error) {
	o, _ := b.m.Owner(clusterAccounts.Kind, id)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, err = b.h.Send(ctx, id, benchDeposit{Amount: 1})
	return o != b.m.Address(), err
}

// warm activates the aggregates this member owns, one command each.
func (b *benchMember) warm(ctx context.Context, req loadRequest) (struct{}, error) {
	var own []string
	for _, id := range aggregateIDs(req.Aggregates) {
		if o, _ := b.m.Owner(clusterAccounts.Kind, id); o == b.m.Address() {
			own = append(own, id)
		}
	}
	return struct{}{}, warmUp(ctx, b.h, own, req.Senders)
}

func (b *benchMember) load(_ context.Context, req loadRequest) (loadReply, error) {
	ids := aggregateIDs(req.Aggregates)
	var remote atomic.Uint64
	// Per sender (each touches only its own): latencies by where the
	// command ran.
	local, remoteUs := make([][]uint32, req.Senders), make([][]uint32, req.Senders)
	if b.cpuprofile != "" {
		f, err := os.Create(b.cpuprofile)
		if err != nil {
			return loadReply{}, err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return loadReply{}, err
		}
		defer pprof.StopCPUProfile()
	}
	// The same per-command work as the single process's load
	// (runtimeThroughput): Send with a background context. Where each id
	// runs is looked up once, not per command: nothing joins or leaves
	// during this phase, and a placement change would only mislabel a
	// command's latency, never change what it does.
	isRemote := make([]bool, len(ids))
	for i, id := range ids {
		o, _ := b.m.Owner(clusterAccounts.Kind, id)
		isRemote[i] = o != b.m.Address()
	}
	before, cpu0 := b.j.Stats(), cpuTime()
	res := closedLoop(req.Senders, time.Duration(req.DurationNs), func(w int, _ uint64, rng *rand.Rand) error {
		t0 := time.Now()
		i := rng.IntN(len(ids))
		_, err := b.h.Send(context.Background(), ids[i], benchDeposit{Amount: 1})
		rem := isRemote[i]
		us := uint32(min(time.Since(t0).Microseconds(), math.MaxUint32))
		if rem {
			remote.Add(1)
		}
		switch {
		case err != nil:
		case rem:
			remoteUs[w] = append(remoteUs[w], us)
		default:
			local[w] = append(local[w], us)
		}
		return err
	})
	after, cpu := b.j.Stats(), cpuTime()-cpu0
	out := loadReply{CPUNs: int64(cpu), Done: res.done, Failed: res.failed, Remote: remote.Load(), Seconds: res.elapsed.Seconds(),
		LocalUs: slices.Concat(local...), RemoteUs: slices.Concat(remoteUs...),
		Commits: after.Commits - before.Commits, Events: after.Events - before.Events, InFlight: after.InFlight}
	if res.firstErr != nil {
		out.FirstErr = res.firstErr.Error()
	}
	return out, nil
}

// flowLoad is a load that runs until stopped.
type flowLoad struct {
	stop                  atomic.Bool
	wg                    sync.WaitGroup
	done, unknown, failed atomic.Uint64
	remote                atomic.Uint64
}

func (b *benchMember) flowStart(_ context.Context, req loadRequest) (struct{}, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.flow != nil {
		return struct{}{}, errors.New("a flow is already running")
	}
	f := &flowLoad{}
	b.flow = f
	ids := aggregateIDs(req.Aggregates)
	for w := range req.Senders {
		f.wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 43))
			for !f.stop.Load() {
				rem, err := b.send(ids[rng.IntN(len(ids))])
				if rem {
					f.remote.Add(1)
				}
				switch {
				case err == nil:
					f.done.Add(1)
				case errors.Is(err, orchestrix.ErrOutcomeUnknown):
					f.unknown.Add(1)
				default:
					f.failed.Add(1)
				}
			}
		})
	}
	return struct{}{}, nil
}

func (b *benchMember) flowStop(context.Context, struct{}) (loadReply, error) {
	b.mu.Lock()
	f := b.flow
	b.flow = nil
	b.mu.Unlock()
	if f == nil {
		return loadReply{}, errors.New("no flow is running")
	}
	f.stop.Store(true)
	f.wg.Wait()
	return loadReply{Done: f.done.Load(), OutcomeUnknown: f.unknown.Load(), Failed: f.failed.Load(), Remote: f.remote.Load()}, nil
}

// probe sends one command to each aggregate, one goroutine each, retrying
// with the same command id until it succeeds or the timeout after the
// kill passes, and reports when each first succeeded.
func (b *benchMember) probe(_ context.Context, req probeRequest) (probeReply, error) {
	kill := time.Unix(0, req.KillUnixNano)
	deadline := kill.Add(time.Duration(req.TimeoutNs))
	ids := aggregateIDs(slices.Max(append([]int{0}, req.Aggregates...)) + 1)
	out := probeReply{ServedMs: make([]float64, len(req.Aggregates))}
	var wg sync.WaitGroup
	for i, a := range req.Aggregates {
		wg.Go(func() {
			cmdID := "probe-" + strconv.Itoa(a)
			for {
				ctx, cancel := context.WithDeadline(context.Background(), deadline)
				_, err := b.h.Send(ctx, ids[a], benchDeposit{Amount: 1}, actor.WithCommandID(cmdID))
				cancel()
				if err == nil {
					out.ServedMs[i] = float64(time.Since(kill).Microseconds()) / 1e3
					return
				}
				if !time.Now().Before(deadline) {
					out.ServedMs[i] = -1
					return
				}
				time.Sleep(5 * time.Millisecond)
			}
		})
	}
	wg.Wait()
	return out, nil
}
