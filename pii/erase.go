package pii

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/orchestrix/orchestrix"
	"github.com/orchestrix/orchestrix/journal"
)

// ErasureKind is the aggregate kind of the streams erasures are recorded
// in: the erasure of subject s is the single event of stream
// ErasureKind + "-" + s (see ErasureStream).
const ErasureKind = "pii"

// SubjectErasedType is the registered type name of SubjectErased.
const SubjectErasedType = "orchestrix.pii.subject.erased"

// DefaultErasureSource is the CloudEvents source of erasure events when
// Eraser.Source is empty.
const DefaultErasureSource = "/orchestrix/pii"

// SubjectErased records that a subject's keys were destroyed. It holds no
// personal data beyond the subject id, which should be an opaque id.
type SubjectErased struct {
	// Subject is the erased data subject.
	Subject string `json:"subject"`
	// Reason is the caller's reason, e.g. a ticket number.
	Reason string `json:"reason,omitempty"`
}

// RegisterEvents registers SubjectErased under SubjectErasedType in r, so
// that projections reading the global log can decode erasure events.
func RegisterEvents(r *orchestrix.Registry) error {
	return orchestrix.Register[SubjectErased](r, SubjectErasedType)
}

// ErasureStream returns the stream that records the erasure of subject.
func ErasureStream(subject string) string { return journal.StreamName(ErasureKind, subject) }

// Eraser erases data subjects: it destroys their keys in Keys and records
// each erasure as a SubjectErased event in Journal. Keys and Journal are
// required; the zero value of every other field is a default.
type Eraser struct {
	// Keys holds the subjects' keys. Required.
	Keys KeyStore
	// Journal records the erasures. Required.
	Journal journal.Journal
	// Source is the CloudEvents source of erasure events; empty means
	// DefaultErasureSource.
	Source string
	// Clock gives the time of erasure events; nil means time.Now.
	Clock func() time.Time
	// Registry encodes the erasure events; nil means a private registry
	// with SubjectErased registered. A registry given here must have
	// SubjectErased registered (RegisterEvents).
	Registry *orchestrix.Registry
}

// Erasure is the outcome of Eraser.Erase.
type Erasure struct {
	// Record is the journal record of the erasure event.
	Record journal.Record
	// Repeated is true when the subject had already been erased and
	// recorded earlier; Record is then that earlier record.
	Repeated bool
}

// Erase erases subject: first it destroys the subject's keys
// (KeyStore.Delete), so every personal field encrypted for it reads back
// as Erased from then on, everywhere — journal reads, recovery,
// snapshots, rebuilt projections — while the rest of each event stays
// readable; then it appends a SubjectErased event as the only event of
// stream ErasureStream(subject).
//
// Erase is idempotent: erasing again records nothing new and returns the
// first record with Repeated set. If the keys are destroyed but recording
// fails, the error says so and matches the journal's error; calling Erase
// again records it.
//
// Erasure does not reach values already decrypted in memory: an active
// aggregate keeps its decrypted state until it is passivated or its
// process restarts, and read models keep what they were built with until
// they are rebuilt (projection.Manager.Rebuild).
func (e *Eraser) Erase(ctx context.Context, subject, reason string) (Erasure, error) {
	if e.Keys == nil || e.Journal == nil {
		return Erasure{}, errors.New("pii: Eraser needs Keys and Journal")
	}
	if err := CheckSubject(subject); err != nil {
		return Erasure{}, err
	}
	if err := e.Keys.Delete(ctx, subject); err != nil {
		return Erasure{}, fmt.Errorf("pii: erasing subject %q: %w", subject, err)
	}
	return e.record(ctx, subject, reason)
}

// EraseMany erases several subjects, each as Erase does, destroying all
// their keys first — in one operation when Keys implements BatchDeleter,
// which is much cheaper for a batch than erasing one by one — and then
// recording one SubjectErased event per subject (all with reason). The
// erasures are returned in the order of subjects. When recording fails
// for one subject, the error names it; every key is destroyed by then,
// and calling EraseMany again records what is missing.
func (e *Eraser) EraseMany(ctx context.Context, subjects []string, reason string) ([]Erasure, error) {
	if e.Keys == nil || e.Journal == nil {
		return nil, errors.New("pii: Eraser needs Keys and Journal")
	}
	for _, subject := range subjects {
		if err := CheckSubject(subject); err != nil {
			return nil, err
		}
	}
	if bd, ok := e.Keys.(BatchDeleter); ok {
		if err := bd.DeleteMany(ctx, subjects); err != nil {
			return nil, fmt.Errorf("pii: erasing %d subjects: %w", len(subjects), err)
		}
	} else {
		for _, subject := range subjects {
			if err := e.Keys.Delete(ctx, subject); err != nil {
				return nil, fmt.Errorf("pii: erasing subject %q: %w", subject, err)
			}
		}
	}
	out := make([]Erasure, 0, len(subjects))
	for _, subject := range subjects {
		er, err := e.record(ctx, subject, reason)
		if err != nil {
			return out, err
		}
		out = append(out, er)
	}
	return out, nil
}

// record appends the SubjectErased event of an erased subject, or finds
// the one recorded earlier.
func (e *Eraser) record(ctx context.Context, subject, reason string) (Erasure, error) {
	reg := e.Registry
	if reg == nil {
		reg = orchestrix.NewRegistry()
		if err := RegisterEvents(reg); err != nil {
			return Erasure{}, err
		}
	}
	env, err := reg.MarshalFor(ctx, subject, SubjectErased{Subject: subject, Reason: reason})
	if err != nil {
		return Erasure{}, fmt.Errorf("pii: subject %q erased, but encoding the erasure event failed: %w", subject, err)
	}
	env.Source = e.Source
	if env.Source == "" {
		env.Source = DefaultErasureSource
	}
	now := time.Now
	if e.Clock != nil {
		now = e.Clock
	}
	env.Time = now()
	stream := ErasureStream(subject)
	res, err := e.Journal.Append(ctx, stream, journal.NoStream, []orchestrix.Envelope{env})
	if errors.Is(err, orchestrix.ErrVersionConflict) {
		rec, rerr := e.recorded(ctx, stream)
		if rerr != nil {
			return Erasure{}, fmt.Errorf("pii: subject %q erased; reading its erasure record: %w", subject, rerr)
		}
		return Erasure{Record: rec, Repeated: true}, nil
	}
	if err != nil {
		return Erasure{}, fmt.Errorf("pii: subject %q erased, but recording the erasure failed (call Erase again): %w", subject, err)
	}
	env.Sequence = res.FirstVersion
	return Erasure{Record: journal.Record{Position: res.FirstPosition, Stream: stream, Version: res.FirstVersion, Envelope: env}}, nil
}

// recorded returns the first record of stream.
func (e *Eraser) recorded(ctx context.Context, stream string) (journal.Record, error) {
	for rec, err := range e.Journal.Read(ctx, stream, 1, math.MaxUint64, 1) {
		return rec, err
	}
	return journal.Record{}, fmt.Errorf("%w: stream %q is empty", orchestrix.ErrNotFound, stream)
}
