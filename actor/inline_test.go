package actor_test

import (
	"bytes"
	"log/slog"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/orchestrix/orchestrix/actor"
	"github.com/orchestrix/orchestrix/actor/actortest"
	"github.com/orchestrix/orchestrix/internal/banktest"
	"github.com/orchestrix/orchestrix/journal/bolt"
	memjournal "github.com/orchestrix/orchestrix/journal/mem"
)

// goroutineID returns the calling goroutine's id, read from its stack
// header.
func goroutineID() uint64 {
	var buf [64]byte
	b := buf[:runtime.Stack(buf[:], false)]
	b = bytes.TrimPrefix(b, []byte("goroutine "))
	n, _ := strconv.ParseUint(string(b[:bytes.IndexByte(b, ' ')]), 10, 64)
	return n
}

// inlineRuntime starts a system on a bbolt journal (no fsync) whose
// account Decide calls decided with each command.
func inlineRuntime(t *testing.T, decided func(banktest.Command)) *accountHandle {
	t.Helper()
	j, err := bolt.Open(filepath.Join(t.TempDir(), "journal.db"), bolt.Config{NoSync: true})
	require.NoError(t, err)
	sys, err := actor.NewSystem(actor.Config{Journal: j, Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	t.Cleanup(func() {
		require.NoError(t, sys.Shutdown(ctxT(t)))
		require.NoError(t, j.Close())
	})
	def := banktest.Accounts()
	decide := def.Decide
	def.Decide = func(s banktest.Account, c banktest.Command) ([]banktest.Event, error) {
		decided(c)
		return decide(s, c)
	}
	h, err := actor.Register(sys, def)
	require.NoError(t, err)
	return h
}

// A command to a ready, idle aggregate is decided on the sender's own
// goroutine; the command that activates an aggregate (its recovery reads
// the journal) is not.
func TestHandle_Send_ReadyIdleAggregate_DecidedOnSendersGoroutine(t *testing.T) {
	var on []uint64
	var mu sync.Mutex
	h := inlineRuntime(t, func(banktest.Command) {
		mu.Lock()
		on = append(on, goroutineID())
		mu.Unlock()
	})
	ctx := ctxT(t)
	_, err := h.Send(ctx, "a", banktest.OpenAccount{Owner: "o"})
	require.NoError(t, err)
	for range 3 {
		// The actor's goroutine may still be finishing the run that
		// answered the last command: a command sent before it lets go is
		// queued for it, not run inline.
		actor.AwaitIdle(t, h, "a")
		_, err = h.Send(ctx, "a", banktest.Deposit{Amount: 1})
		require.NoError(t, err)
	}
	me := goroutineID()
	mu.Lock()
	defer mu.Unlock()
	require.Len(t, on, 4)
	assert.NotEqual(t, me, on[0], "the activating command recovers on the actor's goroutine")
	assert.Equal(t, []uint64{me, me, me}, on[1:])
}

// The journal's writer never runs application code: its completions reach
// a busy aggregate through the mailbox and a goroutine, never by running
// the commands queued there. Many senders on two hot aggregates make such
// completions frequent; every deposit is acknowledged exactly once.
func TestHandle_Send_HotAggregates_WriterNeverDecides(t *testing.T) {
	var onWriter atomic.Int64
	h := inlineRuntime(t, func(banktest.Command) {
		buf := make([]byte, 16<<10)
		if strings.Contains(string(buf[:runtime.Stack(buf, false)]), "journal/bolt.") {
			onWriter.Add(1)
		}
	})
	ctx := ctxT(t)
	ids := []string{"x", "y"}
	for _, id := range ids {
		_, err := h.Send(ctx, id, banktest.OpenAccount{Owner: "o"})
		require.NoError(t, err)
	}
	const senders, each = 64, 50
	var wg sync.WaitGroup
	var acked atomic.Int64
	for s := range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				if _, err := h.Send(ctx, ids[(s+i)%2], banktest.Deposit{Amount: 1}); err == nil {
					acked.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	assert.Zero(t, onWriter.Load(), "commands decided on the journal's writer goroutine")
	var total int64
	for _, id := range ids {
		st, _, err := h.State(ctx, id)
		require.NoError(t, err)
		total += st.Balance
	}
	assert.Equal(t, int64(senders*each), acked.Load())
	assert.Equal(t, acked.Load(), total)
}

// A command that arrives while its aggregate's append is in flight makes
// the aggregate hot: later commands are decided on its mailbox goroutine,
// not inline by their senders, until its batches drain.
func TestHandle_Send_CommandDuringAppend_LaterCommandsNotInline(t *testing.T) {
	base, err := memjournal.New(memjournal.Config{})
	require.NoError(t, err)
	g := newGate(base)
	env := actortest.NewSystem(t, actortest.WithJournal(base), actortest.WithConfig(func(c *actor.Config) { c.Journal = g }))
	type decision struct {
		amount int64
		on     uint64
	}
	decided := make(chan decision, 8)
	def := banktest.Accounts()
	decide := def.Decide
	def.Decide = func(s banktest.Account, c banktest.Command) ([]banktest.Event, error) {
		if d, ok := c.(banktest.Deposit); ok {
			decided <- decision{d.Amount, goroutineID()}
		}
		return decide(s, c)
	}
	h := register(t, env, def)
	ctx := ctxT(t)
	_, err = h.Send(ctx, "a", banktest.OpenAccount{Owner: "o"})
	require.NoError(t, err)

	g.Hold()
	// sendOn sends a deposit from a new goroutine and returns that
	// goroutine's id and the decision, once made.
	sendOn := func(amount int64) (sender uint64, d decision, reply chan sendResult) {
		ids := make(chan uint64, 1)
		reply = make(chan sendResult, 1)
		go func() {
			ids <- goroutineID()
			res, err := h.Send(ctx, "a", banktest.Deposit{Amount: amount})
			reply <- sendResult{res, err}
		}()
		return <-ids, <-decided, reply
	}
	_, _, r1 := sendOn(1) // its append is held
	g.waitEntered(t)
	_, _, r2 := sendOn(2) // arrives during the append: makes it hot
	// Let the run that decided deposit 2 end, so that the mailbox is idle
	// (State is handled on a mailbox goroutine after it).
	_, _, err = h.State(ctx, "a")
	require.NoError(t, err)
	for range 100 {
		runtime.Gosched()
	}
	s3, d3, r3 := sendOn(3) // hot: the mailbox goroutine decides it
	assert.NotEqual(t, s3, d3.on, "a hot aggregate's command decided inline")
	g.release <- nil
	g.waitEntered(t) // the batch of deposits 2 and 3
	g.Open()
	g.release <- nil
	for _, r := range []chan sendResult{r1, r2, r3} {
		require.NoError(t, recv(t, r).err)
	}
}
