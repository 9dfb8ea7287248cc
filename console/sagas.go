package console

import (
	"context"
	"encoding/json"
	"math"
	"net/http"
	"strings"
	"time"

	"github.com/orchestrix/orchestrix/journal"
	"github.com/orchestrix/orchestrix/saga"
)

// Saga states as the console names them, derived from a saga stream's
// events.
const (
	SagaRunning      = "running"
	SagaCompensating = "compensating"
	SagaCompleted    = "completed"
	SagaCompensated  = "compensated"
	SagaFailed       = "failed"
)

// SagaRow is one saga instance in a list.
type SagaRow struct {
	Stream  string    `json:"stream"`
	Name    string    `json:"name"`
	ID      string    `json:"id"`
	State   string    `json:"state"`
	Events  int       `json:"events"`
	Updated time.Time `json:"updated"`
	// Failure is the reason of the failed step (or compensation).
	Failure string `json:"failure,omitempty"`
}

// SagaPage is the answer of GET /api/sagas.
type SagaPage struct {
	Name      string    `json:"name,omitempty"`
	State     string    `json:"state,omitempty"`
	Sagas     []SagaRow `json:"sagas"`
	Next      string    `json:"next,omitempty"`
	Truncated bool      `json:"truncated,omitempty"`
}

// TimelineEntry is one event of a saga's timeline.
type TimelineEntry struct {
	Version  uint64    `json:"version"`
	Time     time.Time `json:"time"`
	Kind     string    `json:"kind"` // started, step started, step completed, …
	Step     int       `json:"step,omitempty"`
	StepName string    `json:"step_name,omitempty"`
	Reason   string    `json:"reason,omitempty"`
	Deadline time.Time `json:"deadline,omitzero"`
	TimedOut bool      `json:"timed_out,omitempty"`
}

// SagaDetail is the answer of GET /api/saga: the instance and its
// timeline (steps, the failure, compensations in the order they ran).
type SagaDetail struct {
	SagaRow
	Timeline []TimelineEntry `json:"timeline"`
	// Live is what this process's saga runner knows beyond the stream:
	// the attempts at the current step. Set when the saga's orchestration
	// is listed in Config.Sagas.
	Live *SagaLive `json:"live,omitempty"`
}

// SagaLive is the in-process state of a saga its runner executes.
type SagaLive struct {
	// Executing is true while this process's runner executes the saga.
	Executing bool `json:"executing"`
	// Step and StepName are the step being executed or compensated.
	Step     int    `json:"step"`
	StepName string `json:"step_name,omitempty"`
	// Attempt is the attempt in progress at it (0 when none is), and
	// LastError the error of the previous attempt.
	Attempt   int    `json:"attempt,omitempty"`
	LastError string `json:"last_error,omitempty"`
	// Deadline is the durable deadline of the current step (zero when it
	// has none).
	Deadline time.Time `json:"deadline,omitzero"`
}

// SagaView lets the console show what a saga runner knows of its sagas
// beyond their streams (the attempts in progress). Build it with Saga and
// list it in Config.Sagas.
type SagaView struct {
	name string
	live func(ctx context.Context, id string) (SagaLive, error)
}

// Saga returns the view of the sagas of s: their detail pages add the
// attempt in progress at the current step and its last error, from
// s.Status.
func Saga[D any](s *saga.Saga[D]) SagaView {
	return SagaView{name: s.Name(), live: func(ctx context.Context, id string) (SagaLive, error) {
		st, err := s.Status(ctx, id)
		if err != nil {
			return SagaLive{}, err
		}
		l := SagaLive{Executing: st.Executing, Attempt: st.Attempt, LastError: st.LastError, Deadline: st.Deadline}
		if !st.State.Terminal() {
			l.Step, l.StepName = st.Step, st.StepName
		}
		return l, nil
	}}
}

var sagaKinds = map[string]string{
	saga.TypeStarted: "started", saga.TypeStepStarted: "step started", saga.TypeStepCompleted: "step completed",
	saga.TypeStepFailed: "step failed", saga.TypeStepCompensated: "step compensated",
	saga.TypeCompleted: "completed", saga.TypeCompensated: "compensated", saga.TypeFailed: "failed",
}

// readSaga folds a saga stream into its row and timeline, reading at most
// budget events.
func (c *Console) readSaga(r *http.Request, stream string, budget int) (SagaDetail, error) {
	name, id, _ := strings.Cut(strings.TrimPrefix(stream, saga.StreamKindPrefix), "-")
	d := SagaDetail{SagaRow: SagaRow{Stream: stream, Name: name, ID: id, State: SagaRunning}, Timeline: []TimelineEntry{}}
	for rec, err := range c.cfg.Journal.Read(r.Context(), stream, 1, math.MaxUint64, budget) {
		if err != nil {
			return d, err
		}
		e := rec.Envelope
		d.Events++
		d.Updated = e.Time
		kind, ok := sagaKinds[e.Type]
		if !ok {
			kind = e.Type
		}
		var body struct {
			Step     int       `json:"step"`
			Name     string    `json:"name"`
			Reason   string    `json:"reason"`
			Deadline time.Time `json:"deadline"`
			TimedOut bool      `json:"timedOut"`
		}
		_ = json.Unmarshal(e.Data, &body) // a payload of another shape shows as its kind only
		d.Timeline = append(d.Timeline, TimelineEntry{Version: rec.Version, Time: e.Time, Kind: kind, Step: body.Step,
			StepName: body.Name, Reason: body.Reason, Deadline: body.Deadline, TimedOut: body.TimedOut})
		switch e.Type {
		case saga.TypeStepFailed:
			d.State, d.Failure = SagaCompensating, body.Reason
		case saga.TypeCompleted:
			d.State = SagaCompleted
		case saga.TypeCompensated:
			d.State = SagaCompensated
		case saga.TypeFailed:
			d.State, d.Failure = SagaFailed, body.Reason
		}
	}
	return d, nil
}

func (c *Console) sagas(r *http.Request) (any, error) {
	lister, ok := c.cfg.Journal.(journal.StreamLister)
	if !ok {
		return nil, &requestError{status: http.StatusNotImplemented, msg: "console: this journal cannot list its streams"}
	}
	var out SagaPage
	var err error
	if out.Name, err = stringParam(r, "name", false); err != nil {
		return nil, err
	}
	if out.State, err = stringParam(r, "state", false); err != nil {
		return nil, err
	}
	switch out.State {
	case "", SagaRunning, SagaCompensating, SagaCompleted, SagaCompensated, SagaFailed:
	default:
		return nil, badRequest("state %q: want running, compensating, completed, compensated or failed", out.State)
	}
	after, err := stringParam(r, "after", false)
	if err != nil {
		return nil, err
	}
	limit, err := c.limit(r)
	if err != nil {
		return nil, err
	}
	prefix := saga.StreamKindPrefix
	if out.Name != "" {
		prefix += out.Name + "-"
	}
	out.Sagas = []SagaRow{}
	budget := c.cfg.MaxScan
	for info, err := range lister.Streams(r.Context()) {
		if err != nil {
			return nil, err
		}
		// Saga streams are "saga.<name>-<id>"; the runner's own
		// checkpoint streams have no '-' after the name.
		if !strings.HasPrefix(info.Name, prefix) || (after != "" && info.Name <= after) ||
			!strings.Contains(strings.TrimPrefix(info.Name, saga.StreamKindPrefix), "-") {
			continue
		}
		if len(out.Sagas) == limit {
			out.Next = out.Sagas[limit-1].Stream
			break
		}
		if budget <= 0 {
			out.Truncated, out.Next = true, after
			if n := len(out.Sagas); n > 0 {
				out.Next = out.Sagas[n-1].Stream
			}
			break
		}
		d, err := c.readSaga(r, info.Name, budget)
		if err != nil {
			return nil, err
		}
		budget -= d.Events
		after = info.Name
		if out.State == "" || d.State == out.State {
			out.Sagas = append(out.Sagas, d.SagaRow)
		}
	}
	return out, nil
}

func (c *Console) sagaDetail(r *http.Request) (any, error) {
	stream, err := stringParam(r, "stream", true)
	if err != nil {
		return nil, err
	}
	if !strings.HasPrefix(stream, saga.StreamKindPrefix) {
		return nil, badRequest("stream %q is not a saga stream (%s<name>-<id>)", stream, saga.StreamKindPrefix)
	}
	head, err := c.cfg.Journal.Head(r.Context(), stream)
	if err != nil {
		return nil, err
	}
	if head == 0 {
		return nil, notFound("console: no saga stream %q", stream)
	}
	d, err := c.readSaga(r, stream, c.cfg.MaxScan)
	if err != nil {
		return nil, err
	}
	for _, v := range c.cfg.Sagas {
		if v.name == d.Name {
			live, err := v.live(r.Context(), d.ID)
			if err != nil {
				return nil, err
			}
			d.Live = &live
		}
	}
	return d, nil
}
