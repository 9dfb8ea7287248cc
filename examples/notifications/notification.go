package main

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/orchestrix/orchestrix/aggregate"
)

// Status is where a notification is in its life cycle.
type Status string

// Statuses. A notification is Pending from its request (or replay) until
// an attempt delivers it or the last allowed attempt fails.
const (
	StatusNone         Status = ""
	StatusPending      Status = "pending"
	StatusDelivered    Status = "delivered"
	StatusDeadLettered Status = "dead-lettered"
)

// Notification is the state of one notification request.
type Notification struct {
	Recipient string
	Body      string
	Status    Status
	// Round counts delivery rounds: 1 from the request, one more per
	// replay of a dead letter.
	Round int
	// Attempts is the number of attempts made in the current round.
	Attempts int
	// LastError is the error of the latest failed attempt.
	LastError string
	// NextAttemptAt is when the next attempt is due while Pending after a
	// failure; zero otherwise.
	NextAttemptAt time.Time
}

// Commands of the notification aggregate. The outcome commands name the
// round and attempt they report on, so a late or repeated report for an
// attempt that is already recorded is rejected (ErrStaleOutcome) rather
// than counted twice.
type (
	// NotificationCommand is implemented by every notification command.
	NotificationCommand interface{ isNotificationCommand() }
	// Request asks for a notification to be delivered.
	Request struct{ Recipient, Body string }
	// RecordDelivery reports that an attempt delivered the notification.
	RecordDelivery struct{ Round, Attempt int }
	// RecordFailure reports a failed attempt. With GiveUp the
	// notification is dead-lettered; otherwise the next attempt is due at
	// NextAttemptAt.
	RecordFailure struct {
		Round, Attempt int
		Error          string
		NextAttemptAt  time.Time
		GiveUp         bool
	}
	// Replay re-queues a dead-lettered notification for a new round of
	// attempts.
	Replay struct{ Reason string }
)

func (Request) isNotificationCommand()        {}
func (RecordDelivery) isNotificationCommand() {}
func (RecordFailure) isNotificationCommand()  {}
func (Replay) isNotificationCommand()         {}

// Events of the notification aggregate.
type (
	// NotificationEvent is implemented by every notification event.
	NotificationEvent interface{ isNotificationEvent() }
	// Requested records a request; delivery round 1 starts.
	Requested struct{ Recipient, Body string }
	// AttemptFailed records a failed attempt and, unless the notification
	// is dead-lettered by the same command, when the next one is due.
	AttemptFailed struct {
		Round, Attempt int
		Error          string
		NextAttemptAt  time.Time
	}
	// Delivered records a successful attempt.
	Delivered struct{ Round, Attempt int }
	// DeadLettered records that a round's attempts are used up. It
	// carries the recipient so the dead-letter list needs no other source.
	DeadLettered struct {
		Recipient string
		Round     int
		Attempts  int
		LastError string
	}
	// Replayed records that a dead letter was re-queued: round Round
	// starts.
	Replayed struct {
		Round  int
		Reason string
	}
)

func (Requested) isNotificationEvent()     {}
func (AttemptFailed) isNotificationEvent() {}
func (Delivered) isNotificationEvent()     {}
func (DeadLettered) isNotificationEvent()  {}
func (Replayed) isNotificationEvent()      {}

// Domain errors.
var (
	ErrInvalidRequest   = errors.New("notification: recipient and body are required")
	ErrAlreadyRequested = errors.New("notification: already requested")
	ErrUnknown          = errors.New("notification: not requested")
	ErrStaleOutcome     = errors.New("notification: outcome does not match the pending attempt")
	ErrNotDeadLettered  = errors.New("notification: not dead-lettered")
)

// Notifications defines the notification aggregate.
var Notifications = aggregate.Definition[Notification, NotificationCommand, NotificationEvent]{
	Kind:    "notification",
	Initial: func(string) Notification { return Notification{} },
	Decide:  decide,
	Evolve:  evolve,
	Events: []aggregate.EventType{
		aggregate.Event[Requested]("notify.notification.requested"),
		aggregate.Event[AttemptFailed]("notify.notification.attempt_failed"),
		aggregate.Event[Delivered]("notify.notification.delivered"),
		aggregate.Event[DeadLettered]("notify.notification.dead_lettered"),
		aggregate.Event[Replayed]("notify.notification.replayed"),
	},
}

// pendingAttempt checks that an outcome reports on the attempt s waits for.
func pendingAttempt(s Notification, round, attempt int) error {
	if s.Status == StatusNone {
		return ErrUnknown
	}
	if s.Status != StatusPending || round != s.Round || attempt != s.Attempts+1 {
		return fmt.Errorf("%w: round %d attempt %d reported, notification is %s in round %d after %d attempt(s)",
			ErrStaleOutcome, round, attempt, s.Status, s.Round, s.Attempts)
	}
	return nil
}

func decide(s Notification, c NotificationCommand) ([]NotificationEvent, error) {
	switch c := c.(type) {
	case Request:
		if s.Status != StatusNone {
			return nil, ErrAlreadyRequested
		}
		if strings.TrimSpace(c.Recipient) == "" || c.Body == "" {
			return nil, ErrInvalidRequest
		}
		return []NotificationEvent{Requested(c)}, nil
	case RecordDelivery:
		if err := pendingAttempt(s, c.Round, c.Attempt); err != nil {
			return nil, err
		}
		return []NotificationEvent{Delivered(c)}, nil
	case RecordFailure:
		if err := pendingAttempt(s, c.Round, c.Attempt); err != nil {
			return nil, err
		}
		if c.GiveUp {
			return []NotificationEvent{
				AttemptFailed{Round: c.Round, Attempt: c.Attempt, Error: c.Error},
				DeadLettered{Recipient: s.Recipient, Round: c.Round, Attempts: c.Attempt, LastError: c.Error},
			}, nil
		}
		if c.NextAttemptAt.IsZero() {
			return nil, errors.New("notification: a failure that is not final needs NextAttemptAt")
		}
		return []NotificationEvent{AttemptFailed{Round: c.Round, Attempt: c.Attempt, Error: c.Error, NextAttemptAt: c.NextAttemptAt}}, nil
	case Replay:
		if s.Status == StatusNone {
			return nil, ErrUnknown
		}
		if s.Status != StatusDeadLettered {
			return nil, fmt.Errorf("%w: it is %s", ErrNotDeadLettered, s.Status)
		}
		return []NotificationEvent{Replayed{Round: s.Round + 1, Reason: c.Reason}}, nil
	}
	return nil, fmt.Errorf("unknown command %T", c)
}

func evolve(s Notification, e NotificationEvent) Notification {
	switch e := e.(type) {
	case Requested:
		s = Notification{Recipient: e.Recipient, Body: e.Body, Status: StatusPending, Round: 1}
	case AttemptFailed:
		s.Attempts, s.LastError, s.NextAttemptAt = e.Attempt, e.Error, e.NextAttemptAt
	case Delivered:
		s.Status, s.Attempts, s.NextAttemptAt = StatusDelivered, e.Attempt, time.Time{}
	case DeadLettered:
		s.Status, s.NextAttemptAt = StatusDeadLettered, time.Time{}
	case Replayed:
		s.Status, s.Round, s.Attempts, s.LastError = StatusPending, e.Round, 0, ""
	}
	return s
}
