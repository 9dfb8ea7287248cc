package postgres_test

import (
	"context"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/orchestrix/orchestrix/internal/pgtest"
	"github.com/orchestrix/orchestrix/journal"
	"github.com/orchestrix/orchestrix/journal/postgres"
	"github.com/orchestrix/orchestrix/telemetry"
)

func TestJournal_Append_RecordsCommitMetricsAndLinkedSpan(t *testing.T) {
	promReg := prometheus.NewRegistry()
	metrics, err := telemetry.NewMetrics(promReg)
	require.NoError(t, err)
	spans := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans))
	defer tp.Shutdown(context.Background())

	j, err := postgres.Open(context.Background(), pgtest.DSN(t), postgres.Config{Metrics: metrics, TracerProvider: tp})
	require.NoError(t, err)
	defer j.Close()

	const traceParent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	events := newEvents("s", 3)
	events[0].TraceParent = traceParent
	_, err = j.Append(context.Background(), "s", journal.NoStream, events)
	require.NoError(t, err)
	// A rejected append commits nothing and is not counted.
	_, err = j.Append(context.Background(), "s", journal.NoStream, newEvents("s", 1))
	require.Error(t, err)

	families, err := promReg.Gather()
	require.NoError(t, err)
	var batches, batchEvents uint64
	var commitCount uint64
	for _, f := range families {
		switch f.GetName() {
		case "orchestrix_journal_batch_events":
			h := f.GetMetric()[0].GetHistogram()
			batches, batchEvents = h.GetSampleCount(), uint64(h.GetSampleSum())
		case "orchestrix_journal_commit_seconds":
			commitCount = f.GetMetric()[0].GetHistogram().GetSampleCount()
		}
	}
	assert.Equal(t, uint64(1), batches, "one committed batch")
	assert.Equal(t, uint64(3), batchEvents)
	assert.Equal(t, uint64(1), commitCount)

	var commits []sdktrace.ReadOnlySpan
	for _, s := range spans.Ended() {
		if s.Name() == telemetry.SpanJournalCommit {
			commits = append(commits, s)
		}
	}
	require.NotEmpty(t, commits)
	first := commits[0]
	require.Len(t, first.Links(), 1, "the commit span links the trace of its append")
	assert.Equal(t, "4bf92f3577b34da6a3ce929d0e0e4736", first.Links()[0].SpanContext.TraceID().String())
}
