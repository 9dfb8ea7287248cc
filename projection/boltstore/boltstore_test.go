package boltstore_test

import (
	"context"
	"encoding/binary"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/orchestrix/orchestrix"
	"github.com/orchestrix/orchestrix/journal"
	"github.com/orchestrix/orchestrix/journal/mem"
	"github.com/orchestrix/orchestrix/projection"
	"github.com/orchestrix/orchestrix/projection/boltstore"
	bolt "go.etcd.io/bbolt"
)

func openDB(t *testing.T) *bolt.DB {
	t.Helper()
	db, err := bolt.Open(filepath.Join(t.TempDir(), "rm.db"), 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

func newStore(t *testing.T, db *bolt.DB) *boltstore.Store {
	t.Helper()
	s, err := boltstore.New(db, boltstore.Config{})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func events(positions ...uint64) []projection.Event {
	out := make([]projection.Event, len(positions))
	for i, p := range positions {
		out[i] = projection.Event{Record: journal.Record{Position: p, Stream: "account-1", Version: p}}
	}
	return out
}

var countBucket = []byte("count")

// count adds one per event under key "n".
func count(tx *bolt.Tx, batch []projection.Event) error {
	b, err := tx.CreateBucketIfNotExists(countBucket)
	if err != nil {
		return err
	}
	var n uint64
	if v := b.Get([]byte("n")); v != nil {
		n = binary.BigEndian.Uint64(v)
	}
	return b.Put([]byte("n"), binary.BigEndian.AppendUint64(nil, n+uint64(len(batch))))
}

func readCount(t *testing.T, db *bolt.DB) uint64 {
	t.Helper()
	var n uint64
	if err := db.View(func(tx *bolt.Tx) error {
		if b := tx.Bucket(countBucket); b != nil {
			if v := b.Get([]byte("n")); v != nil {
				n = binary.BigEndian.Uint64(v)
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestStore_Save_LoadReturnsLastSaved(t *testing.T) {
	db := openDB(t)
	s := newStore(t, db)
	ctx := context.Background()
	if got, err := s.Load(ctx, "p"); err != nil || got != 0 {
		t.Fatalf("Load of a new name = %d, %v; want 0", got, err)
	}
	for _, pos := range []uint64{7, 7, 3} {
		if err := s.Save(ctx, "p", pos); err != nil {
			t.Fatal(err)
		}
		if got, err := s.Load(ctx, "p"); err != nil || got != pos {
			t.Fatalf("Load = %d, %v; want %d", got, err, pos)
		}
	}
	// A second Store on the same database sees it (the bucket persists).
	if got, err := newStore(t, db).Load(ctx, "p"); err != nil || got != 3 {
		t.Fatalf("Load via a new Store = %d, %v; want 3", got, err)
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := s.Load(cancelled, "p"); !errors.Is(err, context.Canceled) {
		t.Fatalf("Load with a cancelled context: %v", err)
	}
	if err := s.Save(cancelled, "p", 1); !errors.Is(err, context.Canceled) {
		t.Fatalf("Save with a cancelled context: %v", err)
	}
}

func TestStore_Load_MalformedCheckpoint(t *testing.T) {
	db := openDB(t)
	s, err := boltstore.New(db, boltstore.Config{Bucket: "ckpt"})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(tx *bolt.Tx) error { return tx.Bucket([]byte("ckpt")).Put([]byte("p"), []byte("xyz")) }); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Load(context.Background(), "p"); !errors.Is(err, boltstore.ErrBadCheckpoint) {
		t.Fatalf("Load: %v, want ErrBadCheckpoint", err)
	}
}

func TestStore_Handler_AppliesEachEventOnce(t *testing.T) {
	db := openDB(t)
	s := newStore(t, db)
	h := s.Handler("p", count)
	ctx := context.Background()
	if err := h.Handle(ctx, events(1, 2, 3)); err != nil {
		t.Fatal(err)
	}
	// Redelivery after a crash: the overlap is dropped inside the
	// transaction, whatever checkpoint the caller believed in.
	if err := h.Handle(ctx, events(2, 3, 4)); err != nil {
		t.Fatal(err)
	}
	if err := h.Handle(ctx, events(1, 2)); err != nil {
		t.Fatal(err)
	}
	if got := readCount(t, db); got != 4 {
		t.Fatalf("counted %d events, want 4", got)
	}
	if got, err := s.Load(ctx, "p"); err != nil || got != 4 {
		t.Fatalf("checkpoint %d, %v; want 4", got, err)
	}
}

func TestStore_Handler_ErrorRollsBackWritesAndCheckpoint(t *testing.T) {
	db := openDB(t)
	s := newStore(t, db)
	boom := errors.New("boom")
	h := s.Handler("p", func(tx *bolt.Tx, batch []projection.Event) error {
		if err := count(tx, batch); err != nil {
			return err
		}
		return boom
	})
	if err := h.Handle(context.Background(), events(1, 2)); !errors.Is(err, boom) {
		t.Fatalf("Handle: %v, want boom", err)
	}
	if got := readCount(t, db); got != 0 {
		t.Fatalf("counted %d after a failed batch, want 0", got)
	}
	if got, _ := s.Load(context.Background(), "p"); got != 0 {
		t.Fatalf("checkpoint %d after a failed batch, want 0", got)
	}
}

func TestStore_Reset_ClearsModelAndCheckpointTogether(t *testing.T) {
	db := openDB(t)
	s := newStore(t, db)
	ctx := context.Background()
	if err := s.Handler("p", count).Handle(ctx, events(1, 2)); err != nil {
		t.Fatal(err)
	}
	reset := s.Reset("p", func(tx *bolt.Tx) error { return tx.DeleteBucket(countBucket) })
	if err := reset(ctx); err != nil {
		t.Fatal(err)
	}
	if got := readCount(t, db); got != 0 {
		t.Fatalf("count %d after reset, want 0", got)
	}
	if got, _ := s.Load(ctx, "p"); got != 0 {
		t.Fatalf("checkpoint %d after reset, want 0", got)
	}
}

type Deposited struct {
	Amount int `json:"amount"`
}

// TestStore_Handler_RebuildThroughManager runs an exactly-once projection
// under a Manager, rebuilds it and checks nothing is counted twice.
func TestStore_Handler_RebuildThroughManager(t *testing.T) {
	ctx := context.Background()
	reg := orchestrix.NewRegistry()
	if err := orchestrix.Register[Deposited](reg, "test.Deposited"); err != nil {
		t.Fatal(err)
	}
	j := newMemJournal(t)
	for i := 1; i <= 10; i++ {
		env, err := reg.Marshal(Deposited{Amount: i})
		if err != nil {
			t.Fatal(err)
		}
		env.Source = "/test"
		if _, err := j.Append(ctx, "account-1", journal.Any, []orchestrix.Envelope{env}); err != nil {
			t.Fatal(err)
		}
	}
	db := openDB(t)
	s := newStore(t, db)
	m, err := projection.NewManager(projection.Config{Journal: j, Registry: reg})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if err := m.Add(ctx, projection.Projection{
		Name:        "count",
		Checkpoints: s,
		Handler:     s.Handler("count", count),
		Reset:       s.Reset("count", func(tx *bolt.Tx) error { return tx.DeleteBucket(countBucket) }),
		BatchSize:   3,
	}); err != nil {
		t.Fatal(err)
	}
	waitCtx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	atHead := func(st projection.Status) bool { return st.Live && st.Position == 10 }
	if _, err := m.Wait(waitCtx, "count", atHead); err != nil {
		t.Fatal(err)
	}
	if err := m.Rebuild(ctx, "count"); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Wait(waitCtx, "count", atHead); err != nil {
		t.Fatal(err)
	}
	if got := readCount(t, db); got != 10 {
		t.Fatalf("counted %d after a rebuild, want 10", got)
	}
}
func newMemJournal(t *testing.T) *mem.Journal {
	t.Helper()
	j, err := mem.New(mem.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = j.Close() })
	return j
}
