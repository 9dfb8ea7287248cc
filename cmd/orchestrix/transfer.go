package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/orchestrix/orchestrix"
	"github.com/orchestrix/orchestrix/journal"
	"github.com/orchestrix/orchestrix/journal/bolt"
)

var exportCommand = &command{
	name:    "export",
	args:    "[--out FILE] [--progress] [--salvage]",
	summary: "write every event as JSON lines",
	help: `
Writes every stored event of every stream in global position order, one
JSON object per line:
  {"stream":…,"version":…,"position":…,"event":{CloudEvents JSON}}
to FILE (written under a temporary name and renamed when complete) or to
standard output. Deleted events are not exported. The output is what
'orchestrix import' reads.

A progress indicator is written to standard error when it is a terminal,
or always with --progress.

With --salvage (bbolt only) the file is read without bbolt, for a file
that 'orchestrix check' reports damaged: every record still readable is
exported, and each damaged page, commit block or record skipped is listed
on standard error. The exit status is then 1 when anything was skipped,
although the output is complete for what could be read. The file is not
changed; nothing else may have it open meanwhile.`,
	setFlags: func(fs *flag.FlagSet) func(*app, []string) error {
		outPath := fs.String("out", "", "write to `FILE` instead of standard output")
		progress := fs.Bool("progress", false, "show progress on standard error even when it is not a terminal")
		salvage := fs.Bool("salvage", false, "read a damaged bbolt file without bbolt, skipping (and listing) what is unreadable")
		return func(a *app, args []string) (err error) {
			if len(args) > 0 {
				return usagef("unexpected argument %q", args[0])
			}
			var (
				total   uint64
				records func(func(journal.Record) error) error
			)
			if *salvage {
				if a.g.pg != "" {
					return usagef("--salvage reads a bbolt file; it does not apply to --pg")
				}
				path := a.boltPath()
				if _, err := os.Stat(path); err != nil {
					return err
				}
				var rep bolt.SalvageReport
				defer func() {
					for _, s := range rep.Skipped {
						fmt.Fprintf(a.stderr, "skipped: %s\n", s)
					}
					if err == nil && len(rep.Skipped) > 0 {
						fmt.Fprintf(a.stderr, "salvage: %d records exported, %d unreadable part(s) skipped (listed above)\n", rep.Records, len(rep.Skipped))
						err = errProblems
					}
				}()
				records = func(fn func(journal.Record) error) error {
					var err error
					rep, err = bolt.SalvageFile(a.ctx, path, fn)
					return err
				}
			} else {
				var s *store
				if s, err = a.open(false); err != nil {
					return err
				}
				defer closeStore(s, &err)
				if w, ok := s.Journal.(journal.Watcher); ok {
					if total, err = w.LastPosition(a.ctx); err != nil {
						return err
					}
				}
				records = func(fn func(journal.Record) error) error {
					for rec, err := range s.ReadAll(a.ctx, 0, math.MaxInt) {
						if err != nil {
							return err
						}
						if err := fn(rec); err != nil {
							return err
						}
					}
					return nil
				}
			}
			dst := a.stdout
			var tmp *os.File
			if *outPath != "" {
				tmp, err = os.CreateTemp(filepath.Dir(*outPath), "."+filepath.Base(*outPath)+".*")
				if err != nil {
					return err
				}
				defer func() {
					if tmp != nil {
						tmp.Close()
						os.Remove(tmp.Name())
					}
				}()
				dst = tmp
			}
			out := bufio.NewWriterSize(dst, 1<<16)
			pr := newProgress(a.stderr, *progress, "export")
			var (
				line    []byte
				events  uint64
				streams = make(map[string]struct{})
			)
			err = records(func(rec journal.Record) error {
				var err error
				if line, err = appendRecordLine(line[:0], rec); err != nil {
					return err
				}
				if _, err := out.Write(line); err != nil {
					return err
				}
				events++
				streams[rec.Stream] = struct{}{}
				pr.update(func() string {
					return fmt.Sprintf("%d events, position %d of %d (%s)", events, rec.Position, total, percent(rec.Position, total))
				})
				return nil
			})
			if err != nil {
				return err
			}
			if err := out.Flush(); err != nil {
				return err
			}
			if tmp != nil {
				if err := tmp.Sync(); err != nil {
					return err
				}
				if err := tmp.Close(); err != nil {
					return err
				}
				if err := os.Rename(tmp.Name(), *outPath); err != nil {
					return err
				}
				tmp = nil
			}
			pr.done(fmt.Sprintf("exported %d events of %d streams", events, len(streams)))
			return nil
		}
	},
}

var importCommand = &command{
	name:    "import",
	args:    "[--in FILE] [--format export|cloudevents] [--stream TEMPLATE] [--dry-run] [--progress]",
	summary: "append the events of an export (or of CloudEvents), idempotently",
	help: `
Reads the JSON lines of 'orchestrix export' from FILE or standard input and
appends each event to its stream at its version, expecting the stream to
be exactly at the previous version. Consecutive lines of one stream are
appended together. The target journal is created if it does not exist.

Importing is idempotent: events already stored at their versions with the
same event ids are recognised and skipped, so an interrupted import can
simply be run again, and importing the same export twice changes nothing.
An import that disagrees with the journal is refused with an error naming
the line, stream and version: different events stored at those versions,
or a stream whose earlier versions are neither in the journal nor in the
import (an export taken after events were deleted cannot be imported into
an empty journal). Everything before the refused line stays imported.

Events are appended in the order of the file, so their global order is
kept; positions are assigned by the target journal (the "position" member
is ignored).

With --format cloudevents the input is structured-mode CloudEvents JSON
written by another producer (the Python Orchestrix, say): one event per
line, or JSON arrays of events (application/cloudevents-batch+json). Each
event goes to the stream --stream names, a template over its attributes
(default "{subject}"; also {type}, {source}, {id}, {correlationid} and
extension names, e.g. "order-{subject}"). Its version is its "sequence"
extension when present; otherwise the events of a stream get versions
1, 2, 3, ... in file order. Event ids are kept, so importing the same file
again changes nothing.

Either format: an event stored with the same id as an imported one but
with different data is refused as a conflict; input that is not valid
UTF-8 is refused with its line number, never rewritten; events read
before a refused or malformed line stay imported. --dry-run only reads
the journal and reports what would be imported.

A progress indicator is written to standard error when it is a terminal,
or always with --progress.`,
	setFlags: func(fs *flag.FlagSet) func(*app, []string) error {
		inPath := fs.String("in", "", "read `FILE` instead of standard input")
		progress := fs.Bool("progress", false, "show progress on standard error even when it is not a terminal")
		format := fs.String("format", "export", "input `FORMAT`: export (orchestrix export lines) or cloudevents")
		streamTmpl := fs.String("stream", "{subject}", "with --format cloudevents, the stream `TEMPLATE` over event attributes")
		dryRun := fs.Bool("dry-run", false, "report what would be imported without changing the journal")
		return func(a *app, args []string) (err error) {
			if len(args) > 0 {
				return usagef("unexpected argument %q", args[0])
			}
			if *format != "export" && *format != "cloudevents" {
				return usagef("--format %q: want export or cloudevents", *format)
			}
			tmpl, err := parseStreamTemplate(*streamTmpl)
			if err != nil {
				return usagef("--stream: %v", err)
			}
			src := a.stdin
			var size int64
			if *inPath != "" {
				f, err := os.Open(*inPath)
				if err != nil {
					return err
				}
				defer f.Close()
				if fi, err := f.Stat(); err == nil {
					size = fi.Size()
				}
				src = f
			}
			s, err := a.open(!*dryRun)
			if err != nil {
				return err
			}
			defer closeStore(s, &err)
			im := &importer{app: a, s: s, pr: newProgress(a.stderr, *progress, "import"), size: size,
				cloudEvents: *format == "cloudevents", tmpl: tmpl, dryRun: *dryRun}
			if err := im.run(src); err != nil {
				im.pr.done(im.summary())
				return err
			}
			im.pr.done(im.summary())
			return nil
		}
	},
}

// maxImportBatch is the most events one import append carries.
const maxImportBatch = 512

// importer appends the lines of an export.
type importer struct {
	app  *app
	s    *store
	pr   *progress
	size int64 // bytes of the input, 0 when unknown

	cloudEvents bool              // input is CloudEvents, not export lines
	tmpl        streamTemplate    // with cloudEvents, the stream of an event
	dryRun      bool              // check and count only
	fileVers    map[string]uint64 // with cloudEvents, each stream's last version in the file

	read              int64  // bytes read so far
	handed            uint64 // events handed to the journal, for progress
	imported, skipped atomic.Uint64
	streams           map[string]struct{}
	heads             map[string]uint64 // each stream's head once the appends queued so far commit

	// Appends queued on a journal that commits asynchronously (bbolt):
	// queued in input order, so positions keep the export's order, and
	// group-committed instead of one commit per stream run.
	inflight chan struct{} // one token per queued append
	queued   sync.WaitGroup
	errMu    sync.Mutex
	asyncErr error // the first failed queued append

	// The batch being collected: consecutive versions of one stream.
	batch      []orchestrix.Envelope
	batchLine  int
	stream     string
	firstVer   uint64
	batchBytes int
}

func (im *importer) summary() string {
	if im.dryRun {
		return fmt.Sprintf("dry run: would import %d events (%d already present) into %d streams; nothing was changed",
			im.imported.Load(), im.skipped.Load(), len(im.streams))
	}
	return fmt.Sprintf("imported %d events (%d already present) into %d streams", im.imported.Load(), im.skipped.Load(), len(im.streams))
}

// maxQueuedImports bounds the appends queued at once on an asynchronous
// journal.
const maxQueuedImports = 4096

// run imports the export read from src and returns once every append has
// its outcome.
func (im *importer) run(src io.Reader) error {
	im.streams = make(map[string]struct{})
	im.heads = make(map[string]uint64)
	im.inflight = make(chan struct{}, maxQueuedImports)
	err := im.readLines(src)
	im.queued.Wait()
	if qerr := im.queuedErr(); qerr != nil {
		return qerr // it comes from an earlier line than err
	}
	return err
}

// flush appends the collected batch: the part the journal already holds
// must be a duplicate of it, the rest is appended after it.
func (im *importer) flush() error {
	if len(im.batch) == 0 {
		return nil
	}
	if err := im.queuedErr(); err != nil {
		return err
	}
	ctx, stream, evs, first, line := im.app.ctx, im.stream, im.batch, im.firstVer, im.batchLine
	im.batch = nil
	im.handed += uint64(len(evs))
	im.streams[stream] = struct{}{}
	head, known := im.heads[stream]
	if !known {
		var err error
		if head, err = im.s.Head(ctx, stream); err != nil {
			return fmt.Errorf("line %d: stream %q: %w", line, stream, err)
		}
	}
	if head+1 < first {
		return fmt.Errorf("line %d: stream %q is at version %d in %s but the import continues at version %d: "+
			"versions %d..%d are in neither (was the export taken after events were deleted, or is part of it missing?)",
			line, stream, head, im.app.describe(), first, head+1, first-1)
	}
	im.heads[stream] = max(head, first+uint64(len(evs))-1)
	if head >= first {
		k := min(head-first+1, uint64(len(evs)))
		if err := im.append(ctx, line, stream, first, evs[:k], true); err != nil {
			return err
		}
		evs, first, line = evs[k:], first+k, line+int(k)
	}
	if len(evs) > 0 {
		if err := im.append(ctx, line, stream, first, evs, false); err != nil {
			return err
		}
	}
	im.pr.update(func() string {
		done := im.handed
		if im.size > 0 {
			return fmt.Sprintf("%d events (%s of the input)", done, percent(uint64(im.read), uint64(im.size)))
		}
		return fmt.Sprintf("%d events", done)
	})
	return nil
}

// append stores evs at versions first.. of stream (a duplicate of events
// already there counts as skipped). On a bbolt journal it is queued,
// unless it overlaps what the journal held before (overlap): only such an
// append can be refused as conflicting data, so it waits for everything
// queued before it and is appended at once, and the import stops there
// with nothing after it stored, as on other journals.
func (im *importer) append(ctx context.Context, line int, stream string, first uint64, evs []orchestrix.Envelope, overlap bool) error {
	count := func(res journal.AppendResult) {
		if res.Duplicate {
			im.skipped.Add(uint64(len(evs)))
		} else {
			im.imported.Add(uint64(len(evs)))
		}
	}
	if overlap {
		// The journal holds these versions: they must be these very
		// events (same ids, same type and data), which are then skipped.
		im.queued.Wait()
		if err := im.queuedErr(); err != nil {
			return err
		}
		if err := im.sameAsStored(ctx, line, stream, first, evs); err != nil {
			return err
		}
		im.skipped.Add(uint64(len(evs)))
		return nil
	}
	if im.dryRun {
		im.imported.Add(uint64(len(evs)))
		return nil
	}
	if im.s.bolt == nil {
		res, err := im.s.Append(ctx, stream, journal.Exact(first-1), evs)
		if err != nil {
			return importErr(line, stream, first, err)
		}
		count(res)
		return nil
	}
	im.inflight <- struct{}{}
	im.queued.Add(1)
	err := im.s.bolt.AppendAsync(ctx, stream, journal.Exact(first-1), evs, func(res journal.AppendResult, err error) {
		if err != nil {
			im.setQueuedErr(importErr(line, stream, first, err))
		} else {
			count(res)
		}
		<-im.inflight
		im.queued.Done()
	})
	if err != nil {
		<-im.inflight
		im.queued.Done()
		return importErr(line, stream, first, err)
	}
	return nil
}

// sameAsStored checks that the journal holds evs at versions first.. of
// stream: the same ids, types and data (JSON compared after compaction).
func (im *importer) sameAsStored(ctx context.Context, line int, stream string, first uint64, evs []orchestrix.Envelope) error {
	i := 0
	for rec, err := range im.s.Read(ctx, stream, first, first+uint64(len(evs))-1, len(evs)) {
		if err != nil {
			return importErr(line+i, stream, first+uint64(i), err)
		}
		for i < len(evs) && first+uint64(i) < rec.Version {
			i++ // deleted in the journal: nothing to compare
		}
		if i == len(evs) {
			break
		}
		want, got := evs[i], rec.Envelope
		switch {
		case want.ID != got.ID:
			return importErr(line+i, stream, rec.Version, fmt.Errorf("%w: the journal holds event %q there, the import has %q",
				orchestrix.ErrVersionConflict, got.ID, want.ID))
		case want.Type != got.Type || !sameData(want.Data, got.Data):
			return fmt.Errorf("line %d: stream %q version %d: conflict: event %q is stored with different type or data; refusing to import",
				line+i, stream, rec.Version, want.ID)
		}
		i++
	}
	return nil
}

func sameData(a, b []byte) bool {
	if bytes.Equal(a, b) {
		return true
	}
	var ca, cb bytes.Buffer
	return json.Compact(&ca, a) == nil && json.Compact(&cb, b) == nil && bytes.Equal(ca.Bytes(), cb.Bytes())
}

func (im *importer) setQueuedErr(err error) {
	im.errMu.Lock()
	defer im.errMu.Unlock()
	if im.asyncErr == nil {
		im.asyncErr = err
	}
}

func (im *importer) queuedErr() error {
	im.errMu.Lock()
	defer im.errMu.Unlock()
	return im.asyncErr
}

func importErr(line int, stream string, version uint64, err error) error {
	if errors.Is(err, orchestrix.ErrVersionConflict) {
		return fmt.Errorf("line %d: stream %q version %d: conflicting data: the journal holds other events at this version; refusing to import (%w)",
			line, stream, version, err)
	}
	return fmt.Errorf("line %d: stream %q version %d: %w", line, stream, version, err)
}

// progress writes a progress indicator to a terminal (rewriting one line)
// or, when forced, to any writer (one line per update), at most a few
// times a second.
type progress struct {
	w        io.Writer
	enabled  bool
	terminal bool
	verb     string
	last     time.Time
	shown    bool
}

func newProgress(w io.Writer, force bool, verb string) *progress {
	term := isTerminal(w)
	return &progress{w: w, enabled: force || term, terminal: term, verb: verb}
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// update shows msg() unless the last update was very recent.
func (p *progress) update(msg func() string) {
	if !p.enabled {
		return
	}
	now := time.Now()
	if p.shown && now.Sub(p.last) < 250*time.Millisecond {
		return
	}
	p.last, p.shown = now, true
	if p.terminal {
		fmt.Fprintf(p.w, "\r\033[K%s: %s", p.verb, msg())
		return
	}
	fmt.Fprintf(p.w, "%s: %s\n", p.verb, msg())
}

// done ends the indicator and prints the final summary line.
func (p *progress) done(summary string) {
	if p.terminal && p.shown {
		fmt.Fprint(p.w, "\r\033[K")
	}
	fmt.Fprintf(p.w, "%s\n", summary)
}

func percent(done, total uint64) string {
	if total == 0 {
		return "100%"
	}
	return fmt.Sprintf("%.0f%%", 100*float64(min(done, total))/float64(total))
}
