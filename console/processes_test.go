package console_test

import (
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/orchestrix/orchestrix/actor/actortest"
	"github.com/orchestrix/orchestrix/console"
	"github.com/orchestrix/orchestrix/saga"
)

// processFixture adds process streams written the way a process manager
// records them: o1 waits for a payment with a timer, o2 failed on an
// event, o3 is done.
func processFixture(t *testing.T) *fixture {
	f := sagaFixture(t)
	f.appendSaga(t, "process.order-o1",
		[2]string{saga.TypeHandled, `{"position":3,"eventId":"e3","type":"shop.OrderPlaced","through":3,"state":{"placed":true},"timers":{"payment":"2026-01-02T15:30:00Z","reminder":"2026-01-02T14:00:00Z"}}`})
	f.appendSaga(t, "process.order-o2",
		[2]string{saga.TypeHandled, `{"position":4,"type":"shop.OrderPlaced","through":4,"state":{"placed":true}}`},
		[2]string{saga.TypeHandled, `{"position":5,"type":"shop.Paid","through":5,"state":{"placed":true},"failure":{"position":5,"type":"shop.Paid","reason":"<b>card declined</b>"},"failures":1,"lastFailure":{"position":5,"type":"shop.Paid","reason":"<b>card declined</b>"}}`})
	f.appendSaga(t, "process.order-o3",
		[2]string{saga.TypeHandled, `{"position":6,"type":"shop.OrderPlaced","through":6,"state":{}}`},
		[2]string{saga.TypeHandled, `{"timeout":"payment","through":6,"state":{"cancelled":true},"done":true}`})
	f.appendSaga(t, "process.odd-x", [2]string{"something.else", `{}`}) // not a Handled: left out of the list
	return f
}

func TestAPI_Processes_ListStateTimersAndFailures(t *testing.T) {
	f := processFixture(t)
	clock := actortest.NewManualClock(t0) // 15:00: the reminder is overdue, the payment timer pending
	c := f.console(t, func(cfg *console.Config) { cfg.Clock = clock })

	p := decode[console.ProcessPage](t, get(t, c, "/api/processes"))
	require.Len(t, p.Processes, 3)
	o1 := p.Processes[0]
	require.Equal(t, "order", o1.Name)
	require.Equal(t, "o1", o1.ID)
	require.Equal(t, console.ProcessActive, o1.State)
	require.Equal(t, []console.Timer{
		{Name: "reminder", At: time.Date(2026, 1, 2, 14, 0, 0, 0, time.UTC), Overdue: true},
		{Name: "payment", At: time.Date(2026, 1, 2, 15, 30, 0, 0, time.UTC)},
	}, o1.Timers)
	require.Equal(t, console.ProcessFailed, p.Processes[1].State)
	require.Equal(t, uint64(1), p.Processes[1].Failures)
	require.Equal(t, "<b>card declined</b>", p.Processes[1].LastFailure.Reason)
	require.Equal(t, console.ProcessDone, p.Processes[2].State)

	p = decode[console.ProcessPage](t, get(t, c, "/api/processes?state=failed&name=order"))
	require.Len(t, p.Processes, 1)
	require.Equal(t, "o2", p.Processes[0].ID)
	p = decode[console.ProcessPage](t, get(t, c, "/api/processes?limit=1"))
	require.Equal(t, "process.order-o1", p.Next)
	p = decode[console.ProcessPage](t, get(t, c, "/api/processes?limit=1&after="+p.Next))
	require.Equal(t, "o2", p.Processes[0].ID)

	d := decode[console.ProcessDetail](t, get(t, c, "/api/process?stream=process.order-o2"))
	require.Equal(t, console.ProcessFailed, d.State)
	require.Contains(t, d.StateJSON, `"placed": true`)
	require.Equal(t, []console.ProcessFailure{{Version: 2, Position: 5, Type: "shop.Paid", Reason: "<b>card declined</b>"}}, d.Failed)
	require.Len(t, d.History, 2)
	d = decode[console.ProcessDetail](t, get(t, c, "/api/process?stream=process.order-o3"))
	require.Equal(t, "payment", d.History[1].Timeout)
	require.True(t, d.History[1].Done)

	page := get(t, c, "/process?stream=process.order-o2")
	require.Equal(t, 200, page.Code)
	require.Contains(t, page.Body.String(), "&lt;b&gt;card declined&lt;/b&gt;", "reasons are shown as text")
	list := get(t, c, "/processes").Body.String()
	require.Contains(t, list, "(overdue)")

	for target, code := range map[string]int{
		"/api/processes?state=sleepy":         400,
		"/api/processes?limit=100000":         400,
		"/api/process":                        400,
		"/api/process?stream=saga.transfer-1": 400,
		"/api/process?stream=process.order":   400,
		"/api/process?stream=process.order-9": 404,
		"/api/process?stream=process.odd-x":   400,
		"/process?stream=process.order-9":     404,
	} {
		require.Equal(t, code, get(t, c, target).Code, target)
	}
}

func TestBrowser_ProcessPage(t *testing.T) {
	ctx := browser(t)
	srv := httptest.NewServer(processFixture(t).console(t, nil))
	defer srv.Close()
	base := localhostURL(srv.URL) + "/"
	step(t, ctx, "list failed processes", chromedpNavigate(base+"processes?state=failed", "#processes")...)
	step(t, ctx, "open the process", clickAndWait(`a.process`, "#failures")...)
	require.Equal(t, "failed", text(t, ctx, "#process-state"))
	require.Contains(t, text(t, ctx, "#failures"), "<b>card declined</b>", "the reason is shown as text, not markup")
	screenshot(t, ctx, "process")
}
