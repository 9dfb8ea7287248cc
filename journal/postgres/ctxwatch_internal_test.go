package postgres

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/orchestrix/orchestrix/journal"
)

// queueOnly is a Journal with only its queue: enough for enqueue,
// selectBatch and the context watches, without a database.
func queueOnly() *Journal {
	j := &Journal{inFlight: map[string]struct{}{}, watches: map[<-chan struct{}]*ctxWatch{}}
	j.opts.MaxBatchEvents = 1 << 20
	j.cond = sync.NewCond(&j.mu)
	return j
}

type ctxKey struct{}

// Appends whose contexts share one Done channel (as the aggregate
// runtime's do: values over one cancellable context) share one watch;
// when that context ends, exactly the appends still queued — carried over
// ones included — are answered with its error, and the watch is gone.
func TestContextWatch_OneWatchPerDoneChannel(t *testing.T) {
	j := queueOnly()
	parent, cancel := context.WithCancel(context.Background())
	answers := make(chan string, 100)
	var ps []*pending
	for i := range 100 {
		stream := fmt.Sprintf("s%d", i%90) // s0…s9 twice: the second is carried over
		ctx := context.WithValue(parent, ctxKey{}, i)
		p := &pending{stream: stream, records: make([][]byte, 1), cb: func(_ journal.AppendResult, err error) {
			if !errors.Is(err, context.Canceled) {
				t.Errorf("append %d answered with %v, want context.Canceled", i, err)
			}
			answers <- fmt.Sprint(i)
		}}
		p.ctx, p.ctxDone = ctx, ctx.Done()
		if err := j.enqueue(p); err != nil {
			t.Fatal(err)
		}
		ps = append(ps, p)
	}
	j.mu.Lock()
	if len(j.watches) != 1 || j.watches[parent.Done()].n != 100 {
		j.mu.Unlock()
		t.Fatalf("%d watches for 100 appends of one context", len(j.watches))
	}
	// A batch of the first 40 appends and of the later appends to their
	// streams (carried over, still queued).
	batch, carry := j.selectBatch(ps[:40])
	var rest []*pending
	rest, j.carry = j.selectBatch(ps[40:])
	j.carry = append(carry, j.carry...)
	j.queue = nil
	taken := len(batch) + len(rest)
	queued := 100 - taken
	if n := j.watches[parent.Done()].n; n != queued || len(j.carry) != 10 {
		j.mu.Unlock()
		t.Fatalf("after taking %d appends the watch counts %d (carried %d), want %d", taken, n, len(j.carry), queued)
	}
	j.mu.Unlock()

	cancel()
	for range queued {
		select {
		case <-answers:
		case <-time.After(time.Minute):
			t.Fatalf("not every queued append was answered when its context ended")
		}
	}
	for _, p := range ps[90:] {
		if p.state.load() != stateAbandoned {
			t.Fatalf("carried append to %s not abandoned (state %d)", p.stream, p.state.load())
		}
	}
	for _, p := range ps[:40] {
		if p.state.load() != stateTaken {
			t.Fatalf("append to %s in the batch changed state to %d", p.stream, p.state.load())
		}
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	if len(j.watches) != 0 {
		t.Fatalf("%d watches left after the context ended", len(j.watches))
	}
}

// Once every append of a context left the queue, its watch is stopped
// and dropped, so watches never pile up.
func TestContextWatch_DroppedWhenQueueEmpties(t *testing.T) {
	j := queueOnly()
	for round := range 3 {
		ctx, cancel := context.WithCancel(context.Background())
		for i := range 5 {
			p := &pending{stream: fmt.Sprintf("r%d-%d", round, i), records: make([][]byte, 1),
				cb: func(journal.AppendResult, error) { t.Errorf("a taken append was answered by its context") }}
			p.ctx, p.ctxDone = ctx, ctx.Done()
			if err := j.enqueue(p); err != nil {
				t.Fatal(err)
			}
		}
		j.mu.Lock()
		batch, carry := j.selectBatch(j.queue)
		j.queue = nil
		left := len(j.watches)
		j.mu.Unlock()
		if len(batch) != 5 || len(carry) != 0 || left != 0 {
			t.Fatalf("round %d: took %d, carried %d, %d watches left", round, len(batch), len(carry), left)
		}
		cancel()
	}
}

// BenchmarkContextWatch compares what watching one queued append's
// context costs: an AfterFunc per append, registered and stopped
// ("per-append", the writer's way before), against counting the append on
// the shared watch of its Done channel under the queue's lock
// ("shared"). Every append's context is a value over one cancellable
// context, as the aggregate runtime's are; appends are watched from
// several goroutines at once. Run with
//
//	go test ./journal/postgres -run '^$' -bench ContextWatch -benchmem
func BenchmarkContextWatch(b *testing.B) {
	parent, cancel := context.WithCancel(context.Background())
	defer cancel()
	b.Run("per-append", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				ctx := context.WithValue(parent, ctxKey{}, 1)
				stop := context.AfterFunc(ctx, func() {})
				stop()
			}
		})
	})
	b.Run("shared", func(b *testing.B) {
		b.ReportAllocs()
		j := queueOnly()
		// One append stays queued, as under load: the watch lives on.
		keep := &pending{}
		keep.ctx, keep.ctxDone = parent, parent.Done()
		j.mu.Lock()
		j.watchCtx(keep)
		j.mu.Unlock()
		b.RunParallel(func(pb *testing.PB) {
			var p pending
			for pb.Next() {
				ctx := context.WithValue(parent, ctxKey{}, 1)
				p.ctx, p.ctxDone = ctx, ctx.Done()
				j.mu.Lock()
				j.watchCtx(&p)
				j.unwatchCtx(&p)
				j.mu.Unlock()
			}
		})
	})
}
