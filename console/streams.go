package console

import (
	"bytes"
	"encoding/json"
	"math"
	"net/http"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/orchestrix/orchestrix/journal"
	"github.com/orchestrix/orchestrix/pii"
)

// StreamRow is one stream of a stream list.
type StreamRow struct {
	Name   string `json:"name"`
	Kind   string `json:"kind"`
	Head   uint64 `json:"head"`
	Events uint64 `json:"events"`
}

// StreamPage is the answer of GET /api/streams.
type StreamPage struct {
	Prefix  string      `json:"prefix,omitempty"`
	Kind    string      `json:"kind,omitempty"`
	Streams []StreamRow `json:"streams"`
	// Next, when set, is the "after" value that continues the list.
	Next string `json:"next,omitempty"`
	// Scanned is how many streams were read; Truncated says the scan cap
	// stopped it before the page was full.
	Scanned   int  `json:"scanned"`
	Truncated bool `json:"truncated,omitempty"`
}

func (c *Console) streams(r *http.Request) (any, error) {
	lister, ok := c.cfg.Journal.(journal.StreamLister)
	if !ok {
		return nil, &requestError{status: http.StatusNotImplemented, msg: "console: this journal cannot list its streams"}
	}
	prefix, err := stringParam(r, "prefix", false)
	if err != nil {
		return nil, err
	}
	kind, err := stringParam(r, "kind", false)
	if err != nil {
		return nil, err
	}
	after, err := stringParam(r, "after", false)
	if err != nil {
		return nil, err
	}
	limit, err := c.limit(r)
	if err != nil {
		return nil, err
	}
	out := StreamPage{Prefix: prefix, Kind: kind, Streams: []StreamRow{}}
	for info, err := range lister.Streams(r.Context()) {
		if err != nil {
			return nil, err
		}
		if after != "" && info.Name <= after {
			continue
		}
		out.Scanned++
		if strings.HasPrefix(info.Name, prefix) && (kind == "" || journal.StreamKind(info.Name) == kind) {
			if len(out.Streams) == limit {
				out.Next = out.Streams[limit-1].Name
				break
			}
			out.Streams = append(out.Streams, StreamRow{Name: info.Name, Kind: journal.StreamKind(info.Name), Head: info.Head, Events: info.Events()})
		}
		if out.Scanned >= c.cfg.MaxScan {
			out.Truncated = true
			out.Next = info.Name
			break
		}
	}
	return out, nil
}

// EventRow is one event in a list.
type EventRow struct {
	Position      uint64    `json:"position"`
	Stream        string    `json:"stream"`
	Version       uint64    `json:"version"`
	ID            string    `json:"id"`
	Type          string    `json:"type"`
	Subject       string    `json:"subject,omitempty"`
	Time          time.Time `json:"time"`
	CorrelationID string    `json:"correlationid,omitempty"`
}

func rowOf(rec journal.Record) EventRow {
	e := rec.Envelope
	return EventRow{Position: rec.Position, Stream: rec.Stream, Version: rec.Version, ID: e.ID, Type: e.Type,
		Subject: e.Subject, Time: e.Time, CorrelationID: e.CorrelationID}
}

// EventPage is the answer of GET /api/events.
type EventPage struct {
	Stream string     `json:"stream"`
	Head   uint64     `json:"head"`
	From   uint64     `json:"from"`
	Events []EventRow `json:"events"`
	// Next, when not 0, is the "from" version of the next page; Prev of
	// the previous one.
	Next uint64 `json:"next,omitempty"`
	Prev uint64 `json:"prev,omitempty"`
	// AggregateKind and AggregateID are set when the stream belongs to a
	// kind in Config.Aggregates (its past states can be shown).
	AggregateKind string `json:"aggregate_kind,omitempty"`
	AggregateID   string `json:"aggregate_id,omitempty"`
}

func (c *Console) stream(r *http.Request) (any, error) {
	name, err := stringParam(r, "stream", true)
	if err != nil {
		return nil, err
	}
	from, err := uintParam(r, "from", 1)
	if err != nil {
		return nil, err
	}
	at, err := timeParam(r, "time")
	if err != nil {
		return nil, err
	}
	limit, err := c.limit(r)
	if err != nil {
		return nil, err
	}
	ctx := r.Context()
	head, err := c.cfg.Journal.Head(ctx, name)
	if err != nil {
		return nil, err
	}
	if head == 0 {
		return nil, notFound("console: no stream %q", name)
	}
	from = max(from, 1)
	if from > head {
		return nil, notFound("console: stream %q has no version %d (head %d)", name, from, head)
	}
	if !at.IsZero() {
		// Jump to the first event at or after at: a bounded scan.
		found := false
		n := 0
		for rec, err := range c.cfg.Journal.Read(ctx, name, 1, math.MaxUint64, c.cfg.MaxScan) {
			if err != nil {
				return nil, err
			}
			n++
			if !rec.Envelope.Time.Before(at) {
				from, found = rec.Version, true
				break
			}
		}
		if !found {
			if n >= c.cfg.MaxScan {
				return nil, badRequest("console: no event at or after %s among the first %d events of %q", at.Format(time.RFC3339), n, name)
			}
			return nil, notFound("console: stream %q has no event at or after %s", name, at.Format(time.RFC3339))
		}
	}
	out := EventPage{Stream: name, Head: head, From: from, Events: []EventRow{}}
	for _, a := range c.cfg.Aggregates {
		if id, ok := strings.CutPrefix(name, a.kind+"-"); ok && a.stream(id) == name {
			out.AggregateKind, out.AggregateID = a.kind, id
		}
	}
	for rec, err := range c.cfg.Journal.Read(ctx, name, from, math.MaxUint64, limit) {
		if err != nil {
			return nil, err
		}
		out.Events = append(out.Events, rowOf(rec))
	}
	if n := len(out.Events); n > 0 && out.Events[n-1].Version < head {
		out.Next = out.Events[n-1].Version + 1
	}
	if from > 1 {
		out.Prev = uint64(max(int64(from)-int64(limit), 1))
	}
	return out, nil
}

// Attribute is one envelope attribute of an event detail.
type Attribute struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// EventDetail is the answer of GET /api/event.
type EventDetail struct {
	EventRow
	Head       uint64      `json:"head"`
	Attributes []Attribute `json:"attributes"`
	// Stored is the payload as stored (pretty JSON when it is JSON, else
	// the text, else base64 in StoredBase64).
	Stored       string `json:"stored,omitempty"`
	StoredBase64 []byte `json:"stored_base64,omitempty"`
	// Decoded is the payload decoded through the registry (upcast, and
	// with personal data of erased subjects shown as erased), as pretty
	// JSON; DecodeError says why it could not be decoded.
	Decoded     string `json:"decoded,omitempty"`
	DecodeError string `json:"decode_error,omitempty"`
	// ErasedFields lists the JSON paths of the decoded payload that read
	// as erased (pii.Erased): personal data whose key was destroyed.
	ErasedFields []string `json:"erased_fields,omitempty"`
	// SubjectErased is set when the event's subject has an erasure
	// record (stream pii.ErasureStream(subject)).
	SubjectErased bool   `json:"subject_erased,omitempty"`
	TraceURL      string `json:"trace_url,omitempty"`
}

func (c *Console) event(r *http.Request) (any, error) {
	name, err := stringParam(r, "stream", true)
	if err != nil {
		return nil, err
	}
	version, err := uintParam(r, "version", 0)
	if err != nil {
		return nil, err
	}
	if version == 0 {
		return nil, badRequest("missing or zero query parameter \"version\"")
	}
	ctx := r.Context()
	head, err := c.cfg.Journal.Head(ctx, name)
	if err != nil {
		return nil, err
	}
	var rec *journal.Record
	for got, err := range c.cfg.Journal.Read(ctx, name, version, version, 1) {
		if err != nil {
			return nil, err
		}
		rec = &got
	}
	if rec == nil {
		if head == 0 {
			return nil, notFound("console: no stream %q", name)
		}
		return nil, notFound("console: stream %q has no event at version %d (head %d)", name, version, head)
	}
	e := rec.Envelope
	d := EventDetail{EventRow: rowOf(*rec), Head: head}
	add := func(n, v string) {
		if v != "" {
			d.Attributes = append(d.Attributes, Attribute{n, v})
		}
	}
	add("id", e.ID)
	add("source", e.Source)
	add("type", e.Type)
	add("subject", e.Subject)
	add("time", e.Time.UTC().Format(time.RFC3339Nano))
	add("datacontenttype", e.DataContentType)
	add("dataschema", e.DataSchema)
	add("schemaversion", itoa(uint64(max(e.SchemaVersion, 1))))
	add("sequence", itoa(e.Sequence))
	add("correlationid", e.CorrelationID)
	add("causationid", e.CausationID)
	add("traceparent", e.TraceParent)
	for k, v := range e.Extensions {
		add(k, v)
	}
	if e.TraceParent != "" && c.cfg.TraceURL != "" {
		if parts := strings.Split(e.TraceParent, "-"); len(parts) == 4 && len(parts[1]) == 32 {
			d.TraceURL = strings.ReplaceAll(c.cfg.TraceURL, "{trace}", parts[1])
		}
	}
	d.Stored, d.StoredBase64 = storedForm(e.Data)
	if c.cfg.Registry != nil {
		v, err := c.cfg.Registry.UnmarshalFor(ctx, e)
		if err != nil {
			d.DecodeError = err.Error()
		} else if s, err := prettyJSON(v); err != nil {
			d.DecodeError = err.Error()
		} else {
			d.Decoded = s
			d.ErasedFields = erasedFields(v)
		}
	}
	if e.Subject != "" && journal.ValidateStream(pii.ErasureStream(e.Subject)) == nil {
		h, err := c.cfg.Journal.Head(ctx, pii.ErasureStream(e.Subject))
		if err != nil {
			return nil, err
		}
		d.SubjectErased = h > 0
	}
	return d, nil
}

// erasedFields returns the paths of v's JSON form whose value is the
// pii.Erased marker.
func erasedFields(v any) []string {
	flat, err := flatten(v)
	if err != nil {
		return nil
	}
	marker, _ := json.Marshal(pii.Erased)
	var out []string
	for p, leaf := range flat {
		if leaf == string(marker) {
			out = append(out, p)
		}
	}
	slices.Sort(out)
	return out
}

func storedForm(data []byte) (string, []byte) {
	if len(data) == 0 {
		return "", nil
	}
	var buf bytes.Buffer
	if json.Valid(data) && json.Indent(&buf, data, "", "  ") == nil {
		return buf.String(), nil
	}
	if utf8.Valid(data) {
		return string(data), nil
	}
	return "", data
}

func itoa(n uint64) string {
	var b [20]byte
	i := len(b)
	for {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
		if n == 0 {
			return string(b[i:])
		}
	}
}

// prettyJSON encodes v indented and without HTML escaping (the page
// escapes it), so markup in a payload reads as it was written.
func prettyJSON(v any) (string, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return "", err
	}
	return strings.TrimSuffix(buf.String(), "\n"), nil
}
