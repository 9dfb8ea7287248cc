package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/orchestrix/orchestrix/examples/internal/maintest"
	"github.com/orchestrix/orchestrix/internal/pgtest"
)

func TestRun_TransfersAndCompensation(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out bytes.Buffer
	if err := run(ctx, &out, t.TempDir()); err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	got := out.String()
	for _, want := range []string{
		"bob      Withdraw{Amount:500}         refused: insufficient funds",
		// t2: the credit to the suspended account is refused, the debit reversed.
		"transfer t2: 100 from bob to carol\n  steps done [debit], undone [debit]\n  step credit refused: account is not active\n  => compensated",
		// t3: the debit itself is refused, nothing to undo.
		"transfer t3: 10000 from bob to alice\n  steps done [], undone []\n  step debit refused: insufficient funds\n  => compensated",
		"transfer t1: 300 from alice to bob\n  steps done [debit credit], undone []\n  => completed",
		"carol    CloseAccount{}               refused: balance must be zero to close",
		"carol    CloseAccount{}               ok: closed, balance 0",
		"carol    Deposit{Amount:1}            refused: account is not active",
		"t2: compensated (5 events in saga.transfer-t2)",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %q", want)
		}
	}
	// The projection's balances, before and after the restart.
	if n := strings.Count(got, "balances (projection):\n  alice  650\n  bob    500\n  carol  0\n"); n != 2 {
		t.Errorf("balances printed %d times as expected, want 2", n)
	}
	if t.Failed() {
		t.Logf("output:\n%s", got)
	}
}

// The same story on PostgreSQL: journal, snapshots and saga checkpoints in
// one database, including the restart.
func TestRunOn_PostgreSQL_SameOutcome(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var bolt, pg bytes.Buffer
	if err := run(ctx, &bolt, t.TempDir()); err != nil {
		t.Fatalf("run on bbolt: %v\n%s", err, bolt.String())
	}
	if err := runOn(ctx, &pg, postgresBackend(pgtest.DSN(t)), nil); err != nil {
		t.Fatalf("run on PostgreSQL: %v\n%s", err, pg.String())
	}
	if bolt.String() != pg.String() {
		t.Errorf("the story differs between backends\n--- bbolt\n%s\n--- PostgreSQL\n%s", bolt.String(), pg.String())
	}
}

func TestMain(m *testing.M) {
	maintest.Child(main)
	pgtest.Main(m)
}
