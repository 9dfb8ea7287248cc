package console

import (
	"net/http"
	"time"
)

// SearchPage is the answer of GET /api/search: the events matching every
// given filter among a bounded scan of the global log.
type SearchPage struct {
	Type          string     `json:"type,omitempty"`
	Subject       string     `json:"subject,omitempty"`
	CorrelationID string     `json:"correlationid,omitempty"`
	Since         time.Time  `json:"since,omitzero"`
	Until         time.Time  `json:"until,omitzero"`
	From          uint64     `json:"from"`
	Events        []EventRow `json:"events"`
	// Next, when not 0, is the position to continue the scan from; the
	// scan stopped at the page size or at the scan cap (Scanned).
	Next    uint64 `json:"next,omitempty"`
	Scanned int    `json:"scanned"`
	// Chain, with a correlation id, arranges the found events by
	// causation: each root is a message whose cause is not among them.
	Chain []*ChainNode `json:"chain,omitempty"`
}

// ChainNode is one message of a correlation chain: an event found, or a
// command (or other message) known only as the causation id of events.
type ChainNode struct {
	ID       string       `json:"id"`
	Event    *EventRow    `json:"event,omitempty"`
	Children []*ChainNode `json:"children,omitempty"`
}

func (c *Console) search(r *http.Request) (any, error) {
	var out SearchPage
	var err error
	for name, dst := range map[string]*string{"type": &out.Type, "subject": &out.Subject, "correlation": &out.CorrelationID} {
		if *dst, err = stringParam(r, name, false); err != nil {
			return nil, err
		}
	}
	if out.Since, err = timeParam(r, "since"); err != nil {
		return nil, err
	}
	if out.Until, err = timeParam(r, "until"); err != nil {
		return nil, err
	}
	if !out.Since.IsZero() && !out.Until.IsZero() && out.Until.Before(out.Since) {
		return nil, badRequest("until %s is before since %s", out.Until.Format(time.RFC3339), out.Since.Format(time.RFC3339))
	}
	if out.From, err = uintParam(r, "from", 1); err != nil {
		return nil, err
	}
	out.From = max(out.From, 1)
	limit, err := c.limit(r)
	if err != nil {
		return nil, err
	}
	out.Events = []EventRow{}
	if out.Type == "" && out.Subject == "" && out.CorrelationID == "" && out.Since.IsZero() && out.Until.IsZero() {
		return out, nil // the page's empty form
	}
	var last uint64
	for rec, err := range c.cfg.Journal.ReadAll(r.Context(), out.From, c.cfg.MaxScan) {
		if err != nil {
			return nil, err
		}
		out.Scanned++
		last = rec.Position
		e := rec.Envelope
		if (out.Type != "" && e.Type != out.Type) || (out.Subject != "" && e.Subject != out.Subject) ||
			(out.CorrelationID != "" && e.CorrelationID != out.CorrelationID) ||
			(!out.Since.IsZero() && e.Time.Before(out.Since)) || (!out.Until.IsZero() && e.Time.After(out.Until)) {
			continue
		}
		out.Events = append(out.Events, rowOf(rec))
		if len(out.Events) == limit {
			out.Next = rec.Position + 1
			break
		}
	}
	if out.Next == 0 && out.Scanned == c.cfg.MaxScan {
		out.Next = last + 1
	}
	if out.CorrelationID != "" {
		out.Chain = chain(out.Events, c.causations(r, out.Events))
	}
	return out, nil
}

// causations returns each event's causation id.
func (c *Console) causations(r *http.Request, rows []EventRow) map[string]string {
	out := make(map[string]string, len(rows))
	for _, row := range rows {
		for rec, err := range c.cfg.Journal.Read(r.Context(), row.Stream, row.Version, row.Version, 1) {
			if err == nil {
				out[row.ID] = rec.Envelope.CausationID
			}
		}
	}
	return out
}

// chain arranges rows by causation: an event's parent is the event whose
// id is its causation id, or else a node for that causation id (the
// command), shared by its siblings.
func chain(rows []EventRow, cause map[string]string) []*ChainNode {
	nodes := make(map[string]*ChainNode, len(rows))
	for i := range rows {
		nodes[rows[i].ID] = &ChainNode{ID: rows[i].ID, Event: &rows[i]}
	}
	var roots []*ChainNode
	for i := range rows {
		n := nodes[rows[i].ID]
		cid := cause[rows[i].ID]
		switch p, ok := nodes[cid]; {
		case cid == "" || cid == rows[i].ID:
			roots = append(roots, n)
		case ok:
			p.Children = append(p.Children, n)
		default:
			p = &ChainNode{ID: cid}
			nodes[cid] = p
			roots = append(roots, p)
			p.Children = append(p.Children, n)
		}
	}
	return roots
}
