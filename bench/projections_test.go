package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestRun_ProjectionsJSON_EveryEventHandledAndMeasured(t *testing.T) {
	var stdout, stderr bytes.Buffer
	code := run([]string{"projections", "-json", "-rate", "2000", "-duration", "300ms", "-warmup", "100ms",
		"-streams", "7", "-batch", "3", "-nosync", "-dir", t.TempDir()}, &stdout, &stderr)
	require.Equal(t, 0, code, stderr.String())
	var r map[string]any
	require.NoError(t, json.Unmarshal(bytes.TrimSpace(stdout.Bytes()), &r), stdout.String())
	require.Equal(t, "projection-lag-2000", r["scenario"])
	events := r["events"].(float64)
	require.Positive(t, events)
	require.Zero(t, int(events)%3, "events come in appends of -batch")
	// Events after the warm-up are measured: fewer than all, more than none.
	require.Positive(t, r["measured_events"])
	require.Less(t, r["measured_events"].(float64), events)
	require.GreaterOrEqual(t, r["commit_to_handler_p99_ms"], r["commit_to_handler_p50_ms"])
	require.GreaterOrEqual(t, r["append_to_handler_p99_ms"], r["commit_to_handler_p99_ms"])
	require.Positive(t, r["handler_calls"])
}

func TestRun_ProjectionsBadFlags_ExitsWithUsageError(t *testing.T) {
	for _, args := range [][]string{
		{"projections", "-rate", "0"},
		{"projections", "-duration", "0s"},
		{"projections", "-warmup", "5s", "-duration", "1s"},
		{"projections", "-streams", "0"},
		{"projections", "-batch", "0"},
		{"projections", "-backend", "nosuch"},
		{"projections", "extra"},
	} {
		var stdout, stderr bytes.Buffer
		require.Equal(t, 2, run(args, &stdout, &stderr), strings.Join(args, " "))
		require.NotEmpty(t, stderr.String())
	}
}
