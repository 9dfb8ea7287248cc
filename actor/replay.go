package actor

import (
	"context"
	"fmt"
	"iter"
	"math"
	"reflect"
	"runtime"
	"strings"
	"sync/atomic"
	"time"

	"github.com/orchestrix/orchestrix"
	"github.com/orchestrix/orchestrix/aggregate"
	"github.com/orchestrix/orchestrix/journal"
	"github.com/orchestrix/orchestrix/snapshot"
)

// rebuilt is a state rebuilt from a snapshot and the journal.
type rebuilt[S, E any] struct {
	state           S
	version         uint64
	position        uint64 // position of the last event applied
	snapshotVersion uint64
	snapshotTime    time.Time
	replayed        int
	// dedup holds the results of the commands whose events fall in the
	// dedup window, rebuilt from the events' causation ids and times.
	dedup dedupCache[E]
}

// maxSnapshotFallbacks bounds how many older snapshots recovery tries when
// newer ones cannot be decoded.
const maxSnapshotFallbacks = 8

// rebuild recovers the state of aggregate id up to version to (inclusive)
// and, when until is set, only from events stamped at or before *until. It
// starts from the newest snapshot that matches and decodes, falling back to
// older snapshots and finally to a full replay. When lim is on it also
// rebuilds the dedup cache from the events stamped within the window
// before now (on the system's clock), reading events from before the
// snapshot when the window reaches back past it (see dedupFrom).
func (h *Handle[S, C, E]) rebuild(ctx context.Context, id string, to uint64, until *time.Time, lim dedupLimits) (rebuilt[S, E], error) {
	var out rebuilt[S, E]
	stream := h.Stream(id)
	state, err := h.def.InitialState(id)
	if err != nil {
		return out, err
	}
	out.state = state

	if store := h.sys.cfg.Snapshots; store != nil && to > 0 {
		crit := snapshot.Criteria{MaxVersion: to}
		if until != nil {
			crit.MaxTime = *until
		}
		h.loadSnapshot(ctx, store, stream, crit, &out)
	}

	from := out.snapshotVersion + 1
	var cutoff int64
	if lim.on() {
		cutoff = lim.cutoff(h.sys.cfg.Clock.Now().UnixNano())
		if out.snapshotVersion > 0 {
			var err error
			if from, err = h.dedupFrom(ctx, stream, out.snapshotVersion, out.snapshotTime, cutoff, lim); err != nil {
				return out, err
			}
		}
	}
	if from > to {
		return out, nil
	}

	reg := h.sys.cfg.Registry
	read, borrowed := h.replayReader()
	// With borrowed records, step copies what it keeps; lastCmd is the
	// last causation id it copied, reused while events repeat it.
	var lastCmd string
	evolve := h.def.Evolve
	var evolveErr error
	apply := func(s S, e E) (next S) {
		defer func() {
			if r := recover(); r != nil {
				evolveErr = &aggregate.PanicError{Func: "Evolve", Value: r}
				next = s
			}
		}()
		return evolve(s, e)
	}

	// step handles one record; stop reports that replay is complete.
	step := func(rec journal.Record, v any, decErr error) (stop bool, err error) {
		if until != nil && rec.Version > out.snapshotVersion && rec.Envelope.Time.After(*until) {
			return true, nil
		}
		if decErr != nil {
			return true, &journal.CorruptionError{Stream: stream, Version: rec.Version, Position: rec.Position, Err: decErr}
		}
		ev, ok := v.(E)
		if !ok {
			return true, &journal.CorruptionError{Stream: stream, Version: rec.Version, Position: rec.Position,
				Err: fmt.Errorf("event type %q (%T) is not an event of aggregate kind %q", rec.Envelope.Type, v, h.kind)}
		}
		if lim.on() && rec.Envelope.CausationID != "" {
			if at := rec.Envelope.Time.UnixNano(); at >= cutoff {
				cmdID := rec.Envelope.CausationID
				if borrowed {
					if cmdID != lastCmd {
						lastCmd = strings.Clone(cmdID)
					}
					cmdID = lastCmd
				}
				out.dedup.addEvent(cmdID, idTag(cmdID), ev, rec.Version, rec.Position, at, lim)
			}
		}
		if rec.Version <= out.snapshotVersion {
			return false, nil // read only for the dedup window
		}
		if rec.Version != out.version+1 {
			return true, &journal.CorruptionError{Stream: stream, Version: rec.Version, Position: rec.Position,
				Err: fmt.Errorf("events %d to %d are missing (deleted without a usable snapshot?)", out.version+1, rec.Version-1)}
		}
		out.state = apply(out.state, ev)
		if evolveErr != nil {
			return true, fmt.Errorf("replaying %s version %d: %w", stream, rec.Version, evolveErr)
		}
		out.version = rec.Version
		out.position = rec.Position
		out.replayed++
		return false, nil
	}

	// Short streams are decoded inline. Past parallelReplayAfter records
	// the rest of the stream is read again from where replay stands and
	// decoded by a pipeline of workers, in order — unless the journal
	// lends its records (borrowed): then every record is decoded inline,
	// straight from the journal's buffer. Handing records to workers would
	// mean copying each one first, and on PostgreSQL (the borrowing
	// journal) the copies, chunks and hand-offs cost more CPU than the
	// parallel decoding saved: client CPU per replayed event 2.4-2.9 us
	// with the pipeline against 1.5-1.6 us inline (BENCHMARKS.md), and
	// the server's side of the read runs on another core meanwhile.
	next := from
	n := 0
	stopped := false
	parallel := runtime.GOMAXPROCS(0) > 1 && !borrowed
	for rec, err := range read(ctx, stream, from, to, math.MaxInt) {
		if err != nil {
			return out, err
		}
		v, decErr := reg.Unmarshal(rec.Envelope)
		stop, err := step(rec, v, decErr)
		if err != nil {
			return out, err
		}
		if stop {
			stopped = true
			break
		}
		next = rec.Version + 1
		if n++; n == parallelReplayAfter && parallel && next <= to {
			break
		}
	}
	if !stopped && parallel && n == parallelReplayAfter && next <= to {
		if err := h.decodeParallel(ctx, stream, next, to, step); err != nil {
			return out, err
		}
	}
	return out, nil
}

// readFunc is the signature of journal.Journal.Read and
// journal.BorrowedReader.ReadBorrowed.
type readFunc func(ctx context.Context, stream string, from, to uint64, max int) iter.Seq2[journal.Record, error]

// replayReader returns how recovery reads a stream, and whether that read
// yields borrowed records (journal.BorrowedReader). Borrowed records are
// used only when the registry's codec is orchestrix.JSONCodec, whose
// decoding copies everything it keeps out of the payload (strings, byte
// slices, raw messages), so a decoded event never points into the
// journal's buffer; recovery copies the few attributes it keeps itself
// (the causation ids of the dedup window). With any other codec (which
// might keep slices of its input) recovery reads owned records with Read.
// Upcasters registered with the registry see borrowed payloads too: they
// must not keep their input (they return a new payload, or the input
// itself for the codec to decode). The journal may hold a connection
// while the loop runs, so Evolve runs with one held (it is meant to be a
// quick pure function anyway).
func (h *Handle[S, C, E]) replayReader() (readFunc, bool) {
	j := h.sys.cfg.Journal
	if br, ok := j.(journal.BorrowedReader); ok {
		switch h.sys.cfg.Registry.Codec().(type) {
		case orchestrix.JSONCodec, *orchestrix.JSONCodec:
			return br.ReadBorrowed, true
		}
	}
	return j.Read, false
}

// dedupFrom returns the version recovery reads from so that it sees every
// event stamped at or after cutoff, when state comes from a snapshot at
// snapVersion saved at snapTime. Events up to the snapshot are stamped no
// later than the snapshot (the same clock stamps both), so when the
// snapshot is older than the window nothing before it is read. Otherwise
// it probes single events at exponentially growing distances before the
// snapshot until one is older than the window, deleted, or version 1; the
// read then covers at most twice the window's events before the snapshot,
// and never more than lim.max of them (the cache keeps at most lim.max
// commands, and most commands have one event; of commands with several,
// fewer than lim.max may be restored).
//
// The alternative, keeping the command ids in the snapshot, would tie the
// dedup set to the snapshot format and store every id twice; the journal
// already holds each id (as causation id) with its time, and the read back
// is bounded by the window.
func (h *Handle[S, C, E]) dedupFrom(ctx context.Context, stream string, snapVersion uint64, snapTime time.Time, cutoff int64, lim dedupLimits) (uint64, error) {
	if !snapTime.IsZero() && snapTime.UnixNano() < cutoff {
		return snapVersion + 1, nil
	}
	limit := uint64(lim.max)
	for k := uint64(1); ; k *= 2 {
		if k >= snapVersion || k >= limit {
			k = min(snapVersion, limit)
			return snapVersion - k + 1, nil
		}
		v := snapVersion - k + 1
		found := false
		for rec, err := range h.sys.cfg.Journal.Read(ctx, stream, v, v, 1) {
			if err != nil {
				return 0, err
			}
			found = true
			if rec.Envelope.Time.UnixNano() < cutoff {
				return v, nil
			}
		}
		if !found {
			return v, nil // deleted (DeleteEventsOnSnapshot): read what is left
		}
	}
}

// parallelReplayAfter is the number of records recovery decodes inline
// before it switches to parallel decoding.
const parallelReplayAfter = 2048

// replayChunk is a run of records decoded together by one worker.
type replayChunk struct {
	recs []journal.Record
	vals []any
	errs []error
	err  error // read error ending the stream
	// claimed is set by whoever decodes the chunk: a worker, or the
	// in-order loop itself when it reaches a chunk no worker has started
	// (so that replay never waits for a worker the scheduler has not run,
	// and is no slower than inline decoding when the cores are busy).
	claimed atomic.Bool
	done    chan struct{}
}

// decode decodes c's records with reg, unless someone else claimed them
// first; it reports whether it did.
func (c *replayChunk) decode(reg *orchestrix.Registry) bool {
	if !c.claimed.CompareAndSwap(false, true) {
		return false
	}
	if cap(c.vals) < len(c.recs) {
		c.vals = make([]any, len(c.recs))
		c.errs = make([]error, len(c.recs))
	}
	c.vals, c.errs = c.vals[:len(c.recs)], c.errs[:len(c.recs)]
	for i := range c.recs {
		c.vals[i], c.errs[i] = reg.Unmarshal(c.recs[i].Envelope)
	}
	close(c.done)
	return true
}

const replayChunkSize = 256

// decodeParallel reads stream from..to and decodes the records on
// GOMAXPROCS workers, handing them to step in version order. It stops
// when step says so or returns an error.
func (h *Handle[S, C, E]) decodeParallel(ctx context.Context, stream string, from, to uint64,
	step func(journal.Record, any, error) (bool, error)) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	workers := max(1, runtime.GOMAXPROCS(0)-1) // the in-order loop decodes too
	work := make(chan *replayChunk, workers*2)
	ordered := make(chan *replayChunk, workers*4)
	// Chunks the in-order loop is done with go back to the reader through
	// free, which spares allocating (and the collector scanning) fresh
	// record and result slices for every chunk.
	free := make(chan *replayChunk, workers*4+2)
	reg := h.sys.cfg.Registry

	for range workers {
		go func() {
			for c := range work {
				c.decode(reg)
			}
		}()
	}
	go func() {
		defer close(ordered)
		defer close(work)
		send := func(c *replayChunk) bool {
			if c.err == nil {
				select {
				case work <- c:
				case <-ctx.Done():
					return false
				}
			}
			select {
			case ordered <- c:
				return true
			case <-ctx.Done():
				return false
			}
		}
		newChunk := func() *replayChunk {
			select {
			case c := <-free:
				c.recs, c.done = c.recs[:0], make(chan struct{})
				c.claimed.Store(false)
				return c
			default:
				return &replayChunk{recs: make([]journal.Record, 0, replayChunkSize), done: make(chan struct{})}
			}
		}
		c := newChunk()
		for rec, err := range h.sys.cfg.Journal.Read(ctx, stream, from, to, math.MaxInt) {
			if err != nil {
				if len(c.recs) > 0 && !send(c) {
					return
				}
				e := &replayChunk{err: err, done: make(chan struct{})}
				close(e.done)
				send(e)
				return
			}
			c.recs = append(c.recs, rec)
			if len(c.recs) == replayChunkSize {
				if !send(c) {
					return
				}
				c = newChunk()
			}
		}
		if len(c.recs) > 0 {
			send(c)
		}
	}()
	defer func() {
		cancel()
		for range ordered { // let the reader finish
		}
	}()
	for c := range ordered {
		if c.err != nil {
			return c.err
		}
		decodedHere := c.decode(reg)
		if !decodedHere {
			select {
			case <-c.done:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		for i := range c.recs {
			stop, err := step(c.recs[i], c.vals[i], c.errs[i])
			if err != nil {
				return err
			}
			if stop {
				return nil
			}
		}
		if decodedHere {
			// Its entry may still wait in work: a worker will find it
			// claimed and drop it. Not recycled, so that entry never sees
			// the chunk refilled.
			continue
		}
		select {
		case free <- c:
		default:
		}
	}
	return ctx.Err()
}

// loadSnapshot loads the newest decodable snapshot matching crit into out.
// Snapshots are optional, so a store error is logged and ignored: recovery
// then falls back to older snapshots or to a full replay.
func (h *Handle[S, C, E]) loadSnapshot(ctx context.Context, store snapshot.Store, stream string, crit snapshot.Criteria, out *rebuilt[S, E]) {
	for range maxSnapshotFallbacks {
		snap, ok, err := store.Load(ctx, stream, crit)
		if err != nil {
			h.sys.cfg.Logger.Warn("snapshot load failed; replaying events", "stream", stream, "error", err)
			return
		}
		if !ok {
			return
		}
		if snap.Type == h.kind && snap.SchemaVersion == h.def.SchemaVersion() {
			state, err := h.decodeState(ctx, stream, snap.Data)
			if err == nil {
				out.state = state
				out.version = snap.Version
				out.snapshotVersion = snap.Version
				out.snapshotTime = snap.Time
				return
			}
			h.sys.cfg.Logger.Warn("snapshot does not decode; trying an older one", "stream", stream, "version", snap.Version, "error", err)
		}
		if snap.Version <= 1 {
			return
		}
		crit.MaxVersion = snap.Version - 1
	}
}

// envelopesFor encodes the events of one command, appending their
// envelopes to dst and, where the registry can, their payloads to buf
// (see Registry.AppendMarshalFor: the envelopes' Data then point into
// buf, which must not be reused before the append has reported).
func (h *Handle[S, C, E]) envelopesFor(cmd aggregate.Command[C], events []E, now time.Time, dst []orchestrix.Envelope, buf []byte) ([]orchestrix.Envelope, []byte, error) {
	corr := cmd.CorrelationID
	if corr == "" {
		corr = cmd.ID
	}
	// A concrete event type is passed by pointer, which spares boxing a
	// copy of each event (an interface or pointer type is boxed for free).
	byPointer := eventsByPointer[E]()
	reg := h.sys.cfg.Registry
	for i := range events {
		var v any
		if byPointer {
			v = &events[i]
		} else {
			v = events[i]
		}
		env, out, err := reg.AppendMarshalFor(h.sys.bg, buf, cmd.AggregateID, v)
		if err != nil {
			return dst, buf, err
		}
		buf = out
		env.Source = h.sys.cfg.Source
		env.Subject = cmd.AggregateID
		env.Time = now
		env.CausationID = cmd.ID
		env.CorrelationID = corr
		env.TraceParent = cmd.TraceParent
		dst = append(dst, env)
	}
	return dst, buf, nil
}

// eventsByPointer reports whether envelopesFor passes events of type E to
// the registry as *E: when E is neither an interface nor a pointer type.
func eventsByPointer[E any]() bool {
	switch reflect.TypeFor[E]().Kind() {
	case reflect.Interface, reflect.Pointer:
		return false
	}
	return true
}
