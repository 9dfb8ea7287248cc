package telemetry_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/trace"

	"github.com/orchestrix/orchestrix/telemetry"
)

const validTP = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

func TestParseTraceParent_Valid(t *testing.T) {
	sc, err := telemetry.ParseTraceParent(validTP)
	require.NoError(t, err)
	assert.Equal(t, "4bf92f3577b34da6a3ce929d0e0e4736", sc.TraceID().String())
	assert.Equal(t, "00f067aa0ba902b7", sc.SpanID().String())
	assert.True(t, sc.IsSampled())
	assert.True(t, sc.IsRemote())
	assert.Equal(t, validTP, telemetry.FormatTraceParent(sc))

	// A later version may carry more fields; unknown flag bits are dropped.
	sc, err = telemetry.ParseTraceParent("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-03-extra")
	require.NoError(t, err)
	assert.Equal(t, trace.FlagsSampled, sc.TraceFlags())
}

func TestParseTraceParent_Invalid(t *testing.T) {
	for _, tp := range []string{
		"",
		"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",      // short
		"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x", // v00 too long
		"ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",   // version ff
		"0g-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",   // bad version
		"00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",   // upper case
		"00-00000000000000000000000000000000-00f067aa0ba902b7-01",   // zero trace id
		"00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",   // zero span id
		"00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",   // separator
		"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-zz",   // flags
		"01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x",  // later version, bad separator
	} {
		_, err := telemetry.ParseTraceParent(tp)
		assert.ErrorIs(t, err, telemetry.ErrInvalidTraceParent, "%q", tp)
		assert.Equal(t, context.Background(), telemetry.ContextFromTraceParent(context.Background(), tp), "%q", tp)
		_, ok := telemetry.LinkFromTraceParent(tp)
		assert.False(t, ok, "%q", tp)
	}
}

func TestFormatTraceParent_InvalidSpanContext_Empty(t *testing.T) {
	assert.Empty(t, telemetry.FormatTraceParent(trace.SpanContext{}))
	assert.Empty(t, telemetry.TraceParent(context.Background()))
}
