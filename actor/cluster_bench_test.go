package actor_test

import (
	"context"
	"strconv"
	"testing"

	"github.com/orchestrix/orchestrix/aggregate"
	"github.com/orchestrix/orchestrix/internal/banktest"
	"github.com/orchestrix/orchestrix/internal/clusterseam"
)

// BenchmarkClusterForwarded measures a command whose owner is another
// member, without the transport: the caller's encoding of the command, the
// owner's decoding, execution (mem journal) and encoding of the reply's
// events, and the caller's decoding of them (forwardRouter calls the
// owner's seam directly). Compare with BenchmarkSend for the part that is
// not the local path.
//
//	go test -run '^$' -bench ClusterForwarded -benchmem ./actor/
func BenchmarkClusterForwarded(b *testing.B) {
	ctx := context.Background()
	sysA, sysB, a, _ := twoSystems(b)
	if err := clusterseam.Attach(sysA, forwardRouter{owner: sysB}); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = clusterseam.Attach(sysA, nil) })
	const accounts = 64
	for i := range accounts {
		if _, err := a.Send(ctx, "acc-"+strconv.Itoa(i), banktest.OpenAccount{Owner: "ada"}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		if _, err := a.Send(ctx, "acc-"+strconv.Itoa(i%accounts), banktest.Deposit{Amount: 1}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkServeCommandAsync measures the owner's side of a remote command
// served without a goroutine waiting for it (clusterseam.AsyncKind): the
// command's encoding (the caller's part, for the bytes), its decoding,
// execution on a mem journal, and its reply's encoding, one at a time.
//
//	go test -run '^$' -bench ServeCommandAsync -benchmem ./actor/
func BenchmarkServeCommandAsync(b *testing.B) {
	ctx := context.Background()
	sys, _, h, _ := twoSystems(b)
	k := clusterseam.Kinds(sys)["account"].(clusterseam.AsyncKind)
	const accounts = 64
	for i := range accounts {
		if _, err := h.Send(ctx, "acc-"+strconv.Itoa(i), banktest.OpenAccount{Owner: "ada"}); err != nil {
			b.Fatal(err)
		}
	}
	replies := make(chan error, 1)
	done := func(o clusterseam.Outcome) {
		_, err := o()
		replies <- err
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		data, err := h.EncodeCommand(ctx, aggregate.Command[banktest.Command]{ID: "c-" + strconv.Itoa(i),
			AggregateID: "acc-" + strconv.Itoa(i%accounts), Body: banktest.Deposit{Amount: 1}})
		if err != nil {
			b.Fatal(err)
		}
		k.ServeCommandAsync(data, done)
		if err := <-replies; err != nil {
			b.Fatal(err)
		}
	}
}
