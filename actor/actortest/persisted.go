package actortest

import (
	"context"
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/orchestrix/orchestrix"
	"github.com/orchestrix/orchestrix/journal"
)

// WaitTimeout is the wall-clock bound of every wait of the test kits
// (actortest, projectiontest, sagatest): a liveness limit for work that
// runs in real time, never a way to let system time pass (see Clocks in
// the package documentation). A passing test does not wait for it to run
// out.
const WaitTimeout = 10 * time.Second

// DefaultProbeWait is how long an EventProbe waits, on the wall clock, for
// an event that has not been persisted yet.
const DefaultProbeWait = WaitTimeout

// EventProbe watches the events persisted to a journal after the probe was
// created, in commit order, optionally only those of one aggregate kind or
// one stream. It works with every journal.Journal (mem, bolt, postgres),
// so integration tests can use it on the real backend.
//
// # Clocks
//
// A probe's waits (Wait, and the within of ExpectNothingPersisted) are
// measured on the wall clock. They bound how long the probe waits for work
// that runs in real time — appends on goroutines, Tell, sagas and
// projections reacting to events — and never read or advance a
// ManualClock: advancing the manual clock is the test's job, before it
// expects what the advance causes. After a synchronous Handle.Send has
// returned, the command's events are already in the log and no wait
// happens.
//
// An EventProbe is used from the test goroutine only.
type EventProbe struct {
	t      testing.TB
	j      journal.Journal
	reg    *orchestrix.Registry
	kind   string
	stream string
	wait   time.Duration
	clock  *ManualClock     // the system's, for failure messages; may be nil
	next   uint64           // the next global position to read
	buf    []journal.Record // read, matching, not yet taken
}

// ProbeOption adjusts NewEventProbe.
type ProbeOption func(*EventProbe)

// ProbeKind makes the probe see only the streams of aggregate kind.
func ProbeKind(kind string) ProbeOption { return func(p *EventProbe) { p.kind = kind } }

// ProbeStream makes the probe see only stream (journal.StreamName(kind, id)).
func ProbeStream(stream string) ProbeOption { return func(p *EventProbe) { p.stream = stream } }

// ProbeWait sets how long the probe waits on the wall clock for an event
// (DefaultProbeWait otherwise).
func ProbeWait(d time.Duration) ProbeOption { return func(p *EventProbe) { p.wait = d } }

// ProbeClock names the manual clock the system under test runs on, so
// that a probe's failure says what system time it was and how many timers
// were pending: the probe's wait never advances that clock. Env.EventProbe
// sets it.
func ProbeClock(c *ManualClock) ProbeOption { return func(p *EventProbe) { p.clock = c } }

// NewEventProbe starts watching j at its current end: the probe sees the
// events committed after this call. reg decodes the events (use the
// system's registry, actor.System.Registry). It fails t when the journal
// cannot be read.
func NewEventProbe(t testing.TB, j journal.Journal, reg *orchestrix.Registry, opts ...ProbeOption) *EventProbe {
	t.Helper()
	p := &EventProbe{t: t, j: j, reg: reg, wait: DefaultProbeWait}
	for _, o := range opts {
		o(p)
	}
	last, err := lastPosition(j)
	if err != nil {
		t.Fatalf("actortest: event probe: reading the journal's end: %v", err)
	}
	p.next = last + 1
	return p
}

func lastPosition(j journal.Journal) (uint64, error) {
	ctx := context.Background()
	if w, ok := j.(journal.Watcher); ok {
		return w.LastPosition(ctx)
	}
	var last uint64
	for rec, err := range j.ReadAll(ctx, 0, math.MaxInt) {
		if err != nil {
			return 0, err
		}
		last = rec.Position
	}
	return last, nil
}

func (p *EventProbe) matches(r journal.Record) bool {
	if p.stream != "" && r.Stream != p.stream {
		return false
	}
	return p.kind == "" || journal.StreamKind(r.Stream) == p.kind
}

// fetch reads what has been committed since the last read.
func (p *EventProbe) fetch() {
	p.t.Helper()
	for rec, err := range p.j.ReadAll(context.Background(), p.next, math.MaxInt) {
		if err != nil {
			p.t.Fatalf("actortest: event probe: reading the journal: %v", err)
			return
		}
		p.next = rec.Position + 1
		if p.matches(rec) {
			p.buf = append(p.buf, rec)
		}
	}
}

// take returns the next matching record, waiting up to wait (wall clock).
func (p *EventProbe) take(wait time.Duration) (journal.Record, bool) {
	p.t.Helper()
	deadline := time.Now().Add(wait)
	for {
		if len(p.buf) == 0 {
			p.fetch()
		}
		if len(p.buf) > 0 {
			r := p.buf[0]
			p.buf = p.buf[1:]
			return r, true
		}
		left := time.Until(deadline)
		if left <= 0 {
			return journal.Record{}, false
		}
		if w, ok := p.j.(journal.Watcher); ok {
			ctx, cancel := context.WithTimeout(context.Background(), left)
			_, _ = w.WaitFor(ctx, p.next-1)
			cancel()
		} else {
			time.Sleep(min(left, 5*time.Millisecond))
		}
	}
}

func (p *EventProbe) scope() string {
	switch {
	case p.stream != "":
		return " on stream " + p.stream
	case p.kind != "":
		return " of kind " + p.kind
	}
	return ""
}

// clockNote describes the system's manual clock for a failure message.
func (p *EventProbe) clockNote() string {
	if p.clock == nil {
		return ""
	}
	return fmt.Sprintf("; the system's manual clock, which the probe does not advance, reads %s with %d timer(s) pending (advance it first if the event waits on one)",
		p.clock.Now().Format(time.RFC3339Nano), p.clock.Timers())
}

func describe(r journal.Record) string {
	return fmt.Sprintf("%s at %s v%d (position %d)", r.Envelope.Type, r.Stream, r.Version, r.Position)
}

// decode returns the record's event as an E, or a reason why it is not one
// for aggregate id ("" for any id).
func decode[E any](p *EventProbe, r journal.Record, id string) (E, string) {
	var zero E
	if id != "" {
		if _, rid, _ := journal.SplitStream(r.Stream); rid != id {
			return zero, fmt.Sprintf("it is on aggregate %q, want %q", rid, id)
		}
	}
	v, err := p.reg.UnmarshalFor(context.Background(), r.Envelope)
	if err != nil {
		return zero, fmt.Sprintf("it does not decode: %v", err)
	}
	e, ok := v.(E)
	if !ok {
		return zero, fmt.Sprintf("it is a %T (%+v), want %T", v, v, zero)
	}
	return e, ""
}

// ExpectPersisted takes the next event the probe sees, waiting up to the
// probe's wait, and fails the test unless it belongs to aggregate id (any
// aggregate when id is "") and decodes to an E. It returns the event and
// its record (envelope, stream, version, position).
func ExpectPersisted[E any](p *EventProbe, id string) (E, journal.Record) {
	p.t.Helper()
	var zero E
	r, ok := p.take(p.wait)
	if !ok {
		p.t.Fatalf("actortest: no event persisted%s within %v (wall clock), want %T%s", p.scope(), p.wait, zero, p.clockNote())
		return zero, r
	}
	e, why := decode[E](p, r, id)
	if why != "" {
		p.t.Fatalf("actortest: next persisted event%s is %s: %s", p.scope(), describe(r), why)
	}
	return e, r
}

// FishPersisted skips persisted events until one belongs to aggregate id
// ("" for any), decodes to an E and satisfies match (nil matches every E),
// and returns it; it fails the test when none has within the probe's wait.
// The skipped events are consumed.
func FishPersisted[E any](p *EventProbe, id string, match func(E, journal.Record) bool) (E, journal.Record) {
	p.t.Helper()
	var zero E
	deadline := time.Now().Add(p.wait)
	var skipped []string
	for {
		r, ok := p.take(max(time.Until(deadline), 0))
		if !ok {
			p.t.Fatalf("actortest: no matching %T persisted%s within %v (wall clock); skipped %v%s", zero, p.scope(), p.wait, skipped, p.clockNote())
			return zero, r
		}
		if e, why := decode[E](p, r, id); why == "" && (match == nil || match(e, r)) {
			return e, r
		}
		if len(skipped) < 20 {
			skipped = append(skipped, describe(r))
		}
	}
}

// ExpectNothingPersisted fails the test if the probe sees an event it has
// not taken yet, now or within the given wall-clock duration. Zero checks
// only what is committed now, which is exact after synchronous Sends.
func (p *EventProbe) ExpectNothingPersisted(within time.Duration) {
	p.t.Helper()
	if r, ok := p.take(within); ok {
		p.t.Fatalf("actortest: unexpected event persisted%s: %s", p.scope(), describe(r))
	}
}

// Records takes and returns every event the probe sees that is committed
// now, without waiting.
func (p *EventProbe) Records() []journal.Record {
	p.t.Helper()
	p.fetch()
	out := p.buf
	p.buf = nil
	return out
}
