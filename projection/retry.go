package projection

import (
	"fmt"
	"time"
)

// Defaults of the Retry policy.
const (
	DefaultMaxAttempts    = 10
	DefaultInitialBackoff = 100 * time.Millisecond
	DefaultMaxBackoff     = 30 * time.Second
	DefaultMultiplier     = 2.0
)

// UnlimitedAttempts, as Retry.MaxAttempts, means no limit: the work is
// retried until it succeeds, fails permanently or is cancelled.
const UnlimitedAttempts = -1

// Retry says how often, and how far apart, failing work is tried before
// it gives up. It is the one retry vocabulary of orchestrix: projections
// use it for a failing event, journal read or checkpoint save (then stop
// in State Failed), and the saga package uses it for saga steps and
// process handlers. Every zero field means its default, in every package:
// the zero Retry makes 10 attempts, waiting 100 ms, 200 ms, 400 ms, …
// between them (doubling, at most 30 s). MaxAttempts UnlimitedAttempts
// retries without a limit. Waits are measured by the caller's Clock.
type Retry struct {
	// MaxAttempts is the number of attempts, the first included, before
	// giving up. Zero means DefaultMaxAttempts; 1 means no retries;
	// UnlimitedAttempts (or any negative value) means no limit.
	MaxAttempts int
	// InitialBackoff is the wait after the first failed attempt. Zero
	// means DefaultInitialBackoff.
	InitialBackoff time.Duration
	// MaxBackoff caps the wait. Zero means DefaultMaxBackoff.
	MaxBackoff time.Duration
	// Multiplier scales the wait after each further failure. Zero means
	// DefaultMultiplier; it must otherwise be at least 1.
	Multiplier float64
}

// Validate reports whether r is usable.
func (r Retry) Validate() error {
	switch {
	case r.InitialBackoff < 0:
		return fmt.Errorf("retry: InitialBackoff %v is negative", r.InitialBackoff)
	case r.MaxBackoff < 0:
		return fmt.Errorf("retry: MaxBackoff %v is negative", r.MaxBackoff)
	case r.Multiplier != 0 && !(r.Multiplier >= 1):
		return fmt.Errorf("retry: Multiplier %v is below 1", r.Multiplier)
	}
	return nil
}

func (r Retry) isZero() bool { return r == Retry{} }

// GivesUpAfter reports whether a policy, with defaults applied, gives up
// once the given number of attempts has failed.
func (r Retry) GivesUpAfter(attempts int) bool {
	r = r.withDefaults()
	return r.MaxAttempts > 0 && attempts >= r.MaxAttempts
}

// withDefaults returns r with zero fields replaced by the defaults.
func (r Retry) withDefaults() Retry {
	switch {
	case r.MaxAttempts == 0:
		r.MaxAttempts = DefaultMaxAttempts
	case r.MaxAttempts < 0:
		r.MaxAttempts = UnlimitedAttempts
	}
	if r.InitialBackoff == 0 {
		r.InitialBackoff = DefaultInitialBackoff
	}
	if r.MaxBackoff == 0 {
		r.MaxBackoff = DefaultMaxBackoff
	}
	if r.Multiplier == 0 {
		r.Multiplier = DefaultMultiplier
	}
	return r
}

// Backoff returns the wait after the given number of failed attempts
// (1 for the wait after the first failure), for a policy with defaults
// applied.
func (r Retry) Backoff(failures int) time.Duration {
	r = r.withDefaults()
	d := float64(r.InitialBackoff)
	for i := 1; i < failures && d < float64(r.MaxBackoff); i++ {
		d *= r.Multiplier
	}
	if d > float64(r.MaxBackoff) {
		return r.MaxBackoff
	}
	return time.Duration(d)
}
