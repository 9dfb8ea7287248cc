package actor_test

import (
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	proto "github.com/asynkron/protoactor-go/actor"
)

// BenchmarkMailboxHop measures what one message costs to get from a sender
// goroutine into an idle actor and its answer back, on protoactor-go's
// default mailbox and dispatcher (the path every Send takes), against a
// mutex per actor with the handler run on the sender's goroutine. 1,024
// senders address 10,000 actors at random, as in bench aggregates'
// many-aggregates scenario; the handler does nothing but answer on a
// channel (so the sender parks until the actor's goroutine has run, as a
// Send parks until its events are durable). cpu-ns/op is the process's
// user + system CPU per message (getrusage), which the machine's other
// load distorts less than ns/op.
//
// Read the protoactor figure as an upper bound: in its CPU profile 40 %
// is runtime.copystack, the stack of each new mailbox goroutine growing
// through protoactor's call chain, because this benchmark's shallow
// senders keep Go's adaptive initial stack size small; in bench
// aggregates' profile copystack is about 2 %.
func BenchmarkMailboxHop(b *testing.B) {
	const actors = 10000
	for _, tc := range []struct {
		name string
		opts []proto.PropsOption
	}{
		{"protoactor", nil},
		// protoactor's own synchronized dispatcher runs the mailbox on the
		// posting goroutine: the mailbox without the goroutine hop (not
		// usable as is for aggregates: the journal's writer would run
		// their code, see BENCHMARKS.md round 4).
		{"protoactor-synchronized-dispatcher", []proto.PropsOption{proto.WithDispatcher(proto.NewSynchronizedDispatcher(300))}},
	} {
		b.Run(tc.name, func(b *testing.B) { protoHop(b, actors, tc.opts) })
	}
	b.Run("goroutine-per-message", func(b *testing.B) {
		// The hop without protoactor: a new goroutine per message that
		// takes the actor's mutex and answers (what the default
		// dispatcher does for a message to an idle mailbox).
		mus := make([]sync.Mutex, actors)
		hop(b, func(i int, m *hopMsg) {
			go func() {
				mu := &mus[i%actors]
				mu.Lock()
				m.reply <- struct{}{}
				mu.Unlock()
			}()
		})
	})
	b.Run("mutex-per-actor", func(b *testing.B) {
		mus := make([]sync.Mutex, actors)
		hop(b, func(i int, m *hopMsg) {
			mu := &mus[i%actors]
			mu.Lock()
			m.reply <- struct{}{}
			mu.Unlock()
		})
	})
}

// protoHop is the protoactor case of BenchmarkMailboxHop, with props
// options opts.
func protoHop(b *testing.B, actors int, opts []proto.PropsOption) {
	sys := proto.NewActorSystemWithConfig(proto.Configure(
		proto.WithLoggerFactory(func(*proto.ActorSystem) *slog.Logger { return slog.New(slog.DiscardHandler) })))
	props := proto.PropsFromFunc(func(c proto.Context) {
		if m, ok := c.Message().(*hopMsg); ok {
			m.reply <- struct{}{}
		}
	}, opts...)
	type target struct {
		pid  *proto.PID
		proc proto.Process
	}
	ts := make([]target, actors)
	for i := range ts {
		pid := sys.Root.Spawn(props)
		proc, _ := sys.ProcessRegistry.Get(pid)
		ts[i] = target{pid, proc}
	}
	b.Cleanup(func() { sys.Shutdown() })
	hop(b, func(i int, m *hopMsg) { ts[i%actors].proc.SendUserMessage(ts[i%actors].pid, m) })
}

type hopMsg struct{ reply chan struct{} }

func hop(b *testing.B, send func(i int, m *hopMsg)) {
	var seed atomic.Uint64
	b.SetParallelism(512)
	b.ReportAllocs()
	cpu0 := rusageCPU()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		m := &hopMsg{reply: make(chan struct{}, 1)}
		x := seed.Add(0x9E3779B97F4A7C15)
		for pb.Next() {
			x ^= x << 13
			x ^= x >> 7
			x ^= x << 17
			send(int(x>>1), m)
			<-m.reply
		}
	})
	b.StopTimer()
	b.ReportMetric(float64(rusageCPU()-cpu0)/float64(b.N), "cpu-ns/op")
}

func rusageCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		panic(fmt.Sprint("getrusage: ", err))
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
