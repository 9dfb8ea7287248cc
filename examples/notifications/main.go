// Command notifications shows retries, dead letters and replay built on
// Orchestrix. Each notification is an aggregate on the bbolt journal
// (requested → attempt failed … → delivered | dead-lettered → replayed …).
// A dispatcher follows the journal as a projection and sends pending
// notifications through a flaky channel (a deterministic fake with seeded
// failures), retrying with exponential backoff and jitter on the injected
// clock and recording each outcome as a command with a deterministic id.
// After the last allowed attempt a notification is dead-lettered; the
// dead-letter list is a read model, and replaying a dead letter queues it
// for a new round once the channel works.
//
//	go run ./examples/notifications            # data in a temporary directory
//	go run ./examples/notifications -data DIR  # keep the files in DIR
//	go run ./examples/notifications -metrics 127.0.0.1:9090 -trace
package main

import (
	"context"
	"errors"
	"fmt"
	"github.com/orchestrix/orchestrix"
	"io"
	"os"
	"strings"
	"time"

	"github.com/orchestrix/orchestrix/examples/internal/obs"
)

// Options configure run. The zero value runs the demo on the wall clock.
type Options struct {
	// Clock drives the retries. Nil means the wall clock; tests pass an
	// actortest.ManualClock so that nothing sleeps.
	Clock orchestrix.Clock
	// Channel is the flaky channel; nil means DemoChannel(Clock).
	Channel *FlakyChannel
	// Policy is the retry policy; the zero value means DemoPolicy.
	Policy Policy
	// Obs supplies metrics and a tracer provider (nil: none).
	Obs *obs.Obs
}

// DemoPolicy is the demo's retry policy: small waits, so that the demo
// finishes in a moment on the wall clock.
var DemoPolicy = Policy{
	MaxAttempts:    4,
	InitialBackoff: 20 * time.Millisecond,
	MaxBackoff:     100 * time.Millisecond,
	Multiplier:     2,
	Jitter:         0.5,
	Seed:           7,
}

// DownRecipient is the recipient whose mailbox is down until the demo
// repairs it.
const DownRecipient = "dave@example.org"

// DemoChannel is the demo's channel: 40% of sends fail (seed 11) and every
// send to DownRecipient fails until Repair.
func DemoChannel(clock orchestrix.Clock) *FlakyChannel {
	ch := NewFlakyChannel(11, 0.4, clock)
	ch.SetDown(DownRecipient, "mailbox unavailable")
	return ch
}

// DemoRequests are the notifications the demo requests.
var DemoRequests = []struct{ ID, Recipient, Body string }{
	{"n-1", "alice@example.org", "Your order has shipped"},
	{"n-2", "bob@example.org", "Your invoice is ready"},
	{"n-3", DownRecipient, "Your password was changed"},
	{"n-4", "erin@example.org", "Welcome aboard"},
	{"n-5", "frank@example.org", "Your subscription renews tomorrow"},
	{"n-6", DownRecipient, "Your order has shipped"},
	{"n-7", "grace@example.org", "Your report is ready"},
	{"n-8", "heidi@example.org", "Someone replied to you"},
}

// run is the whole demo; it writes its story to w and keeps data in dir.
func run(ctx context.Context, w io.Writer, dir string, opts Options) (err error) {
	if opts.Clock == nil {
		opts.Clock = orchestrix.SystemClock{}
	}
	if opts.Channel == nil {
		opts.Channel = DemoChannel(opts.Clock)
	}
	if opts.Policy == (Policy{}) {
		opts.Policy = DemoPolicy
	}
	svc, err := Open(dir, Config{
		Channel: opts.Channel, Policy: opts.Policy, Clock: opts.Clock,
		Metrics: opts.Obs.Metrics(), TracerProvider: opts.Obs.TracerProvider(),
	})
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, svc.Close(context.Background())) }()

	p := opts.Policy
	fmt.Fprintf(w, "== %d notifications through a flaky channel: %d attempts each, backoff %v ×%g up to %v, jitter %g%%\n",
		len(DemoRequests), p.MaxAttempts, p.InitialBackoff, p.Multiplier, p.MaxBackoff, p.Jitter*100)
	for _, r := range DemoRequests {
		if err := svc.Request(ctx, r.ID, r.Recipient, r.Body); err != nil {
			return fmt.Errorf("request %s: %w", r.ID, err)
		}
	}
	if err := svc.Settle(ctx); err != nil {
		return err
	}
	if err := report(ctx, w, svc, opts.Channel); err != nil {
		return err
	}

	fmt.Fprintln(w, "== dead letters")
	dead, err := svc.DeadLetters()
	if err != nil {
		return err
	}
	for _, d := range dead {
		fmt.Fprintf(w, "%s to %s: round %d, %d attempts, last error %q\n", d.ID, d.Recipient, d.Round, d.Attempts, d.LastError)
	}

	fmt.Fprintf(w, "== %s is repaired; every dead letter is replayed\n", DownRecipient)
	opts.Channel.Repair(DownRecipient)
	for _, d := range dead {
		round, err := svc.Replay(ctx, d.ID, "mailbox repaired")
		if err != nil {
			return fmt.Errorf("replay %s: %w", d.ID, err)
		}
		fmt.Fprintf(w, "replayed %s: round %d\n", d.ID, round)
	}
	if err := svc.Settle(ctx); err != nil {
		return err
	}
	fmt.Fprintln(w, "== after the replay")
	if err := report(ctx, w, svc, opts.Channel); err != nil {
		return err
	}
	dead, err = svc.DeadLetters()
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "dead letters left: %d\n", len(dead))

	deliveries := opts.Channel.Deliveries()
	twice := 0
	for _, n := range deliveries {
		if n > 1 {
			twice++
		}
	}
	fmt.Fprintf(w, "channel: %d notifications delivered, %d more than once\n", len(deliveries), twice)
	return nil
}

// report prints each notification's status and the attempts of its
// latest round.
func report(ctx context.Context, w io.Writer, svc *Service, ch *FlakyChannel) error {
	for _, r := range DemoRequests {
		n, err := svc.Notification(ctx, r.ID)
		if err != nil {
			return err
		}
		var errs []string
		for _, c := range ch.Calls(r.ID) {
			if c.Round == n.Round && c.Err != nil {
				errs = append(errs, shorten(c.Err.Error()))
			}
		}
		line := fmt.Sprintf("%s %-13s round %d, attempt %d", r.ID, n.Status, n.Round, n.Attempts)
		if len(errs) > 0 {
			line += " (failed: " + strings.Join(errs, ", ") + ")"
		}
		fmt.Fprintln(w, line)
	}
	return nil
}

// shorten keeps the output narrow: the recipient-specific failure becomes
// "down".
func shorten(msg string) string {
	if strings.HasPrefix(msg, "recipient ") {
		return "down"
	}
	return strings.Fields(msg)[0]
}

func main() {
	obs.Main("notifications", "directory for the journal and read models", func(ctx context.Context, dir string, o *obs.Obs) error {
		return run(ctx, os.Stdout, dir, Options{Obs: o})
	})
}
