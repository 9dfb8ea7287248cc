package console_test

import (
	"bufio"
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/orchestrix/orchestrix"
	"github.com/orchestrix/orchestrix/console"
)

func TestAPI_Stats(t *testing.T) {
	c := newFixture(t).console(t, nil)
	s := decode[console.Stats](t, get(t, c, "/api/stats"))
	require.Equal(t, 4, s.Streams)
	require.Equal(t, uint64(8), s.Events)
	require.Equal(t, uint64(1), s.FirstPosition)
	require.Equal(t, uint64(8), s.LastPosition)
	require.Contains(t, s.Kinds, console.KindStats{Kind: "account", Streams: 2, Events: 6})
	page := get(t, c, "/stats")
	require.Equal(t, 200, page.Code)
	require.Contains(t, page.Body.String(), `<form method="get" action="api/export"`)
	require.Contains(t, page.Body.String(), "&lt;script&gt;", "kinds are shown as text")

	limited := newFixture(t).console(t, func(cfg *console.Config) { cfg.MaxScan = 2 })
	s = decode[console.Stats](t, get(t, limited, "/api/stats"))
	require.True(t, s.Truncated)
	require.Equal(t, 2, s.Streams)
}

type exportLine struct {
	Stream   string          `json:"stream"`
	Version  uint64          `json:"version"`
	Position uint64          `json:"position"`
	Event    json.RawMessage `json:"event"`
}

func exportLines(t *testing.T, body string) []exportLine {
	t.Helper()
	var out []exportLine
	sc := bufio.NewScanner(strings.NewReader(body))
	for sc.Scan() {
		var l exportLine
		require.NoError(t, json.Unmarshal(sc.Bytes(), &l), sc.Text())
		var e orchestrix.Envelope
		require.NoError(t, e.UnmarshalJSON(l.Event), "the event is CloudEvents JSON")
		out = append(out, l)
	}
	return out
}

func TestAPI_Export_StreamAndRangeInParts(t *testing.T) {
	f := newFixture(t)
	c := f.console(t, nil)
	w := get(t, c, "/api/export?stream=account-1&from=2&to=4")
	require.Equal(t, 200, w.Code, w.Body.String())
	require.Equal(t, "application/x-ndjson", w.Header().Get("Content-Type"))
	require.Equal(t, `attachment; filename="account-1-2-4.jsonl"`, w.Header().Get("Content-Disposition"))
	lines := exportLines(t, w.Body.String())
	require.Len(t, lines, 3)
	require.Equal(t, "account-1", lines[0].Stream)
	require.Equal(t, uint64(2), lines[0].Version)
	require.Empty(t, w.Header().Get("X-Export-Next"))

	w = get(t, c, "/api/export")
	require.Len(t, exportLines(t, w.Body.String()), 8, "the whole global log")

	parts := f.console(t, func(cfg *console.Config) { cfg.MaxScan = 3 })
	w = get(t, parts, "/api/export?from=2")
	lines = exportLines(t, w.Body.String())
	require.Equal(t, []uint64{2, 3, 4}, []uint64{lines[0].Position, lines[1].Position, lines[2].Position})
	require.Equal(t, "5", w.Header().Get("X-Export-Next"))
	w = get(t, parts, "/api/export?from=5&to=6")
	require.Len(t, exportLines(t, w.Body.String()), 2)
	require.Empty(t, w.Header().Get("X-Export-Next"))

	w = get(t, c, "/api/export?stream=%3Cscript%3Ealert(1)%3C/script%3E")
	require.Equal(t, 200, w.Code)
	require.NotContains(t, w.Header().Get("Content-Disposition"), "<")

	for target, code := range map[string]int{
		"/api/export?stream=ghost-1":          404,
		"/api/export?stream=account-1&from=9": 404,
		"/api/export?from=100":                404,
		"/api/export?from=x":                  400,
		"/api/export?from=5&to=2":             400,
		"/api/export?to=-1":                   400,
	} {
		w := get(t, c, target)
		require.Equal(t, code, w.Code, "%s: %s", target, w.Body.String())
		require.Empty(t, w.Header().Get("Content-Disposition"), target)
	}
	require.Contains(t, get(t, c, "/stream?stream=account-1").Body.String(), `id="export" href="api/export?stream=account-1"`)
}
