package orchestrix

import (
	mrand "math/rand/v2"
	"testing"
	"time"
)

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

func TestWallBase_MS_DerivesWallClockForASecond(t *testing.T) {
	b := &wallBase{wallNS: 1_700_000_000_123_456_789}
	for _, c := range []struct {
		elapsed time.Duration
		want    uint64
		ok      bool
	}{
		{0, 1_700_000_000_123, true},
		{543_210, 1_700_000_000_123, true}, // still within the millisecond
		{543_211, 1_700_000_000_124, true},
		{999 * time.Millisecond, 1_700_000_001_122, true},
		{time.Second, 0, false}, // too old: the wall clock is read again
		{-1, 0, false},          // monotonic clock behind the base
	} {
		got, ok := b.ms(c.elapsed)
		if got != c.want || ok != c.ok {
			t.Errorf("ms(%v) = %d, %v, want %d, %v", c.elapsed, got, ok, c.want, c.ok)
		}
	}
}

func TestRandomSource_KeyedFromCryptoRand_RekeyedAfterLimit(t *testing.T) {
	a, b := &randomSource{draws: rekeyAfter}, &randomSource{draws: rekeyAfter}
	a1, b1 := a.next(), b.next()
	a2, b2 := a.next(), b.next()
	if a1 == b1 && a2 == b2 {
		t.Fatal("two new sources gave the same values: not keyed at random")
	}
	var zero mrand.ChaCha8
	a.draws = rekeyAfter - 1
	a.next()
	if a.draws != rekeyAfter {
		t.Fatalf("draws = %d after the last draw of a key", a.draws)
	}
	continued := a.gen // the stream a would go on with, had it not rekeyed
	if got, want := a.next(), continued.Uint64(); got == want || a.draws != 1 {
		t.Fatalf("after %d draws: next %d (continuation %d), draws %d; want a new key", rekeyAfter, got, want, a.draws)
	}
	if a.gen == zero {
		t.Fatal("generator left zero")
	}
}
