package console

import (
	"net/http"

	"github.com/orchestrix/orchestrix/journal"
)

// CheckResult is the answer of GET /api/check: the journal's integrity
// check (journal.Checker) and its figures.
type CheckResult struct {
	OK           bool     `json:"ok"`
	Streams      int      `json:"streams"`
	Records      uint64   `json:"records"`
	LastPosition uint64   `json:"last_position"`
	Problems     []string `json:"problems"`
	Omitted      int      `json:"omitted,omitempty"`
}

// check runs the integrity check, one at a time (it reads every record).
func (c *Console) check(r *http.Request) (any, error) {
	checker, ok := c.cfg.Journal.(journal.Checker)
	if !ok {
		return nil, &requestError{status: http.StatusNotImplemented, msg: "console: this journal cannot check itself (no journal.Checker)"}
	}
	select {
	case c.checking <- struct{}{}:
		defer func() { <-c.checking }()
	default:
		return nil, &requestError{status: http.StatusServiceUnavailable, msg: "console: a check is already running"}
	}
	rep, err := checker.Check(r.Context())
	if err != nil {
		return nil, err
	}
	out := CheckResult{OK: rep.OK(), Streams: rep.Streams, Records: rep.Records, LastPosition: rep.LastPosition,
		Problems: []string{}, Omitted: rep.Omitted}
	for _, p := range rep.Problems {
		out.Problems = append(out.Problems, p.String())
	}
	return out, nil
}
