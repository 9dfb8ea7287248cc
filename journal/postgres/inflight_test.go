package postgres_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/orchestrix/orchestrix/internal/pgtest"
	"github.com/orchestrix/orchestrix/journal"
	"github.com/orchestrix/orchestrix/journal/postgres"
)

// A journal commits two batches at once while it writes alone, one while
// another Journal's commits interleave with its own, and two again once
// the other stops; Config.MaxInFlight fixes the number.
func TestJournal_InFlightFollowsOtherWriters(t *testing.T) {
	dsn := pgtest.DSN(t)
	ctx := context.Background()
	cfg := postgres.Config{Schema: "in flight"}
	a := openJournal(t, dsn, cfg)
	b := openJournal(t, dsn, cfg)
	fixed := openJournal(t, dsn, postgres.Config{Schema: "in flight", MaxInFlight: 2})
	appendOne := func(j *postgres.Journal, stream string) {
		t.Helper()
		_, err := j.Append(ctx, stream, journal.Any, newEvents(stream, 1))
		require.NoError(t, err)
	}
	const window = 64 // at least one full window of the adaptive limit
	require.Equal(t, 2, a.Stats().InFlight, "a new journal")
	for i := range window {
		appendOne(a, fmt.Sprintf("a-%d", i))
	}
	require.Equal(t, 2, a.Stats().InFlight, "writing alone")
	for i := range window {
		appendOne(a, fmt.Sprintf("a-%d", i))
		appendOne(b, fmt.Sprintf("b-%d", i))
		appendOne(fixed, fmt.Sprintf("f-%d", i))
	}
	require.Equal(t, 1, a.Stats().InFlight, "with two other writers")
	require.Equal(t, 1, b.Stats().InFlight, "with two other writers")
	require.Equal(t, 2, fixed.Stats().InFlight, "Config.MaxInFlight")
	for i := range window {
		appendOne(a, fmt.Sprintf("a-%d", i))
	}
	require.Equal(t, 2, a.Stats().InFlight, "alone again")
	require.Equal(t, 1, b.Stats().InFlight, "b saw no commit since")
}

func TestConfig_MaxInFlightNegative(t *testing.T) {
	err := postgres.Config{MaxInFlight: -1}.Validate()
	require.ErrorContains(t, err, "MaxInFlight")
}
