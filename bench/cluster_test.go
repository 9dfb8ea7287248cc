package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/orchestrix/orchestrix/internal/localcluster"
	"github.com/orchestrix/orchestrix/internal/pgtest"
)

// The cluster subcommand with tiny sizes: three member processes (this
// test binary again) inside a loopback-only network namespace, over one
// PostgreSQL. Every line parses and carries its fields; the ratio is the
// two throughputs' quotient; every aggregate of the killed member is
// served again. Nothing here asserts how fast.
func TestRun_ClusterJSON_PrintsThroughputRatioAndFailover(t *testing.T) {
	if !localcluster.InNetns(t) {
		return // ran inside the namespace, or skipped
	}
	dsn := pgtest.DSN(t)
	var stdout, stderr bytes.Buffer
	prof := filepath.Join(t.TempDir(), "cpu")
	code := run([]string{"cluster", "-json", "-duration", "300ms", "-aggregates", "60", "-senders", "12",
		"-refresh-ttl", "300ms", "-failover-timeout", "60s", "-dsn", dsn,
		"-warm", "-cpuprofile", prof, "-member-max-conns", "8"}, &stdout, &stderr)
	require.Equal(t, 0, code, stderr.String())
	for i := range 3 {
		st, err := os.Stat(prof + ".member" + strconv.Itoa(i))
		require.NoError(t, err, "member %d's CPU profile", i)
		require.Positive(t, st.Size(), "member %d's CPU profile", i)
	}

	byName := map[string]map[string]any{}
	var names []string
	sc := bufio.NewScanner(&stdout)
	for sc.Scan() {
		var r map[string]any
		require.NoError(t, json.Unmarshal(sc.Bytes(), &r), sc.Text())
		require.Equal(t, "postgres", r["backend"], sc.Text())
		name := r["scenario"].(string)
		names = append(names, name)
		byName[name] = r
	}
	require.Equal(t, []string{"single-process-12", "cluster-3-members-12",
		"ratio-cluster-3-members-12-to-single-process-12", "failover-sigkill"}, names)

	single, cl := byName["single-process-12"], byName["cluster-3-members-12"]
	for _, r := range []map[string]any{single, cl} {
		for _, f := range []string{"commands_per_sec", "p50_us", "p99_us", "commands", "events_per_commit", "cpu_us_per_command"} {
			require.Positive(t, r[f], "%s of %s", f, r["scenario"])
		}
	}
	require.EqualValues(t, 3, cl["members"])
	// With three members about two thirds of the commands cross the wire;
	// any share strictly between 0 and 1 shows both paths ran.
	share := cl["remote_share"].(float64)
	require.True(t, share > 0 && share < 1, "remote share %v", share)
	require.Positive(t, cl["local_p50_us"])
	require.Positive(t, cl["remote_p50_us"])
	want := cl["commands_per_sec"].(float64) / single["commands_per_sec"].(float64)
	require.InDelta(t, want, byName["ratio-cluster-3-members-12-to-single-process-12"]["ratio"], want*1e-9)

	fo := byName["failover-sigkill"]
	for _, f := range []string{"victim_aggregates", "survivors_see_ms", "first_success_ms", "p50_served_ms", "p99_served_ms", "max_served_ms", "refresh_ttl_ms", "request_timeout_ms"} {
		require.Positive(t, fo[f], f)
	}
	require.EqualValues(t, 0, fo["not_served"])
	first, p50, p99, maxMs := fo["first_success_ms"].(float64), fo["p50_served_ms"].(float64), fo["p99_served_ms"].(float64), fo["max_served_ms"].(float64)
	require.True(t, first <= p50 && p50 <= p99 && p99 <= maxMs, "first %v, p50 %v, p99 %v, max %v out of order", first, p50, p99, maxMs)
	require.Contains(t, fo, "load_outcome_unknown")
}

func TestRun_ClusterBadFlags_ExitsWithUsageError(t *testing.T) {
	for _, args := range [][]string{
		{"cluster", "-members", "1"},
		{"cluster", "-senders", "2"},
		{"cluster", "-aggregates", "0"},
		{"cluster", "-duration", "0s"},
		{"cluster", "-refresh-ttl", "-1s"},
		{"cluster", "-member-max-conns", "-1"},
		{"cluster", "extra"},
	} {
		var stdout, stderr bytes.Buffer
		require.Equal(t, 2, run(args, &stdout, &stderr), strings.Join(args, " "))
		require.NotEmpty(t, stderr.String())
	}
}
