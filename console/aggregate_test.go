package console_test

import (
	"context"
	"log/slog"
	"net/http/httptest"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/orchestrix/orchestrix/actor"
	"github.com/orchestrix/orchestrix/console"
	"github.com/orchestrix/orchestrix/internal/banktest"
	"github.com/orchestrix/orchestrix/journal/bolt"
)

// newBank returns a console over a journal with account "acc" at version
// 4: opened by Ann, +100, +50, -30.
func newBank(t *testing.T) *console.Console {
	t.Helper()
	j, err := bolt.Open(filepath.Join(t.TempDir(), "orchestrix.db"), bolt.Config{NoSync: true})
	require.NoError(t, err)
	t.Cleanup(func() { _ = j.Close() })
	sys, err := actor.NewSystem(actor.Config{Journal: j, Source: "/test"})
	require.NoError(t, err)
	t.Cleanup(func() { _ = sys.Shutdown(context.Background()) })
	h, err := actor.Register(sys, banktest.Accounts())
	require.NoError(t, err)
	ctx := context.Background()
	for _, cmd := range []banktest.Command{banktest.OpenAccount{Owner: "Ann"}, banktest.Deposit{Amount: 100}, banktest.Deposit{Amount: 50}, banktest.Withdraw{Amount: 30}} {
		_, err := h.Send(ctx, "acc", cmd)
		require.NoError(t, err)
	}
	c, err := console.New(console.Config{Journal: j, Registry: sys.Registry(), Aggregates: []console.AggregateView{console.Aggregate(h)},
		Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	return c
}

func TestAPI_Aggregate_StateAtVersionAndDiff(t *testing.T) {
	c := newBank(t)
	s := decode[console.AggregateState](t, get(t, c, "/api/aggregate?kind=account&id=acc&version=2"))
	require.Equal(t, uint64(2), s.Version)
	require.Equal(t, uint64(4), s.Head)
	require.Contains(t, s.State, `"Balance": 100`)

	s = decode[console.AggregateState](t, get(t, c, "/api/aggregate?kind=account&id=acc"))
	require.Equal(t, uint64(4), s.Version)
	require.Contains(t, s.State, `"Balance": 120`)

	s = decode[console.AggregateState](t, get(t, c, "/api/aggregate?kind=account&id=acc&version=4&compare=1"))
	require.Equal(t, []console.Change{{Path: "Balance", From: "0", To: "120"}}, s.Changes)
	require.Len(t, s.Between, 3)
	require.Equal(t, uint64(2), s.Between[0].Version)

	s = decode[console.AggregateState](t, get(t, c, "/api/aggregate?kind=account&id=acc&version=1&compare=0"))
	require.Equal(t, []console.Change{{Path: "Open", From: "false", To: "true"}, {Path: "Owner", From: `""`, To: `"Ann"`}}, s.Changes)

	p := decode[console.EventPage](t, get(t, c, "/api/events?stream=account-acc"))
	require.Equal(t, "account", p.AggregateKind)
	require.Equal(t, "acc", p.AggregateID)
	require.Contains(t, get(t, c, "/aggregate?kind=account&id=acc&version=3").Body.String(), `id="slider"`)
}

func TestAPI_Aggregate_BadInput(t *testing.T) {
	c := newBank(t)
	for target, code := range map[string]int{
		"/api/aggregate?kind=nope&id=acc":                 404,
		"/api/aggregate?kind=account":                     400,
		"/api/aggregate?kind=account&id=ghost":            404,
		"/api/aggregate?kind=account&id=acc&version=5":    404,
		"/api/aggregate?kind=account&id=acc&version=x":    400,
		"/api/aggregate?kind=account&id=acc&compare=9":    404,
		"/api/aggregate?kind=account&id=acc&time=tuesday": 400,
		"/aggregate?kind=account&id=acc&version=-2":       400,
	} {
		w := get(t, c, target)
		require.Equal(t, code, w.Code, "%s: %s", target, w.Body.String())
	}
	w := get(t, c, "/aggregate")
	require.Equal(t, 200, w.Code)
	require.Contains(t, w.Body.String(), "<option>account</option>")
}

func TestBrowser_TimeTravelSlider(t *testing.T) {
	ctx := browser(t)
	srv := httptest.NewServer(newBank(t))
	defer srv.Close()
	base := localhostURL(srv.URL) + "/"
	step(t, ctx, "open a stream", chromedpNavigate(base+"stream?stream=account-acc", "#events")...)
	step(t, ctx, "follow time travel", clickAndWait("#time-travel", "#slider")...)
	require.Contains(t, text(t, ctx, "#state"), `"Balance": 120`)
	step(t, ctx, "move the slider to version 2", setSlider("#slider", 2),
		poll(`document.getElementById("state-version").textContent === "2"`))
	require.Contains(t, text(t, ctx, "#state"), `"Balance": 100`)
	screenshot(t, ctx, "aggregate")
}
