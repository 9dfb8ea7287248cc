package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/orchestrix/orchestrix/internal/localcluster"
	"github.com/orchestrix/orchestrix/internal/pgtest"
)

func TestMain(m *testing.M) {
	if spec, ok, err := localcluster.Self(); ok {
		// A member process of the cluster subcommand's test: this binary again.
		os.Exit(runClusterMember(spec, err))
	}
	pgtest.Main(m)
}

// runAggJSON runs bench aggregates with args plus small sizes and returns
// its JSON lines by scenario name.
func runAggJSON(t *testing.T, args ...string) ([]string, map[string]map[string]any) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	base := []string{"aggregates", "-json", "-duration", "100ms", "-aggregates", "50", "-senders", "8",
		"-replay-events", "300", "-idle", "50", "-dir", t.TempDir()}
	code := run(append(base, args...), &stdout, &stderr)
	require.Equal(t, 0, code, stderr.String())
	var names []string
	byName := map[string]map[string]any{}
	sc := bufio.NewScanner(&stdout)
	for sc.Scan() {
		var r map[string]any
		require.NoError(t, json.Unmarshal(sc.Bytes(), &r), sc.Text())
		name := r["scenario"].(string)
		names = append(names, name)
		byName[name] = r
	}
	return names, byName
}

func checkAggScenarios(t *testing.T, backend string, baselines []string, names []string, byName map[string]map[string]any) {
	t.Helper()
	want := []string{"many-aggregates-8", "hot-aggregate-8"}
	want = append(want, baselines...)
	want = append(want, "recovery-replay-300-events", "baseline-replay-loop-300-events", "recovery-activation-from-snapshot",
		"memory-50-idle-aggregates")
	for _, b := range baselines {
		want = append(want, "ratio-many-aggregates-8-to-"+b)
	}
	require.Equal(t, want, names)
	for name, r := range byName {
		require.Equal(t, backend, r["backend"], name)
	}
	for _, name := range append([]string{"many-aggregates-8", "hot-aggregate-8"}, baselines...) {
		require.Positive(t, byName[name]["commands_per_sec"], name)
		require.Positive(t, byName[name]["cpu_us_per_command"], name)
		require.Positive(t, byName[name]["allocs_per_command"], name)
		require.Positive(t, byName[name]["alloc_bytes_per_command"], name)
	}
	require.Positive(t, byName["recovery-replay-300-events"]["events_per_sec"])
	require.Positive(t, byName["baseline-replay-loop-300-events"]["events_per_sec"])
	for _, b := range baselines {
		ratio := byName["ratio-many-aggregates-8-to-"+b]["ratio"].(float64)
		want := byName["many-aggregates-8"]["commands_per_sec"].(float64) / byName[b]["commands_per_sec"].(float64)
		require.InDelta(t, want, ratio, want*1e-9, b)
	}
}

func TestRun_AggregatesJSON_Bolt_PrintsEveryScenarioAndTheRatio(t *testing.T) {
	names, byName := runAggJSON(t)
	checkAggScenarios(t, "bolt", []string{"baseline-mutex-update-per-command-8", "baseline-mutex-db-batch-8"}, names, byName)
}

func TestRun_AggregatesJSON_Postgres_PrintsEveryScenarioAndTheRatio(t *testing.T) {
	names, byName := runAggJSON(t, "-backend", "postgres", "-dsn", pgtest.DSN(t))
	checkAggScenarios(t, "postgres", []string{"baseline-pgx-insert-per-command-8"}, names, byName)
}

func TestRun_AggregatesOnlyMany_PrintsNoRatio(t *testing.T) {
	names, _ := runAggJSON(t, "-only", "many")
	require.Equal(t, []string{"many-aggregates-8"}, names)
}

func TestRun_AggregatesWarm_MeasuresAfterActivatingEveryAggregate(t *testing.T) {
	names, byName := runAggJSON(t, "-only", "many,hot", "-warm")
	require.Equal(t, []string{"many-aggregates-8", "hot-aggregate-8"}, names)
	for _, name := range names {
		require.Positive(t, byName[name]["commands_per_sec"], name)
		require.Positive(t, byName[name]["allocs_per_command"], name)
	}
}

func TestRun_AggregatesBadFlags_ExitsWithUsageError(t *testing.T) {
	for _, args := range [][]string{
		{"aggregates", "-backend", "nosuch"},
		{"aggregates", "-backend", "postgres", "-nosync"},
		{"aggregates", "-duration", "0s"},
		{"aggregates", "extra"},
	} {
		var stdout, stderr bytes.Buffer
		require.Equal(t, 2, run(args, &stdout, &stderr), strings.Join(args, " "))
		require.NotEmpty(t, stderr.String())
	}
}

func TestRun_AggregatesPostgresWithoutDSN_StartsAServerAndReportsItsCPU(t *testing.T) {
	pgtest.Start(t) // skips, or fails under ORCHESTRIX_REQUIRE_PG, when PostgreSQL is not installed
	t.Setenv("ORCHESTRIX_PG_DSN", "")
	names, byName := runAggJSON(t, "-backend", "postgres", "-only", "many", "-duration", "500ms")
	require.Equal(t, []string{"many-aggregates-8"}, names)
	require.Positive(t, byName["many-aggregates-8"]["server_cpu_us_per_command"])
}
