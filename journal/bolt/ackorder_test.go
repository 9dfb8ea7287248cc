package bolt

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"
	bbolt "go.etcd.io/bbolt"

	"github.com/orchestrix/orchestrix"
	"github.com/orchestrix/orchestrix/journal"
)

// TestJournal_Acknowledgement_NeverPrecedesDurability checks, for every
// append of many concurrent callers (AppendAsync and Append, several
// commits of many appends each, during checkpoint rounds), that its
// outcome is reported only after the commit holding its events returned
// from bbolt's Commit (which syncs the data and then the meta page), and
// that the events are then in the committed file, as a new read
// transaction sees it.
func TestJournal_Acknowledgement_NeverPrecedesDurability(t *testing.T) {
	ctx := context.Background()
	// fsync on: the order under test is the one that matters with it.
	j, err := Open(filepath.Join(t.TempDir(), "journal.db"), Config{IndexEvery: 64})
	require.NoError(t, err)
	defer j.Close()

	// durable is the last position of the last commit that returned,
	// recorded on the writer's goroutine right after tx.Commit.
	var durable atomic.Uint64
	SetBeforePublish(j, func() { durable.Store(j.w.nextPos - 1) })

	var violations atomic.Int64
	var firstViolation atomic.Pointer[string]
	report := func(format string, args ...any) {
		violations.Add(1)
		msg := fmt.Sprintf(format, args...)
		firstViolation.CompareAndSwap(nil, &msg)
	}
	// check runs when an append is acknowledged.
	check := func(stream string, res journal.AppendResult) {
		if d := durable.Load(); res.LastPosition > d {
			report("%s acknowledged at positions %d-%d while the last commit returned ends at %d", stream, res.FirstPosition, res.LastPosition, d)
			return
		}
		err := j.db.View(func(tx *bbolt.Tx) error {
			f, err := frameAt(tx.Bucket(bucketLog).Cursor(), res.LastPosition)
			if err != nil {
				return err
			}
			if len(f) == 0 {
				return fmt.Errorf("empty frame")
			}
			return nil
		})
		if err != nil {
			report("%s acknowledged at position %d, not in the committed file: %v", stream, res.LastPosition, err)
		}
	}

	const callers, appends = 64, 40
	var wg sync.WaitGroup
	for c := range callers {
		wg.Go(func() {
			stream := fmt.Sprintf("s-%d", c)
			for i := range appends {
				evs := []orchestrix.Envelope{{ID: orchestrix.NewID(), Source: "/ack", Type: "t", Data: []byte(`{}`)}}
				if c%2 == 0 {
					res, err := j.Append(ctx, stream, journal.Exact(uint64(i)), evs)
					if err != nil {
						report("append: %v", err)
						return
					}
					check(stream, res)
					continue
				}
				done := make(chan struct{})
				err := j.AppendAsync(ctx, stream, journal.Exact(uint64(i)), evs, func(res journal.AppendResult, err error) {
					defer close(done)
					if err != nil {
						report("append async: %v", err)
						return
					}
					// Checked inside the completion, before the
					// caller can see it.
					check(stream, res)
				})
				if err != nil {
					report("append async: %v", err)
					return
				}
				<-done
			}
		})
	}
	wg.Wait()
	if p := firstViolation.Load(); p != nil {
		t.Fatalf("%d acknowledgements before durability; first: %s", violations.Load(), *p)
	}
	require.Greater(t, j.commits.Load(), uint64(10), "the appends should have been spread over many commits")
	require.Greater(t, j.checkpoints.Load(), uint64(0), "a checkpoint round should have completed")
}
