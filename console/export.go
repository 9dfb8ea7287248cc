package console

import (
	"bufio"
	"encoding/json"
	"fmt"
	"iter"
	"math"
	"net/http"

	"github.com/orchestrix/orchestrix/journal"
)

// Stats is the answer of GET /api/stats: counts and positions of the
// journal, read within Config.MaxScan streams.
type Stats struct {
	Streams       int    `json:"streams"`
	Events        uint64 `json:"events"`
	Deleted       uint64 `json:"deleted"`
	FirstPosition uint64 `json:"first_position"`
	LastPosition  uint64 `json:"last_position"`
	// Truncated says the stream scan stopped at Config.MaxScan streams:
	// Streams, Events and Deleted then count only those.
	Truncated bool `json:"truncated,omitempty"`
	// Kinds counts streams and events by stream kind.
	Kinds []KindStats `json:"kinds"`
}

// KindStats counts the streams and events of one stream kind.
type KindStats struct {
	Kind    string `json:"kind"`
	Streams int    `json:"streams"`
	Events  uint64 `json:"events"`
}

func (c *Console) stats(r *http.Request) (any, error) {
	lister, ok := c.cfg.Journal.(journal.StreamLister)
	if !ok {
		return nil, &requestError{status: http.StatusNotImplemented, msg: "console: this journal cannot list its streams"}
	}
	ctx := r.Context()
	out := Stats{Kinds: []KindStats{}}
	kinds := map[string]int{}
	for info, err := range lister.Streams(ctx) {
		if err != nil {
			return nil, err
		}
		if out.Streams == c.cfg.MaxScan {
			out.Truncated = true
			break
		}
		out.Streams++
		out.Events += info.Events()
		out.Deleted += info.Head - info.Events()
		k := journal.StreamKind(info.Name)
		i, ok := kinds[k]
		if !ok {
			i = len(out.Kinds)
			kinds[k] = i
			out.Kinds = append(out.Kinds, KindStats{Kind: k})
		}
		out.Kinds[i].Streams++
		out.Kinds[i].Events += info.Events()
	}
	if w, ok := c.cfg.Journal.(journal.Watcher); ok {
		last, err := w.LastPosition(ctx)
		if err != nil {
			return nil, err
		}
		out.LastPosition = last
	}
	for rec, err := range c.cfg.Journal.ReadAll(ctx, 0, 1) {
		if err != nil {
			return nil, err
		}
		out.FirstPosition = rec.Position
	}
	return out, nil
}

// exportLine is one line of the export format (as `orchestrix export`
// writes and `orchestrix import` reads).
type exportLine struct {
	Stream   string          `json:"stream"`
	Version  uint64          `json:"version"`
	Position uint64          `json:"position"`
	Event    json.RawMessage `json:"event"`
}

// export serves GET /api/export: the events of a stream (?stream=, with
// versions ?from= … ?to=) or of the global log (positions ?from= … ?to=)
// in the export format, one JSON object per line, as a download. One
// request covers at most Config.MaxScan versions or positions; when the
// range asked for (or the stream) goes on, the X-Export-Next header gives
// the "from" of the next part. An empty range is a 404.
func (c *Console) export(w http.ResponseWriter, r *http.Request) {
	r, cancel := c.withTimeout(r)
	defer cancel()
	fail := func(err error) {
		code, msg := c.status(r, err)
		writeJSON(w, code, map[string]string{"error": msg})
	}
	stream, err := stringParam(r, "stream", false)
	if err != nil {
		fail(err)
		return
	}
	from, err := uintParam(r, "from", 1)
	if err != nil {
		fail(err)
		return
	}
	to, err := uintParam(r, "to", math.MaxUint64)
	if err != nil {
		fail(err)
		return
	}
	from = max(from, 1)
	if to < from {
		fail(badRequest("to %d is below from %d", to, from))
		return
	}
	ctx := r.Context()
	var end uint64 // the head or last position
	if stream != "" {
		if end, err = c.cfg.Journal.Head(ctx, stream); err == nil && end == 0 {
			err = notFound("console: no stream %q", stream)
		}
	} else if wt, ok := c.cfg.Journal.(journal.Watcher); ok {
		end, err = wt.LastPosition(ctx)
	} else {
		end = math.MaxUint64
	}
	if err != nil {
		fail(err)
		return
	}
	to = min(to, end)
	if from > to {
		fail(notFound("console: nothing to export from %d (the end is %d)", from, end))
		return
	}
	var next uint64
	if n := uint64(c.cfg.MaxScan); to-from >= n {
		to = from + n - 1
		next = to + 1
	}
	var recs iter.Seq2[journal.Record, error]
	name := "journal"
	if stream != "" {
		recs = c.cfg.Journal.Read(ctx, stream, from, to, c.cfg.MaxScan)
		name = stream
	} else {
		recs = c.cfg.Journal.ReadAll(ctx, from, c.cfg.MaxScan)
	}
	// Encode the first record before the header is written, so an error
	// reading it is still a clean error response.
	h := w.Header()
	h.Set("Content-Type", "application/x-ndjson")
	h.Set("Content-Disposition", fmt.Sprintf("attachment; filename=%q", fmt.Sprintf("%s-%d-%d.jsonl", safeFileName(name), from, to)))
	if next != 0 {
		h.Set("X-Export-Next", itoa(next))
	}
	bw := bufio.NewWriterSize(w, 1<<16)
	started := false
	for rec, err := range recs {
		if err != nil {
			if !started {
				h.Del("Content-Disposition")
				h.Del("X-Export-Next")
				fail(err)
				return
			}
			c.log.ErrorContext(ctx, "console: export failed midway", "stream", stream, "err", err)
			return // the download ends short; the client sees a broken transfer
		}
		if stream == "" && rec.Position > to {
			break
		}
		ev, err := rec.Envelope.MarshalJSON()
		if err == nil {
			var b []byte
			b, err = json.Marshal(exportLine{Stream: rec.Stream, Version: rec.Version, Position: rec.Position, Event: ev})
			if err == nil {
				if !started {
					w.WriteHeader(http.StatusOK)
					started = true
				}
				_, err = bw.Write(append(b, '\n'))
			}
		}
		if err != nil {
			c.log.ErrorContext(ctx, "console: export failed", "stream", rec.Stream, "version", rec.Version, "err", err)
			if !started {
				fail(err)
			}
			return
		}
	}
	if !started {
		w.WriteHeader(http.StatusOK) // a range of deleted events: an empty export
	}
	_ = bw.Flush()
}

// safeFileName keeps letters, digits, '.', '_' and '-' of s.
func safeFileName(s string) string {
	b := make([]byte, 0, min(len(s), 100))
	for i := 0; i < len(s) && len(b) < 100; i++ {
		ch := s[i]
		if ch == '.' || ch == '_' || ch == '-' || ch >= '0' && ch <= '9' || ch >= 'a' && ch <= 'z' || ch >= 'A' && ch <= 'Z' {
			b = append(b, ch)
		} else {
			b = append(b, '_')
		}
	}
	return string(b)
}
