package orchestrix

import "testing"

func TestNextV7Clock_SameMillisecond_CounterThenCarry(t *testing.T) {
	v7Clock.Store(0)
	defer v7Clock.Store(0)
	ms, seq := nextV7Clock(1000)
	if ms != 1000 || seq != 0 {
		t.Fatalf("first id of a millisecond = (%d, %d), want (1000, 0)", ms, seq)
	}
	for want := uint64(1); want < 4096; want++ {
		if ms, seq = nextV7Clock(1000); ms != 1000 || seq != want {
			t.Fatalf("id %d of a millisecond = (%d, %d), want (1000, %d)", want, ms, seq, want)
		}
	}
	// The 4097th id of the millisecond carries into the timestamp.
	if ms, seq = nextV7Clock(1000); ms != 1001 || seq != 0 {
		t.Fatalf("after 4096 ids = (%d, %d), want (1001, 0)", ms, seq)
	}
	// A clock that goes backwards never makes ids go backwards.
	if ms, seq = nextV7Clock(900); ms != 1001 || seq != 1 {
		t.Fatalf("clock went back: (%d, %d), want (1001, 1)", ms, seq)
	}
	if ms, seq = nextV7Clock(2000); ms != 2000 || seq != 0 {
		t.Fatalf("new millisecond: (%d, %d), want (2000, 0)", ms, seq)
	}
}
