// Command orchestrix inspects, verifies and moves Orchestrix journals.
//
// Usage:
//
//	orchestrix [--data DIR | --pg DSN] <command> [flags] [arguments]
//
// Commands:
//
//	streams   list the streams with their head versions
//	events    print a stream's events as CloudEvents JSON lines
//	tail      print the global log as JSON lines, optionally following it
//	check     verify checksums, versions, index and heads; exit 1 on problems
//	stats     counts, positions and storage size
//	export    write every event as JSON lines
//	import    append the events of an export or of CloudEvents, idempotently
//	console   serve the read-only web console
//	bench     run the benchmark harness (needs the source tree)
//	help      show the help of a command
//
// The journal is the bbolt file DIR/orchestrix.db (--data, default the
// current directory, or $ORCHESTRIX_DATA), the file the examples write, or
// a PostgreSQL database (--pg, or $ORCHESTRIX_PG). Global flags may also
// be given after the command.
//
// A bbolt file can be open in one process at a time: when the application
// holds it, every command fails after --lock-timeout with "journal is in
// use by another process". check opens the file read-only and never
// changes it; the other commands open it as a journal, which may write an
// index checkpoint when they close it.
//
// Exit status: 0 on success, 1 when the command fails or check finds a
// problem, 2 for a usage error.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/orchestrix/orchestrix/journal"
	"github.com/orchestrix/orchestrix/journal/bolt"
	"github.com/orchestrix/orchestrix/journal/postgres"
)

// FileName is the journal file inside the --data directory; the examples
// use the same name.
const FileName = "orchestrix.db"

// Environment variables supplying defaults for the global flags.
const (
	envData = "ORCHESTRIX_DATA"
	envPG   = "ORCHESTRIX_PG"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// exit codes.
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
)

// globals are the flags every command accepts.
type globals struct {
	data        string
	pg          string
	schema      string
	lockTimeout time.Duration
}

func (g *globals) register(fs *flag.FlagSet) {
	fs.StringVar(&g.data, "data", g.data, "directory `DIR` holding the bbolt journal file "+FileName+" (env "+envData+")")
	fs.StringVar(&g.pg, "pg", g.pg, "PostgreSQL `DSN` of the journal, instead of --data (env "+envPG+")")
	fs.StringVar(&g.schema, "pg-schema", g.schema, "PostgreSQL `SCHEMA` of the journal tables (default: the connection's current schema)")
	fs.DurationVar(&g.lockTimeout, "lock-timeout", g.lockTimeout, "how long to wait for a bbolt journal held by another process")
}

// app is one invocation: its streams, context and global settings.
type app struct {
	ctx            context.Context
	stdin          io.Reader
	stdout, stderr io.Writer
	g              globals
}

// command is one subcommand.
type command struct {
	name    string
	args    string // synopsis after the name
	summary string
	help    string // longer description
	// flagsFirst stops flag parsing at the first argument that is not a
	// flag (the rest go to another program) instead of accepting flags
	// between and after the arguments.
	flagsFirst bool
	setFlags   func(fs *flag.FlagSet) func(a *app, args []string) error
}

var commands []*command

func init() {
	commands = []*command{
		streamsCommand, eventsCommand, tailCommand, checkCommand, statsCommand,
		exportCommand, importCommand, consoleCommand, benchCommand,
	}
}

func lookup(name string) *command {
	for _, c := range commands {
		if c.name == name {
			return c
		}
	}
	return nil
}

// usageError is a command-line mistake: exit status 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return &usageError{msg: fmt.Sprintf(format, args...)} }

// errProblems makes the command exit with status 1 without a further
// message (check has already printed its report).
var errProblems = errors.New("problems found")

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	a := &app{ctx: ctx, stdin: stdin, stdout: stdout, stderr: stderr}
	a.g = globals{data: os.Getenv(envData), pg: os.Getenv(envPG), lockTimeout: time.Second}
	if a.g.data == "" {
		a.g.data = "."
	}
	fs := flag.NewFlagSet("orchestrix", flag.ContinueOnError)
	fs.SetOutput(stderr)
	a.g.register(fs)
	fs.Usage = func() { mainUsage(stderr, fs) }
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	if fs.NArg() == 0 {
		mainUsage(stderr, fs)
		return exitUsage
	}
	name, rest := fs.Arg(0), fs.Args()[1:]
	if name == "help" {
		return a.help(rest, fs)
	}
	c := lookup(name)
	if c == nil {
		fmt.Fprintf(stderr, "orchestrix: unknown command %q\nRun 'orchestrix help' for the list of commands.\n", name)
		return exitUsage
	}
	return a.runCommand(c, rest)
}

// newFlagSet returns the flag set of c, with the global flags and c's
// usage text.
func (a *app) newFlagSet(c *command) (*flag.FlagSet, func(a *app, args []string) error) {
	fs := flag.NewFlagSet("orchestrix "+c.name, flag.ContinueOnError)
	fs.SetOutput(a.stderr)
	a.g.register(fs)
	runFn := c.setFlags(fs)
	fs.Usage = func() { commandUsage(a.stderr, c, fs) }
	return fs, runFn
}

func (a *app) runCommand(c *command, args []string) int {
	fs, runFn := a.newFlagSet(c)
	var positional []string
	var err error
	if c.flagsFirst {
		err = fs.Parse(args)
		positional = fs.Args()
	} else {
		positional, err = parseInterspersed(fs, args)
	}
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	err = runFn(a, positional)
	var ue *usageError
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &ue):
		fmt.Fprintf(a.stderr, "orchestrix %s: %v\n", c.name, err)
		fmt.Fprintf(a.stderr, "Run 'orchestrix %s -h' for usage.\n", c.name)
		return exitUsage
	case errors.Is(err, errProblems):
		return exitFailure
	case errors.Is(err, context.Canceled) && a.ctx.Err() != nil:
		fmt.Fprintf(a.stderr, "orchestrix %s: interrupted\n", c.name)
		return exitFailure
	default:
		fmt.Fprintf(a.stderr, "orchestrix %s: %v\n", c.name, err)
		return exitFailure
	}
}

// parseInterspersed parses flags that may come before, between or after
// positional arguments ("events STREAM --from 3"); "--" ends the flags.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return positional, nil
		}
		if len(args) > 0 && len(rest) < len(args) && args[len(args)-len(rest)-1] == "--" {
			return append(positional, rest...), nil
		}
		positional = append(positional, rest[0])
		args = rest[1:]
	}
}

func (a *app) help(args []string, fs *flag.FlagSet) int {
	if len(args) == 0 {
		fs.SetOutput(a.stdout)
		mainUsage(a.stdout, fs)
		return exitOK
	}
	c := lookup(args[0])
	if c == nil {
		fmt.Fprintf(a.stderr, "orchestrix help: unknown command %q\n", args[0])
		return exitUsage
	}
	a.stderr = a.stdout
	cfs, _ := a.newFlagSet(c)
	cfs.SetOutput(a.stdout)
	commandUsage(a.stdout, c, cfs)
	return exitOK
}

func mainUsage(w io.Writer, fs *flag.FlagSet) {
	fmt.Fprint(w, `orchestrix inspects, verifies and moves Orchestrix event journals.

Usage:
  orchestrix [global flags] <command> [flags] [arguments]

Commands:
`)
	tw := tabwriter.NewWriter(w, 0, 0, 3, ' ', 0)
	for _, c := range commands {
		fmt.Fprintf(tw, "  %s\t%s\n", c.name, c.summary)
	}
	fmt.Fprintf(tw, "  help\tshow the help of a command: orchestrix help <command>\n")
	tw.Flush()
	fmt.Fprintf(w, `
The journal is the bbolt file DIR/%s (--data) or a PostgreSQL database
(--pg). Global flags may also be given after the command.

Global flags:
`, FileName)
	printFlags(w, fs, func(string) bool { return true })
	fmt.Fprint(w, `
Exit status: 0 on success, 1 on failure (or problems found by check),
2 for a usage error.
`)
}

func commandUsage(w io.Writer, c *command, fs *flag.FlagSet) {
	fmt.Fprintf(w, "Usage: orchestrix %s %s\n\n%s\n", c.name, c.args, strings.TrimSpace(c.help))
	fmt.Fprintf(w, "\nFlags (the global flags --data, --pg, --pg-schema and --lock-timeout apply too):\n")
	printFlags(w, fs, func(name string) bool { return !globalFlags[name] })
}

var globalFlags = map[string]bool{"data": true, "pg": true, "pg-schema": true, "lock-timeout": true}

// printFlags prints the flags of fs that keep selects, GNU style.
func printFlags(w io.Writer, fs *flag.FlagSet, keep func(name string) bool) {
	fs.VisitAll(func(f *flag.Flag) {
		if !keep(f.Name) {
			return
		}
		name, usage := flag.UnquoteUsage(f)
		line := "  --" + f.Name
		if name != "" {
			line += " " + name
		}
		fmt.Fprintf(w, "%s\n    \t%s", line, usage)
		if f.DefValue != "" && f.DefValue != "0" && f.DefValue != "false" {
			fmt.Fprintf(w, " (default %s)", f.DefValue)
		}
		fmt.Fprintln(w)
	})
}

// store is an open journal.
type store struct {
	journal.Journal
	bolt *bolt.Journal     // set for --data
	pg   *postgres.Journal // set for --pg
	path string            // the bbolt file
}

// boltPath returns the journal file named by --data.
func (a *app) boltPath() string { return filepath.Join(a.g.data, FileName) }

// describe names the journal for messages.
func (a *app) describe() string {
	if a.g.pg != "" {
		return "the PostgreSQL journal"
	}
	return a.boltPath()
}

// open opens the journal named by the global flags. With create false a
// missing bbolt file is an error rather than created.
func (a *app) open(create bool) (*store, error) {
	if a.g.pg != "" {
		j, err := postgres.Open(a.ctx, a.g.pg, postgres.Config{Schema: a.g.schema, MaxConns: 8})
		if err != nil {
			return nil, err
		}
		return &store{Journal: j, pg: j}, nil
	}
	path := a.boltPath()
	if !create {
		if _, err := os.Stat(path); err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return nil, fmt.Errorf("no journal at %s (use --data DIR or --pg DSN)", path)
			}
			return nil, err
		}
	} else if err := os.MkdirAll(a.g.data, 0o755); err != nil {
		return nil, err
	}
	j, err := bolt.Open(path, bolt.Config{Timeout: a.g.lockTimeout})
	if err != nil {
		return nil, lockedMessage(err, path)
	}
	return &store{Journal: j, bolt: j, path: path}, nil
}

// openReadOnly opens the journal named by the global flags for reading
// only: a bbolt file is opened with bolt.OpenReadOnly, so it is never
// changed (nor created); PostgreSQL is opened as usual (the console
// issues no writes to it).
func (a *app) openReadOnly() (*store, error) {
	if a.g.pg != "" {
		return a.open(false)
	}
	path := a.boltPath()
	if _, err := os.Stat(path); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("no journal at %s (use --data DIR or --pg DSN)", path)
		}
		return nil, err
	}
	j, err := bolt.OpenReadOnly(path, bolt.Config{Timeout: a.g.lockTimeout})
	if err != nil {
		return nil, lockedMessage(err, path)
	}
	return &store{Journal: j, bolt: j, path: path}, nil
}

// lockedMessage turns bolt.ErrLocked into the message the user needs.
func lockedMessage(err error, path string) error {
	if errors.Is(err, bolt.ErrLocked) {
		return fmt.Errorf("journal is in use by another process: %s (stop the process holding it, or raise --lock-timeout)", path)
	}
	return err
}

// closeStore closes s, reporting a close error only when there was no
// earlier one.
func closeStore(s *store, err *error) {
	if cerr := s.Close(); cerr != nil && *err == nil {
		*err = cerr
	}
}
