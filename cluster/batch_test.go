package cluster_test

import (
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/orchestrix/orchestrix/internal/pgtest"
)

// A rolling upgrade: member 2 stands for a member of an older build (it
// announces no command batches, and drops a CommandBatch unanswered where
// a real older build would crash). Commands sent concurrently through
// every member, to ids owned by every member, all succeed and are stored
// once: the members of the new build send member 2 single requests, and
// one another batches.
func TestMixedBuildsOlderMemberGetsSingles(t *testing.T) {
	needCluster(t)
	dsn := pgtest.DSN(t)
	h := newHarness(t, dsn, 3)
	ms := []*member{h.start(0, false), h.start(1, false), h.start(2, false, "OX_OLDER_BUILD=1")}
	for i, mb := range ms {
		mb.waitMembers(t, 3, "member "+strconv.Itoa(i))
	}
	// Let the members exchange a few confirmation rounds (where features
	// are announced), so that batches are in use between members 0 and 1.
	time.Sleep(time.Second)

	const perMember = 40
	var wg sync.WaitGroup
	replies := make([][]sendReply, len(ms))
	for i, mb := range ms {
		replies[i] = make([]sendReply, perMember)
		for k := range perMember {
			wg.Go(func() {
				id := "mixed-" + strconv.Itoa(k%20)
				replies[i][k] = mb.send(t, id, "mixed-cmd-"+strconv.Itoa(i)+"-"+strconv.Itoa(k), false)
			})
		}
	}
	wg.Wait()
	for i := range replies {
		for k, r := range replies[i] {
			if !r.OK {
				t.Errorf("command %d through member %d: %s (outcome unknown %v)", k, i, r.Err, r.OutcomeUnknown)
			}
		}
	}
	counts := commandCounts(t, dsn)
	for i := range ms {
		for k := range perMember {
			if c := counts["mixed-cmd-"+strconv.Itoa(i)+"-"+strconv.Itoa(k)]; c != 1 {
				t.Errorf("command %d through member %d is stored %d times, want once", k, i, c)
			}
		}
	}
}
