package bolt_test

import (
	"context"
	"errors"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/orchestrix/orchestrix/journal"
	"github.com/orchestrix/orchestrix/journal/bolt"
	"github.com/orchestrix/orchestrix/telemetry"
)

func TestJournal_Append_RecordsCommitMetricsAndLinkedSpans(t *testing.T) {
	promReg := prometheus.NewRegistry()
	metrics, err := telemetry.NewMetrics(promReg)
	require.NoError(t, err)
	spans := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans))
	defer tp.Shutdown(context.Background())
	j, _ := openTemp(t, bolt.Config{Metrics: metrics, TracerProvider: tp})
	defer j.Close()
	ctx := context.Background()

	const traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	events := newEvents(3)
	events[0].TraceParent = "00-" + traceID + "-00f067aa0ba902b7-01"
	_, err = j.Append(ctx, "s", journal.NoStream, events)
	require.NoError(t, err)
	// A duplicate stores nothing: no commit is counted for it.
	res, err := j.Append(ctx, "s", journal.NoStream, events)
	require.NoError(t, err)
	require.True(t, res.Duplicate)
	// A failed commit is a span with an error and no metrics.
	bolt.SetBeforeCommit(j, func() error { return errors.New("injected") })
	_, err = j.Append(ctx, "s", journal.Exact(3), newEvents(1))
	require.Error(t, err)
	bolt.SetBeforeCommit(j, nil)

	families, err := promReg.Gather()
	require.NoError(t, err)
	var batches, batchEvents, commitTimes uint64
	for _, f := range families {
		switch f.GetName() {
		case "orchestrix_journal_batch_events":
			h := f.GetMetric()[0].GetHistogram()
			batches, batchEvents = h.GetSampleCount(), uint64(h.GetSampleSum())
		case "orchestrix_journal_commit_seconds":
			commitTimes = f.GetMetric()[0].GetHistogram().GetSampleCount()
		}
	}
	assert.Equal(t, uint64(1), batches, "one commit stored events")
	assert.Equal(t, uint64(3), batchEvents)
	assert.Equal(t, uint64(1), commitTimes)

	var commits []sdktrace.ReadOnlySpan
	for _, s := range spans.Ended() {
		if s.Name() == telemetry.SpanJournalCommit {
			commits = append(commits, s)
		}
	}
	require.Len(t, commits, 3, "one span per batch: stored, duplicate-only, failed")
	require.Len(t, commits[0].Links(), 1)
	assert.Equal(t, traceID, commits[0].Links()[0].SpanContext.TraceID().String())
	assert.Equal(t, codes.Error, commits[2].Status().Code)
}

func TestJournal_NoTelemetryConfig_StillCommits(t *testing.T) {
	j, _ := openTemp(t, bolt.Config{})
	defer j.Close()
	_, err := j.Append(context.Background(), "s", journal.NoStream, newEvents(2))
	require.NoError(t, err)
}
