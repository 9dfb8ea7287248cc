// Command bench is Orchestrix's throughput and latency harness. Results
// and how they were measured are recorded in BENCHMARKS.md.
//
// Usage:
//
//	go run ./bench <subcommand> [flags]
//
// Subcommands:
//
//	journal   group-commit append throughput of a journal backend against
//	          the one-transaction-per-event baseline (see journal.go)
//
// Every subcommand prints a table, or with -json one JSON object per line
// and scenario. Every subcommand also takes -cpuprofile, -blockprofile,
// -mutexprofile and -trace (see profile.go), and -nosync, which runs the
// bbolt journal without fsync to show the CPU-bound ceiling (diagnosis
// only).
//
//	aggregates  actor runtime on the bbolt journal: many and one hot
//	            aggregate, mutex-per-aggregate baselines (one Update per
//	            command, and db.Batch), recovery and memory per idle
//	            aggregate (see aggregates.go)
//	projections live projection lag: the delay from each event's
//	            acknowledged commit to its handler call while events are
//	            appended open-loop at a fixed rate (see projections.go)
//	open        how long bolt.Open takes on a journal of a given size
//	            (built once; -file keeps it), the walk alone, the heap
//	            after the open, optionally with the page cache dropped
//	            (see open.go); it takes the profiling flags, not -nosync
//	cluster     members on loopback, one process each (this program
//	            started again), over one PostgreSQL: throughput against
//	            one process in the same run, and failover after SIGKILL
//	            (see cluster.go); of the profiling flags it takes only
//	            -cpuprofile (one profile per member), and not -nosync
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"github.com/orchestrix/orchestrix/internal/localcluster"
)

// subcommand runs one benchmark family with its own flags and returns the
// process exit code.
type subcommand struct {
	summary string
	run     func(args []string, stdout, stderr io.Writer) int
}

var subcommands = map[string]subcommand{
	"journal": {summary: "journal append throughput and latency (group commit vs one commit per event)", run: runJournal},
}

func main() {
	if spec, ok, err := localcluster.Self(); ok {
		// A member process started by the cluster subcommand.
		os.Exit(runClusterMember(spec, err))
	}
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "-help" || args[0] == "--help" || args[0] == "help" {
		usage(stderr)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	sc, ok := subcommands[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "bench: unknown subcommand %q\n", args[0])
		usage(stderr)
		return 2
	}
	return sc.run(args[1:], stdout, stderr)
}

func usage(w io.Writer) {
	names := make([]string, 0, len(subcommands))
	for name := range subcommands {
		names = append(names, name)
	}
	sort.Strings(names)
	var b strings.Builder
	b.WriteString("usage: go run ./bench <subcommand> [flags]\n\nsubcommands:\n")
	for _, name := range names {
		fmt.Fprintf(&b, "  %-12s %s\n", name, subcommands[name].summary)
	}
	b.WriteString("\nrun 'go run ./bench <subcommand> -h' for its flags\n")
	fmt.Fprint(w, b.String())
}

// flagsFailed turns the error of a subcommand's flag parsing into its exit
// code: 0 after -h (the usage was printed), 2 with the error printed for
// bad flags; done is false when the flags parsed.
func flagsFailed(subcommand string, err error, stderr io.Writer) (code int, done bool) {
	switch {
	case err == nil:
		return 0, false
	case errors.Is(err, flag.ErrHelp):
		return 0, true
	}
	fmt.Fprintf(stderr, "bench %s: %v\n", subcommand, err)
	return 2, true
}
