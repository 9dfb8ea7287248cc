package console_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/orchestrix/orchestrix"
	"github.com/orchestrix/orchestrix/console"
	"github.com/orchestrix/orchestrix/journal"
	"github.com/orchestrix/orchestrix/journal/bolt"
	"github.com/orchestrix/orchestrix/projection"
)

type deposited struct {
	Amount int    `json:"amount"`
	Note   string `json:"note"`
}

var t0 = time.Date(2026, 1, 2, 15, 0, 0, 0, time.UTC)

type fixture struct {
	j   *bolt.Journal
	reg *orchestrix.Registry
	pm  *projection.Manager
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	j, err := bolt.Open(filepath.Join(t.TempDir(), "orchestrix.db"), bolt.Config{NoSync: true})
	require.NoError(t, err)
	t.Cleanup(func() { _ = j.Close() })
	reg := orchestrix.NewRegistry()
	require.NoError(t, orchestrix.Register[deposited](reg, "bank.Deposited"))
	f := &fixture{j: j, reg: reg}
	for i := 1; i <= 5; i++ {
		f.append(t, "account-1", deposited{Amount: i * 10, Note: "n"}, t0.Add(time.Duration(i)*time.Minute))
	}
	f.append(t, "account-2", deposited{Amount: 7}, t0)
	f.append(t, "saga.transfer-x", deposited{Amount: 1}, t0)
	f.append(t, "<script>alert(1)</script>", deposited{Amount: 1, Note: "<script>document.title='pwned'</script>"}, t0)
	return f
}

func (f *fixture) append(t *testing.T, stream string, v any, at time.Time) {
	t.Helper()
	e, err := f.reg.Marshal(v)
	require.NoError(t, err)
	e.Source, e.Time, e.Subject = "/test", at, stream
	e.CorrelationID = "corr-1"
	e.TraceParent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	_, err = f.j.Append(context.Background(), stream, journal.Any, []orchestrix.Envelope{e})
	require.NoError(t, err)
}

func (f *fixture) console(t *testing.T, mod func(*console.Config)) *console.Console {
	t.Helper()
	cfg := console.Config{Journal: f.j, Registry: f.reg, Projections: f.pm, TraceURL: "http://jaeger.local/trace/{trace}", Logger: slog.New(slog.DiscardHandler)}
	if mod != nil {
		mod(&cfg)
	}
	c, err := console.New(cfg)
	require.NoError(t, err)
	return c
}

func get(t *testing.T, h http.Handler, target string) *httptest.ResponseRecorder {
	t.Helper()
	r := httptest.NewRequest(http.MethodGet, "http://localhost:8080"+target, nil)
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

func decode[T any](t *testing.T, w *httptest.ResponseRecorder) T {
	t.Helper()
	require.Equal(t, "application/json", w.Header().Get("Content-Type"))
	var v T
	require.NoError(t, json.Unmarshal(w.Body.Bytes(), &v), w.Body.String())
	return v
}

func TestNew_Validate(t *testing.T) {
	f := newFixture(t)
	_, err := console.New(console.Config{})
	require.ErrorIs(t, err, console.ErrNoJournal)
	_, err = console.New(console.Config{Journal: f.j, EnableWrites: true})
	require.ErrorIs(t, err, console.ErrNoAuthorize)
	_, err = console.New(console.Config{Journal: f.j, EnableWrites: true, InsecureWritesWithoutAuthorize: true})
	require.NoError(t, err)
	_, err = console.New(console.Config{Journal: f.j, PageSize: 10, MaxPageSize: 5})
	require.ErrorIs(t, err, console.ErrInvalidConfig)
	_, err = console.New(console.Config{Journal: f.j, AllowedHosts: []string{"example.com:80"}})
	require.ErrorIs(t, err, console.ErrInvalidConfig)
}

func TestAPI_Streams_ListsFiltersAndPages(t *testing.T) {
	c := newFixture(t).console(t, nil)
	p := decode[console.StreamPage](t, get(t, c, "/api/streams"))
	require.Len(t, p.Streams, 4)
	require.Equal(t, console.StreamRow{Name: "account-1", Kind: "account", Head: 5, Events: 5}, p.Streams[1])

	p = decode[console.StreamPage](t, get(t, c, "/api/streams?kind=saga.transfer"))
	require.Equal(t, []console.StreamRow{{Name: "saga.transfer-x", Kind: "saga.transfer", Head: 1, Events: 1}}, p.Streams)

	p = decode[console.StreamPage](t, get(t, c, "/api/streams?prefix=account-&limit=1"))
	require.Equal(t, "account-1", p.Streams[0].Name)
	require.Equal(t, "account-1", p.Next)
	p = decode[console.StreamPage](t, get(t, c, "/api/streams?prefix=account-&limit=1&after="+p.Next))
	require.Equal(t, "account-2", p.Streams[0].Name)
	require.Empty(t, p.Next)
}

func TestAPI_Streams_ScanCap_OffersContinuation(t *testing.T) {
	c := newFixture(t).console(t, func(c *console.Config) { c.MaxScan = 2 })
	p := decode[console.StreamPage](t, get(t, c, "/api/streams?prefix=saga."))
	require.True(t, p.Truncated)
	require.Empty(t, p.Streams)
	require.Equal(t, "account-1", p.Next)
	p = decode[console.StreamPage](t, get(t, c, "/api/streams?prefix=saga.&after="+url.QueryEscape(p.Next)))
	require.Equal(t, "saga.transfer-x", p.Streams[0].Name)
}

func TestAPI_Events_PagesByVersionAndJumpsToTime(t *testing.T) {
	c := newFixture(t).console(t, nil)
	p := decode[console.EventPage](t, get(t, c, "/api/events?stream=account-1&from=2&limit=2"))
	require.Equal(t, uint64(5), p.Head)
	require.Len(t, p.Events, 2)
	require.Equal(t, []uint64{2, 3}, []uint64{p.Events[0].Version, p.Events[1].Version})
	require.Equal(t, uint64(4), p.Next)
	require.Equal(t, uint64(1), p.Prev)

	p = decode[console.EventPage](t, get(t, c, "/api/events?stream=account-1&time="+url.QueryEscape(t0.Add(150*time.Second).Format(time.RFC3339))))
	require.Equal(t, uint64(3), p.Events[0].Version)
}

func TestAPI_Event_StoredAndDecoded(t *testing.T) {
	c := newFixture(t).console(t, nil)
	d := decode[console.EventDetail](t, get(t, c, "/api/event?stream=account-1&version=2"))
	require.Equal(t, "bank.Deposited", d.Type)
	require.Contains(t, d.Stored, `"amount": 20`)
	require.Contains(t, d.Decoded, `"amount": 20`)
	require.Equal(t, "http://jaeger.local/trace/4bf92f3577b34da6a3ce929d0e0e4736", d.TraceURL)
	attrs := map[string]string{}
	for _, a := range d.Attributes {
		attrs[a.Name] = a.Value
	}
	require.Equal(t, "corr-1", attrs["correlationid"])
	require.Equal(t, "2", attrs["sequence"])
}

func TestAPI_Event_UnknownType_ShowsDecodeError(t *testing.T) {
	f := newFixture(t)
	c := f.console(t, func(c *console.Config) { c.Registry = orchestrix.NewRegistry() })
	d := decode[console.EventDetail](t, get(t, c, "/api/event?stream=account-1&version=1"))
	require.Empty(t, d.Decoded)
	require.Contains(t, d.DecodeError, "bank.Deposited")
	require.Contains(t, d.Stored, `"amount": 10`)
}

func TestRoutes_BadInput_4xxWithMessage(t *testing.T) {
	c := newFixture(t).console(t, func(c *console.Config) { c.MaxPageSize = 100 })
	cases := []struct {
		target string
		code   int
		msg    string
	}{
		{"/api/events?stream=nope", 404, "no stream"},
		{"/api/events", 400, "missing query parameter"},
		{"/api/events?stream=account-1&from=9", 404, "no version 9"},
		{"/api/events?stream=account-1&from=-1", 400, "from"},
		{"/api/events?stream=account-1&from=abc", 400, "from"},
		{"/api/events?stream=account-1&limit=0", 400, "limit"},
		{"/api/events?stream=account-1&limit=101", 400, "maximum page size"},
		{"/api/events?stream=account-1&limit=99999999999999999999", 400, "limit"},
		{"/api/events?stream=account-1&time=yesterday", 400, "time"},
		{"/api/events?stream=account-1&time=2030-01-01", 404, "no event at or after"},
		{"/api/event?stream=account-1", 400, "version"},
		{"/api/event?stream=account-1&version=6", 404, "no event at version 6"},
		{"/api/event?stream=nope&version=1", 404, "no stream"},
		{"/api/event?stream=%00&version=1", 400, "NUL"},
		{"/api/streams?limit=x", 400, "limit"},
		{"/api/streams?prefix=" + strings.Repeat("a", 2000), 400, "longer"},
		{"/api/nothing", 404, ""},
		{"/stream?stream=nope", 404, "no stream"},
		{"/event?stream=account-1&version=x", 400, "version"},
		{"/streams?limit=1000", 400, "maximum page size"},
	}
	for _, tc := range cases {
		w := get(t, c, tc.target)
		require.Equal(t, tc.code, w.Code, "%s: %s", tc.target, w.Body.String())
		require.Contains(t, w.Body.String(), tc.msg, tc.target)
		if strings.HasPrefix(tc.target, "/api/events") || strings.HasPrefix(tc.target, "/api/event?") {
			var e struct{ Error string }
			require.NoError(t, json.Unmarshal(w.Body.Bytes(), &e))
			require.NotEmpty(t, e.Error)
		}
	}
}

func TestPages_Render(t *testing.T) {
	c := newFixture(t).console(t, nil)
	for _, target := range []string{"/streams", "/stream?stream=account-1", "/event?stream=account-1&version=1", "/projections", "/tail"} {
		w := get(t, c, target)
		require.Equal(t, 200, w.Code, target)
		require.Equal(t, "text/html; charset=utf-8", w.Header().Get("Content-Type"))
		require.Contains(t, w.Body.String(), "Orchestrix console", target)
	}
	w := get(t, c, "/")
	require.Equal(t, http.StatusSeeOther, w.Code)
	require.Equal(t, "streams", w.Header().Get("Location"))
	w = get(t, c, "/assets/console.js")
	require.Equal(t, 200, w.Code)
	require.Contains(t, w.Body.String(), "EventSource")
	require.Contains(t, get(t, c, "/event?stream=account-1&version=2").Body.String(), `&#34;amount&#34;: 20`)
}

func TestPages_MarkupInStreamAndPayload_ShownAsText(t *testing.T) {
	c := newFixture(t).console(t, nil)
	for _, target := range []string{"/streams", "/stream?stream=" + url.QueryEscape("<script>alert(1)</script>"),
		"/event?stream=" + url.QueryEscape("<script>alert(1)</script>") + "&version=1"} {
		body := get(t, c, target).Body.String()
		require.NotContains(t, body, "<script>alert", target)
		require.NotContains(t, body, "<script>document", target)
		require.Contains(t, body, "&lt;script&gt;", target)
	}
}

func TestSafety_Headers(t *testing.T) {
	c := newFixture(t).console(t, nil)
	for _, target := range []string{"/streams", "/api/streams"} {
		h := get(t, c, target).Header()
		require.Equal(t, "default-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'", h.Get("Content-Security-Policy"))
		require.Equal(t, "no-store", h.Get("Cache-Control"))
		require.Equal(t, "nosniff", h.Get("X-Content-Type-Options"))
		require.Empty(t, h.Get("Access-Control-Allow-Origin"))
	}
}

func TestSafety_HostAllowList(t *testing.T) {
	c := newFixture(t).console(t, nil)
	for host, code := range map[string]int{"localhost:8080": 200, "127.0.0.1": 200, "[::1]:9": 200, "evil.example:8080": 403, "localhost.evil.example": 403} {
		r := httptest.NewRequest(http.MethodGet, "/api/streams", nil)
		r.Host = host
		w := httptest.NewRecorder()
		c.ServeHTTP(w, r)
		require.Equal(t, code, w.Code, host)
	}
	c2 := newFixture(t).console(t, func(c *console.Config) { c.AllowedHosts = []string{"ops.example"} })
	r := httptest.NewRequest(http.MethodGet, "/api/streams", nil)
	r.Host = "ops.example:443"
	w := httptest.NewRecorder()
	c2.ServeHTTP(w, r)
	require.Equal(t, 200, w.Code)
}

func TestSafety_ReadOnlyByDefault_NoMutatingRoutes(t *testing.T) {
	f := newFixture(t)
	f.startProjection(t, "balances", nil)
	c := f.console(t, nil)
	for _, target := range []string{"/api/projections/balances/stop", "/projections/balances/stop"} {
		r := httptest.NewRequest(http.MethodPost, "http://localhost"+target, nil)
		w := httptest.NewRecorder()
		c.ServeHTTP(w, r)
		require.Contains(t, []int{404, 405}, w.Code, target)
	}
	require.NotContains(t, get(t, c, "/projections").Body.String(), "<form method=\"post\"")
	st, err := f.pm.Status(context.Background(), "balances")
	require.NoError(t, err)
	require.Equal(t, projection.StateRunning, st.State)
}

func (f *fixture) startProjection(t *testing.T, name string, h projection.HandlerFunc) {
	t.Helper()
	if f.pm == nil {
		pm, err := projection.NewManager(projection.Config{Journal: f.j, Registry: f.reg, Checkpoints: projection.NewMemCheckpoints()})
		require.NoError(t, err)
		t.Cleanup(func() { _ = pm.Close() })
		f.pm = pm
	}
	if h == nil {
		h = func(context.Context, []projection.Event) error { return nil }
	}
	ctx := context.Background()
	require.NoError(t, f.pm.Add(ctx, projection.Projection{Name: name, Handler: h, Retry: projection.Retry{MaxAttempts: 1}}))
	require.NoError(t, f.pm.Start(ctx, name))
}

func post(t *testing.T, h http.Handler, target string, hdr map[string]string) *httptest.ResponseRecorder {
	t.Helper()
	r := httptest.NewRequest(http.MethodPost, "http://localhost:8080"+target, nil)
	for k, v := range hdr {
		r.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

func TestActions_AuthorizedStopStart_LoggedRefusedCrossSite(t *testing.T) {
	f := newFixture(t)
	f.startProjection(t, "balances", nil)
	var seen []console.Action
	c := f.console(t, func(c *console.Config) {
		c.EnableWrites = true
		c.Authorize = func(r *http.Request, a console.Action) (string, error) {
			seen = append(seen, a)
			if r.Header.Get("X-User") != "ops" {
				return "", errors.New("unknown user")
			}
			return "ops", nil
		}
	})
	ctx := context.Background()
	w := post(t, c, "/api/projections/balances/stop", nil)
	require.Equal(t, 403, w.Code, w.Body.String())
	require.Contains(t, w.Body.String(), "unknown user")

	w = post(t, c, "/api/projections/balances/stop", map[string]string{"X-User": "ops", "Sec-Fetch-Site": "cross-site"})
	require.Equal(t, 403, w.Code, "cross-site POST must be refused")

	w = post(t, c, "/api/projections/balances/stop", map[string]string{"X-User": "ops", "Sec-Fetch-Site": "same-origin"})
	require.Equal(t, 200, w.Code, w.Body.String())
	st, err := f.pm.Status(ctx, "balances")
	require.NoError(t, err)
	require.Equal(t, projection.StateStopped, st.State)

	w = post(t, c, "/projections/balances/start", map[string]string{"X-User": "ops"})
	require.Equal(t, http.StatusSeeOther, w.Code, w.Body.String())
	st, err = f.pm.Status(ctx, "balances")
	require.NoError(t, err)
	require.NotEqual(t, projection.StateStopped, st.State)
	require.Equal(t, []console.Action{{"projection.stop", "balances"}, {"projection.stop", "balances"}, {"projection.start", "balances"}}, seen)

	for target, code := range map[string]int{
		"/api/projections/balances/explode": 404,
		"/api/projections/balances/skip":    400,
		"/api/projections/nope/stop":        404,
		"/api/projections/balances/rebuild": 409, // no Reset hook
	} {
		w := post(t, c, target, map[string]string{"X-User": "ops"})
		require.Equal(t, code, w.Code, "%s: %s", target, w.Body.String())
	}
	require.Contains(t, get(t, c, "/projections").Body.String(), `action="projections/balances/stop"`)
	require.Equal(t, http.StatusMethodNotAllowed, get(t, c, "/api/projections/balances/stop").Code)
}

func TestAPI_Projections_ShowsFailure(t *testing.T) {
	f := newFixture(t)
	f.startProjection(t, "broken", func(context.Context, []projection.Event) error { return errors.New("boom") })
	c := f.console(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := f.pm.Wait(ctx, "broken", func(s projection.Status) bool { return s.State == projection.StateFailed })
	require.NoError(t, err)
	p := decode[console.ProjectionPage](t, get(t, c, "/api/projections"))
	require.Len(t, p.Projections, 1)
	require.Equal(t, "failed", p.Projections[0].State)
	require.Equal(t, uint64(1), p.Projections[0].FailedPosition)
	require.Contains(t, p.Projections[0].Error, "boom")
}

func TestTail_SSE_ResumesAndFollows(t *testing.T) {
	f := newFixture(t)
	srv := httptest.NewServer(f.console(t, nil))
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/api/tail?prefix=account-1", nil)
	req.Header.Set("Last-Event-ID", "3")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, "text/event-stream", resp.Header.Get("Content-Type"))
	events := readSSE(resp.Body)
	for _, want := range []uint64{4, 5} {
		ev := <-events
		require.Equal(t, fmt.Sprint(want), ev.id)
	}
	f.append(t, "account-2", deposited{Amount: 1}, t0) // filtered out
	f.append(t, "account-1", deposited{Amount: 99}, t0)
	ev := <-events
	var row console.EventRow
	require.NoError(t, json.Unmarshal([]byte(ev.data), &row))
	require.Equal(t, "account-1", row.Stream)
	require.Equal(t, uint64(6), row.Version)
	require.Equal(t, uint64(10), row.Position)
}

func TestTail_BadInputAndConnectionCap(t *testing.T) {
	f := newFixture(t)
	c := f.console(t, func(c *console.Config) { c.MaxTail = 1 })
	r := httptest.NewRequest(http.MethodGet, "http://localhost/api/tail", nil)
	r.Header.Set("Last-Event-ID", "x")
	w := httptest.NewRecorder()
	c.ServeHTTP(w, r)
	require.Equal(t, 400, w.Code)

	srv := httptest.NewServer(c)
	defer srv.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/api/tail", nil)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	<-readSSE(resp.Body) // the first tail is streaming
	resp2, err := http.Get(srv.URL + "/api/tail")
	require.NoError(t, err)
	resp2.Body.Close()
	require.Equal(t, http.StatusServiceUnavailable, resp2.StatusCode)
}

type sse struct{ id, data string }

func readSSE(r io.Reader) <-chan sse {
	ch := make(chan sse, 64)
	go func() {
		defer close(ch)
		sc := bufio.NewScanner(r)
		var cur sse
		for sc.Scan() {
			line := sc.Text()
			switch {
			case strings.HasPrefix(line, "id: "):
				cur.id = line[4:]
			case strings.HasPrefix(line, "data: "):
				cur.data = line[6:]
			case line == "" && cur.data != "":
				ch <- cur
				cur = sse{}
			}
		}
	}()
	return ch
}

func TestAPI_Check_ReportsTheJournal(t *testing.T) {
	c := newFixture(t).console(t, nil)
	res := decode[console.CheckResult](t, get(t, c, "/api/check"))
	require.True(t, res.OK, res.Problems)
	require.Equal(t, 4, res.Streams)
	require.Equal(t, uint64(8), res.Records)
	require.Equal(t, uint64(8), res.LastPosition)
	require.Contains(t, get(t, c, "/check").Body.String(), "No problems found")
}
