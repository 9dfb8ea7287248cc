package saga_test

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/orchestrix/orchestrix"
	"github.com/orchestrix/orchestrix/saga"
)

// A Followed handle in "another process" (its own registry, no runner)
// begins a saga that the runner executes, and its Wait sees the runner's
// progress from the journal alone: nothing signals it. The runner is
// restarted half-way (a takeover, in effect), and Wait follows the new
// runner too.
func TestFollow_WaitSeesProgressOfARunnerElsewhere(t *testing.T) {
	for _, b := range worldBackends {
		t.Run(b.name, func(t *testing.T) {
			ctx := testContext(t)
			w := b.new(t, nil)
			w.start()
			mustRegister(t, w.runner, transferSaga(w.accounts))
			w.open(ctx, "alice", 100, false)
			w.open(ctx, "bob", 0, false)

			f, err := saga.Follow(saga.FollowConfig{Journal: w.store, Registry: orchestrix.NewRegistry()}, transferSaga(w.accounts))
			if err != nil {
				t.Fatal(err)
			}
			st, err := f.Status(ctx, "t1")
			if err != nil || st.State != saga.StateUnknown {
				t.Fatalf("status before begin: %+v, %v", st, err)
			}
			if err := f.Begin(ctx, "t1", Transfer{From: "alice", To: "bob", Amount: 30}); err != nil {
				t.Fatal(err)
			}
			st, err = f.Wait(ctx, "t1", saga.Finished)
			if err != nil {
				t.Fatalf("wait: %+v, %v", st, err)
			}
			if st.State != saga.StateCompleted || !slices.Equal(st.Done, []string{"debit", "credit"}) || st.Executing {
				t.Fatalf("followed status: %+v", st)
			}

			// A second saga, finished by a new runner after a restart.
			w.stop()
			if err := f.Begin(ctx, "t2", Transfer{From: "alice", To: "bob", Amount: 500}); err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() {
				st, err := f.Wait(ctx, "t2", saga.Finished)
				if err == nil && st.State != saga.StateCompensated {
					err = errors.New("t2 ended " + st.State.String())
				}
				done <- err
			}()
			w.start()
			mustRegister(t, w.runner, transferSaga(w.accounts))
			if err := <-done; err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestFollow_WaitEndsWithTheContext(t *testing.T) {
	ctx := testContext(t)
	w := newWorld(t, nil)
	w.start()
	f, err := saga.Follow(saga.FollowConfig{Journal: w.store, Registry: orchestrix.NewRegistry()}, transferSaga(w.accounts))
	if err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := f.Wait(short, "nobody", saga.Finished); !errors.Is(err, context.Canceled) {
		t.Fatalf("wait on a saga never begun with a cancelled context: %v", err)
	}
	if _, err := f.Wait(ctx, "", saga.Finished); !errors.Is(err, saga.ErrInvalidID) {
		t.Fatalf("wait with an empty id: %v", err)
	}
	if _, err := saga.Follow(saga.FollowConfig{}, transferSaga(w.accounts)); !errors.Is(err, saga.ErrInvalidSaga) {
		t.Fatalf("follow without journal: %v", err)
	}
}

// A FollowedProcess sees the records of a process manager running in
// "another process".
func TestFollowProcess_WaitSeesTheRunnersRecords(t *testing.T) {
	ctx := testContext(t)
	w := newWorld(t, nil)
	w.start()
	mustRegisterProcess(t, w.runner, bonusProcess(w))
	f, err := saga.FollowProcess(saga.FollowConfig{Journal: w.store, Registry: w.sys.Registry()}, bonusProcess(w))
	if err != nil {
		t.Fatal(err)
	}
	w.open(ctx, "a", 0, false)
	w.deposit(ctx, "a", 120)
	st, err := f.Wait(ctx, "a", func(st saga.ProcessStatus[Bonus]) bool { return st.Done })
	if err != nil {
		t.Fatalf("wait: %+v, %v", st, err)
	}
	if st.State != (Bonus{Total: 120, Paid: true}) || st.Version != 2 {
		t.Fatalf("followed process status: %+v", st)
	}
}
