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
// never wait on a lock. The remaining 62 bits come from crypto/rand,
// drawn in blocks to save system calls. NewID is safe for concurrent use
// and never fails.
func NewID() string {
	var u [16]byte
	ms, seq := nextV7Clock(uint64(time.Now().UnixMilli()))
	u[0] = byte(ms >> 40)
	u[1] = byte(ms >> 32)
	u[2] = byte(ms >> 24)
	u[3] = byte(ms >> 16)
	u[4] = byte(ms >> 8)
	u[5] = byte(ms)
	u[6] = 0x70 | byte(seq>>8)&0x0f // version 7, counter high bits
	u[7] = byte(seq)
	random8(u[8:])
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

// randomBlock is a block of crypto/rand output consumed 8 bytes at a time.
type randomBlock struct {
	buf [512]byte
	off int
}

var randomBlocks = sync.Pool{New: func() any { return &randomBlock{off: len(randomBlock{}.buf)} }}

// random8 fills dst (8 bytes) with random bytes.
func random8(dst []byte) {
	b := randomBlocks.Get().(*randomBlock)
	if b.off+8 > len(b.buf) {
		if _, err := rand.Read(b.buf[:]); err != nil {
			// crypto/rand does not fail on supported platforms (since Go
			// 1.24 it aborts the program instead); should it ever, the
			// runtime's randomly seeded generator keeps ids unique in
			// practice.
			for i := 0; i < len(b.buf); i += 8 {
				binary.LittleEndian.PutUint64(b.buf[i:], mrand.Uint64())
			}
		}
		b.off = 0
	}
	copy(dst, b.buf[b.off:b.off+8])
	clear(b.buf[b.off : b.off+8]) // a drawn value never stays in memory for reuse
	b.off += 8
	randomBlocks.Put(b)
}

// formatUUID writes u as xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx.
func formatUUID(u *[16]byte) string {
	var out [36]byte
	j := 0
	for i, c := range u {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			out[j] = '-'
			j++
		}
		out[j] = hexDigits[c>>4]
		out[j+1] = hexDigits[c&0x0f]
		j += 2
	}
	return string(out[:])
}
