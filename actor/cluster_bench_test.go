package actor_test

import (
	"context"
	"strconv"
	"testing"

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
