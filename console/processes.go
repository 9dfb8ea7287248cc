package console

import (
	"encoding/json"
	"errors"
	"math"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/orchestrix/orchestrix/journal"
	"github.com/orchestrix/orchestrix/saga"
)

// Process states as the console names them, from a process stream's
// newest event.
const (
	ProcessActive = "active" // not done, newest handler call succeeded
	ProcessFailed = "failed" // not done, newest handler call failed for good
	ProcessDone   = "done"
)

// Timer is a pending timeout of a process.
type Timer struct {
	Name string    `json:"name"`
	At   time.Time `json:"at"`
	// Overdue is set when At is before the console clock's now (the
	// process manager has not fired it yet, e.g. it is not running).
	Overdue bool `json:"overdue,omitempty"`
}

// ProcessFailure is a handler call of a process that failed for good.
type ProcessFailure struct {
	Version  uint64 `json:"version,omitempty"`
	Position uint64 `json:"position,omitempty"`
	Type     string `json:"type,omitempty"`
	Timeout  string `json:"timeout,omitempty"`
	Reason   string `json:"reason"`
}

// ProcessRow is one process instance in a list.
type ProcessRow struct {
	Stream  string    `json:"stream"`
	Name    string    `json:"name"`
	ID      string    `json:"id"`
	State   string    `json:"state"`
	Handled uint64    `json:"handled"` // events (and timeouts) handled: the stream's head
	Updated time.Time `json:"updated"`
	Timers  []Timer   `json:"timers"`
	// Failures counts the handler calls that failed for good; LastFailure
	// is the newest.
	Failures    uint64          `json:"failures,omitempty"`
	LastFailure *ProcessFailure `json:"last_failure,omitempty"`
}

// ProcessPage is the answer of GET /api/processes.
type ProcessPage struct {
	Name      string       `json:"name,omitempty"`
	State     string       `json:"state,omitempty"`
	Processes []ProcessRow `json:"processes"`
	Next      string       `json:"next,omitempty"`
	Truncated bool         `json:"truncated,omitempty"`
}

// ProcessStep is one handler call of a process: the event or timeout it
// handled and whether it failed.
type ProcessStep struct {
	Version  uint64          `json:"version"`
	Time     time.Time       `json:"time"`
	Position uint64          `json:"position,omitempty"`
	Type     string          `json:"type,omitempty"`
	Timeout  string          `json:"timeout,omitempty"`
	Done     bool            `json:"done,omitempty"`
	Failure  *ProcessFailure `json:"failure,omitempty"`
}

// ProcessDetail is the answer of GET /api/process: the instance, its
// state as JSON, its pending timers, its failures and the handler calls
// recorded (the newest Config.MaxPageSize).
type ProcessDetail struct {
	ProcessRow
	StateJSON string           `json:"state_json"`
	History   []ProcessStep    `json:"history"`
	Failed    []ProcessFailure `json:"failed"`
}

// handled is the stored form of saga.Handled the console reads.
type handled struct {
	Position    uint64               `json:"position"`
	Type        string               `json:"type"`
	Timeout     string               `json:"timeout"`
	State       json.RawMessage      `json:"state"`
	Timers      map[string]time.Time `json:"timers"`
	Done        bool                 `json:"done"`
	Failure     *ProcessFailure      `json:"failure"`
	Failures    uint64               `json:"failures"`
	LastFailure *ProcessFailure      `json:"lastFailure"`
}

// isProcessStream reports whether stream is "process.<name>-<id>".
func isProcessStream(stream string) bool {
	kind, id, ok := journal.SplitStream(stream)
	return ok && id != "" && strings.HasPrefix(kind, saga.ProcessKindPrefix) && len(kind) > len(saga.ProcessKindPrefix)
}

// readHandled reads and decodes the event at version of a process stream.
func (c *Console) readHandled(r *http.Request, stream string, version uint64) (journal.Record, handled, error) {
	var h handled
	for rec, err := range c.cfg.Journal.Read(r.Context(), stream, version, version, 1) {
		if err != nil {
			return rec, h, err
		}
		if rec.Envelope.Type != saga.TypeHandled {
			return rec, h, badRequest("console: event %d of %q is a %q, not a process event (%s)", version, stream, rec.Envelope.Type, saga.TypeHandled)
		}
		if err := json.Unmarshal(rec.Envelope.Data, &h); err != nil {
			return rec, h, badRequest("console: event %d of %q is not a readable process event: %v", version, stream, err)
		}
		return rec, h, nil
	}
	return journal.Record{}, h, notFound("console: stream %q has no event at version %d", stream, version)
}

// processRow reads a process's newest event into its row.
func (c *Console) processRow(r *http.Request, stream string, head uint64) (ProcessRow, handled, error) {
	kind, id, _ := journal.SplitStream(stream)
	row := ProcessRow{Stream: stream, Name: strings.TrimPrefix(kind, saga.ProcessKindPrefix), ID: id, Handled: head, Timers: []Timer{}}
	rec, h, err := c.readHandled(r, stream, head)
	if err != nil {
		return row, h, err
	}
	row.Updated = rec.Envelope.Time
	now := c.cfg.Clock.Now()
	for name, at := range h.Timers {
		row.Timers = append(row.Timers, Timer{Name: name, At: at, Overdue: at.Before(now)})
	}
	slices.SortFunc(row.Timers, func(a, b Timer) int {
		if d := a.At.Compare(b.At); d != 0 {
			return d
		}
		return strings.Compare(a.Name, b.Name)
	})
	row.Failures, row.LastFailure = h.Failures, h.LastFailure
	switch {
	case h.Done:
		row.State = ProcessDone
	case h.Failure != nil:
		row.State = ProcessFailed
	default:
		row.State = ProcessActive
	}
	return row, h, nil
}

func (c *Console) processes(r *http.Request) (any, error) {
	lister, ok := c.cfg.Journal.(journal.StreamLister)
	if !ok {
		return nil, &requestError{status: http.StatusNotImplemented, msg: "console: this journal cannot list its streams"}
	}
	var out ProcessPage
	var err error
	if out.Name, err = stringParam(r, "name", false); err != nil {
		return nil, err
	}
	if out.State, err = stringParam(r, "state", false); err != nil {
		return nil, err
	}
	switch out.State {
	case "", ProcessActive, ProcessFailed, ProcessDone:
	default:
		return nil, badRequest("state %q: want active, failed or done", out.State)
	}
	after, err := stringParam(r, "after", false)
	if err != nil {
		return nil, err
	}
	limit, err := c.limit(r)
	if err != nil {
		return nil, err
	}
	prefix := saga.ProcessKindPrefix
	if out.Name != "" {
		prefix += out.Name + "-"
	}
	out.Processes = []ProcessRow{}
	scanned := 0
	for info, err := range lister.Streams(r.Context()) {
		if err != nil {
			return nil, err
		}
		if !strings.HasPrefix(info.Name, prefix) || (after != "" && info.Name <= after) || !isProcessStream(info.Name) || info.Head == 0 {
			continue
		}
		if len(out.Processes) == limit {
			out.Next = out.Processes[limit-1].Stream
			break
		}
		if scanned >= c.cfg.MaxScan {
			out.Truncated, out.Next = true, after
			break
		}
		scanned++
		row, _, err := c.processRow(r, info.Name, info.Head)
		if err != nil {
			var re *requestError
			if !errors.As(err, &re) {
				return nil, err
			}
			continue // not a process stream after all (another kind named process.*)
		}
		after = info.Name
		if out.State == "" || row.State == out.State {
			out.Processes = append(out.Processes, row)
		}
	}
	return out, nil
}

func (c *Console) processDetail(r *http.Request) (any, error) {
	stream, err := stringParam(r, "stream", true)
	if err != nil {
		return nil, err
	}
	if !isProcessStream(stream) {
		return nil, badRequest("stream %q is not a process stream (%s<name>-<id>)", stream, saga.ProcessKindPrefix)
	}
	head, err := c.cfg.Journal.Head(r.Context(), stream)
	if err != nil {
		return nil, err
	}
	if head == 0 {
		return nil, notFound("console: no process stream %q", stream)
	}
	row, h, err := c.processRow(r, stream, head)
	if err != nil {
		return nil, err
	}
	d := ProcessDetail{ProcessRow: row, History: []ProcessStep{}, Failed: []ProcessFailure{}}
	if len(h.State) > 0 {
		var v any
		if json.Unmarshal(h.State, &v) == nil {
			d.StateJSON, _ = prettyJSON(v)
		}
	}
	from := uint64(1)
	if n := uint64(c.cfg.MaxPageSize); head > n {
		from = head - n + 1
	}
	for rec, err := range c.cfg.Journal.Read(r.Context(), stream, from, math.MaxUint64, c.cfg.MaxPageSize) {
		if err != nil {
			return nil, err
		}
		var s handled
		_ = json.Unmarshal(rec.Envelope.Data, &s) // another shape shows as a bare step
		st := ProcessStep{Version: rec.Version, Time: rec.Envelope.Time, Position: s.Position, Type: s.Type, Timeout: s.Timeout, Done: s.Done}
		if s.Failure != nil {
			f := *s.Failure
			f.Version = rec.Version
			st.Failure = &f
			d.Failed = append(d.Failed, f)
		}
		d.History = append(d.History, st)
	}
	return d, nil
}
