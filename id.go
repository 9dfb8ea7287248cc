package orchestrix

import (
	"crypto/rand"
	"encoding/binary"
	mrand "math/rand/v2"
	"sync"
	"sync/atomic"
	"time"
)

// NewID returns a new UUIDv7 (RFC 9562) in its canonical 36-character
// string form.
//
// UUIDv7 ids begin with a millisecond Unix timestamp, so ids created later
// sort after earlier ones, which keeps index inserts in journals local.
// Within one process ids are strictly increasing: the 12 bits after the
// version hold a counter that orders ids of the same millisecond (method 1
// of RFC 9562 section 6.2), kept in one atomic word, so concurrent callers
// never wait on a lock. The timestamp is the wall clock as of the last
// second, advanced by the monotonic clock (one clock read per id instead
// of two; a step of the wall clock shows within a second). The remaining
// 62 bits come from a ChaCha8 generator (math/rand/v2, a cryptographically
// strong generator) keyed from crypto/rand and rekeyed every 4096 ids.
// NewID is safe for concurrent use and never fails.
func NewID() string {
	var u [16]byte
	ms, seq := nextV7Clock(idNowMS())
	u[0] = byte(ms >> 40)
	u[1] = byte(ms >> 32)
	u[2] = byte(ms >> 24)
	u[3] = byte(ms >> 16)
	u[4] = byte(ms >> 8)
	u[5] = byte(ms)
	u[6] = 0x70 | byte(seq>>8)&0x0f // version 7, counter high bits
	u[7] = byte(seq)
	binary.BigEndian.PutUint64(u[8:], random64())
	u[8] = 0x80 | u[8]&0x3f // RFC 9562 variant
	return formatUUID(&u)
}

// v7Clock holds the timestamp (milliseconds, high 52 bits) and counter (low
// 12 bits) of the last id handed out.
var v7Clock atomic.Uint64

// nextV7Clock returns a (millisecond, counter) pair above every pair
// returned before. When more than 4096 ids are taken in one millisecond the
// counter carries into the timestamp, which then runs slightly ahead of
// the clock until the clock catches up.
func nextV7Clock(nowMS uint64) (ms, seq uint64) {
	for {
		last := v7Clock.Load()
		next := nowMS << 12
		if next <= last {
			next = last + 1
		}
		if v7Clock.CompareAndSwap(last, next) {
			return next >> 12, next & 0xfff
		}
	}
}

// wallBase is a reading of the wall clock together with the monotonic
// clock, from which idNowMS derives the wall clock with a monotonic read
// alone (time.Now reads both clocks, which costs twice as much).
type wallBase struct {
	at     time.Time // carries the monotonic reading
	wallNS int64     // at's wall clock, Unix nanoseconds
}

// wallResync is how long a wallBase is used before the wall clock is read
// again.
const wallResync = time.Second

var idWallBase atomic.Pointer[wallBase]

// idNowMS returns the wall clock in Unix milliseconds for a new id.
func idNowMS() uint64 {
	if b := idWallBase.Load(); b != nil {
		if ms, ok := b.ms(time.Since(b.at)); ok {
			return ms
		}
	}
	now := time.Now()
	idWallBase.Store(&wallBase{at: now, wallNS: now.UnixNano()})
	return uint64(now.UnixMilli())
}

// ms returns the wall clock, in Unix milliseconds, elapsed after b was
// taken, or false when b is too old (or elapsed negative) to be used.
func (b *wallBase) ms(elapsed time.Duration) (uint64, bool) {
	if elapsed < 0 || elapsed >= wallResync {
		return 0, false
	}
	return uint64((b.wallNS + int64(elapsed)) / int64(time.Millisecond)), true
}

// randomSource is a ChaCha8 generator keyed from crypto/rand, rekeyed
// after rekeyAfter draws.
type randomSource struct {
	gen   mrand.ChaCha8
	draws int
}

const rekeyAfter = 4096

var randomSources = sync.Pool{New: func() any { return &randomSource{draws: rekeyAfter} }}

// random64 returns 64 random bits.
func random64() uint64 {
	s := randomSources.Get().(*randomSource)
	x := s.next()
	randomSources.Put(s)
	return x
}

// next returns the next 64 bits of s, keying it first when it is new or
// has given rekeyAfter values since it was keyed.
func (s *randomSource) next() uint64 {
	if s.draws >= rekeyAfter {
		var seed [32]byte
		if _, err := rand.Read(seed[:]); err != nil {
			// crypto/rand does not fail on supported platforms (since Go
			// 1.24 it aborts the program instead); should it ever, the
			// runtime's randomly seeded generator keeps ids unique in
			// practice.
			for i := 0; i < len(seed); i += 8 {
				binary.LittleEndian.PutUint64(seed[i:], mrand.Uint64())
			}
		}
		s.gen.Seed(seed)
		clear(seed[:])
		s.draws = 0
	}
	s.draws++
	return s.gen.Uint64()
}

// uuidHexAt[i] is where byte i of a UUID starts in its string form.
var uuidHexAt = [16]uint8{0, 2, 4, 6, 9, 11, 14, 16, 19, 21, 24, 26, 28, 30, 32, 34}

// formatUUID writes u as xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx.
func formatUUID(u *[16]byte) string {
	var out [36]byte
	out[8], out[13], out[18], out[23] = '-', '-', '-', '-'
	for i, c := range u {
		j := uuidHexAt[i]
		out[j] = hexDigits[c>>4]
		out[j+1] = hexDigits[c&0x0f]
	}
	return string(out[:])
}
