package saga_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/orchestrix/orchestrix/actor"
	"github.com/orchestrix/orchestrix/projection"
	"github.com/orchestrix/orchestrix/saga"
)

// TestRunner_Chaos_KillAndRestart begins 1,000 concurrent transfer sagas
// from request events, kills the actor system and the saga runner
// together at random points of progress, restarts both on the same
// journal, and checks that every saga finishes and that every command took
// effect exactly as often as the sagas recorded: each account's balance and
// event count match what the sagas' records imply.
//
// Set SAGA_CHAOS_SEED to replay a run.
func TestRunner_Chaos_KillAndRestart(t *testing.T) {
	for _, b := range worldBackends {
		t.Run(b.name, func(t *testing.T) { sagaChaos(t, b.new(t, nil)) })
	}
}

func sagaChaos(t *testing.T, w *world) {
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("SAGA_CHAOS_SEED"); s != "" {
		var err error
		if seed, err = strconv.ParseUint(s, 10, 64); err != nil {
			t.Fatalf("SAGA_CHAOS_SEED: %v", err)
		}
	}
	t.Logf("seed %d (SAGA_CHAOS_SEED=%d to replay)", seed, seed)
	rng := rand.New(rand.NewPCG(seed, seed^0x5a5a))

	sagas, accounts, kills := 1000, 40, 8
	if testing.Short() {
		sagas, kills = 200, 4
	}
	const initial = 500

	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	w.dedup = 1 << 20 // every retry falls inside the dedup window
	w.start()
	requests, err := actor.Register(w.sys, Requests)
	if err != nil {
		t.Fatal(err)
	}
	for i := range accounts {
		w.open(ctx, acct(i), initial, i%10 == 0) // every tenth refuses credits
	}
	transfers := make([]Transfer, sagas)
	for i := range transfers {
		from := rng.IntN(accounts)
		to := (from + 1 + rng.IntN(accounts-1)) % accounts
		transfers[i] = Transfer{From: acct(from), To: acct(to), Amount: 1 + rng.Int64N(200)}
	}
	var wg sync.WaitGroup
	errs := make(chan error, sagas)
	work := make(chan int)
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				tr := transfers[i]
				if _, err := requests.Send(ctx, reqID(i), Requested{From: tr.From, To: tr.To, Amount: tr.Amount}); err != nil {
					errs <- err
				}
			}
		}()
	}
	for i := range sagas {
		work <- i
	}
	close(work)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}

	startOn := func(ev projection.Event) (string, Transfer, bool) {
		r := ev.Data.(Requested)
		return ev.Envelope.Subject, Transfer{From: r.From, To: r.To, Amount: r.Amount}, true
	}
	register := func() *saga.Saga[Transfer] {
		if _, err := actor.Register(w.sys, Requests); err != nil {
			t.Fatal(err)
		}
		return mustRegister(t, w.runner, transferSaga(w.accounts).StartOn(projection.Filter{Kinds: []string{"request"}}, startOn))
	}
	s := mustRegister(t, w.runner, transferSaga(w.accounts).StartOn(projection.Filter{Kinds: []string{"request"}}, startOn))

	// Kill at random amounts of progress, measured in journal records.
	for k := range kills {
		last, err := w.store.LastPosition(ctx)
		if err != nil {
			t.Fatal(err)
		}
		// About six records per saga: spread the kills over the run.
		target := last + 1 + uint64(rng.IntN(10*sagas/(kills+1)))
		waitCtx, stop := context.WithTimeout(ctx, 2*time.Second) // all sagas may finish first
		reached, err := w.store.WaitFor(waitCtx, target-1)
		if err != nil {
			reached = last // nothing more happened: every saga finished
		}
		stop()
		active := s.Active()
		var down sync.WaitGroup
		down.Add(2)
		runner, sys := w.runner, w.sys
		go func() { defer down.Done(); runner.Close() }()
		go func() { defer down.Done(); sys.Shutdown(context.Background()) }()
		down.Wait()
		w.runner, w.sys = nil, nil
		t.Logf("kill %d at position %d with %d sagas executing", k+1, reached, active)
		w.start()
		s = register()
	}

	expected := map[string]struct {
		balance int64
		version uint64
	}{}
	for i := range accounts {
		expected[acct(i)] = struct {
			balance int64
			version uint64
		}{initial, 1}
	}
	outcomes := map[saga.State]int{}
	for i := range sagas {
		st, err := s.Wait(ctx, reqID(i), saga.Finished)
		if err != nil {
			t.Fatalf("saga %s did not finish: %+v: %v (seed %d)", reqID(i), st, err, seed)
		}
		outcomes[st.State]++
		tr := st.Data
		if tr != transfers[i] {
			t.Fatalf("saga %s data %+v, want %+v", reqID(i), tr, transfers[i])
		}
		move := func(id string, amount int64) {
			e := expected[id]
			e.balance += amount
			e.version++
			expected[id] = e
		}
		if slices.Contains(st.Done, "debit") {
			move(tr.From, -tr.Amount)
		}
		if slices.Contains(st.Done, "credit") {
			move(tr.To, tr.Amount)
		}
		if slices.Contains(st.Undone, "debit") {
			move(tr.From, tr.Amount)
		}
		switch st.State {
		case saga.StateCompleted:
		case saga.StateCompensated:
			if reason := st.Failure.Reason; !strings.Contains(reason, ErrInsufficientFunds.Error()) && !strings.Contains(reason, ErrNoCredit.Error()) {
				t.Errorf("saga %s compensated for %q, want a domain rejection", reqID(i), reason)
			}
		default:
			t.Errorf("saga %s ended %v: %+v", reqID(i), st.State, st.CompensationFailure)
		}
	}
	var total int64
	for i := range accounts {
		id := acct(i)
		balance, version := w.balance(ctx, id)
		total += balance
		if e := expected[id]; balance != e.balance || version != e.version {
			t.Errorf("account %s: balance %d at version %d, want %d at version %d (seed %d)", id, balance, version, e.balance, e.version, seed)
		}
	}
	if total != int64(accounts)*initial {
		t.Errorf("money not conserved: total %d, want %d", total, int64(accounts)*initial)
	}
	t.Logf("%d sagas: %d completed, %d compensated, after %d kills", sagas, outcomes[saga.StateCompleted], outcomes[saga.StateCompensated], kills)
}

func acct(i int) string  { return fmt.Sprintf("acc%02d", i) }
func reqID(i int) string { return fmt.Sprintf("req%04d", i) }
