package actortest_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/orchestrix/orchestrix/actor"
	"github.com/orchestrix/orchestrix/actor/actortest"
	"github.com/orchestrix/orchestrix/internal/banktest"
	"github.com/orchestrix/orchestrix/internal/kittest"
	"github.com/orchestrix/orchestrix/internal/pgtest"
	"github.com/orchestrix/orchestrix/journal"
	boltjournal "github.com/orchestrix/orchestrix/journal/bolt"
	pgjournal "github.com/orchestrix/orchestrix/journal/postgres"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func backends(t *testing.T) map[string]func(t *testing.T) journal.Journal {
	return map[string]func(t *testing.T) journal.Journal{
		"mem": nil,
		"bolt": func(t *testing.T) journal.Journal {
			j, err := boltjournal.Open(filepath.Join(t.TempDir(), "j.db"), boltjournal.Config{NoSync: true})
			require.NoError(t, err)
			t.Cleanup(func() { j.Close() })
			return j
		},
		"postgres": func(t *testing.T) journal.Journal {
			j, err := pgjournal.Open(context.Background(), pgtest.DSN(t), pgjournal.Config{})
			require.NoError(t, err)
			t.Cleanup(func() { j.Close() })
			return j
		},
	}
}

func bankEnv(t *testing.T, open func(*testing.T) journal.Journal) (*actortest.Env, *actor.Handle[banktest.Account, banktest.Command, banktest.Event]) {
	var opts []actortest.Option
	if open != nil {
		opts = append(opts, actortest.WithBackend(open(t)))
	}
	env := actortest.NewSystem(t, opts...)
	h, err := actor.Register(env.System, banktest.Accounts())
	require.NoError(t, err)
	return env, h
}

func TestEventProbe_ExpectPersisted_OnEveryBackend(t *testing.T) {
	for name, open := range backends(t) {
		t.Run(name, func(t *testing.T) {
			env, h := bankEnv(t, open)
			ctx := context.Background()
			_, err := h.Send(ctx, "old", banktest.OpenAccount{Owner: "zed"})
			require.NoError(t, err)

			p := env.EventProbe(t, actortest.ProbeKind("account"))
			_, err = h.Send(ctx, "a1", banktest.OpenAccount{Owner: "ada"})
			require.NoError(t, err)
			_, err = h.Send(ctx, "a1", banktest.Deposit{Amount: 5})
			require.NoError(t, err)

			opened, rec := actortest.ExpectPersisted[banktest.Opened](p, "a1")
			assert.Equal(t, "ada", opened.Owner)
			assert.Equal(t, "account-a1", rec.Stream)
			assert.Equal(t, uint64(1), rec.Version)
			assert.Equal(t, "test.account.opened", rec.Envelope.Type)
			dep, _ := actortest.ExpectPersisted[banktest.Deposited](p, "a1")
			assert.Equal(t, int64(5), dep.Amount)
			p.ExpectNothingPersisted(0)

			// An extra event fails ExpectNothingPersisted.
			_, err = h.Send(ctx, "a1", banktest.Deposit{Amount: 1})
			require.NoError(t, err)
			msg := kittest.Run(t, func(ft testing.TB) {
				q := actortest.NewEventProbe(ft, env.Log, env.System.Registry())
				_, err := h.Send(ctx, "a2", banktest.OpenAccount{Owner: "bo"})
				require.NoError(t, err)
				q.ExpectNothingPersisted(0)
			})
			assert.Contains(t, msg, "unexpected event persisted: test.account.opened at account-a2 v1")
		})
	}
}

func TestEventProbe_ExpectPersisted_WrongTypeOrAggregate_Fails(t *testing.T) {
	env, h := bankEnv(t, nil)
	ctx := context.Background()
	msg := kittest.Run(t, func(ft testing.TB) {
		p := actortest.NewEventProbe(ft, env.Log, env.System.Registry())
		_, _ = h.Send(ctx, "a1", banktest.OpenAccount{Owner: "ada"})
		actortest.ExpectPersisted[banktest.Deposited](p, "a1")
	})
	assert.Contains(t, msg, "is a banktest.Opened")
	assert.Contains(t, msg, "want banktest.Deposited")

	msg = kittest.Run(t, func(ft testing.TB) {
		p := actortest.NewEventProbe(ft, env.Log, env.System.Registry())
		_, _ = h.Send(ctx, "a2", banktest.OpenAccount{Owner: "bo"})
		actortest.ExpectPersisted[banktest.Opened](p, "a3")
	})
	assert.Contains(t, msg, `on aggregate "a2", want "a3"`)

	msg = kittest.Run(t, func(ft testing.TB) {
		p := actortest.NewEventProbe(ft, env.Log, env.System.Registry(), actortest.ProbeWait(10*time.Millisecond))
		actortest.ExpectPersisted[banktest.Opened](p, "")
	})
	assert.Contains(t, msg, "no event persisted within 10ms (wall clock)")
}

func TestEventProbe_FishPersisted_SkipsAndFilters(t *testing.T) {
	env, h := bankEnv(t, nil)
	ctx := context.Background()
	p := env.EventProbe(t, actortest.ProbeStream(h.Stream("a1")))
	for _, id := range []string{"a1", "a2"} {
		_, err := h.Send(ctx, id, banktest.OpenAccount{Owner: id})
		require.NoError(t, err)
	}
	for i := range 3 {
		_, err := h.Send(ctx, "a1", banktest.Deposit{Amount: int64(i + 1)})
		require.NoError(t, err)
	}
	d, rec := actortest.FishPersisted(p, "a1", func(e banktest.Deposited, _ journal.Record) bool { return e.Amount == 2 })
	assert.Equal(t, int64(2), d.Amount)
	assert.Equal(t, uint64(3), rec.Version)
	left := p.Records()
	require.Len(t, left, 1) // a2's event is not on the probed stream
	assert.Equal(t, uint64(4), left[0].Version)

	msg := kittest.Run(t, func(ft testing.TB) {
		q := actortest.NewEventProbe(ft, env.Log, env.System.Registry(), actortest.ProbeWait(10*time.Millisecond))
		_, _ = h.Send(ctx, "a1", banktest.Deposit{Amount: 9})
		actortest.FishPersisted[banktest.Withdrawn](q, "", nil)
	})
	assert.Contains(t, msg, "no matching banktest.Withdrawn persisted")
	assert.Contains(t, msg, "test.account.deposited at account-a1 v5")
}

func TestEventProbe_WaitsForAsynchronousAppends(t *testing.T) {
	env, h := bankEnv(t, nil)
	p := env.EventProbe(t)
	require.NoError(t, h.Tell("a1", banktest.OpenAccount{Owner: "ada"}))
	e, _ := actortest.ExpectPersisted[banktest.Opened](p, "a1")
	assert.Equal(t, "ada", e.Owner)
}

// An event held back on the manual clock: the probe's wall-clock wait
// runs out and says so, naming the manual clock it does not advance;
// after the advance the event is there.
func TestEventProbe_ExpectPersisted_NamesTheManualClockItDoesNotAdvance(t *testing.T) {
	env, h := bankEnv(t, nil)
	env.DelayAppends(1, actortest.KindAppends("account"), time.Minute)
	p := env.EventProbe(t)
	before := env.Clock.Timers()
	require.NoError(t, h.Tell("a1", banktest.OpenAccount{Owner: "ada"}))

	msg := kittest.Run(t, func(ft testing.TB) {
		q := env.EventProbe(ft, actortest.ProbeWait(50*time.Millisecond))
		actortest.ExpectPersisted[banktest.Opened](q, "a1")
	})
	assert.Contains(t, msg, "no event persisted within 50ms (wall clock)")
	assert.Contains(t, msg, "the system's manual clock, which the probe does not advance, reads 2026-01-01T00:00:00Z")

	// The delay's timer is armed once the append reached the journal.
	require.Eventually(t, func() bool { return env.Clock.Timers() > before }, actortest.WaitTimeout, time.Millisecond)
	env.Clock.Advance(time.Minute)
	e, _ := actortest.ExpectPersisted[banktest.Opened](p, "a1")
	assert.Equal(t, "ada", e.Owner)
}
