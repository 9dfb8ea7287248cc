package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/orchestrix/orchestrix/internal/pgtest"
)

func TestRun_JournalJSON_PrintsOneObjectPerScenario(t *testing.T) {
	var stdout, stderr bytes.Buffer
	code := run([]string{"journal", "-json", "-duration", "50ms", "-appenders", "1,4", "-dir", t.TempDir()}, &stdout, &stderr)
	require.Equal(t, 0, code, stderr.String())

	var scenarios []string
	sc := bufio.NewScanner(&stdout)
	for sc.Scan() {
		var r map[string]any
		require.NoError(t, json.Unmarshal(sc.Bytes(), &r), sc.Text())
		for _, field := range []string{"scenario", "events_per_sec", "p50_us", "p99_us", "events_per_commit"} {
			require.Contains(t, r, field)
		}
		require.Positive(t, r["events_per_sec"], sc.Text())
		scenarios = append(scenarios, r["scenario"].(string))
	}
	require.Equal(t, []string{"fsync-probe-4k", "group-commit-1", "group-commit-4", "baseline-update-per-event-4"}, scenarios)
}

func TestRun_JournalBadFlags_ExitsWithUsageError(t *testing.T) {
	for _, args := range [][]string{
		{"journal", "-appenders", "0"},
		{"journal", "-backend", "nosuch"},
		{"journal", "-duration", "0s"},
		{"journal", "extra"},
	} {
		var stdout, stderr bytes.Buffer
		require.Equal(t, 2, run(args, &stdout, &stderr), strings.Join(args, " "))
		require.NotEmpty(t, stderr.String())
	}
}

func TestRun_UnknownSubcommand_ExitsWithUsage(t *testing.T) {
	var stdout, stderr bytes.Buffer
	require.Equal(t, 2, run([]string{"nosuch"}, &stdout, &stderr))
	require.Contains(t, stderr.String(), "journal")
}

func TestRun_OpenJSON_BuildsOnceAndMeasuresEveryRun(t *testing.T) {
	file := t.TempDir() + "/journal.db"
	for _, want := range [][]string{
		{"build", "walk", "open", "first-read-after-open", "walk", "open", "first-read-after-open"},
		{"walk", "open", "first-read-after-open"}, // the file exists: reused
	} {
		var stdout, stderr bytes.Buffer
		runs := strconv.Itoa(len(want) / 3)
		code := run([]string{"open", "-json", "-file", file, "-events", "3000", "-streams", "30", "-batch", "50", "-runs", runs}, &stdout, &stderr)
		require.Equal(t, 0, code, stderr.String())
		var scenarios []string
		sc := bufio.NewScanner(&stdout)
		for sc.Scan() {
			var r map[string]any
			require.NoError(t, json.Unmarshal(sc.Bytes(), &r), sc.Text())
			scenarios = append(scenarios, r["scenario"].(string))
			if r["scenario"] == "open" {
				require.EqualValues(t, 3000, r["events"], sc.Text())
				require.EqualValues(t, 30, r["streams"], sc.Text())
				require.Positive(t, r["heap_bytes"], sc.Text())
			}
		}
		require.Equal(t, want, scenarios)
	}
}

func TestRun_OpenBadFlags_ExitsWithUsageError(t *testing.T) {
	for _, args := range [][]string{
		{"open", "-events", "0"},
		{"open", "-streams", "0"},
		{"open", "-events", "10", "-streams", "11"},
		{"open", "-runs", "0"},
		{"open", "extra"},
	} {
		var stdout, stderr bytes.Buffer
		require.Equal(t, 2, run(args, &stdout, &stderr), strings.Join(args, " "))
		require.NotEmpty(t, stderr.String())
	}
}

func TestRun_JournalPostgresWithoutDSN_ReportsClientAndServerCPU(t *testing.T) {
	pgtest.Start(t) // skips, or fails under ORCHESTRIX_REQUIRE_PG, when PostgreSQL is not installed
	t.Setenv("ORCHESTRIX_PG_DSN", "")
	var stdout, stderr bytes.Buffer
	code := run([]string{"journal", "-backend", "postgres", "-json", "-duration", "500ms", "-appenders", "16", "-baseline=false"}, &stdout, &stderr)
	require.Equal(t, 0, code, stderr.String())
	sc := bufio.NewScanner(&stdout)
	found := false
	for sc.Scan() {
		var r map[string]any
		require.NoError(t, json.Unmarshal(sc.Bytes(), &r), sc.Text())
		if r["scenario"] == "group-commit-16" {
			found = true
			require.Positive(t, r["cpu_us_per_event"], sc.Text())
			require.Positive(t, r["server_cpu_us_per_event"], sc.Text())
		}
	}
	require.True(t, found, stdout.String())
}

func TestRun_OpenTouch_AppendsToEveryStreamAndAHotSet(t *testing.T) {
	var stdout, stderr bytes.Buffer
	code := run([]string{"open", "-json", "-events", "600", "-streams", "300", "-batch", "2", "-runs", "1", "-touch", "-cachedheads", "50"}, &stdout, &stderr)
	require.Equal(t, 0, code, stderr.String())
	got := map[string]map[string]any{}
	sc := bufio.NewScanner(&stdout)
	for sc.Scan() {
		var r map[string]any
		require.NoError(t, json.Unmarshal(sc.Bytes(), &r), sc.Text())
		got[r["scenario"].(string)] = r
	}
	require.Contains(t, got, "touch-every-stream")
	require.EqualValues(t, 300, got["touch-every-stream"]["events"])
	require.Contains(t, got, "hot-streams")
	require.EqualValues(t, 300, got["hot-streams"]["streams"])
	for _, r := range []map[string]any{got["touch-every-stream"], got["hot-streams"]} {
		require.Positive(t, r["appends_per_sec"])
		require.EqualValues(t, 50, r["cached_heads"])
	}
	var bad bytes.Buffer
	require.Equal(t, 2, run([]string{"open", "-cachedheads", "-1"}, &stdout, &bad))
}
