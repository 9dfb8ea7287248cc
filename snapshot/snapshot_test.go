package snapshot_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/orchestrix/orchestrix/snapshot"
)

func TestSnapshot_Validate_RejectsEmptyStreamAndVersionZero(t *testing.T) {
	require.NoError(t, snapshot.Snapshot{Stream: "s", Version: 1}.Validate())
	require.ErrorIs(t, snapshot.Snapshot{Version: 1}.Validate(), snapshot.ErrInvalid)
	err := snapshot.Snapshot{Stream: "acc-9"}.Validate()
	require.ErrorIs(t, err, snapshot.ErrInvalid)
	require.ErrorContains(t, err, `"acc-9"`)
}

func TestCriteria_Matches_Bounds(t *testing.T) {
	at := time.Date(2026, time.June, 1, 0, 0, 0, 0, time.UTC)
	s := snapshot.Snapshot{Stream: "s", Version: 10, Time: at}
	require.True(t, snapshot.Latest.Matches(s))
	require.True(t, snapshot.AtOrBelow(10).Matches(s))
	require.False(t, snapshot.AtOrBelow(9).Matches(s))
	require.True(t, snapshot.Criteria{MaxVersion: 10, MinVersion: 10}.Matches(s))
	require.False(t, snapshot.Criteria{MaxVersion: 20, MinVersion: 11}.Matches(s))
	require.True(t, snapshot.Criteria{MaxVersion: 10, MaxTime: at}.Matches(s))
	require.False(t, snapshot.Criteria{MaxVersion: 10, MaxTime: at.Add(-time.Nanosecond)}.Matches(s))
	require.False(t, snapshot.Criteria{}.Matches(s), "the zero Criteria selects nothing")
}
