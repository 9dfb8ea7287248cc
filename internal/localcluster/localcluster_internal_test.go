package localcluster

import (
	"strings"
	"testing"
)

func TestClassifyRaces_OursAndUpstreamApart(t *testing.T) {
	log := `noise
WARNING: DATA RACE
Write at 0x1 by goroutine 9:
  github.com/asynkron/protoactor-go/remote.(*BlockList).Block()

Goroutine 9 (running) created at:
  github.com/orchestrix/orchestrix/cluster.Start()
==================
WARNING: DATA RACE
Read at 0x2 by goroutine 3:
  github.com/orchestrix/orchestrix/actor.(*Handle).dispatch()

Previous write at 0x2 by goroutine 4:
  github.com/asynkron/protoactor-go/actor.(*future).Result()
==================
`
	ours, upstream := ClassifyRaces(log)
	if len(ours) != 1 || upstream != 1 || !strings.Contains(ours[0], "dispatch") {
		t.Fatalf("classifyRaces: %d ours %q, %d upstream; want the dispatch race ours and the BlockList race upstream", len(ours), ours, upstream)
	}
	// Both accesses inside protoactor-go, our code further down: upstream.
	shutdown := `WARNING: DATA RACE
Write at 0x3 by goroutine 111:
  github.com/asynkron/protoactor-go/remote.(*endpointReader).suspend()
      /x/endpoint_reader.go:255 +0x30
  github.com/orchestrix/orchestrix/cluster.(*Member).leave()
      /x/member.go:184 +0x157

Previous read at 0x3 by goroutine 78:
  github.com/asynkron/protoactor-go/remote.(*endpointReader).Receive()
      /x/endpoint_reader.go:75 +0x375
==================
`
	if ours, upstream := ClassifyRaces(shutdown); len(ours) != 0 || upstream != 1 {
		t.Fatalf("remote shutdown race: %d ours, %d upstream; want it upstream", len(ours), upstream)
	}
	// protoactor-go logs a gossip message through our slog handler while
	// another of its goroutines writes it: upstream.
	gossip := `WARNING: DATA RACE
Write at 0x3 by goroutine 117:
  github.com/asynkron/protoactor-go/cluster.setKey()
      /x/gossip_state_management.go:43 +0x3e4

Previous read at 0x3 by goroutine 66:
  reflect.Value.Int()
  github.com/asynkron/protoactor-go/cluster.(*GossipRequest).String()
  log/slog.(*TextHandler).Handle()
  github.com/orchestrix/orchestrix/actor.levelFloor.Handle()
      /x/config.go:223 +0xe1

Goroutine 117 (running) created at:
  github.com/orchestrix/orchestrix/cluster.Start()
==================
`
	if ours, upstream := ClassifyRaces(gossip); len(ours) != 0 || upstream != 1 {
		t.Fatalf("gossip logged while written: %d ours, %d upstream; want it upstream", len(ours), upstream)
	}
	// A map race in our code shows the runtime's frame on top: ours.
	mapRace := `WARNING: DATA RACE
Write at 0x4 by goroutine 12:
  runtime.mapassign_faststr()
  github.com/orchestrix/orchestrix/cluster.(*Member).onTopology()

Previous read at 0x4 by goroutine 13:
  runtime.mapaccess2_faststr()
  github.com/orchestrix/orchestrix/cluster.(*Member).Owner()
==================
`
	if ours, upstream := ClassifyRaces(mapRace); len(ours) != 1 || upstream != 0 {
		t.Fatalf("a map race in our code: %d ours, %d upstream; want it ours", len(ours), upstream)
	}
	if ours, upstream := ClassifyRaces("no races here\n"); len(ours) != 0 || upstream != 0 {
		t.Fatalf("a clean log: %d ours, %d upstream", len(ours), upstream)
	}
}

func TestSpec_Config_LoopbackEndpointAndSeeds(t *testing.T) {
	s := Spec{Port: 7000, AutoManagedPort: 6330, Seeds: []string{"127.0.0.1:6330", "127.0.0.1:6331"}}
	c := s.Config()
	if c.Host != "127.0.0.1" || c.Port != 7000 || c.AutoManagedPort != 6330 || len(c.Seeds) != 2 {
		t.Fatalf("Config: %+v", c)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
}
