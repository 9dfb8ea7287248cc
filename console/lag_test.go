package console_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/orchestrix/orchestrix/actor/actortest"
	"github.com/orchestrix/orchestrix/console"
	"github.com/orchestrix/orchestrix/projection"
)

func TestProjections_LagChart_SampledOnTheInjectedClock(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t) // 8 events
	f.startProjection(t, "stuck", func(context.Context, []projection.Event) error { return errors.New("boom") })
	_, err := f.pm.Wait(ctx, "stuck", func(s projection.Status) bool { return s.State == projection.StateFailed })
	require.NoError(t, err)
	clock := actortest.NewManualClock(t0)
	c := f.console(t, func(cfg *console.Config) {
		cfg.Clock, cfg.LagSampleEvery, cfg.LagWindow = clock, 10*time.Second, time.Minute
	})
	t.Cleanup(func() { _ = c.Close() })

	p := decode[console.ProjectionPage](t, get(t, c, "/api/projections"))
	require.Empty(t, p.Projections[0].LagHistory, "no sample before the first tick")
	require.Contains(t, get(t, c, "/projections").Body.String(), "no samples yet")

	clock.Advance(10 * time.Second)
	f.append(t, "account-3", deposited{Amount: 1}, t0)
	f.append(t, "account-3", deposited{Amount: 2}, t0)
	clock.Advance(10 * time.Second)
	p = decode[console.ProjectionPage](t, get(t, c, "/api/projections"))
	require.Equal(t, []console.LagSample{{Time: t0.Add(10 * time.Second), Lag: 8}, {Time: t0.Add(20 * time.Second), Lag: 10}},
		p.Projections[0].LagHistory)

	body := get(t, c, "/projections").Body.String()
	require.Contains(t, body, `<svg class="lag-chart"`)
	require.Contains(t, body, `points="200.0,9.6 240.0,0.0"`, "x over the minute window, y scaled to the highest lag")
	require.Contains(t, body, "max 10")

	// Samples older than the window are dropped.
	clock.Advance(60 * time.Second)
	p = decode[console.ProjectionPage](t, get(t, c, "/api/projections"))
	h := p.Projections[0].LagHistory
	require.Len(t, h, 7)
	require.Equal(t, t0.Add(20*time.Second), h[0].Time)
	require.Equal(t, t0.Add(80*time.Second), h[6].Time)

	// After Close, no more samples.
	require.NoError(t, c.Close())
	clock.Advance(30 * time.Second)
	p = decode[console.ProjectionPage](t, get(t, c, "/api/projections"))
	require.Len(t, p.Projections[0].LagHistory, 7)
}

func TestNew_LagConfig(t *testing.T) {
	f := newFixture(t)
	_, err := console.New(console.Config{Journal: f.j, LagSampleEvery: time.Minute, LagWindow: time.Second})
	require.ErrorIs(t, err, console.ErrInvalidConfig)
	_, err = console.New(console.Config{Journal: f.j, LagSampleEvery: -1})
	require.ErrorIs(t, err, console.ErrInvalidConfig)
}
