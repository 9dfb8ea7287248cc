package projection_test

import (
	"fmt"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"github.com/orchestrix/orchestrix/projection"
	"github.com/orchestrix/orchestrix/telemetry"
)

func TestManager_Metrics_PositionAndLagFollowTheCheckpoint(t *testing.T) {
	promReg := prometheus.NewRegistry()
	metrics, err := telemetry.NewMetrics(promReg)
	require.NoError(t, err)
	j, reg := newJournal(t), newRegistry(t)
	for i := range 5 {
		appendOne(t, j, reg, stream("account", i), Deposited{Amount: i}, epoch)
	}
	m := newManager(t, projection.Config{Journal: j, Registry: reg, Checkpoints: projection.NewMemCheckpoints(), Metrics: metrics})
	require.NoError(t, m.Add(t.Context(), projection.Projection{Name: "balances", Handler: &recorder{}}))
	wait(t, m, "balances", "catch-up", atPosition(5))

	pos, err := gaugeValue(promReg, "orchestrix_projection_position")
	require.NoError(t, err)
	require.Equal(t, 5.0, pos)
	lag, err := gaugeValue(promReg, "orchestrix_projection_lag_events")
	require.NoError(t, err)
	require.Equal(t, 0.0, lag)
	require.Equal(t, 2, testutil.CollectAndCount(metrics, "orchestrix_projection_position", "orchestrix_projection_lag_events"))
}

// gaugeValue returns the value of the single series of the named gauge.
func gaugeValue(g prometheus.Gatherer, name string) (float64, error) {
	families, err := g.Gather()
	if err != nil {
		return 0, err
	}
	for _, f := range families {
		if f.GetName() == name && len(f.GetMetric()) == 1 {
			return f.GetMetric()[0].GetGauge().GetValue(), nil
		}
	}
	return 0, fmt.Errorf("no single series of %s", name)
}
