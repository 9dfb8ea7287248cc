package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	proto "github.com/asynkron/protoactor-go/actor"
	protocluster "github.com/asynkron/protoactor-go/cluster"

	"github.com/orchestrix/orchestrix"
	"github.com/orchestrix/orchestrix/journal"
)

// Defaults of Singleton's zero fields.
const (
	DefaultHandoffTimeout = 10 * time.Second
	DefaultCheckInterval  = time.Second
)

// singletonKindPrefix marks the protoactor-go cluster kinds that stand for
// singletons: a member hosts the kind of each singleton it lists, so the
// owner of a singleton is chosen among the members that can run it.
const singletonKindPrefix = "orchestrix-singleton:"

// epochPrefix starts the journal.Epochs name of a singleton.
const epochPrefix = "cluster.singleton:"

// Singleton is a unit of work that runs on one member of the cluster at a
// time: a saga runner, a process manager, a projection. List it in
// Config.Singletons on every member that may run it.
//
// The owner of a singleton is chosen like the owner of an aggregate id:
// rendezvous hashing of its name over the members that list it, in each
// member's own view of the topology. The owner starts it (Start); a member
// that stops being the owner (a member joined and the name moved to it,
// or this member is closing) stops it (the function Start returned) and
// releases it; when the owner dies, the member that owns the name in the
// survivors' view takes it over as soon as it sees the dead member gone.
//
// Each activation gets an epoch, drawn from the journal (journal.Epochs)
// when it starts: it is higher than the epoch of every earlier activation
// of the name, in any member. Views differ while the topology changes,
// and a member that was paused or cut off keeps running its activation
// until it notices, so two activations of one singleton can overlap for a
// while. Give the epoch to what the activation writes, so that the writes
// of the older one are refused: projection/pgstore's Store.WithEpoch
// fences projection checkpoints and read-model writes, and the saga
// runner's checkpoints when its Config.Checkpoints is such a view.
//
// A member that becomes the owner while the previous holder is still a
// member in its view (a handoff, not a failure) waits for the holder to
// stop and release, at most HandoffTimeout, before it takes a new epoch
// and starts: normally the two never overlap.
type Singleton struct {
	// Name identifies the singleton in the cluster: a non-blank UTF-8
	// string, the same on every member that lists it, unique within
	// Config.Singletons.
	Name string
	// Start starts one activation on this member and returns once it
	// runs, with the function that stops it. The work keeps running on
	// goroutines of its own after Start returns, until stop is called
	// (once). ctx bounds the call only, and ends when the member closes.
	// act.Epoch is the activation's fencing epoch. When Start fails, the
	// error is logged (and shown by Member.Singleton), and Start is
	// called again, with a new epoch, after a backoff
	// (Config.RetryBackoff doubling to MaxRetryBackoff) while this member
	// stays the owner.
	//
	// stop must stop everything Start started and return once it has
	// stopped; its ctx ends after HandoffTimeout.
	Start func(ctx context.Context, act Activation) (stop func(ctx context.Context) error, err error)
	// HandoffTimeout bounds how long a new owner waits for the previous
	// holder, still a member in its view, to stop and release the
	// singleton before it takes over anyway (the previous holder's writes
	// are then fenced by the epoch), and how long stop may take. Zero
	// means DefaultHandoffTimeout.
	HandoffTimeout time.Duration
	// CheckInterval is how often a running activation checks that its
	// epoch is still the newest. A member that was paused, or whose view
	// differed, may find that another member took the singleton over
	// meanwhile without this member seeing a topology change; its
	// activation is fenced then, so it stops it and, when it still owns
	// the name, starts a new one. Zero means DefaultCheckInterval.
	CheckInterval time.Duration
}

// Activation is one run of a singleton on one member.
type Activation struct {
	// Name is the singleton's name.
	Name string
	// Epoch is the activation's fencing epoch: higher than that of every
	// earlier activation of Name in the cluster.
	Epoch uint64
	// Member is the address of the member running it.
	Member string
	// TakeoverFrom is the member that held the singleton when this
	// activation began and had not released it: it died, was cut off, or
	// did not stop within HandoffTimeout, and its activation may have
	// stopped anywhere in its work (or may still run, fenced). Empty after
	// a clean handoff and on the first activation.
	TakeoverFrom string
}

// SingletonStatus is what a member knows of a singleton.
type SingletonStatus struct {
	// Name is the singleton's name.
	Name string
	// Owner is the member that owns the name in this member's view ("" when
	// none is known yet).
	Owner string
	// Running is set while an activation runs on this member, and Epoch is
	// its epoch (0 when none runs here).
	Running bool
	Epoch   uint64
	// Activations counts the activations this member has started.
	Activations int
	// LastError is the last failure of Start, stop or the epoch store on
	// this member, nil after a successful start.
	LastError error
}

// ErrUnknownSingleton: the member lists no singleton of that name.
var ErrUnknownSingleton = errors.New("cluster: unknown singleton")

// validateSingletons reports what is wrong with the singletons of a
// Config.
func validateSingletons(ss []Singleton) []error {
	var errs []error
	seen := map[string]bool{}
	for i, s := range ss {
		switch {
		case strings.TrimSpace(s.Name) == "" || !utf8.ValidString(s.Name):
			errs = append(errs, fmt.Errorf("Config.Singletons[%d]: name %q must be a non-blank UTF-8 string", i, s.Name))
		case seen[s.Name]:
			errs = append(errs, fmt.Errorf("Config.Singletons[%d]: name %q is listed twice", i, s.Name))
		}
		seen[s.Name] = true
		if s.Start == nil {
			errs = append(errs, fmt.Errorf("Config.Singletons[%d] (%q): Start is nil", i, s.Name))
		}
		if s.HandoffTimeout < 0 || s.CheckInterval < 0 {
			errs = append(errs, fmt.Errorf("Config.Singletons[%d] (%q): negative HandoffTimeout %v or CheckInterval %v",
				i, s.Name, s.HandoffTimeout, s.CheckInterval))
		}
	}
	return errs
}

// singletons runs the singletons of one member: one goroutine per
// singleton, woken when the topology changes, that starts or stops its
// activation so that it runs exactly when this member owns the name.
type singletons struct {
	m      *Member
	epochs journal.Epochs
	clock  orchestrix.Clock
	units  map[string]*unit
	ctx    context.Context // ends when the member closes
	cancel context.CancelFunc

	mu      sync.Mutex
	members map[string]bool // addresses in the current topology
	placer  *protocluster.Rendezvous
	closed  bool
}

// newSingletons prepares the singletons of cfg; j must implement
// journal.Epochs when there are any.
func newSingletons(m *Member, j journal.Journal) (*singletons, error) {
	s := &singletons{m: m, clock: m.cfg.Clock, units: map[string]*unit{}, members: map[string]bool{},
		placer: protocluster.NewRendezvous()}
	if s.clock == nil {
		s.clock = orchestrix.SystemClock{}
	}
	if len(m.cfg.Singletons) > 0 {
		e, ok := j.(journal.Epochs)
		if !ok {
			return nil, fmt.Errorf("%w: Config.Singletons need a journal that implements journal.Epochs (journal/postgres); %T does not",
				ErrJournalNotShared, j)
		}
		s.epochs = e
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	for _, spec := range m.cfg.Singletons {
		if spec.HandoffTimeout == 0 {
			spec.HandoffTimeout = DefaultHandoffTimeout
		}
		if spec.CheckInterval == 0 {
			spec.CheckInterval = DefaultCheckInterval
		}
		s.units[spec.Name] = &unit{s: s, spec: spec, wake: make(chan struct{}, 1), done: make(chan struct{}),
			log: m.cfg.Logger.With(slog.String("singleton", spec.Name))}
	}
	return s, nil
}

// kinds returns the cluster kinds that make this member a candidate owner
// of its singletons.
func (s *singletons) kinds(props *proto.Props) []*protocluster.Kind {
	var out []*protocluster.Kind
	for name := range s.units {
		out = append(out, protocluster.NewKind(singletonKindPrefix+name, props))
	}
	return out
}

// start starts the goroutine of every singleton.
func (s *singletons) start() {
	for _, u := range s.units {
		go u.loop()
	}
}

// topology records the members of a new topology and wakes every
// singleton to check whether it should run here. It does not block.
func (s *singletons) topology(members []*protocluster.Member) {
	s.mu.Lock()
	s.members = make(map[string]bool, len(members))
	for _, mb := range members {
		s.members[mb.Address()] = true
	}
	s.placer.UpdateMembers(members)
	s.mu.Unlock()
	s.pokeAll()
}

// pokeAll asks every unit to check its ownership again (the topology or
// this member's view changed: fenced, unfenced, leaving).
func (s *singletons) pokeAll() {
	for _, u := range s.units {
		u.poke()
	}
}

// isMember reports whether addr is in the current topology.
func (s *singletons) isMember(addr string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.members[addr]
}

// close stops every activation on this member (each stop, then its
// release) and the goroutines; nothing is started afterwards.
func (s *singletons) close() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	s.mu.Unlock()
	s.cancel()
	for _, u := range s.units {
		<-u.done
	}
}

// owner returns the owner of singleton name in this member's view. A
// member that is fenced or leaving owns none: it reports no owner, so its
// activations stop (the others place the name without it once their
// views drop it).
func (s *singletons) owner(name string) string {
	if s.m.isOut() {
		return ""
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.placer.GetByClusterIdentity(&protocluster.ClusterIdentity{Kind: singletonKindPrefix + name, Identity: name})
}

// unit is one singleton on this member.
type unit struct {
	s    *singletons
	spec Singleton
	log  *slog.Logger
	wake chan struct{} // capacity 1: a pending check
	done chan struct{} // closed when loop returns

	// Owned by loop.
	stop  func(context.Context) error
	retry orchestrix.Timer // the next retry or epoch check

	mu          sync.Mutex
	epoch       uint64
	activations int
	lastErr     error
}

// poke asks loop to check ownership again.
func (u *unit) poke() {
	select {
	case u.wake <- struct{}{}:
	default:
	}
}

// loop starts and stops the activation as ownership changes, until the
// member closes.
func (u *unit) loop() {
	defer close(u.done)
	backoff := u.s.m.cfg.RetryBackoff
	for {
		select {
		case <-u.s.ctx.Done():
			u.deactivate("the member is closing")
			return
		case <-u.wake:
		}
		if u.retry != nil {
			u.retry.Stop()
			u.retry = nil
		}
		self := u.s.m.addr()
		owner := u.s.owner(u.spec.Name)
		if owner == self && u.stop != nil && u.superseded() {
			// Another member took a newer epoch while this one did not
			// see it go (it was paused, or views differed): this
			// activation's writes are fenced. Start afresh.
			u.deactivate("superseded by a newer epoch")
		}
		switch {
		case owner == self && u.stop == nil:
			if err := u.activate(); err != nil {
				if u.s.ctx.Err() != nil {
					continue
				}
				u.fail(err)
				u.log.Warn("cluster: starting a singleton failed; retrying", "error", err, "backoff", backoff)
				u.retry = u.s.clock.AfterFunc(backoff, u.poke)
				backoff = min(2*backoff, u.s.m.cfg.MaxRetryBackoff)
				continue
			}
			backoff = u.s.m.cfg.RetryBackoff
		case owner != self && u.stop != nil:
			u.deactivate("owner is now " + owner)
		}
		if u.stop != nil {
			// Check the epoch again later, also without a topology change.
			u.retry = u.s.clock.AfterFunc(u.spec.CheckInterval, u.poke)
		}
	}
}

// superseded reports whether the stored epoch of the singleton is no
// longer the one this member's activation runs under. A failure to read
// it is not taken as an answer.
func (u *unit) superseded() bool {
	u.mu.Lock()
	mine := u.epoch
	u.mu.Unlock()
	ctx, cancel := context.WithTimeout(u.s.ctx, u.spec.HandoffTimeout)
	defer cancel()
	epoch, holder, err := u.s.epochs.Epoch(ctx, epochPrefix+u.spec.Name)
	if err != nil {
		u.log.Warn("cluster: checking a singleton's epoch failed", "error", err)
		return false
	}
	if epoch != mine {
		u.log.Warn("cluster: a newer activation of this singleton took over", "epoch", mine, "newer", epoch, "holder", holder)
		return true
	}
	return false
}

// activate waits for the previous holder to release (see
// Singleton.HandoffTimeout), takes a new epoch and calls Start.
func (u *unit) activate() error {
	ctx, self, name := u.s.ctx, u.s.m.addr(), u.spec.Name
	deadline := u.s.clock.Now().Add(u.spec.HandoffTimeout)
	wait := u.s.m.cfg.RetryBackoff
	var holder string
	for {
		var err error
		_, holder, err = u.s.epochs.Epoch(ctx, epochPrefix+name)
		if err != nil {
			return fmt.Errorf("reading the epoch: %w", err)
		}
		if holder == "" || holder == self || !u.s.isMember(holder) || !u.s.clock.Now().Before(deadline) {
			if holder != "" && holder != self && u.s.isMember(holder) {
				u.log.Warn("cluster: taking over a singleton its holder did not release in time",
					"holder", holder, "handoff_timeout", u.spec.HandoffTimeout)
			}
			break
		}
		if !u.sleep(wait) {
			return ctx.Err()
		}
		if u.s.owner(name) != self {
			return nil // the name moved on meanwhile: nothing to start
		}
		wait = min(2*wait, u.s.m.cfg.MaxRetryBackoff)
	}
	epoch, err := u.s.epochs.NextEpoch(ctx, epochPrefix+name, self)
	if err != nil {
		return fmt.Errorf("taking an epoch: %w", err)
	}
	act := Activation{Name: name, Epoch: epoch, Member: self, TakeoverFrom: holder}
	stop, err := u.spec.Start(ctx, act)
	if err != nil {
		u.release(epoch)
		return fmt.Errorf("start (epoch %d): %w", epoch, err)
	}
	if stop == nil {
		stop = func(context.Context) error { return nil }
	}
	u.stop = stop
	u.mu.Lock()
	u.epoch, u.lastErr = epoch, nil
	u.activations++
	u.mu.Unlock()
	u.log.Info("cluster: singleton started on this member", "epoch", epoch, "takeover_from", holder)
	return nil
}

// sleep waits d on the clock; false when the member closes first. A poke
// meanwhile stays pending for loop.
func (u *unit) sleep(d time.Duration) bool {
	done := make(chan struct{})
	t := u.s.clock.AfterFunc(d, func() { close(done) })
	defer t.Stop()
	select {
	case <-done:
		return true
	case <-u.s.ctx.Done():
		return false
	}
}

// deactivate stops the running activation, if any, and releases its
// epoch so that the next owner need not wait.
func (u *unit) deactivate(why string) {
	if u.stop == nil {
		return
	}
	u.mu.Lock()
	epoch := u.epoch
	u.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), u.spec.HandoffTimeout)
	err := u.stop(ctx)
	cancel()
	u.stop = nil
	if err != nil {
		u.fail(fmt.Errorf("stop (epoch %d): %w", epoch, err))
		u.log.Warn("cluster: stopping a singleton failed", "epoch", epoch, "error", err)
	}
	u.release(epoch)
	u.mu.Lock()
	u.epoch = 0
	u.mu.Unlock()
	u.log.Info("cluster: singleton stopped on this member", "epoch", epoch, "reason", why)
}

// release clears this member as the holder of epoch; a failure only
// makes the next owner wait up to its HandoffTimeout.
func (u *unit) release(epoch uint64) {
	ctx, cancel := context.WithTimeout(context.Background(), u.spec.HandoffTimeout)
	defer cancel()
	if err := u.s.epochs.ReleaseEpoch(ctx, epochPrefix+u.spec.Name, epoch); err != nil {
		u.fail(fmt.Errorf("releasing epoch %d: %w", epoch, err))
		u.log.Warn("cluster: releasing a singleton's epoch failed", "epoch", epoch, "error", err)
	}
}

func (u *unit) fail(err error) {
	u.mu.Lock()
	u.lastErr = err
	u.mu.Unlock()
}

func (u *unit) status() SingletonStatus {
	u.mu.Lock()
	defer u.mu.Unlock()
	return SingletonStatus{Name: u.spec.Name, Owner: u.s.owner(u.spec.Name), Running: u.epoch != 0, Epoch: u.epoch,
		Activations: u.activations, LastError: u.lastErr}
}

// Singleton returns what this member knows of the singleton name, or an
// error matching ErrUnknownSingleton when it does not list it. It is
// meant for debugging and tests: ownership can change at any time.
func (m *Member) Singleton(name string) (SingletonStatus, error) {
	u, ok := m.singles.units[name]
	if !ok {
		return SingletonStatus{}, fmt.Errorf("%w: %q", ErrUnknownSingleton, name)
	}
	return u.status(), nil
}

// Singletons returns the status of every singleton this member lists,
// sorted by name.
func (m *Member) Singletons() []SingletonStatus {
	out := make([]SingletonStatus, 0, len(m.singles.units))
	for _, u := range m.singles.units {
		out = append(out, u.status())
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}
