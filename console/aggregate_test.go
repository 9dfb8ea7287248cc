package console_test

import (
	"context"
	"log/slog"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/orchestrix/orchestrix/actor"
	"github.com/orchestrix/orchestrix/console"
	"github.com/orchestrix/orchestrix/internal/banktest"
	"github.com/orchestrix/orchestrix/journal/bolt"
	"github.com/orchestrix/orchestrix/snapshot"
	"github.com/orchestrix/orchestrix/snapshot/mem"
)

// newBank returns a console over a journal with account "acc" at version
// 4: opened by Ann, +100, +50, -30.
func newBank(t *testing.T) *console.Console { return newBankWith(t, nil) }

// newBankWith is newBank with cfg changed by mod.
func newBankWith(t *testing.T, mod func(*console.Config)) *console.Console {
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
	cfg := console.Config{Journal: j, Registry: sys.Registry(), Aggregates: []console.AggregateView{console.Aggregate(h)},
		Logger: slog.New(slog.DiscardHandler)}
	if mod != nil {
		mod(&cfg)
	}
	c, err := console.New(cfg)
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

func TestAPI_Aggregate_SnapshotMarkers(t *testing.T) {
	ctx := context.Background()
	snaps := mem.New(mem.Config{})
	for _, v := range []uint64{1, 3} {
		require.NoError(t, snaps.Save(ctx, snapshot.Snapshot{Stream: "account-acc", Version: v, Type: "t", Time: t0.Add(time.Duration(v) * time.Minute), Data: []byte("{}")}))
	}
	require.NoError(t, snaps.Save(ctx, snapshot.Snapshot{Stream: "account-other", Version: 2, Type: "t", Data: []byte("{}")}))
	c := newBankWith(t, func(cfg *console.Config) { cfg.Snapshots = snaps })

	s := decode[console.AggregateState](t, get(t, c, "/api/aggregate?kind=account&id=acc&version=2"))
	require.Equal(t, []console.SnapshotMarker{{Version: 3, Time: t0.Add(3 * time.Minute)}, {Version: 1, Time: t0.Add(time.Minute)}}, s.Snapshots)
	require.Equal(t, uint64(1), s.FromSnapshot)
	s = decode[console.AggregateState](t, get(t, c, "/api/aggregate?kind=account&id=acc"))
	require.Equal(t, uint64(3), s.FromSnapshot)

	body := get(t, c, "/aggregate?kind=account&id=acc&version=4").Body.String()
	require.Contains(t, body, `<datalist id="snapshot-marks"><option value="3" label="snapshot 3"></option><option value="1" label="snapshot 1"></option></datalist>`)
	require.Contains(t, body, "(snapshot 3 + 1 events)")

	// Without a store: no markers.
	s = decode[console.AggregateState](t, get(t, newBank(t), "/api/aggregate?kind=account&id=acc"))
	require.Empty(t, s.Snapshots)
}

func TestBrowser_TimeTravelSnapshotMarker(t *testing.T) {
	ctx := browser(t)
	snaps := mem.New(mem.Config{})
	require.NoError(t, snaps.Save(context.Background(), snapshot.Snapshot{Stream: "account-acc", Version: 3, Type: "t", Data: []byte("{}")}))
	srv := httptest.NewServer(newBankWith(t, func(cfg *console.Config) { cfg.Snapshots = snaps }))
	defer srv.Close()
	step(t, ctx, "open time travel", chromedpNavigate(localhostURL(srv.URL)+"/aggregate?kind=account&id=acc", "#slider")...)
	require.Equal(t, "(snapshot 3 + 1 events)", text(t, ctx, "#from-snapshot"))
	step(t, ctx, "move the slider below the snapshot", setSlider("#slider", 2),
		poll(`document.getElementById("state-version").textContent === "2"`))
	require.Equal(t, "(no snapshot at or below)", text(t, ctx, "#from-snapshot"))
}
