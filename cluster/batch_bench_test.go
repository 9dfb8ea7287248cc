package cluster

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"syscall"
	"testing"
	"time"

	proto "github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/remote"

	"github.com/orchestrix/orchestrix/internal/clusterseam"
)

// echoKind answers every command at once with one event of 100 bytes,
// so that a benchmark measures the remote path alone.
type echoKind struct{ clusterseam.Kind }

var echoEvent = make([]byte, 100)

func (echoKind) ServeCommand(context.Context, []byte) (clusterseam.CommandReply, error) {
	return clusterseam.CommandReply{Events: [][]byte{echoEvent}, Version: 1, Position: 1}, nil
}

// ServeCommandAsync answers at once, on the calling goroutine (as a command
// run inline would).
func (echoKind) ServeCommandAsync(_ []byte, done func(clusterseam.Outcome)) { done(echoOutcome) }

func echoOutcome() (clusterseam.CommandReply, error) {
	return clusterseam.CommandReply{Events: [][]byte{echoEvent}, Version: 1, Position: 1}, nil
}

// remoteMember is a member on its own protoactor-go system with a remote
// endpoint on 127.0.0.1 (no cluster provider, no gossip): its view is
// set by the caller.
func remoteMember(b *testing.B, kinds map[string]clusterseam.Kind) *Member {
	b.Helper()
	sys := proto.NewActorSystem()
	r := remote.NewRemote(sys, remote.Configure("127.0.0.1", 0))
	r.Start()
	cfg := Config{RequestTimeout: time.Minute, Logger: slog.New(slog.DiscardHandler)}.withDefaults()
	c := &manualClock{}
	m := &Member{cfg: cfg, proto: sys, kinds: kinds, f: newFence(c.now, cfg.PauseThreshold, cfg.SettlePeriod)}
	m.bg, m.stopBG = context.WithCancel(context.Background())
	m.work = newWorkers(5*time.Second, m.bg.Done())
	if _, err := sys.Root.SpawnNamed(proto.PropsFromProducer(func() proto.Actor { return &server{m: m} }), serverName); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { m.stopBG(); r.Shutdown(true); sys.Shutdown() })
	return m
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkRemoteCommand measures commands sent by 1 or 256 concurrent
// callers from one member to another over protoactor-go's remote endpoint on
// loopback (both in this process), answered at once by the owner: the
// remote path's cost per command, sent one request each ("single") or
// coalesced per target ("batched"). cpu-us/op is the process's CPU time
// (both members) per command.
//
//	go test -run '^$' -bench RemoteCommand -count 6 ./cluster/
func BenchmarkRemoteCommand(b *testing.B) {
	for _, c := range []struct {
		callers int
		batched bool
	}{{1, false}, {1, true}, {256, false}, {256, true}} {
		name := fmt.Sprintf("callers=%d/single", c.callers)
		if c.batched {
			name = fmt.Sprintf("callers=%d/batched", c.callers)
		}
		batched, callers := c.batched, c.callers
		b.Run(name, func(b *testing.B) {
			caller := remoteMember(b, map[string]clusterseam.Kind{})
			owner := remoteMember(b, map[string]clusterseam.Kind{"k": echoKind{}})
			pl := newPlacement([]peer{{id: "caller", addr: caller.addr()}, {id: "owner", addr: owner.addr(), kinds: []string{"k"}}})
			for _, m := range []*Member{caller, owner} {
				ep := newEpoch(1)
				ep.ok.Store(true)
				close(ep.settled)
				m.cur.Store(&view{self: m.addr(), pl: pl, ep: ep})
			}
			if batched {
				caller.caps.record(owner.addr(), "owner", 0, owner.features())
			}
			cmd := make([]byte, 80)
			local := func(context.Context) error { return fmt.Errorf("not the owner") }
			send := func(i int) {
				if _, _, err := caller.Command(context.Background(), "k", fmt.Sprint("id-", i), fmt.Sprint("c-", i), cmd, local); err != nil {
					b.Error(err)
				}
			}
			send(0) // connect
			b.ResetTimer()
			cpu0, t0 := cpuTime(), time.Now()
			var wg sync.WaitGroup
			for g := range callers {
				wg.Go(func() {
					for i := g; i < b.N; i += callers {
						send(i)
					}
				})
			}
			wg.Wait()
			b.StopTimer()
			cpu, el := cpuTime()-cpu0, time.Since(t0)
			b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-us/op")
			b.ReportMetric(float64(b.N)/el.Seconds(), "commands/s")
		})
	}
}
