package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/orchestrix/orchestrix"
	"log/slog"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
	"go.opentelemetry.io/otel/trace"

	"github.com/orchestrix/orchestrix/actor"
	boltjournal "github.com/orchestrix/orchestrix/journal/bolt"
	"github.com/orchestrix/orchestrix/projection"
	"github.com/orchestrix/orchestrix/projection/boltstore"
	"github.com/orchestrix/orchestrix/telemetry"
)

// File names inside the data directory.
const (
	JournalFile    = "orchestrix.db"
	ReadModelsFile = "notifications.db"
)

// DeadLettersProjection is the name of the dead-letter read model's
// projection.
const DeadLettersProjection = "dead-letters"

var deadLetterBucket = []byte("notifications.deadletters")

type notificationHandle = *actor.Handle[Notification, NotificationCommand, NotificationEvent]

// DeadLetter is one entry of the dead-letter list.
type DeadLetter struct {
	ID        string    `json:"-"`
	Recipient string    `json:"recipient"`
	Round     int       `json:"round"`
	Attempts  int       `json:"attempts"`
	LastError string    `json:"lastError"`
	At        time.Time `json:"at"`
}

// Config configures a Service.
type Config struct {
	// Channel delivers the notifications. Required.
	Channel Channel
	// Policy is the retry policy. Required (see Policy.Validate).
	Policy Policy
	// Clock times attempts and event timestamps. Nil means the wall
	// clock. A clock with a Set(time.Time) method (actortest.ManualClock)
	// makes Settle move time forward itself.
	Clock orchestrix.Clock
	// Logger receives the runtime's and the dispatcher's logs. Nil
	// discards them.
	Logger *slog.Logger
	// Metrics and TracerProvider are handed to the runtime and the
	// projections. Optional.
	Metrics        *telemetry.Metrics
	TracerProvider trace.TracerProvider
}

// Service is the notification service: the runtime running the
// Notification aggregate on a bbolt journal, the dispatcher and the
// dead-letter read model.
type Service struct {
	journal       *boltjournal.Journal
	readModels    *bolt.DB
	system        *actor.System
	notifications notificationHandle
	manager       *projection.Manager
	dispatcher    *Dispatcher
	clock         orchestrix.Clock
}

// Open starts the service on the files in dir.
func Open(dir string, cfg Config) (s *Service, err error) {
	if cfg.Channel == nil {
		return nil, errors.New("notifications: Config.Channel is nil")
	}
	if err := cfg.Policy.Validate(); err != nil {
		return nil, err
	}
	if cfg.Clock == nil {
		cfg.Clock = orchestrix.SystemClock{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	s = &Service{clock: cfg.Clock}
	defer func() {
		if err != nil {
			err = errors.Join(err, s.Close(context.Background()))
		}
	}()
	if s.journal, err = boltjournal.Open(filepath.Join(dir, JournalFile), boltjournal.Config{Metrics: cfg.Metrics, TracerProvider: cfg.TracerProvider}); err != nil {
		return s, err
	}
	if s.readModels, err = bolt.Open(filepath.Join(dir, ReadModelsFile), 0o600, &bolt.Options{Timeout: time.Second}); err != nil {
		return s, err
	}
	store, err := boltstore.New(s.readModels, boltstore.Config{})
	if err != nil {
		return s, err
	}
	if err := s.readModels.Update(func(tx *bolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists(deadLetterBucket)
		return err
	}); err != nil {
		return s, err
	}
	s.system, err = actor.NewSystem(actor.Config{
		Journal: s.journal, Clock: cfg.Clock, Logger: cfg.Logger, Source: "/orchestrix/notifications",
		Metrics: cfg.Metrics, TracerProvider: cfg.TracerProvider,
	})
	if err != nil {
		return s, err
	}
	if s.notifications, err = actor.Register(s.system, Notifications); err != nil {
		return s, err
	}
	s.manager, err = projection.NewManager(projection.Config{
		Journal: s.journal, Registry: s.system.Registry(), Checkpoints: store, Clock: cfg.Clock, Logger: cfg.Logger, System: s.system,
		Metrics: cfg.Metrics, TracerProvider: cfg.TracerProvider,
	})
	if err != nil {
		return s, err
	}
	if s.dispatcher, err = newDispatcher(s.readModels, store, s.notifications, cfg.Channel, cfg.Policy, cfg.Clock, cfg.Logger); err != nil {
		return s, err
	}
	if err := s.dispatcher.resume(); err != nil {
		return s, err
	}
	ctx := context.Background()
	if err := s.manager.Add(ctx, s.dispatcher.Projection()); err != nil {
		return s, err
	}
	if err := s.manager.Add(ctx, deadLetterProjection(store)); err != nil {
		return s, err
	}
	return s, nil
}

// deadLetterProjection keeps the dead-letter list: a notification is on
// it from DeadLettered until Replayed (or Delivered).
func deadLetterProjection(store *boltstore.Store) projection.Projection {
	apply := func(tx *bolt.Tx, batch []projection.Event) error {
		b := tx.Bucket(deadLetterBucket)
		if b == nil {
			return fmt.Errorf("bucket %s is missing", deadLetterBucket)
		}
		for _, ev := range batch {
			id := []byte(ev.Envelope.Subject)
			switch e := ev.Data.(type) {
			case DeadLettered:
				raw, err := json.Marshal(DeadLetter{Recipient: e.Recipient, Round: e.Round, Attempts: e.Attempts, LastError: e.LastError, At: ev.Envelope.Time})
				if err != nil {
					return err
				}
				if err := b.Put(id, raw); err != nil {
					return err
				}
			case Replayed, Delivered:
				if err := b.Delete(id); err != nil {
					return err
				}
			}
		}
		return nil
	}
	return projection.Projection{
		Name:        DeadLettersProjection,
		Handler:     store.Handler(DeadLettersProjection, apply),
		Checkpoints: store,
		Filter: projection.Filter{Types: []string{
			"notify.notification.dead_lettered", "notify.notification.replayed", "notify.notification.delivered",
		}},
		Reset: store.Reset(DeadLettersProjection, func(tx *bolt.Tx) error {
			if err := tx.DeleteBucket(deadLetterBucket); err != nil && !errors.Is(err, bolterrors.ErrBucketNotFound) {
				return err
			}
			_, err := tx.CreateBucket(deadLetterBucket)
			return err
		}),
	}
}

// Request asks for notification id to be delivered to recipient. A retry
// of the same request is not executed twice.
func (s *Service) Request(ctx context.Context, id, recipient, body string) error {
	_, err := s.notifications.Send(ctx, id, Request{Recipient: recipient, Body: body}, actor.WithCommandID(id+"/request"))
	return err
}

// Notification returns the state of notification id.
func (s *Service) Notification(ctx context.Context, id string) (Notification, error) {
	n, _, err := s.notifications.State(ctx, id)
	return n, err
}

// DeadLetters returns the dead-letter list, sorted by notification id, as
// of the read model's checkpoint (Settle first to see every commit).
func (s *Service) DeadLetters() ([]DeadLetter, error) {
	var out []DeadLetter
	err := s.readModels.View(func(tx *bolt.Tx) error {
		return tx.Bucket(deadLetterBucket).ForEach(func(k, v []byte) error {
			d := DeadLetter{ID: string(k)}
			if err := json.Unmarshal(v, &d); err != nil {
				return fmt.Errorf("dead letter %q: %w", k, err)
			}
			out = append(out, d)
			return nil
		})
	})
	return out, err
}

// Replay re-queues dead-lettered notification id for a new round of
// attempts and returns the round's number. Replaying the same dead letter
// twice is one replay; a notification that is not dead-lettered is
// refused with ErrNotDeadLettered.
func (s *Service) Replay(ctx context.Context, id, reason string) (int, error) {
	n, _, err := s.notifications.State(ctx, id)
	if err != nil {
		return 0, err
	}
	res, err := s.notifications.Send(ctx, id, Replay{Reason: reason}, actor.WithCommandID(fmt.Sprintf("%s/replay-%d", id, n.Round)))
	if err != nil {
		return 0, err
	}
	for _, e := range res.Events {
		if r, ok := e.(Replayed); ok {
			return r.Round, nil
		}
	}
	return 0, fmt.Errorf("%w: replay of %s produced no Replayed event", ErrNotDeadLettered, id)
}

// Schedule returns the attempt each pending notification waits for.
func (s *Service) Schedule() ([]Scheduled, error) { return s.dispatcher.Schedule() }

// settableClock is a clock a test moves by hand (actortest.ManualClock).
type settableClock interface {
	orchestrix.Clock
	Set(time.Time)
}

// Settle returns once no notification is pending any more: every one is
// delivered or dead-lettered, and both projections have caught up. With a
// settable clock it moves the clock to each next due attempt itself;
// otherwise it waits for the dispatcher's commits.
func (s *Service) Settle(ctx context.Context) error {
	for {
		head, err := s.journal.LastPosition(ctx)
		if err != nil {
			return err
		}
		for _, name := range []string{DispatcherProjection, DeadLettersProjection} {
			st, err := s.manager.Wait(ctx, name, func(st projection.Status) bool {
				return st.Position >= head || st.LastError != nil || st.State == projection.StateFailed
			})
			if err != nil {
				return err
			}
			if st.LastError != nil {
				return fmt.Errorf("projection %s: %w", name, st.LastError)
			}
		}
		pending, err := s.dispatcher.Schedule()
		if err != nil {
			return err
		}
		if len(pending) == 0 {
			return nil
		}
		if mc, ok := s.clock.(settableClock); ok {
			next := pending[0].Due
			for _, p := range pending[1:] {
				if p.Due.Before(next) {
					next = p.Due
				}
			}
			if now := mc.Now(); next.Before(now) {
				next = now
			}
			mc.Set(next)
			continue
		}
		if _, err := s.journal.WaitFor(ctx, head); err != nil {
			return err
		}
	}
}

// Close stops the dispatcher, the projections and the runtime, and closes
// the files.
func (s *Service) Close(ctx context.Context) error {
	var errs []error
	if s.dispatcher != nil {
		s.dispatcher.Close()
	}
	if s.manager != nil {
		errs = append(errs, s.manager.Close())
	}
	if s.system != nil {
		errs = append(errs, s.system.Shutdown(ctx))
	}
	if s.readModels != nil {
		errs = append(errs, s.readModels.Close())
	}
	if s.journal != nil {
		errs = append(errs, s.journal.Close())
	}
	return errors.Join(errs...)
}
