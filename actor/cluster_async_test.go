package actor_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/orchestrix/orchestrix"
	"github.com/orchestrix/orchestrix/actor"
	"github.com/orchestrix/orchestrix/actor/actortest"
	"github.com/orchestrix/orchestrix/aggregate"
	"github.com/orchestrix/orchestrix/internal/banktest"
	"github.com/orchestrix/orchestrix/internal/clusterseam"
	"github.com/orchestrix/orchestrix/journal/mem"
	"github.com/orchestrix/orchestrix/telemetry"
)

// asyncServer serves commands through clusterseam.AsyncKind and counts
// the calls of every done function it handed out: each must be called
// exactly once (checked when the test ends).
type asyncServer struct {
	t      *testing.T
	k      clusterseam.AsyncKind
	served atomic.Int64
	calls  atomic.Int64
}

func newAsyncServer(t *testing.T, sys *actor.System) *asyncServer {
	t.Helper()
	k, ok := clusterseam.Kinds(sys)["account"].(clusterseam.AsyncKind)
	require.True(t, ok, "package actor's kinds serve commands asynchronously")
	s := &asyncServer{t: t, k: k}
	t.Cleanup(func() {
		// Every command served was answered by now (each serve waited),
		// and a second call would have come with the first.
		if s.calls.Load() != s.served.Load() {
			t.Errorf("%d commands served asynchronously, their done functions called %d times; want once each", s.served.Load(), s.calls.Load())
		}
	})
	return s
}

// start serves data and returns the channel its outcome arrives on.
func (s *asyncServer) start(data []byte) <-chan outcome {
	s.served.Add(1)
	ch := make(chan outcome, 2)
	s.k.ServeCommandAsync(data, func(o clusterseam.Outcome) {
		s.calls.Add(1)
		r, err := o()
		ch <- outcome{r, err}
	})
	return ch
}

type outcome struct {
	r   clusterseam.CommandReply
	err error
}

func (s *asyncServer) wait(ch <-chan outcome) (clusterseam.CommandReply, error) {
	s.t.Helper()
	select {
	case o := <-ch:
		return o.r, o.err
	case <-ctxT(s.t).Done():
		s.t.Fatal("a command served asynchronously was never answered")
		return clusterseam.CommandReply{}, nil
	}
}

func (s *asyncServer) serve(data []byte) (clusterseam.CommandReply, error) {
	s.t.Helper()
	return s.wait(s.start(data))
}

func encode(t *testing.T, h *actor.Handle[banktest.Account, banktest.Command, banktest.Event], id, cmdID string, body banktest.Command) []byte {
	t.Helper()
	b, err := h.EncodeCommand(context.Background(), aggregate.Command[banktest.Command]{ID: cmdID, AggregateID: id, Body: body})
	require.NoError(t, err)
	return b
}

// ServeCommandAsync answers as ServeCommand does, exactly once per
// command: a success with its events, a duplicate (of a command done, and
// of one still in flight), a rejection, a command type this member does
// not know (refused, the system keeps serving), a version conflict
// (retried once on fresh state), a refusal of admission (ErrReleased), and
// a closed system.
func TestServeCommandAsync_AnswersEachCommandOnce(t *testing.T) {
	ctx := ctxT(t)
	sysA, sysB, a, b := twoSystems(t)
	s := newAsyncServer(t, sysA)

	r, err := s.serve(encode(t, a, "acc", "open", banktest.OpenAccount{Owner: "ada"}))
	require.NoError(t, err)
	require.Equal(t, uint64(1), r.Version)
	require.Len(t, r.Events, 1)
	require.False(t, r.Duplicate)
	r, err = s.serve(encode(t, a, "acc", "open", banktest.OpenAccount{Owner: "ada"}))
	require.NoError(t, err)
	require.True(t, r.Duplicate)
	require.Equal(t, uint64(1), r.Version)

	_, err = s.serve(encode(t, a, "acc", "again", banktest.OpenAccount{Owner: "bob"}))
	require.ErrorIs(t, err, aggregate.ErrRejected)

	// A command type listed by another build's definition, not this one's.
	wider := encodableAccounts()
	wider.Commands = append(wider.Commands, aggregate.CommandOf[banktest.Withdraw]("test.account.withdraw"))
	j, err := mem.New(mem.Config{})
	require.NoError(t, err)
	sysC, err := actor.NewSystem(actor.Config{Journal: j})
	require.NoError(t, err)
	t.Cleanup(func() { _ = sysC.Close() })
	c, err := actor.Register(sysC, wider)
	require.NoError(t, err)
	_, err = s.serve(encode(t, c, "acc", "w", banktest.Withdraw{Amount: 1}))
	require.ErrorIs(t, err, actor.ErrUnknownCommandType)

	// b writes to the stream: a's activation is stale. The command is
	// retried once on fresh state.
	_, err = b.Send(ctx, "acc", banktest.Deposit{Amount: 5})
	require.NoError(t, err)
	r, err = s.serve(encode(t, a, "acc", "late", banktest.Deposit{Amount: 7}))
	require.NoError(t, err)
	require.Equal(t, uint64(3), r.Version)
	st, _, err := a.State(ctx, "acc")
	require.NoError(t, err)
	require.Equal(t, int64(12), st.Balance)

	// Admission refused: nothing runs, the caller places it again.
	ar := &admittingRouter{ok: map[string]bool{}}
	require.NoError(t, clusterseam.Attach(sysA, ar))
	_, err = s.serve(encode(t, a, "acc", "refused", banktest.Deposit{Amount: 1}))
	require.ErrorIs(t, err, clusterseam.ErrReleased)
	require.NoError(t, clusterseam.Attach(sysA, nil))

	_ = sysB
	require.NoError(t, sysA.Close())
	_, err = s.serve(encode(t, a, "acc", "closed", banktest.Deposit{Amount: 1}))
	require.ErrorIs(t, err, orchestrix.ErrClosed)
}

// A retry of a command still in flight waits for it and is answered as
// its duplicate; a command queued behind a release is refused with
// ErrReleased, and the in-flight append is answered once it completes.
func TestServeCommandAsync_InFlightDuplicateAndRelease(t *testing.T) {
	ctx := ctxT(t)
	sys, j, h := memAccounts(t)
	_, err := h.Send(ctx, "moved", banktest.OpenAccount{Owner: "ada"})
	require.NoError(t, err)
	s := newAsyncServer(t, sys)

	clock := actortest.NewManualClock(time.Unix(0, 0))
	j.InjectAppendFault(mem.AppendFault{Stream: h.Stream("moved"), Effect: mem.FaultDelay, Delay: time.Minute, Clock: clock})
	first := s.start(encode(t, h, "moved", "in-flight", banktest.Deposit{Amount: 3}))
	for clock.Timers() == 0 { // the append is held by the journal
		time.Sleep(time.Millisecond)
	}
	retry := s.start(encode(t, h, "moved", "in-flight", banktest.Deposit{Amount: 3}))

	released := make(chan error, 1)
	scanned := make(chan struct{})
	go func() {
		_, err := clusterseam.Kinds(sys)["account"].Release(ctx, func(string) bool {
			close(scanned)
			return false
		})
		released <- err
	}()
	<-scanned
	_, err = s.serve(encode(t, h, "moved", "queued", banktest.Deposit{Amount: 5}))
	require.ErrorIs(t, err, clusterseam.ErrReleased)

	clock.Advance(time.Minute)
	r, err := s.wait(first)
	require.NoError(t, err)
	require.Equal(t, uint64(2), r.Version)
	require.False(t, r.Duplicate)
	r, err = s.wait(retry)
	require.NoError(t, err)
	require.True(t, r.Duplicate, "the retry of a command in flight is its duplicate")
	require.Equal(t, uint64(2), r.Version)
	require.NoError(t, <-released)
}

// A panic in the actor before a command is answered (here an Observer
// that panics as a duplicate is reported) still answers the command, once,
// with an internal error: a served command has nothing else bounding it.
func TestServeCommandAsync_AnsweredWhenTheActorPanics(t *testing.T) {
	j, err := mem.New(mem.Config{})
	require.NoError(t, err)
	obs := telemetry.ObserverFunc(func(o telemetry.Observation) {
		if o.Kind == telemetry.CommandDone && o.Outcome == telemetry.OutcomeDuplicate {
			panic("observer")
		}
	})
	sys, err := actor.NewSystem(actor.Config{Journal: j, Observer: obs})
	require.NoError(t, err)
	t.Cleanup(func() { _ = sys.Close() })
	h, err := actor.Register(sys, encodableAccounts())
	require.NoError(t, err)
	s := newAsyncServer(t, sys)
	_, err = s.serve(encode(t, h, "acc", "open", banktest.OpenAccount{Owner: "ada"}))
	require.NoError(t, err)
	_, err = s.serve(encode(t, h, "acc", "open", banktest.OpenAccount{Owner: "ada"}))
	require.ErrorContains(t, err, "internal error")
	r, err := s.serve(encode(t, h, "acc", "dep", banktest.Deposit{Amount: 2}))
	require.NoError(t, err, "the actor recovered from the journal")
	require.Equal(t, uint64(2), r.Version)
}
