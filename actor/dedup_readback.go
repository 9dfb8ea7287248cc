package actor

import (
	"fmt"

	"github.com/orchestrix/orchestrix/journal"
)

// dedupLim is the system's dedup limits for this aggregate: its cache
// keeps events when its definition deletes events on snapshot (a
// remembered command's events may then leave the journal within the
// window, so they cannot be read back).
func (a *aggActor[S, C, E]) dedupLim() dedupLimits {
	lim := a.sys().dedup
	lim.keep = a.h.def.DeleteEventsOnSnapshot
	return lim
}

// dedupResult completes the remembered result of a duplicate command with
// its events. Unless the cache kept them, they are read back from the
// aggregate's stream (versions hit.first() to hit.res.Version) and
// decoded with the registry, as recovery reads and decodes them: the
// answer is the one a restarted aggregate would give. Each event read must
// carry the command's id as causation id, so that a wrong entry is an
// error, never someone else's events. A read or decoding error is
// returned to the duplicate's caller; the command is not executed again.
//
// It runs with a.mu held, on the actor's goroutine or, for an inline
// command, on its sender's (which waits for this reply anyway): a journal
// read per duplicate, as rare as retries are.
func (a *aggActor[S, C, E]) dedupResult(hit dedupHit[E]) (Result[E], error) {
	res := hit.res
	res.Duplicate = true
	if hit.kept || hit.events == 0 {
		return res, nil
	}
	sys := a.sys()
	stream := a.h.Stream(a.id)
	first, n := hit.first(), hit.events
	ctx, cancel := sys.ioContext()
	defer cancel()
	events := make([]E, 0, n)
	for rec, err := range sys.cfg.Journal.Read(ctx, stream, first, res.Version, n) {
		if err != nil {
			return Result[E]{}, fmt.Errorf("actor: reading the events of duplicate command %q: %w", res.CommandID, err)
		}
		want := first + uint64(len(events))
		if rec.Version != want || rec.Envelope.CausationID != res.CommandID {
			return Result[E]{}, &journal.CorruptionError{Stream: stream, Version: rec.Version, Position: rec.Position,
				Err: fmt.Errorf("duplicate command %q: expected its event at version %d, found version %d of command %q",
					res.CommandID, want, rec.Version, rec.Envelope.CausationID)}
		}
		v, err := sys.cfg.Registry.Unmarshal(rec.Envelope)
		if err != nil {
			return Result[E]{}, &journal.CorruptionError{Stream: stream, Version: rec.Version, Position: rec.Position, Err: err}
		}
		ev, ok := v.(E)
		if !ok {
			return Result[E]{}, &journal.CorruptionError{Stream: stream, Version: rec.Version, Position: rec.Position,
				Err: fmt.Errorf("event type %q (%T) is not an event of aggregate kind %q", rec.Envelope.Type, v, a.h.kind)}
		}
		events = append(events, ev)
		if len(events) == n {
			break
		}
	}
	if len(events) != n {
		return Result[E]{}, fmt.Errorf("actor: duplicate command %q: its events (versions %d to %d of %s) are no longer in the journal; it was not executed again",
			res.CommandID, first, res.Version, stream)
	}
	res.Events = events
	return res, nil
}
