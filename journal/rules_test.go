package journal_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/orchestrix/orchestrix/journal"
)

func TestValidateStream(t *testing.T) {
	for _, tc := range []struct {
		name  string
		valid bool
	}{
		{"order-1", true},
		{"saga-é", true},
		{strings.Repeat("x", journal.MaxStreamLen), true},
		{"", false},
		{strings.Repeat("x", journal.MaxStreamLen+1), false},
		{"a\xffb", false},
		{"a\x00b", false},
	} {
		err := journal.ValidateStream(tc.name)
		if tc.valid {
			assert.NoError(t, err, "%.20q", tc.name)
		} else {
			assert.ErrorIs(t, err, journal.ErrInvalidStream, "%.20q", tc.name)
		}
	}
}

func TestMatchIDs(t *testing.T) {
	stored := []string{"a", "b", "c"}
	match := func(ids ...string) journal.Match {
		return journal.MatchIDs(len(ids), func(i int) bool { return i < len(stored) && stored[i] == ids[i] })
	}
	assert.Equal(t, journal.MatchAll, match("a", "b", "c"))
	assert.Equal(t, journal.MatchAll, match("a"))
	assert.Equal(t, journal.MatchPartial, match("a", "x"))
	assert.Equal(t, journal.MatchPartial, match("x", "b"), "a later match counts")
	assert.Equal(t, journal.MatchPartial, match("a", "b", "c", "d"), "beyond the stored events")
	assert.Equal(t, journal.MatchNone, match("x", "y"))
}

func TestStreamNameScheme(t *testing.T) {
	name := journal.StreamName("order", "2024-17")
	assert.Equal(t, "order-2024-17", name)
	assert.Equal(t, "order", journal.StreamKind(name))
	kind, id, ok := journal.SplitStream(name)
	assert.True(t, ok)
	assert.Equal(t, "order", kind)
	assert.Equal(t, "2024-17", id, "the id keeps its own '-'")
	assert.Equal(t, "noseparator", journal.StreamKind("noseparator"))
	_, _, ok = journal.SplitStream("noseparator")
	assert.False(t, ok)

	longest := journal.StreamName(strings.Repeat("k", journal.MaxKindLen), strings.Repeat("i", journal.MaxIDLen))
	assert.NoError(t, journal.ValidateStream(longest), "the limits add up to MaxStreamLen")
	assert.NoError(t, journal.ValidateKind("saga.transfer_v2"))
	assert.Error(t, journal.ValidateKind("a-b"))
	assert.Error(t, journal.ValidateKind(strings.Repeat("k", journal.MaxKindLen+1)))
	assert.Error(t, journal.ValidateKind(""))
}
