package journal_test

import (
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/orchestrix/orchestrix/journal"
)

func TestProblem_String_LeavesOutUnknownParts(t *testing.T) {
	assert.Equal(t, `stream "a" version 2 position 7: checksum mismatch`,
		journal.Problem{Stream: "a", Version: 2, Position: 7, Detail: "checksum mismatch"}.String())
	assert.Equal(t, `stream "a": no head`, journal.Problem{Stream: "a", Detail: "no head"}.String())
	assert.Equal(t, `position 9: bad block`, journal.Problem{Position: 9, Detail: "bad block"}.String())
	assert.Equal(t, `bad meta`, journal.Problem{Detail: "bad meta"}.String())
}

func TestCheckReport_Add_CapsProblems(t *testing.T) {
	var rep journal.CheckReport
	assert.True(t, rep.OK())
	for range journal.MaxCheckProblems + 5 {
		rep.Add(journal.Problem{Detail: "x"})
	}
	assert.False(t, rep.OK())
	assert.Len(t, rep.Problems, journal.MaxCheckProblems)
	assert.Equal(t, 5, rep.Omitted)
}

func TestStreamInfo_Events(t *testing.T) {
	assert.Equal(t, uint64(3), journal.StreamInfo{Head: 5, DeletedTo: 2}.Events())
	assert.Equal(t, uint64(0), journal.StreamInfo{Head: 5, DeletedTo: 5}.Events())
	assert.Equal(t, uint64(0), journal.StreamInfo{Head: 5, DeletedTo: 9}.Events())
}
