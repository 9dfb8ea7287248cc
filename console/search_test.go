package console_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/orchestrix/orchestrix"
	"github.com/orchestrix/orchestrix/console"
	"github.com/orchestrix/orchestrix/journal"
)

func TestAPI_Search_FiltersAndContinues(t *testing.T) {
	c := newFixture(t).console(t, func(c *console.Config) { c.MaxScan = 3 })
	p := decode[console.SearchPage](t, get(t, c, "/api/search?subject=account-1"))
	require.Len(t, p.Events, 3)
	require.Equal(t, uint64(4), p.Next, "the scan cap stops the scan and offers to continue")
	p = decode[console.SearchPage](t, get(t, c, "/api/search?subject=account-1&from=4"))
	require.Len(t, p.Events, 2)
	require.Equal(t, uint64(5), p.Events[1].Version)

	p = decode[console.SearchPage](t, get(t, newFixture(t).console(t, nil), "/api/search?type=bank.Deposited&since=2026-01-02T15:02:00Z&until=2026-01-02T15:03:00Z"))
	require.Len(t, p.Events, 2)
	require.Equal(t, []uint64{2, 3}, []uint64{p.Events[0].Version, p.Events[1].Version})

	for target, code := range map[string]int{
		"/api/search?since=x":                           400,
		"/api/search?since=2026-01-02&until=2025-01-01": 400,
		"/api/search?type=a&from=z":                     400,
		"/api/search?type=a&limit=100000":               400,
	} {
		require.Equal(t, code, get(t, c, target).Code, target)
	}
}

func TestAPI_Search_CorrelationChainByCausation(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	mk := func(id, stream, causation string) {
		e, err := f.reg.Marshal(deposited{Amount: 1})
		require.NoError(t, err)
		e.ID, e.Source, e.Time, e.CorrelationID, e.CausationID = id, "/t", t0, "order-77", causation
		_, err = f.j.Append(ctx, stream, journal.Any, []orchestrix.Envelope{e})
		require.NoError(t, err)
	}
	mk("e1", "order-77", "cmd-place")    // command → event
	mk("e2", "saga.checkout-77", "e1")   // event → saga step
	mk("e3", "payment-77", "cmd-charge") // the saga's command → event
	mk("e4", "order-77", "cmd-place")    // second event of the first command
	c := f.console(t, nil)
	p := decode[console.SearchPage](t, get(t, c, "/api/search?correlation=order-77"))
	require.Len(t, p.Events, 4)
	require.Len(t, p.Chain, 2)
	place := p.Chain[0]
	require.Equal(t, "cmd-place", place.ID)
	require.Nil(t, place.Event)
	require.Len(t, place.Children, 2)
	require.Equal(t, "e1", place.Children[0].ID)
	require.Equal(t, "e2", place.Children[0].Children[0].ID)
	require.Equal(t, "e4", place.Children[1].ID)
	require.Equal(t, "cmd-charge", p.Chain[1].ID)

	body := get(t, c, "/search?correlation=order-77").Body.String()
	require.Contains(t, body, `id="chain"`)
	require.Contains(t, body, "command <code>cmd-place</code>")
	require.Contains(t, get(t, c, "/event?stream=order-77&version=1").Body.String(), `href="search?correlation=order-77"`)
}
