package console_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	"github.com/orchestrix/orchestrix/console"
	"github.com/orchestrix/orchestrix/projection"
)

// envRequireBrowser makes a missing Chromium a failure instead of a skip;
// .ci/run sets it.
const envRequireBrowser = "ORCHESTRIX_REQUIRE_BROWSER"

// envArtifacts names a directory for the browser tests' screenshots; when
// unset they go to a temporary directory that is removed afterwards.
const envArtifacts = "ORCHESTRIX_ARTIFACTS"

func findChromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "headless-shell"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv(envRequireBrowser) == "1" {
		t.Fatalf("Chromium not found on PATH and %s=1 (install Debian's chromium package)", envRequireBrowser)
	}
	t.Skip("browser test skipped: Chromium not found on PATH (apt-get install chromium; set " + envRequireBrowser + "=1 to make this a failure)")
	return ""
}

// browser starts a headless Chromium and returns a context that has run
// once (so per-step timeouts can be derived from it without stopping the
// browser).
func browser(t *testing.T) context.Context {
	t.Helper()
	path := findChromium(t)
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.NoSandbox,
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-component-update", true),
	)
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelC := chromedp.NewContext(actx)
	t.Cleanup(func() { cancelC(); cancelA() })
	_, err := chromedp.Run(ctx, chromedp.Navigate("about:blank"))
	require.NoError(t, err, "starting Chromium")
	return ctx
}

func step(t *testing.T, ctx context.Context, what string, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	sctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	require.NoError(t, chromedp.Do(sctx, actions...), what)
}

// poll waits until the JavaScript expression is true.
func poll(expr string) chromedp.Action[chromedp.Void] {
	return func(ctx context.Context, tg *chromedp.Target) (chromedp.Void, error) {
		_, err := chromedp.Poll[bool](expr)(ctx, tg)
		return chromedp.Void{}, err
	}
}

func text(t *testing.T, ctx context.Context, sel string) string {
	t.Helper()
	sctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	s, err := chromedp.Run(sctx, chromedp.Text(chromedp.CSS(sel)))
	require.NoError(t, err, sel)
	return s
}

func screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	dir := os.Getenv(envArtifacts)
	if dir == "" {
		dir = t.TempDir()
	}
	require.NoError(t, os.MkdirAll(dir, 0o755))
	sctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	png, err := chromedp.Run(sctx, chromedp.FullScreenshot(100))
	require.NoError(t, err)
	p := filepath.Join(dir, "console-"+name+".png")
	require.NoError(t, os.WriteFile(p, png, 0o644))
	t.Logf("screenshot %s", p)
}

// localhostURL rewrites an httptest server URL to name localhost, so that
// a page served from 127.0.0.1 is another site.
func localhostURL(u string) string { return strings.Replace(u, "127.0.0.1", "localhost", 1) }

func TestBrowser_StreamsEventsMarkupTailAndCrossSite(t *testing.T) {
	ctx := browser(t)
	f := newFixture(t)
	f.startProjection(t, "balances", nil)
	c := f.console(t, func(c *console.Config) {
		c.EnableWrites = true
		c.Authorize = func(*http.Request, console.Action) (string, error) { return "tester", nil }
	})
	srv := httptest.NewServer(http.StripPrefix("/console", c))
	defer srv.Close()
	base := localhostURL(srv.URL) + "/console/"

	// Stream list → stream → event.
	step(t, ctx, "open the stream list", chromedp.Navigate(base), chromedp.WaitVisible(chromedp.CSS("#streams")))
	require.Contains(t, text(t, ctx, "#streams"), "account-1")
	screenshot(t, ctx, "streams")
	step(t, ctx, "click a stream", chromedp.Click(chromedp.CSS(`a.stream[href$="account-1"]`)), chromedp.WaitVisible(chromedp.CSS("#events")))
	require.Equal(t, "account-1", text(t, ctx, "#stream-name"))
	screenshot(t, ctx, "stream")
	step(t, ctx, "click an event", chromedp.Click(chromedp.CSS(`a.event[href$="version=3"]`)), chromedp.WaitVisible(chromedp.CSS("#decoded")))
	require.Contains(t, text(t, ctx, "#decoded"), `"amount": 30`)
	require.Contains(t, text(t, ctx, "#attributes"), "corr-1")
	screenshot(t, ctx, "event")

	// A script in a stream name and in a payload is shown, not run.
	step(t, ctx, "open the markup event", chromedp.Navigate(base+"event?stream=%3Cscript%3Ealert(1)%3C%2Fscript%3E&version=1"),
		chromedp.WaitVisible(chromedp.CSS("#decoded")))
	require.Contains(t, text(t, ctx, "#decoded"), "<script>document.title='pwned'</script>")
	title, err := chromedp.Run(ctx, chromedp.Title())
	require.NoError(t, err)
	require.Equal(t, "event · Orchestrix console", title)
	scripts, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll("main script").length`))
	require.NoError(t, err)
	require.Zero(t, scripts)

	// Live tail: a new event arrives after an append.
	step(t, ctx, "open the live tail", chromedp.Navigate(base+"tail"), chromedp.WaitVisible(chromedp.CSS("#tail")))
	step(t, ctx, "tail is live", poll(`document.getElementById("tail-status").textContent === "live" && document.querySelectorAll(".tail-row").length === 8`))
	f.append(t, "account-9", deposited{Amount: 9}, t0)
	step(t, ctx, "the new event shows", poll(`document.querySelector(".tail-row") !== null && document.querySelector(".tail-row").textContent.includes("account-9")`))
	screenshot(t, ctx, "tail")

	// Projections page; a cross-site form POST to an action is refused.
	step(t, ctx, "open projections", chromedp.Navigate(base+"projections"), chromedp.WaitVisible(chromedp.CSS("#projections")))
	require.Contains(t, text(t, ctx, "#projections .state"), "running")
	screenshot(t, ctx, "projections")
	attacker := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		fmt.Fprintf(w, `<form id="f" method="post" action="%sprojections/balances/stop"></form><script>document.getElementById("f").submit()</script>`, base)
	}))
	defer attacker.Close()
	step(t, ctx, "cross-site form post", chromedp.Navigate(attacker.URL),
		poll(`location.href.includes("/projections/balances/stop") && document.readyState === "complete"`))
	body := text(t, ctx, "body")
	require.Contains(t, strings.ToLower(body), "cross-origin")
	st, err := f.pm.Status(context.Background(), "balances")
	require.NoError(t, err)
	require.NotEqual(t, projection.StateStopped, st.State, "the cross-site POST must not stop the projection")

	// The same action from the console's own page works.
	step(t, ctx, "open projections again", chromedp.Navigate(base+"projections"), chromedp.WaitVisible(chromedp.CSS("#projections")))
	sctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	resp, err := chromedp.RunResponse(sctx, chromedp.Click(chromedp.CSS(`form[action$="balances/stop"] button`)))
	require.NoError(t, err, "same-site stop")
	require.Equal(t, int64(200), resp.Status)
	require.Contains(t, text(t, ctx, "#projections .state"), "stopped")
	st, err = f.pm.Status(context.Background(), "balances")
	require.NoError(t, err)
	require.Equal(t, projection.StateStopped, st.State, "the console's own Stop button stops the projection")
}

func chromedpNavigate(url, visible string) []chromedp.Action[chromedp.Void] {
	return []chromedp.Action[chromedp.Void]{chromedp.Navigate(url), chromedp.WaitVisible(chromedp.CSS(visible))}
}

func clickAndWait(sel, visible string) []chromedp.Action[chromedp.Void] {
	return []chromedp.Action[chromedp.Void]{chromedp.Click(chromedp.CSS(sel)), chromedp.WaitVisible(chromedp.CSS(visible))}
}

// setSlider sets a range input's value and fires its input event, as a
// user dragging it does.
func setSlider(sel string, v int) chromedp.Action[chromedp.Void] {
	return func(ctx context.Context, tg *chromedp.Target) (chromedp.Void, error) {
		_, err := chromedp.Evaluate[bool](fmt.Sprintf(`(function(){var s=document.querySelector(%q); s.value=%q; s.dispatchEvent(new Event("input")); return true})()`, sel, fmt.Sprint(v)))(ctx, tg)
		return chromedp.Void{}, err
	}
}
