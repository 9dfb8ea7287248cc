package cluster

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"time"

	protocluster "github.com/asynkron/protoactor-go/cluster"

	"github.com/orchestrix/orchestrix"
	"github.com/orchestrix/orchestrix/telemetry"
)

// Config configures a member. Its zero value works: one member on
// 127.0.0.1 with a free port for its remote endpoint, automanaged
// membership on port 6330 seeded with itself, and the defaults below.
type Config struct {
	// Name is the cluster's name; members of one cluster use the same.
	// Default "orchestrix".
	Name string
	// Host is the address other members reach this member's remote
	// endpoint at (it also listens there). Default "127.0.0.1".
	Host string
	// Port is the remote endpoint's TCP port; 0 picks a free one.
	Port int

	// Provider is the membership provider, passed through to
	// protoactor-go (for example etcd.New() from
	// github.com/asynkron/protoactor-go/cluster/clusterproviders/etcd).
	// Nil means automanaged, configured by the three fields below.
	// Automanaged and etcd are tested by this package; see the package
	// documentation ("Membership providers") for how to create etcd's.
	Provider protocluster.ClusterProvider
	// AutoManagedPort is the port of automanaged's health server. It binds
	// every interface (0.0.0.0, hard-coded in protoactor-go). Default 6330.
	AutoManagedPort int
	// Seeds are the "host:port" health-server addresses of every member
	// (this one included) for automanaged. Default: Host:AutoManagedPort.
	Seeds []string
	// RefreshTTL is how often automanaged polls the seeds; a dead member
	// is dropped after about one period (a paused one only after the poll's
	// 2s health-check timeout on top, fixed upstream). Default 500ms: each
	// poll is one small HTTP request per seed, and the period is most of
	// the time before the survivors take over a dead member's ids.
	RefreshTTL time.Duration

	// RequestTimeout bounds one request to another member (further
	// bounded by the caller's context). When it passes without a reply the
	// outcome is unknown: the error matches orchestrix.ErrOutcomeUnknown
	// and is not retried. A request to a member that died ends earlier,
	// as soon as this member's view drops it and its endpoint refuses
	// connections (also an unknown outcome; see the package
	// documentation), so failover does not wait for this. Default 5s.
	RequestTimeout time.Duration
	// RetryBackoff is the first wait before retrying a request that was
	// not delivered (no owner, not the owner, dead letter); it doubles up
	// to MaxRetryBackoff. Defaults 10ms and 500ms.
	RetryBackoff, MaxRetryBackoff time.Duration

	// Singletons are the units of work this member may run, each on one
	// member of the cluster at a time (see Singleton). They need a journal
	// that implements journal.Epochs (journal/postgres does).
	Singletons []Singleton
	// Clock times the singletons' handoff waits and retry backoff. Nil
	// means orchestrix.SystemClock.
	Clock orchestrix.Clock

	// HandoffTimeout bounds the handoff round after a view change: how
	// long this member waits for the other members to acknowledge that
	// they released the ids it gained, before it serves those ids anyway
	// (the journal's version check is then the only fence). Commands for
	// the gained ids wait meanwhile. Default 3s.
	HandoffTimeout time.Duration

	// PauseThreshold: a member that finds it did not run for longer than
	// this (a ticker's last tick is older; checked on the serving path
	// too) fences itself: its peers may have moved its ids meanwhile. Keep
	// it below the provider's failure detection time (automanaged: its 2s
	// health-check timeout), so that any pause long enough for peers to
	// drop this member is seen. Default 1s.
	PauseThreshold time.Duration
	// ExpectedMembers is the configured size of the cluster: a member that
	// sees fewer than a majority of it (ExpectedMembers/2+1, itself
	// included) fences itself. Default len(Seeds) with automanaged; with
	// another Provider the default 0 turns the check off.
	ExpectedMembers int
	// SettlePeriod is how long a fenced member waits after the last cause
	// before it tries to serve again. Default 3×RefreshTTL, at least 1s
	// (1.5s with the default RefreshTTL).
	SettlePeriod time.Duration
	// ConfirmInterval is how often a serving member asks the other
	// members of its view whether they still count it (the peer
	// confirmation; see the package documentation, "One writer per id").
	// Default half of the smaller of RefreshTTL and PauseThreshold.
	ConfirmInterval time.Duration
	// ConfirmLease: a member serves (commands and state reads) only while
	// a confirmation round it sent at most this long ago was confirmed by
	// a majority of ExpectedMembers (of its view when that is 0), itself
	// included; after that it refuses and fences itself ("unconfirmed").
	// It bounds how long a member its peers dropped keeps serving, and so
	// how stale a state read can be. It must exceed ConfirmInterval.
	// Default the larger of 4×ConfirmInterval and 2×PauseThreshold (a
	// round needs this member and its peers to run: the pause detector
	// already treats a delay below PauseThreshold as normal).
	ConfirmLease time.Duration

	// Metrics receives the cluster series (orchestrix_cluster_*: members,
	// topology changes, local and remote commands, not-owner retries,
	// self-fences); give it the *telemetry.Metrics of actor.Config.Metrics,
	// which records the version conflicts retried. Nil records nothing.
	Metrics *telemetry.Metrics

	// Logger receives the member's logs (protoactor-go's own below Warn
	// are dropped). Default slog.Default().
	Logger *slog.Logger
}

// DefaultRefreshTTL is Config.RefreshTTL's default.
const DefaultRefreshTTL = 500 * time.Millisecond

// Validate reports what is wrong with c, all problems joined.
func (c Config) Validate() error {
	var errs []error
	if c.Port < 0 || c.Port > 65535 {
		errs = append(errs, fmt.Errorf("Config.Port %d is out of range", c.Port))
	}
	if c.AutoManagedPort < 0 || c.AutoManagedPort > 65535 {
		errs = append(errs, fmt.Errorf("Config.AutoManagedPort %d is out of range", c.AutoManagedPort))
	}
	for _, s := range c.Seeds {
		if _, p, err := net.SplitHostPort(s); err != nil {
			errs = append(errs, fmt.Errorf("Config.Seeds: %q is not host:port: %v", s, err))
		} else if n, err := strconv.Atoi(p); err != nil || n <= 0 || n > 65535 {
			errs = append(errs, fmt.Errorf("Config.Seeds: %q has no valid port", s))
		}
	}
	for name, d := range map[string]time.Duration{"RefreshTTL": c.RefreshTTL, "RequestTimeout": c.RequestTimeout,
		"RetryBackoff": c.RetryBackoff, "MaxRetryBackoff": c.MaxRetryBackoff,
		"HandoffTimeout": c.HandoffTimeout, "PauseThreshold": c.PauseThreshold, "SettlePeriod": c.SettlePeriod,
		"ConfirmInterval": c.ConfirmInterval, "ConfirmLease": c.ConfirmLease} {
		if d < 0 {
			errs = append(errs, fmt.Errorf("negative Config.%s: %v", name, d))
		}
	}
	errs = append(errs, validateSingletons(c.Singletons)...)
	if c.ExpectedMembers < 0 {
		errs = append(errs, fmt.Errorf("negative Config.ExpectedMembers: %d", c.ExpectedMembers))
	}
	if d := c.withDefaults(); c.ConfirmInterval >= 0 && c.ConfirmLease >= 0 && d.ConfirmLease <= d.ConfirmInterval {
		errs = append(errs, fmt.Errorf("Config.ConfirmLease %v must exceed ConfirmInterval %v", d.ConfirmLease, d.ConfirmInterval))
	}
	if c.RetryBackoff > 0 && c.MaxRetryBackoff > 0 && c.RetryBackoff > c.MaxRetryBackoff {
		errs = append(errs, fmt.Errorf("Config.RetryBackoff %v is above MaxRetryBackoff %v", c.RetryBackoff, c.MaxRetryBackoff))
	}
	if len(errs) > 0 {
		return fmt.Errorf("%w: %w", ErrInvalidConfig, errors.Join(errs...))
	}
	return nil
}

func (c Config) withDefaults() Config {
	if c.Name == "" {
		c.Name = "orchestrix"
	}
	if c.Host == "" {
		c.Host = "127.0.0.1"
	}
	if c.AutoManagedPort == 0 {
		c.AutoManagedPort = 6330
	}
	if len(c.Seeds) == 0 {
		c.Seeds = []string{net.JoinHostPort(c.Host, strconv.Itoa(c.AutoManagedPort))}
	}
	if c.RefreshTTL == 0 {
		c.RefreshTTL = DefaultRefreshTTL
	}
	if c.RequestTimeout == 0 {
		c.RequestTimeout = 5 * time.Second
	}
	if c.RetryBackoff == 0 {
		c.RetryBackoff = 10 * time.Millisecond
	}
	if c.MaxRetryBackoff == 0 {
		c.MaxRetryBackoff = 500 * time.Millisecond
	}
	if c.RetryBackoff > c.MaxRetryBackoff {
		c.MaxRetryBackoff = c.RetryBackoff
	}
	if c.PauseThreshold == 0 {
		c.PauseThreshold = time.Second
	}
	if c.ExpectedMembers == 0 && c.Provider == nil {
		c.ExpectedMembers = len(c.Seeds)
	}
	if c.SettlePeriod == 0 {
		c.SettlePeriod = max(3*c.RefreshTTL, time.Second)
	}
	if c.HandoffTimeout == 0 {
		c.HandoffTimeout = 3 * time.Second
	}
	if c.ConfirmInterval == 0 {
		c.ConfirmInterval = max(min(c.RefreshTTL, c.PauseThreshold)/2, time.Millisecond)
	}
	if c.ConfirmLease == 0 {
		c.ConfirmLease = max(4*c.ConfirmInterval, 2*c.PauseThreshold)
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}
