package cluster

import (
	"os"
	"sync/atomic"
	"time"
)

// batchCounts counts the batches this process served and the reply
// messages it sent for them, for measuring how well replies are gathered
// (BENCHMARKS.md). With ORCHESTRIX_CLUSTER_BATCH_COUNTS set to a duration
// (e.g. 5s), a member logs the counts since the previous log at Warn level
// that often; otherwise nothing reads them.
var batchCounts struct {
	batches, commands, replyMsgs, replies atomic.Int64
}

// logBatchCounts starts the periodic log when the environment asks for it.
func (m *Member) logBatchCounts() {
	every, err := time.ParseDuration(os.Getenv("ORCHESTRIX_CLUSTER_BATCH_COUNTS"))
	if err != nil || every <= 0 {
		return
	}
	go func() {
		t := time.NewTicker(every)
		defer t.Stop()
		var last [4]int64
		for {
			select {
			case <-t.C:
			case <-m.bg.Done():
				return
			}
			now := [4]int64{batchCounts.batches.Load(), batchCounts.commands.Load(),
				batchCounts.replyMsgs.Load(), batchCounts.replies.Load()}
			m.cfg.Logger.Warn("cluster: batch counts", "every", every, "batches", now[0]-last[0],
				"commands", now[1]-last[1], "reply_messages", now[2]-last[2], "replies", now[3]-last[3])
			last = now
		}
	}()
}
