package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/orchestrix/orchestrix"
	"hash/fnv"
	"log/slog"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/orchestrix/orchestrix/actor"
	"github.com/orchestrix/orchestrix/projection"
	"github.com/orchestrix/orchestrix/projection/boltstore"
)

// DispatcherProjection is the name of the dispatcher's projection.
const DispatcherProjection = "notification-dispatcher"

// scheduleBucket holds the dispatcher's durable schedule: notification id
// → the attempt that is due next (JSON Scheduled).
var scheduleBucket = []byte("notifications.schedule")

// recordTries is how many times in a row the dispatcher tries to record
// an outcome before it puts the outcome back on its timer.
const recordTries = 3

// Scheduled is the attempt a pending notification waits for.
type Scheduled struct {
	ID      string    `json:"-"`
	Round   int       `json:"round"`
	Attempt int       `json:"attempt"`
	Due     time.Time `json:"due"`
}

// armed is a scheduled attempt with its timer; outcome is set when the
// attempt has been made and only its outcome remains to be recorded.
type armed struct {
	at      Scheduled
	outcome NotificationCommand
	timer   orchestrix.Timer
}

// Dispatcher follows the journal (as the projection DispatcherProjection)
// and delivers pending notifications through a Channel.
//
// Its schedule — which attempt of which notification is due when — is a
// read model kept in bbolt with projection/boltstore, so it is updated
// exactly once per event and survives restarts; timers on the injected
// clock fire the attempts. Before each attempt the dispatcher reads the
// aggregate's state and attempts only if that attempt is still the one
// pending; it records the outcome as a command whose id names the
// notification, round and attempt, so a repeated recording is a
// duplicate, not a second outcome. Attempts of one notification never
// overlap.
//
// The one window left is a crash after the channel accepted a message and
// before its outcome was recorded: the attempt is then made again after
// the restart. Message.ID is the idempotency key a real provider would
// deduplicate that second send on.
type Dispatcher struct {
	notifications notificationHandle
	channel       Channel
	policy        Policy
	clock         orchestrix.Clock
	log           *slog.Logger
	store         *boltstore.Store
	db            *bolt.DB

	ctx    context.Context
	cancel context.CancelFunc

	mu       sync.Mutex
	closed   bool
	timers   map[string]*armed
	inflight sync.WaitGroup

	// stripes serialise the attempts of one notification (and of the
	// others hashing to the same stripe).
	stripes [64]sync.Mutex
}

func newDispatcher(db *bolt.DB, store *boltstore.Store, h notificationHandle, ch Channel, p Policy, clock orchestrix.Clock, log *slog.Logger) (*Dispatcher, error) {
	if err := db.Update(func(tx *bolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists(scheduleBucket)
		return err
	}); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Dispatcher{
		notifications: h, channel: ch, policy: p, clock: clock, log: log, store: store, db: db,
		ctx: ctx, cancel: cancel, timers: map[string]*armed{},
	}, nil
}

// resume arms a timer for every attempt in the durable schedule: the work
// that was pending when the dispatcher last stopped.
func (d *Dispatcher) resume() error {
	pending, err := d.Schedule()
	if err != nil {
		return err
	}
	for _, s := range pending {
		d.arm(s, nil)
	}
	return nil
}

// Projection returns the dispatcher's projection definition.
func (d *Dispatcher) Projection() projection.Projection {
	return projection.Projection{
		Name:        DispatcherProjection,
		Handler:     d.store.Handler(DispatcherProjection, d.apply),
		Checkpoints: d.store,
		Filter:      projection.Filter{Kinds: []string{Notifications.Kind}},
		Reset: d.store.Reset(DispatcherProjection, func(tx *bolt.Tx) error {
			if err := tx.DeleteBucket(scheduleBucket); err != nil && !errors.Is(err, bolterrors.ErrBucketNotFound) {
				return err
			}
			_, err := tx.CreateBucket(scheduleBucket)
			return err
		}),
	}
}

// apply updates the schedule in tx and arms or disarms timers. Timers
// armed for a transaction that then fails are harmless: an attempt checks
// the aggregate's state first.
func (d *Dispatcher) apply(tx *bolt.Tx, batch []projection.Event) error {
	b := tx.Bucket(scheduleBucket)
	if b == nil {
		return fmt.Errorf("bucket %s is missing", scheduleBucket)
	}
	for _, ev := range batch {
		id := ev.Envelope.Subject
		var next *Scheduled
		switch e := ev.Data.(type) {
		case Requested:
			next = &Scheduled{ID: id, Round: 1, Attempt: 1, Due: ev.Envelope.Time}
		case Replayed:
			next = &Scheduled{ID: id, Round: e.Round, Attempt: 1, Due: ev.Envelope.Time}
		case AttemptFailed:
			if !e.NextAttemptAt.IsZero() {
				next = &Scheduled{ID: id, Round: e.Round, Attempt: e.Attempt + 1, Due: e.NextAttemptAt}
			}
		case Delivered, DeadLettered:
			if err := b.Delete([]byte(id)); err != nil {
				return err
			}
			d.disarm(id)
		}
		if next != nil {
			raw, err := json.Marshal(next)
			if err != nil {
				return err
			}
			if err := b.Put([]byte(id), raw); err != nil {
				return err
			}
			d.arm(*next, nil)
		}
	}
	return nil
}

// Schedule returns the durable schedule: the attempt each pending
// notification waits for, sorted by notification id.
func (d *Dispatcher) Schedule() ([]Scheduled, error) {
	var out []Scheduled
	err := d.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(scheduleBucket)
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, v []byte) error {
			s := Scheduled{ID: string(k)}
			if err := json.Unmarshal(v, &s); err != nil {
				return fmt.Errorf("schedule entry %q: %w", k, err)
			}
			out = append(out, s)
			return nil
		})
	})
	return out, err
}

// arm sets a timer for s unless one for the same attempt is set already.
func (d *Dispatcher) arm(s Scheduled, outcome NotificationCommand) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return
	}
	if a, ok := d.timers[s.ID]; ok {
		if a.at.Round == s.Round && a.at.Attempt == s.Attempt && outcome == nil {
			return
		}
		a.timer.Stop()
	}
	a := &armed{at: s, outcome: outcome}
	a.timer = d.clock.AfterFunc(s.Due.Sub(d.clock.Now()), func() { d.fire(a) })
	d.timers[s.ID] = a
}

// disarm drops the timer of notification id.
func (d *Dispatcher) disarm(id string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if a, ok := d.timers[id]; ok {
		a.timer.Stop()
		delete(d.timers, id)
	}
}

// fire runs when a's timer is due.
func (d *Dispatcher) fire(a *armed) {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return
	}
	if d.timers[a.at.ID] == a {
		delete(d.timers, a.at.ID)
	}
	d.inflight.Add(1)
	d.mu.Unlock()
	defer d.inflight.Done()

	stripe := &d.stripes[stripeOf(a.at.ID)]
	stripe.Lock()
	defer stripe.Unlock()
	if a.outcome != nil {
		d.record(a.at, a.outcome)
		return
	}
	d.attempt(a.at)
}

// attempt makes attempt s if it is still the one pending, and records
// its outcome.
func (d *Dispatcher) attempt(s Scheduled) {
	st, _, err := d.notifications.State(d.ctx, s.ID)
	if err != nil {
		if d.ctx.Err() == nil {
			d.log.Warn("reading notification state failed; trying again later", "id", s.ID, "error", err)
			s.Due = d.clock.Now().Add(d.policy.InitialBackoff)
			d.arm(s, nil)
		}
		return
	}
	if st.Status != StatusPending || st.Round != s.Round || st.Attempts != s.Attempt-1 {
		d.log.Debug("attempt no longer pending", "id", s.ID, "round", s.Round, "attempt", s.Attempt, "status", st.Status)
		return
	}
	sendErr := d.channel.Send(d.ctx, Message{ID: s.ID, Recipient: st.Recipient, Body: st.Body, Round: s.Round, Attempt: s.Attempt})
	if d.ctx.Err() != nil {
		return // closing: the attempt stays scheduled and is made after a restart
	}
	var outcome NotificationCommand
	switch {
	case sendErr == nil:
		outcome = RecordDelivery{Round: s.Round, Attempt: s.Attempt}
	case s.Attempt >= d.policy.MaxAttempts:
		outcome = RecordFailure{Round: s.Round, Attempt: s.Attempt, Error: sendErr.Error(), GiveUp: true}
	default:
		next := d.clock.Now().Add(d.policy.Delay(s.ID, s.Round, s.Attempt))
		outcome = RecordFailure{Round: s.Round, Attempt: s.Attempt, Error: sendErr.Error(), NextAttemptAt: next}
	}
	d.record(s, outcome)
}

// OutcomeCommandID is the command id of the outcome of an attempt: the
// same for every recording of that attempt, so the runtime executes it
// once.
func OutcomeCommandID(id string, round, attempt int) string {
	return fmt.Sprintf("%s/round-%d/attempt-%d", id, round, attempt)
}

// record sends outcome, trying again at once a few times (the aggregate
// recovers from the journal after a failed append), then later on the
// clock.
func (d *Dispatcher) record(s Scheduled, outcome NotificationCommand) {
	cmdID := OutcomeCommandID(s.ID, s.Round, s.Attempt)
	var err error
	for try := 0; try < recordTries; try++ {
		_, err = d.notifications.Send(d.ctx, s.ID, outcome, actor.WithCommandID(cmdID))
		switch {
		case err == nil:
			return
		case errors.Is(err, ErrStaleOutcome):
			d.log.Info("outcome already recorded", "id", s.ID, "command", cmdID)
			return
		case d.ctx.Err() != nil:
			return
		}
	}
	d.log.Error("recording an outcome failed; trying again later", "id", s.ID, "command", cmdID, "error", err)
	s.Due = d.clock.Now().Add(d.policy.InitialBackoff)
	d.arm(s, outcome)
}

// Close stops the timers and waits for attempts in progress to finish;
// an attempt cut short is made again when a dispatcher next starts.
func (d *Dispatcher) Close() {
	d.mu.Lock()
	d.closed = true
	for id, a := range d.timers {
		a.timer.Stop()
		delete(d.timers, id)
	}
	d.mu.Unlock()
	d.cancel()
	d.inflight.Wait()
}

func stripeOf(id string) int {
	h := fnv.New32a()
	h.Write([]byte(id))
	return int(h.Sum32() % 64)
}
