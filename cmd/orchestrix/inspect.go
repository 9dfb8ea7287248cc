package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/orchestrix/orchestrix"
	"github.com/orchestrix/orchestrix/journal"
	"github.com/orchestrix/orchestrix/journal/bolt"
)

var streamsCommand = &command{
	name:    "streams",
	args:    "[--json]",
	summary: "list the streams with their head versions",
	help: `
Lists every stream ever written, by name, with its head (the highest
version ever stored), the version up to which its events were deleted, and
the number of events it holds. With --json each stream is one JSON object
per line: {"stream":…,"head":…,"deleted_to":…,"events":…}.`,
	setFlags: func(fs *flag.FlagSet) func(*app, []string) error {
		asJSON := fs.Bool("json", false, "print JSON lines instead of a table")
		return func(a *app, args []string) (err error) {
			if len(args) > 0 {
				return usagef("unexpected argument %q", args[0])
			}
			s, err := a.open(false)
			if err != nil {
				return err
			}
			defer closeStore(s, &err)
			lister, ok := s.Journal.(journal.StreamLister)
			if !ok {
				return errors.New("this journal cannot list its streams")
			}
			out := bufio.NewWriter(a.stdout)
			defer flush(out, &err)
			var tw *tabwriter.Writer
			if !*asJSON {
				tw = tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
				fmt.Fprintln(tw, "STREAM\tHEAD\tDELETED TO\tEVENTS\t")
			}
			for info, err := range lister.Streams(a.ctx) {
				if err != nil {
					return err
				}
				if *asJSON {
					b, err := json.Marshal(streamLine{Stream: info.Name, Head: info.Head, DeletedTo: info.DeletedTo, Events: info.Events()})
					if err != nil {
						return err
					}
					out.Write(append(b, '\n'))
					continue
				}
				fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t\n", info.Name, info.Head, info.DeletedTo, info.Events())
			}
			if tw != nil {
				return tw.Flush()
			}
			return nil
		}
	},
}

type streamLine struct {
	Stream    string `json:"stream"`
	Head      uint64 `json:"head"`
	DeletedTo uint64 `json:"deleted_to"`
	Events    uint64 `json:"events"`
}

func flush(w *bufio.Writer, err *error) {
	if ferr := w.Flush(); ferr != nil && *err == nil {
		*err = ferr
	}
}

var eventsCommand = &command{
	name:    "events",
	args:    "STREAM [--from N] [--to N] [--at TIME]",
	summary: "print a stream's events as CloudEvents JSON lines",
	help: `
Prints the events of STREAM in version order, one CloudEvents JSON object
(structured mode) per line; the "sequence" attribute is the version.
--from and --to bound the versions (inclusive). --at (RFC 3339, e.g.
2025-03-01T12:00:00Z) keeps only the events whose time is at or before
TIME: the stream as it stood then. A stream that was never written is an
error.`,
	setFlags: func(fs *flag.FlagSet) func(*app, []string) error {
		from := fs.Uint64("from", 1, "first `VERSION` to print")
		to := fs.Uint64("to", 0, "last `VERSION` to print (default: the head)")
		at := fs.String("at", "", "print only events with time at or before `TIME` (RFC 3339)")
		return func(a *app, args []string) (err error) {
			if len(args) != 1 {
				return usagef("want exactly one STREAM argument, got %d", len(args))
			}
			stream := args[0]
			var until time.Time
			if *at != "" {
				until, err = time.Parse(time.RFC3339Nano, *at)
				if err != nil {
					return usagef("--at: %v", err)
				}
			}
			upper := *to
			if upper == 0 {
				upper = math.MaxUint64
			}
			if *from > upper {
				return usagef("--from %d is above --to %d", *from, upper)
			}
			s, err := a.open(false)
			if err != nil {
				return err
			}
			defer closeStore(s, &err)
			head, err := s.Head(a.ctx, stream)
			if err != nil {
				return err
			}
			if head == 0 {
				return fmt.Errorf("stream %q not found in %s", stream, a.describe())
			}
			out := bufio.NewWriter(a.stdout)
			defer flush(out, &err)
			for rec, err := range s.Read(a.ctx, stream, *from, upper, math.MaxInt) {
				if err != nil {
					return err
				}
				if !until.IsZero() && rec.Envelope.Time.After(until) {
					continue
				}
				b, err := rec.Envelope.MarshalJSON()
				if err != nil {
					return fmt.Errorf("stream %q version %d: %w", stream, rec.Version, err)
				}
				out.Write(append(b, '\n'))
			}
			return nil
		}
	},
}

// recordLine is one line of tail and export output, and of import input.
type recordLine struct {
	Stream   string          `json:"stream"`
	Version  uint64          `json:"version"`
	Position uint64          `json:"position,omitempty"`
	Event    json.RawMessage `json:"event"`
}

// appendRecordLine appends rec as a JSON line to dst.
func appendRecordLine(dst []byte, rec journal.Record) ([]byte, error) {
	ev, err := rec.Envelope.MarshalJSON()
	if err != nil {
		return dst, fmt.Errorf("stream %q version %d position %d: %w", rec.Stream, rec.Version, rec.Position, err)
	}
	b, err := json.Marshal(recordLine{Stream: rec.Stream, Version: rec.Version, Position: rec.Position, Event: ev})
	if err != nil {
		return dst, err
	}
	return append(append(dst, b...), '\n'), nil
}

var tailCommand = &command{
	name:    "tail",
	args:    "[--from POS | -n N] [--follow]",
	summary: "print the global log as JSON lines, optionally following it",
	help: `
Prints committed records of all streams in commit (global position)
order, one JSON object per line:
  {"stream":…,"version":…,"position":…,"event":{CloudEvents JSON}}
Without --from it starts with the records among the last N positions
(-n, default 10; positions of deleted events count too). With --follow it
then waits for new commits and prints them as they come, until
interrupted (Ctrl-C). --follow works on PostgreSQL journals only: a bbolt
file is held by one process at a time, so no other process could append
while tail has it open.`,
	setFlags: func(fs *flag.FlagSet) func(*app, []string) error {
		from := fs.Uint64("from", 0, "first global `POSITION` to print")
		n := fs.Uint64("n", 10, "without --from, start this many positions before the end")
		follow := fs.Bool("follow", false, "keep printing new records as they are committed")
		return func(a *app, args []string) (err error) {
			if len(args) > 0 {
				return usagef("unexpected argument %q", args[0])
			}
			fromSet := false
			fs.Visit(func(f *flag.Flag) { fromSet = fromSet || f.Name == "from" })
			if *follow && a.g.pg == "" {
				return errors.New("--follow needs a journal other processes can append to (--pg): " +
					"a bbolt file is held by one process at a time, so nothing can be appended while tail has it open")
			}
			s, err := a.open(false)
			if err != nil {
				return err
			}
			defer closeStore(s, &err)
			w, ok := s.Journal.(journal.Watcher)
			if !ok {
				return errors.New("this journal cannot report its last position")
			}
			last, err := w.LastPosition(a.ctx)
			if err != nil {
				return err
			}
			next := *from
			if !fromSet {
				next = 1
				if last > *n {
					next = last - *n + 1
				}
			}
			out := bufio.NewWriter(a.stdout)
			defer flush(out, &err)
			var line []byte
			for {
				for rec, err := range s.ReadAll(a.ctx, next, math.MaxInt) {
					if err != nil {
						return err
					}
					if line, err = appendRecordLine(line[:0], rec); err != nil {
						return err
					}
					out.Write(line)
					next = rec.Position + 1
				}
				// Everything up to last was committed before the read.
				next = max(next, last+1)
				if !*follow {
					return nil
				}
				if err := out.Flush(); err != nil {
					return err
				}
				last, err = w.WaitFor(a.ctx, next-1)
				if err != nil {
					if a.ctx.Err() != nil {
						return nil // interrupted: a normal end of --follow
					}
					return err
				}
			}
		}
	},
}

var statsCommand = &command{
	name:    "stats",
	args:    "[--json]",
	summary: "counts, positions and storage size",
	help: `
Prints the number of streams and of events (stored and deleted), the first
and last global positions, the storage size (the bbolt file, or the
PostgreSQL tables with their indexes) and the last committed record (its
position, stream, version and event time).`,
	setFlags: func(fs *flag.FlagSet) func(*app, []string) error {
		asJSON := fs.Bool("json", false, "print one JSON object")
		return func(a *app, args []string) (err error) {
			if len(args) > 0 {
				return usagef("unexpected argument %q", args[0])
			}
			s, err := a.open(false)
			if err != nil {
				return err
			}
			defer closeStore(s, &err)
			st, err := collectStats(a, s)
			if err != nil {
				return err
			}
			if *asJSON {
				b, err := json.Marshal(st)
				if err != nil {
					return err
				}
				_, err = a.stdout.Write(append(b, '\n'))
				return err
			}
			tw := tabwriter.NewWriter(a.stdout, 0, 0, 2, ' ', 0)
			fmt.Fprintf(tw, "journal:\t%s\n", st.Journal)
			fmt.Fprintf(tw, "streams:\t%d\n", st.Streams)
			fmt.Fprintf(tw, "events:\t%d stored, %d deleted\n", st.Events, st.Deleted)
			fmt.Fprintf(tw, "positions:\t%d … %d\n", st.FirstPosition, st.LastPosition)
			fmt.Fprintf(tw, "size:\t%s (%d bytes)\n", humanBytes(st.SizeBytes), st.SizeBytes)
			if st.LastCommit != nil {
				lc := st.LastCommit
				fmt.Fprintf(tw, "last commit:\tposition %d, stream %q version %d, event time %s\n",
					lc.Position, lc.Stream, lc.Version, formatTime(lc.Time))
			} else {
				fmt.Fprintf(tw, "last commit:\tnone\n")
			}
			return tw.Flush()
		}
	},
}

type stats struct {
	Journal       string      `json:"journal"`
	Streams       int         `json:"streams"`
	Events        uint64      `json:"events"`
	Deleted       uint64      `json:"deleted"`
	FirstPosition uint64      `json:"first_position"`
	LastPosition  uint64      `json:"last_position"`
	SizeBytes     int64       `json:"size_bytes"`
	LastCommit    *lastCommit `json:"last_commit,omitempty"`
}

type lastCommit struct {
	Position uint64    `json:"position"`
	Stream   string    `json:"stream"`
	Version  uint64    `json:"version"`
	Time     time.Time `json:"time"`
}

func collectStats(a *app, s *store) (stats, error) {
	st := stats{Journal: a.describe()}
	lister, ok := s.Journal.(journal.StreamLister)
	if !ok {
		return st, errors.New("this journal cannot list its streams")
	}
	for info, err := range lister.Streams(a.ctx) {
		if err != nil {
			return st, err
		}
		st.Streams++
		st.Events += info.Events()
		st.Deleted += info.Head - info.Events()
	}
	if w, ok := s.Journal.(journal.Watcher); ok {
		last, err := w.LastPosition(a.ctx)
		if err != nil {
			return st, err
		}
		st.LastPosition = last
	}
	for rec, err := range s.ReadAll(a.ctx, 0, 1) {
		if err != nil {
			return st, err
		}
		st.FirstPosition = rec.Position
	}
	if st.LastPosition > 0 {
		// The newest stored record (the newest positions may be deleted).
		for from := st.LastPosition; from > 0 && st.LastCommit == nil; {
			lo := from - min(from-1, 1023)
			for rec, err := range s.ReadAll(a.ctx, lo, 1024) {
				if err != nil {
					return st, err
				}
				if rec.Position > from {
					break
				}
				st.LastCommit = &lastCommit{Position: rec.Position, Stream: rec.Stream, Version: rec.Version, Time: rec.Envelope.Time}
			}
			from = lo - 1
		}
	}
	switch {
	case s.bolt != nil:
		fi, err := os.Stat(s.path)
		if err != nil {
			return st, err
		}
		st.SizeBytes = fi.Size()
	case s.pg != nil:
		n, err := s.pg.StorageSize(a.ctx)
		if err != nil {
			return st, err
		}
		st.SizeBytes = n
	}
	return st, nil
}

func formatTime(t time.Time) string {
	if t.IsZero() {
		return "(none)"
	}
	return t.Format(time.RFC3339Nano)
}

func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

var checkCommand = &command{
	name:    "check",
	args:    "",
	summary: "verify checksums, versions, index and heads; exit 1 on problems",
	help: `
Reads every stored record and verifies its checksum and encoding, that
each stream's versions run from its deletion point to its head without
gaps or duplicates, that each head is at least the highest version stored,
and that the backend's index (bbolt: journal.index and journal.streams;
PostgreSQL: the event_id, type and event_time columns and the position
counter) agrees with the records.

A clean journal prints a one-line summary and exits 0. Otherwise every
problem is printed on its own line, naming the stream, version and global
position where known, followed by a count, and the exit status is 1. At
most 1000 problems are listed.

A bbolt file is opened read-only and never changed, so check also works on
a file the runtime refuses to open (it cannot run while another process
holds the file). On PostgreSQL the check reads one consistent snapshot
while appends go on.`,
	setFlags: func(fs *flag.FlagSet) func(*app, []string) error {
		return func(a *app, args []string) (err error) {
			if len(args) > 0 {
				return usagef("unexpected argument %q", args[0])
			}
			var rep journal.CheckReport
			if a.g.pg == "" {
				path := a.boltPath()
				if _, err := os.Stat(path); err != nil {
					if errors.Is(err, os.ErrNotExist) {
						return fmt.Errorf("no journal at %s (use --data DIR or --pg DSN)", path)
					}
					return err
				}
				rep, err = bolt.CheckFile(a.ctx, path, a.g.lockTimeout)
				if errors.Is(err, orchestrix.ErrCorrupt) {
					// The file's own structure (bbolt's pages) is damaged:
					// no record can be trusted to be found.
					fmt.Fprintf(a.stdout, "damaged: %v\n", err)
					fmt.Fprintf(a.stdout, "FAILED: the file %s is damaged (its bbolt pages, not the journal's records), so it could not be checked\n", path)
					fmt.Fprintf(a.stdout, "what to do: restore the file from a backup; keep the damaged file for diagnosis\n")
					return errProblems
				}
				if err != nil {
					return lockedMessage(err, path)
				}
			} else {
				var s *store
				if s, err = a.open(false); err != nil {
					return err
				}
				defer closeStore(s, &err)
				checker, ok := s.Journal.(journal.Checker)
				if !ok {
					return errors.New("this journal cannot be checked")
				}
				if rep, err = checker.Check(a.ctx); err != nil {
					return err
				}
			}
			summary := fmt.Sprintf("%d streams, %d records, last position %d", rep.Streams, rep.Records, rep.LastPosition)
			if rep.OK() {
				fmt.Fprintf(a.stdout, "ok: %s: no problems found\n", summary)
				return nil
			}
			out := bufio.NewWriter(a.stdout)
			for _, p := range rep.Problems {
				fmt.Fprintf(out, "problem: %s\n", p)
			}
			n := len(rep.Problems) + rep.Omitted
			if rep.Omitted > 0 {
				fmt.Fprintf(out, "(%d more problems not listed)\n", rep.Omitted)
			}
			fmt.Fprintf(out, "FAILED: %d problem(s) in %s (%s)\n", n, a.describe(), summary)
			if names := problemStreams(rep); len(names) > 0 {
				intact := "the file is intact, but "
				if a.g.pg != "" {
					intact = "" // no file: the rows are readable, their contents are not
				}
				fmt.Fprintf(out, "%sthe journal is inconsistent in %d stream(s): %s\n", intact, len(names), strings.Join(names, ", "))
			}
			fmt.Fprintf(out, "what to do: restore from a backup, or copy what is readable with export (events of the streams above may be missing or fail to read)\n")
			if err := out.Flush(); err != nil {
				return err
			}
			return errProblems
		}
	},
}

// problemStreams returns the names of the streams a check report names,
// sorted, at most 20 (then "…").
func problemStreams(rep journal.CheckReport) []string {
	seen := make(map[string]bool)
	var names []string
	for _, p := range rep.Problems {
		if p.Stream != "" && !seen[p.Stream] {
			seen[p.Stream] = true
			names = append(names, p.Stream)
		}
	}
	slices.Sort(names)
	if len(names) > 20 {
		names = append(names[:20], "…")
	}
	return names
}
