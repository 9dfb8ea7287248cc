package actor_test

import (
	"context"
	"fmt"
	"github.com/orchestrix/orchestrix/internal/banktest"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/orchestrix/orchestrix"
	"github.com/orchestrix/orchestrix/actor"
	"github.com/orchestrix/orchestrix/internal/pgtest"
	"github.com/orchestrix/orchestrix/journal"
	boltjournal "github.com/orchestrix/orchestrix/journal/bolt"
	pgjournal "github.com/orchestrix/orchestrix/journal/postgres"
	"github.com/orchestrix/orchestrix/snapshot"
	boltsnapshot "github.com/orchestrix/orchestrix/snapshot/bolt"
	pgsnapshot "github.com/orchestrix/orchestrix/snapshot/postgres"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// storage opens the journal and snapshot store of one durable backend; each
// call opens the same data again, as a restarted process would.
type storage func(t *testing.T) (journal.Journal, snapshot.Store)

func durableBackends(t *testing.T) map[string]storage {
	return map[string]storage{
		"bolt": func() storage {
			path := filepath.Join(t.TempDir(), "orchestrix.db")
			return func(t *testing.T) (journal.Journal, snapshot.Store) {
				j, err := boltjournal.Open(path, boltjournal.Config{NoSync: true})
				require.NoError(t, err)
				s, err := boltsnapshot.New(j.DB(), boltsnapshot.Config{})
				require.NoError(t, err)
				t.Cleanup(func() { s.Close(); j.Close() })
				return j, s
			}
		}(),
		"postgres": func() storage {
			var dsn string
			return func(t *testing.T) (journal.Journal, snapshot.Store) {
				if dsn == "" {
					dsn = pgtest.DSN(t)
				}
				ctx := context.Background()
				j, err := pgjournal.Open(ctx, dsn, pgjournal.Config{})
				require.NoError(t, err)
				s, err := pgsnapshot.Open(ctx, dsn, pgsnapshot.Config{})
				require.NoError(t, err)
				t.Cleanup(func() { s.Close(); j.Close() })
				return j, s
			}
		}(),
	}
}

func startOn(t *testing.T, j journal.Journal, s snapshot.Store) (*actor.System, *accountHandle) {
	t.Helper()
	sys, err := actor.NewSystem(actor.Config{Journal: j, Snapshots: s})
	require.NoError(t, err)
	t.Cleanup(func() { sys.Shutdown(context.Background()) })
	def := banktest.Accounts()
	def.SnapshotEvery = 7
	h, err := actor.Register(sys, def)
	require.NoError(t, err)
	return sys, h
}

// TestRuntime_DurableBackends_ConcurrentCommandsSurviveRestart runs the
// runtime on bbolt and on PostgreSQL: concurrent commands over many
// aggregates, a restart on the same storage, recovery through snapshots,
// dedup of a retried command id after the restart, and the fence between two
// activations of one aggregate.
func TestRuntime_DurableBackends_ConcurrentCommandsSurviveRestart(t *testing.T) {
	for name, open := range durableBackends(t) {
		t.Run(name, func(t *testing.T) {
			// The whole scenario (three systems, two restarts) shares one
			// context: 4-7 s under -race on a quiet machine, and it ran
			// past a 10 s deadline at load 12-13.
			ctx := ctxWithin(t, 2*time.Minute)
			const aggregates, deposits = 12, 20

			j, s := open(t)
			sys, h := startOn(t, j, s)
			for a := 0; a < aggregates; a++ {
				_, err := h.Send(ctx, fmt.Sprint("acc", a), banktest.OpenAccount{Owner: "owner"})
				require.NoError(t, err)
			}
			var wg sync.WaitGroup
			errs := make(chan error, aggregates*deposits)
			for a := 0; a < aggregates; a++ {
				for d := 1; d <= deposits; d++ {
					wg.Add(1)
					go func() {
						defer wg.Done()
						_, err := h.Send(ctx, fmt.Sprint("acc", a), banktest.Deposit{Amount: int64(d)}, actor.WithCommandID(fmt.Sprintf("dep-%d-%d", a, d)))
						errs <- err
					}()
				}
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				require.NoError(t, err)
			}
			_, err := h.Send(ctx, "acc0", banktest.Withdraw{Amount: 1_000_000})
			require.ErrorIs(t, err, banktest.ErrInsufficientFunds)

			want := int64(deposits * (deposits + 1) / 2)
			for a := 0; a < aggregates; a++ {
				st, v, err := h.State(ctx, fmt.Sprint("acc", a))
				require.NoError(t, err)
				assert.Equal(t, want, st.Balance)
				assert.Equal(t, uint64(deposits+1), v)
			}
			require.NoError(t, sys.Shutdown(ctx))
			require.NoError(t, s.Close())
			require.NoError(t, j.Close())

			// Restart on the same storage.
			j2, s2 := open(t)
			_, h2 := startOn(t, j2, s2)
			for a := 0; a < aggregates; a++ {
				st, v, err := h2.State(ctx, fmt.Sprint("acc", a))
				require.NoError(t, err)
				assert.Equal(t, want, st.Balance, "recovered balance of acc%d", a)
				assert.Equal(t, uint64(deposits+1), v)
			}
			snap, ok, err := s2.Load(ctx, h2.Stream("acc3"), snapshot.Latest)
			require.NoError(t, err)
			require.True(t, ok, "snapshots were saved every 7 events")
			assert.LessOrEqual(t, snap.Version, uint64(deposits+1))

			res, err := h2.Send(ctx, "acc3", banktest.Deposit{Amount: 5}, actor.WithCommandID("dep-3-5"))
			require.NoError(t, err)
			assert.True(t, res.Duplicate, "a command id retried after the restart is not applied twice")
			st, _, err := h2.State(ctx, "acc3")
			require.NoError(t, err)
			assert.Equal(t, want, st.Balance)

			// A second activation of acc5 on another system over the same
			// data (another process): the stale one is fenced by the
			// journal and recovers.
			// bbolt is single-process (the file is locked), so there the
			// second system shares the open journal.
			j3, s3 := j2, s2
			if name == "postgres" {
				j3, s3 = open(t)
			}
			_, h3 := startOn(t, j3, s3)
			_, err = h3.Send(ctx, "acc5", banktest.Deposit{Amount: 100})
			require.NoError(t, err)
			_, err = h2.Send(ctx, "acc5", banktest.Deposit{Amount: 1})
			require.ErrorIs(t, err, orchestrix.ErrVersionConflict)
			res, err = h2.Send(ctx, "acc5", banktest.Deposit{Amount: 1})
			require.NoError(t, err, "the fenced activation recovered from the journal")
			assert.Equal(t, uint64(deposits+3), res.Version)
			st, _, err = h2.State(ctx, "acc5")
			require.NoError(t, err)
			assert.Equal(t, want+101, st.Balance)
		})
	}
}
