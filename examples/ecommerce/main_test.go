package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"
)

func TestRun_OrderSagaOutcomes(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out bytes.Buffer
	if err := run(ctx, &out, t.TempDir(), nil); err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	got := out.String()
	for _, want := range []string{
		"order o1: alice buys 2 × book for 40\n  saga steps done [accept pay reserve confirm]\n  => saga completed, order confirmed",
		// Payment failure: only the order is cancelled.
		"step pay failed: payment declined: insufficient funds\n  compensated, in order: [accept]\n  => saga compensated, order cancelled (payment declined: insufficient funds)",
		// Inventory failure: refund first, then cancel.
		"step reserve failed: out of stock\n  compensated, in order: [pay accept]\n  => saga compensated, order cancelled (out of stock)",
		// Only o1 was paid for in the end, and only its stock is reserved;
		// the replenishment process reordered the 2 books it took.
		"== afterwards\n  wallet alice balance 960\n  wallet bob   balance 20\n  stock  book  available 10, reserved for 1 order(s)\n  stock  lamp  available 1, reserved for 0 order(s)",
		"replenishment (process manager):\n  book  target 10, available 10, 1 reorder(s), 3 events handled\n  lamp  target 1, available 1, 0 reorder(s), 1 events handled\n",
		"orders by status (projection):\n  confirmed o1\n  cancelled o2, o3\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %q", want)
		}
	}
	if t.Failed() {
		t.Logf("output:\n%s", got)
	}
}
