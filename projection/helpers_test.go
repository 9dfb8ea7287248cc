package projection_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/orchestrix/orchestrix"
	"github.com/orchestrix/orchestrix/actor/actortest"
	"github.com/orchestrix/orchestrix/journal"
	"github.com/orchestrix/orchestrix/journal/mem"
	"github.com/orchestrix/orchestrix/projection"
)

// testTimeout bounds every wait of a test; reaching it is a failure.
const testTimeout = 20 * time.Second

// Event payloads of the tests.
type (
	Opened struct {
		Owner string `json:"owner"`
	}
	Deposited struct {
		Amount int `json:"amount"`
	}
	Shipped struct {
		Carrier string `json:"carrier"`
	}
)

const (
	typeOpened    = "test.Opened"
	typeDeposited = "test.Deposited"
	typeShipped   = "test.Shipped"
)

var epoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func newRegistry(t testing.TB) *orchestrix.Registry {
	t.Helper()
	reg := orchestrix.NewRegistry()
	for _, err := range []error{
		orchestrix.Register[Opened](reg, typeOpened),
		orchestrix.Register[Deposited](reg, typeDeposited),
		orchestrix.Register[Shipped](reg, typeShipped),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	return reg
}

func newJournal(t testing.TB) *mem.Journal {
	t.Helper()
	j, err := mem.New(mem.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = j.Close() })
	return j
}

// appendOne appends one event with payload v to stream and returns its
// position. Events get Time epoch + position minutes-ish via at.
func appendOne(t testing.TB, j journal.Journal, reg *orchestrix.Registry, stream string, v any, at time.Time) uint64 {
	t.Helper()
	env, err := reg.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	env.Source = "/test"
	env.Subject = stream
	env.Time = at
	res, err := j.Append(context.Background(), stream, journal.Any, []orchestrix.Envelope{env})
	if err != nil {
		t.Fatal(err)
	}
	return res.LastPosition
}

// appendRaw appends an envelope of an arbitrary type name.
func appendRaw(t testing.TB, j journal.Journal, stream, typ string, data string) uint64 {
	t.Helper()
	env := orchestrix.Envelope{ID: orchestrix.NewID(), Source: "/test", Type: typ, Subject: stream,
		DataContentType: "application/json", Data: []byte(data)}
	res, err := j.Append(context.Background(), stream, journal.Any, []orchestrix.Envelope{env})
	if err != nil {
		t.Fatal(err)
	}
	return res.LastPosition
}

func newManager(t testing.TB, cfg projection.Config) *projection.Manager {
	t.Helper()
	m, err := projection.NewManager(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Close() })
	return m
}

// wait waits for cond on the named projection, failing the test on
// timeout with the last status seen.
func wait(t testing.TB, m *projection.Manager, name string, what string, cond func(projection.Status) bool) projection.Status {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	st, err := m.Wait(ctx, name, cond)
	if err != nil {
		t.Fatalf("waiting for %s of %q: %v (last status %+v)", what, name, err, st)
	}
	return st
}

func atPosition(p uint64) func(projection.Status) bool {
	return func(s projection.Status) bool { return s.Position >= p && s.State == projection.StateRunning }
}

func inState(state projection.State) func(projection.Status) bool {
	return func(s projection.Status) bool { return s.State == state }
}

// recorder is a Handler that records what it saw.
type recorder struct {
	mu        sync.Mutex
	positions []uint64
	payloads  []any
}

func (r *recorder) Handle(_ context.Context, batch []projection.Event) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, ev := range batch {
		r.positions = append(r.positions, ev.Position)
		r.payloads = append(r.payloads, ev.Data)
	}
	return nil
}

func (r *recorder) seen() []uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]uint64(nil), r.positions...)
}

func (r *recorder) reset(context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.positions, r.payloads = nil, nil
	return nil
}

// newManualClock returns a clock that moves only when the test advances
// it, reading epoch.
func newManualClock() *actortest.ManualClock { return actortest.NewManualClock(epoch) }

// syncBuffer is a bytes.Buffer safe for concurrent use, for log output.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func newLogger(buf *syncBuffer) *slog.Logger {
	return slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func stream(kind string, id int) string { return fmt.Sprintf("%s-%d", kind, id) }
