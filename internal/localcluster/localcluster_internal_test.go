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
	ours, upstream := classifyRaces(log)
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
	if ours, upstream := classifyRaces(shutdown); len(ours) != 0 || upstream != 1 {
		t.Fatalf("remote shutdown race: %d ours, %d upstream; want it upstream", len(ours), upstream)
	}
	if ours, upstream := classifyRaces("no races here\n"); len(ours) != 0 || upstream != 0 {
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
