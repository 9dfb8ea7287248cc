package projectiontest_test

import (
	"context"
	"maps"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/orchestrix/orchestrix/actor"
	"github.com/orchestrix/orchestrix/actor/actortest"
	"github.com/orchestrix/orchestrix/internal/banktest"
	"github.com/orchestrix/orchestrix/internal/pgtest"
	"github.com/orchestrix/orchestrix/journal"
	boltjournal "github.com/orchestrix/orchestrix/journal/bolt"
	pgjournal "github.com/orchestrix/orchestrix/journal/postgres"
	"github.com/orchestrix/orchestrix/projection"
	"github.com/orchestrix/orchestrix/projection/projectiontest"
)

// The PostgreSQL cases skip, saying why, when no server can be started,
// unless ORCHESTRIX_REQUIRE_PG=1 (CI) makes that a failure.
func TestMain(m *testing.M) { pgtest.Main(m) }

func backends() map[string]func(t *testing.T) journal.Journal {
	return map[string]func(t *testing.T) journal.Journal{
		"bolt": func(t *testing.T) journal.Journal {
			j, err := boltjournal.Open(filepath.Join(t.TempDir(), "j.db"), boltjournal.Config{NoSync: true})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = j.Close() })
			return j
		},
		"postgres": func(t *testing.T) journal.Journal {
			j, err := pgjournal.Open(context.Background(), pgtest.DSN(t), pgjournal.Config{})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = j.Close() })
			return j
		},
	}
}

func TestKit_WithJournal_RunsOnEveryBackend(t *testing.T) {
	for name, open := range backends() {
		t.Run(name, func(t *testing.T) {
			j := open(t)
			reg := registry(t)
			// Written before the kit starts: the projection reads it too.
			early := projectiontest.New(t, reg, projectiontest.WithJournal(j))
			early.Append("account-alice", Deposited{Amount: 100})

			k := projectiontest.New(t, reg, projectiontest.WithJournal(j))
			k.Append("account-alice", Withdrawn{Amount: 30})
			poisoned := k.Append("account-bob", Deposited{Amount: 7})
			k.Append("account-bob", Deposited{Amount: 20})

			b := newBalances()
			k.Add(projection.Projection{
				Name: "balances", Handler: projectiontest.FailTimes(b, poisoned, 5, errBoom),
				Retry: projection.Retry{MaxAttempts: 2},
			})
			k.ExpectFailsAt("balances", poisoned, 2)
			k.Skip("balances", poisoned)
			k.ExpectCaughtUp("balances")
			want := map[string]int{"account-alice": 70, "account-bob": 20}
			if got := b.snapshot(); !maps.Equal(got, want) {
				t.Fatalf("read model %v, want %v", got, want)
			}
		})
	}
}

// A projection over what a system's aggregates commit, on the system's
// journal and clock.
func TestKit_WithEnv_FollowsTheSystemsCommits(t *testing.T) {
	env := actortest.NewSystem(t)
	accounts, err := actor.Register(env.System, banktest.Accounts())
	if err != nil {
		t.Fatal(err)
	}
	k := projectiontest.New(t, env.System.Registry(), projectiontest.WithEnv(env))
	if k.Clock != env.Clock || k.Journal != env.Log {
		t.Fatal("the kit does not share the system's clock and journal")
	}
	ctx := context.Background()
	for _, c := range []banktest.Command{banktest.OpenAccount{Owner: "ada"}, banktest.Deposit{Amount: 12}, banktest.Withdraw{Amount: 5}} {
		if _, err := accounts.Send(ctx, "a1", c); err != nil {
			t.Fatal(err)
		}
	}
	var balance atomic.Int64
	router := projection.NewRouter()
	projection.On(router, func(context.Context, projection.Event, banktest.Opened) error { return nil })
	projection.On(router, func(_ context.Context, _ projection.Event, e banktest.Deposited) error {
		balance.Add(e.Amount)
		return nil
	})
	projection.On(router, func(_ context.Context, _ projection.Event, e banktest.Withdrawn) error {
		balance.Add(-e.Amount)
		return nil
	})
	k.Run(projection.Projection{Name: "balance", Handler: router})
	if got := balance.Load(); got != 7 {
		t.Fatalf("balance %d, want 7", got)
	}
	if _, err := accounts.Send(ctx, "a1", banktest.Deposit{Amount: 3}); err != nil {
		t.Fatal(err)
	}
	k.ExpectCaughtUp("balance")
	if got := balance.Load(); got != 10 {
		t.Fatalf("balance %d, want 10", got)
	}
}
