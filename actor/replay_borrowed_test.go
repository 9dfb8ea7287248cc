package actor_test

import (
	"context"
	"fmt"
	"iter"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/orchestrix/orchestrix"
	"github.com/orchestrix/orchestrix/actor"
	"github.com/orchestrix/orchestrix/actor/actortest"
	"github.com/orchestrix/orchestrix/internal/banktest"
	"github.com/orchestrix/orchestrix/journal"
	memjournal "github.com/orchestrix/orchestrix/journal/mem"
)

// scribbleJournal is a journal.BorrowedReader over an in-memory journal
// whose borrowed records live in one buffer that is overwritten as soon as
// the loop body returns, as a database driver reuses its row buffer:
// anything recovery kept of a record without copying it turns to '#'.
type scribbleJournal struct {
	journal.Journal
	borrowedReads atomic.Int64
}

var _ journal.BorrowedReader = (*scribbleJournal)(nil)

func (s *scribbleJournal) ReadBorrowed(ctx context.Context, stream string, from, to uint64, max int) iter.Seq2[journal.Record, error] {
	return func(yield func(journal.Record, error) bool) {
		s.borrowedReads.Add(1)
		var buf []byte
		for rec, err := range s.Journal.Read(ctx, stream, from, to, max) {
			if err != nil {
				yield(rec, err)
				return
			}
			seq := rec.Envelope.Sequence
			if buf, err = rec.Envelope.AppendBinary(buf[:0]); err == nil {
				err = rec.Envelope.UnmarshalBinaryBorrowed(buf)
			}
			if err != nil {
				yield(journal.Record{}, err)
				return
			}
			rec.Envelope.Sequence = seq
			more := yield(rec, nil)
			for i := range buf {
				buf[i] = '#'
			}
			if !more {
				return
			}
		}
	}
}

// Recovery through a BorrowedReader keeps nothing of the borrowed
// records: the state (with a string from the payload), and the dedup
// cache rebuilt from the events' causation ids, come out right although
// every record's buffer is overwritten after use — for a short stream
// and one longer than the runtime decodes inline from an owned Read.
func TestAggregate_Recovery_BorrowedReader_KeepsNothingOfTheRecords(t *testing.T) {
	mj, err := memjournal.New(memjournal.Config{})
	require.NoError(t, err)
	j := &scribbleJournal{Journal: mj}
	env := actortest.NewSystem(t, actortest.WithoutSnapshots(), actortest.WithBackend(j))
	ctx := ctxT(t)
	h := register(t, env, banktest.Accounts())
	reg := env.System.Registry()

	// Each event is the only event of its command, whose id it carries as
	// causation id; the long stream is past the inline decoding.
	write := func(id string, n int) int64 {
		var balance int64
		var envs []orchestrix.Envelope
		for i := range n {
			var ev any = banktest.Deposited{Amount: int64(i)}
			if i == 0 {
				ev = banktest.Opened{Owner: "ada-" + id}
			}
			balance += int64(i)
			e, err := reg.Marshal(ev)
			require.NoError(t, err)
			e.Source, e.Subject, e.Time = "/test", id, env.Clock.Now()
			e.CausationID = fmt.Sprintf("%s-cmd-%d", id, i+1)
			envs = append(envs, e)
			if len(envs) == 100 || i == n-1 {
				_, err := j.Append(ctx, "account-"+id, orchestrixExact(uint64(i+1-len(envs))), envs)
				require.NoError(t, err)
				envs = envs[:0]
			}
		}
		return balance
	}
	cases := []struct {
		id      string
		n       int
		retries []int // versions whose commands are retried
	}{
		{"short", 10, []int{1, 4, 10}},
		{"long", 3000, []int{2, 1000, 2049, 2999, 3000}},
	}
	for _, tc := range cases {
		want := write(tc.id, tc.n)
		state, version, err := h.State(ctx, tc.id)
		require.NoError(t, err)
		assert.Equal(t, uint64(tc.n), version, tc.id)
		assert.Equal(t, want, state.Balance, tc.id)
		assert.Equal(t, "ada-"+tc.id, state.Owner, tc.id)
		for _, v := range tc.retries {
			var cmd banktest.Command = banktest.Deposit{Amount: 1}
			if v == 1 {
				cmd = banktest.OpenAccount{Owner: "ada-" + tc.id}
			}
			res, err := h.Send(ctx, tc.id, cmd, actor.WithCommandID(fmt.Sprintf("%s-cmd-%d", tc.id, v)))
			require.NoError(t, err, "%s: retry of the command at version %d", tc.id, v)
			assert.True(t, res.Duplicate, "%s: retry of the command at version %d", tc.id, v)
			assert.Equal(t, uint64(v), res.Version, tc.id)
		}
		head, err := j.Head(ctx, "account-"+tc.id)
		require.NoError(t, err)
		assert.Equal(t, uint64(tc.n), head, "%s: no retry was applied", tc.id)
	}
	assert.Positive(t, j.borrowedReads.Load(), "recovery did not take the borrowed read")
}

// otherJSON is a codec that is not orchestrix.JSONCodec (a codec recovery
// knows nothing about might keep slices of its input).
type otherJSON struct{ orchestrix.JSONCodec }

// With a codec other than JSONCodec, recovery does not lend the journal's
// buffers to it: it reads owned records.
func TestAggregate_Recovery_OtherCodec_DoesNotBorrow(t *testing.T) {
	mj, err := memjournal.New(memjournal.Config{})
	require.NoError(t, err)
	j := &scribbleJournal{Journal: mj}
	env := actortest.NewSystem(t, actortest.WithoutSnapshots(), actortest.WithBackend(j),
		actortest.WithConfig(func(c *actor.Config) { c.Registry = orchestrix.NewRegistry(orchestrix.WithCodec(otherJSON{})) }))
	ctx := ctxT(t)
	h := register(t, env, banktest.Accounts())
	_, err = h.Send(ctx, "a1", banktest.OpenAccount{Owner: "ada"})
	require.NoError(t, err)
	env.Restart()
	h = register(t, env, banktest.Accounts())
	state, _, err := h.State(ctx, "a1")
	require.NoError(t, err)
	assert.Equal(t, "ada", state.Owner)
	assert.Zero(t, j.borrowedReads.Load(), "recovery lent borrowed records to a codec other than JSONCodec")
}
