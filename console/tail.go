package console

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/orchestrix/orchestrix/journal"
)

// tailBacklog is how many records before the head a new tail starts with
// when the request names no position.
const tailBacklog = 20

// tail serves GET /api/tail: the global log as Server-Sent Events. Each
// event has id = position and data = an EventRow as JSON. It resumes after
// Last-Event-ID (or starts at ?from=), and filters by ?type= (exact) and
// ?prefix= (stream name prefix).
func (c *Console) tail(w http.ResponseWriter, r *http.Request) {
	watcher, ok := c.cfg.Journal.(journal.Watcher)
	if !ok {
		writeJSON(w, http.StatusNotImplemented, map[string]string{"error": "console: this journal cannot be followed (no journal.Watcher)"})
		return
	}
	flusher, ok := w.(http.Flusher)
	if !ok {
		writeJSON(w, http.StatusInternalServerError, map[string]string{"error": "console: the response writer cannot stream"})
		return
	}
	typ, err := stringParam(r, "type", false)
	var prefix string
	if err == nil {
		prefix, err = stringParam(r, "prefix", false)
	}
	var from uint64
	if err == nil {
		from, err = uintParam(r, "from", 0)
	}
	if err == nil && r.Header.Get("Last-Event-ID") != "" {
		var last uint64
		last, err = strconv.ParseUint(r.Header.Get("Last-Event-ID"), 10, 64)
		if err != nil {
			err = badRequest("Last-Event-ID %q: want a journal position", r.Header.Get("Last-Event-ID"))
		}
		from = last + 1
	}
	if err != nil {
		code, msg := c.status(r, err)
		writeJSON(w, code, map[string]string{"error": msg})
		return
	}
	select {
	case c.tails <- struct{}{}:
		defer func() { <-c.tails }()
	default:
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": fmt.Sprintf("console: too many live tails (at most %d)", c.cfg.MaxTail)})
		return
	}
	ctx := r.Context()
	if from == 0 {
		last, err := watcher.LastPosition(ctx)
		if err != nil {
			code, msg := c.status(r, err)
			writeJSON(w, code, map[string]string{"error": msg})
			return
		}
		from = uint64(max(int64(last)-tailBacklog+1, 1))
	}
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	_, _ = fmt.Fprint(w, "retry: 2000\n: tail\n\n")
	flusher.Flush()
	next := from
	for {
		n := 0
		for rec, err := range c.cfg.Journal.ReadAll(ctx, next, 256) {
			if err != nil {
				c.tailError(w, flusher, err)
				return
			}
			n++
			next = rec.Position + 1
			if (typ != "" && rec.Envelope.Type != typ) || !strings.HasPrefix(rec.Stream, prefix) {
				continue
			}
			b, _ := json.Marshal(rowOf(rec))
			if _, err := fmt.Fprintf(w, "id: %d\ndata: %s\n\n", rec.Position, b); err != nil {
				return
			}
		}
		flusher.Flush()
		if n > 0 {
			continue
		}
		if _, err := watcher.WaitFor(ctx, next-1); err != nil {
			if ctx.Err() == nil {
				c.tailError(w, flusher, err)
			}
			return
		}
	}
}

func (c *Console) tailError(w http.ResponseWriter, f http.Flusher, err error) {
	b, _ := json.Marshal(map[string]string{"error": err.Error()})
	_, _ = fmt.Fprintf(w, "event: failure\ndata: %s\n\n", b)
	f.Flush()
}
