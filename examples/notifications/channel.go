package main

import (
	"context"
	"errors"
	"fmt"
	"github.com/orchestrix/orchestrix"
	"hash/fnv"
	"math"
	"sync"
	"time"
)

// Message is what the dispatcher hands to a Channel.
type Message struct {
	// ID is the notification id. It doubles as the idempotency key that a
	// real provider (an email or SMS API) would be given, so that a send
	// repeated after a crash between the provider's acceptance and the
	// recorded outcome is not delivered twice.
	ID        string
	Recipient string
	Body      string
	// Round and Attempt say which attempt this is.
	Round, Attempt int
}

// Channel delivers notifications. Send returns nil when the message was
// delivered and an error when it was not; it is called for one
// notification at a time, but for different notifications concurrently.
type Channel interface {
	Send(ctx context.Context, m Message) error
}

// ErrUnavailable is the transient failure of the fake channel.
var ErrUnavailable = errors.New("503 service unavailable")

// Call is one Send the fake channel received.
type Call struct {
	Round, Attempt int
	At             time.Time
	Err            error
}

// FlakyChannel is a deterministic fake Channel. A send to a recipient
// marked down fails; any other send fails transiently when a hash of the
// seed, the notification id and the send's ordinal for that id falls below
// the failure rate. Sends for one notification happen one after another,
// so the outcome of each is the same in every run with the same seed. It
// records every call, and counts deliveries per notification id without
// any deduplication of its own, so a double delivery is visible.
type FlakyChannel struct {
	seed        uint64
	failureRate float64
	clock       orchestrix.Clock

	mu        sync.Mutex
	down      map[string]string // recipient → error text
	calls     map[string][]Call
	delivered map[string]int
}

// NewFlakyChannel returns a channel failing about failureRate (0 to 1) of
// the sends, chosen by seed, stamping calls with clock's time.
func NewFlakyChannel(seed uint64, failureRate float64, clock orchestrix.Clock) *FlakyChannel {
	if clock == nil {
		clock = orchestrix.SystemClock{}
	}
	return &FlakyChannel{
		seed: seed, failureRate: failureRate, clock: clock,
		down: map[string]string{}, calls: map[string][]Call{}, delivered: map[string]int{},
	}
}

// SetDown makes every send to recipient fail with reason until Repair.
func (c *FlakyChannel) SetDown(recipient, reason string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.down[recipient] = reason
}

// Repair ends SetDown for recipient.
func (c *FlakyChannel) Repair(recipient string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.down, recipient)
}

// Send implements Channel.
func (c *FlakyChannel) Send(ctx context.Context, m Message) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	n := len(c.calls[m.ID])
	var err error
	if reason, ok := c.down[m.Recipient]; ok {
		err = fmt.Errorf("recipient %s: %s", m.Recipient, reason)
	} else if unit(c.seed, m.ID, uint64(n)) < c.failureRate {
		err = ErrUnavailable
	}
	c.calls[m.ID] = append(c.calls[m.ID], Call{Round: m.Round, Attempt: m.Attempt, At: c.clock.Now(), Err: err})
	if err == nil {
		c.delivered[m.ID]++
	}
	return err
}

// Calls returns the sends received for notification id, in order.
func (c *FlakyChannel) Calls(id string) []Call {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]Call(nil), c.calls[id]...)
}

// Deliveries returns how many sends delivered each notification.
func (c *FlakyChannel) Deliveries() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]int, len(c.delivered))
	for id, n := range c.delivered {
		out[id] = n
	}
	return out
}

// unit maps (seed, id, n) to a number in [0, 1), the same every time.
func unit(seed uint64, id string, n uint64) float64 {
	h := fnv.New64a()
	var b [16]byte
	for i := 0; i < 8; i++ {
		b[i] = byte(seed >> (8 * i))
		b[8+i] = byte(n >> (8 * i))
	}
	h.Write(b[:8])
	h.Write([]byte(id))
	h.Write(b[8:])
	// The top 53 bits as a float in [0, 1).
	return float64(h.Sum64()>>11) / (1 << 53)
}

// Policy says how often, and how far apart, a notification is attempted
// in one delivery round before it is dead-lettered.
//
// The wait after the n-th failed attempt is InitialBackoff×Multiplierⁿ⁻¹,
// capped at MaxBackoff, minus a jitter of up to Jitter of it: a wait lies
// in ((1−Jitter)·base, base]. The jitter is a hash of Seed, the
// notification id, the round and n, so retries of many notifications
// spread out while each one's schedule is reproducible.
type Policy struct {
	MaxAttempts    int
	InitialBackoff time.Duration
	MaxBackoff     time.Duration
	Multiplier     float64
	Jitter         float64
	Seed           uint64
}

// Validate reports whether p is usable.
func (p Policy) Validate() error {
	switch {
	case p.MaxAttempts < 1:
		return fmt.Errorf("policy: MaxAttempts %d is below 1", p.MaxAttempts)
	case p.InitialBackoff <= 0:
		return fmt.Errorf("policy: InitialBackoff %v is not positive", p.InitialBackoff)
	case p.MaxBackoff < p.InitialBackoff:
		return fmt.Errorf("policy: MaxBackoff %v is below InitialBackoff %v", p.MaxBackoff, p.InitialBackoff)
	case !(p.Multiplier >= 1):
		return fmt.Errorf("policy: Multiplier %v is below 1", p.Multiplier)
	case !(p.Jitter >= 0 && p.Jitter < 1):
		return fmt.Errorf("policy: Jitter %v is not in [0, 1)", p.Jitter)
	}
	return nil
}

// Base returns the wait after failures failed attempts, before jitter.
func (p Policy) Base(failures int) time.Duration {
	d := float64(p.InitialBackoff) * math.Pow(p.Multiplier, float64(max(failures-1, 0)))
	if d > float64(p.MaxBackoff) {
		return p.MaxBackoff
	}
	return time.Duration(d)
}

// Delay returns the wait, jitter included, after failed attempt number
// failures of round round of notification id.
func (p Policy) Delay(id string, round, failures int) time.Duration {
	base := p.Base(failures)
	cut := time.Duration(float64(base) * p.Jitter * unit(p.Seed, id, uint64(round)<<32|uint64(failures)))
	return base - cut
}
