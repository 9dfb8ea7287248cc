package console_test

import (
	"context"
	"errors"
	"fmt"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/orchestrix/orchestrix"
	"github.com/orchestrix/orchestrix/actor/actortest"
	"github.com/orchestrix/orchestrix/console"
	"github.com/orchestrix/orchestrix/journal"
	"github.com/orchestrix/orchestrix/projection"
	"github.com/orchestrix/orchestrix/saga"
)

// appendSaga writes a saga stream the way the saga runner records one.
func (f *fixture) appendSaga(t *testing.T, stream string, events ...[2]string) {
	t.Helper()
	var evs []orchestrix.Envelope
	for i, e := range events {
		evs = append(evs, orchestrix.Envelope{ID: fmt.Sprintf("%s-%d", stream, i), Source: "/saga", Type: e[0],
			Time: t0.Add(time.Duration(i) * time.Second), DataContentType: "application/json", Data: []byte(e[1])})
	}
	_, err := f.j.Append(context.Background(), stream, journal.NoStream, evs)
	require.NoError(t, err)
}

func sagaFixture(t *testing.T) *fixture {
	f := newFixture(t)
	f.appendSaga(t, "saga.transfer-t1",
		[2]string{saga.TypeStarted, `{"data":{}}`},
		[2]string{saga.TypeStepCompleted, `{"step":0,"name":"debit"}`},
		[2]string{saga.TypeStepFailed, `{"step":1,"name":"credit","reason":"account closed"}`},
		[2]string{saga.TypeStepCompensated, `{"step":0,"name":"debit"}`},
		[2]string{saga.TypeCompensated, `{}`})
	f.appendSaga(t, "saga.transfer-t2",
		[2]string{saga.TypeStarted, `{"data":{}}`},
		[2]string{saga.TypeStepStarted, `{"step":0,"name":"debit","deadline":"2026-01-02T16:00:00Z"}`})
	return f
}

func TestAPI_Sagas_ListByStateAndTimeline(t *testing.T) {
	c := sagaFixture(t).console(t, nil)
	p := decode[console.SagaPage](t, get(t, c, "/api/sagas"))
	require.Len(t, p.Sagas, 3) // the fixture's saga.transfer-x too
	p = decode[console.SagaPage](t, get(t, c, "/api/sagas?state=compensated"))
	require.Len(t, p.Sagas, 1)
	require.Equal(t, console.SagaRow{Stream: "saga.transfer-t1", Name: "transfer", ID: "t1", State: "compensated", Events: 5,
		Updated: t0.Add(4 * time.Second), Failure: "account closed"}, p.Sagas[0])
	p = decode[console.SagaPage](t, get(t, c, "/api/sagas?state=running&name=transfer"))
	require.Equal(t, []string{"t2", "x"}, []string{p.Sagas[0].ID, p.Sagas[1].ID})

	d := decode[console.SagaDetail](t, get(t, c, "/api/saga?stream=saga.transfer-t1"))
	kinds := []string{}
	for _, e := range d.Timeline {
		kinds = append(kinds, e.Kind)
	}
	require.Equal(t, []string{"started", "step completed", "step failed", "step compensated", "compensated"}, kinds)
	require.Equal(t, "credit", d.Timeline[2].StepName)
	d = decode[console.SagaDetail](t, get(t, c, "/api/saga?stream=saga.transfer-t2"))
	require.Equal(t, time.Date(2026, 1, 2, 16, 0, 0, 0, time.UTC), d.Timeline[1].Deadline)

	for target, code := range map[string]int{
		"/api/sagas?state=sleepy":          400,
		"/api/saga":                        400,
		"/api/saga?stream=account-1":       400,
		"/api/saga?stream=saga.transfer-9": 404,
		"/sagas?limit=-1":                  400,
	} {
		require.Equal(t, code, get(t, c, target).Code, target)
	}
	require.Contains(t, get(t, c, "/saga?stream=saga.transfer-t1").Body.String(), "account closed")
}

func TestBrowser_CompensatedSagaTimeline(t *testing.T) {
	ctx := browser(t)
	srv := httptest.NewServer(sagaFixture(t).console(t, nil))
	defer srv.Close()
	base := localhostURL(srv.URL) + "/"
	step(t, ctx, "list compensated sagas", chromedpNavigate(base+"sagas?state=compensated", "#sagas")...)
	step(t, ctx, "open the saga", clickAndWait(`a.saga`, "#timeline")...)
	require.Equal(t, "compensated", text(t, ctx, "#saga-state"))
	tl := text(t, ctx, "#timeline")
	require.Regexp(t, `(?s)step failed step 1 credit: account closed.*step compensated step 0 debit`, tl)
	screenshot(t, ctx, "saga")
}

type flakyData struct{}

func TestAPI_Saga_LiveAttemptsFromTheRunner(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	clock := actortest.NewManualClock(t0) // the backoff never passes: the saga stays at its second attempt
	runner, err := saga.NewRunner(saga.Config{Journal: f.j, Registry: f.reg, Checkpoints: projection.NewMemCheckpoints(), Clock: clock,
		Retry: projection.Retry{MaxAttempts: 5, InitialBackoff: time.Hour}})
	require.NoError(t, err)
	t.Cleanup(func() { _ = runner.Close() })
	flaky, err := saga.Register(runner, saga.New[flakyData]("flaky").
		Step("call", func(context.Context, *saga.Context[flakyData]) error { return errors.New("<i>service unavailable</i>") }, nil,
			saga.Timeout(30*time.Minute)))
	require.NoError(t, err)
	require.NoError(t, flaky.Begin(ctx, "f1", flakyData{}))
	_, err = flaky.Wait(ctx, "f1", func(st saga.Status[flakyData]) bool { return st.LastError != "" })
	require.NoError(t, err)

	c := f.console(t, func(cfg *console.Config) { cfg.Sagas = []console.SagaView{console.Saga(flaky)} })
	d := decode[console.SagaDetail](t, get(t, c, "/api/saga?stream="+flaky.Stream("f1")))
	require.Equal(t, console.SagaRunning, d.State)
	require.NotNil(t, d.Live)
	require.True(t, d.Live.Executing)
	require.Equal(t, "call", d.Live.StepName)
	require.Equal(t, "<i>service unavailable</i>", d.Live.LastError)
	require.GreaterOrEqual(t, d.Live.Attempt, 1)
	require.Equal(t, t0.Add(30*time.Minute), d.Live.Deadline)
	page := get(t, c, "/saga?stream="+flaky.Stream("f1")).Body.String()
	require.Contains(t, page, `id="last-error">&lt;i&gt;service unavailable&lt;/i&gt;`)
	require.Contains(t, page, "deadline 2026-01-02T15:30:00Z")

	// Without the view the page shows the stream alone.
	d = decode[console.SagaDetail](t, get(t, f.console(t, nil), "/api/saga?stream="+flaky.Stream("f1")))
	require.Nil(t, d.Live)
}
