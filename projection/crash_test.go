package projection_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"maps"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/orchestrix/orchestrix"
	"github.com/orchestrix/orchestrix/journal"
	"github.com/orchestrix/orchestrix/projection"
	"github.com/orchestrix/orchestrix/projection/boltstore"
	bolt "go.etcd.io/bbolt"
)

// crashingStore passes saves through until one reaches position after;
// that save never completes: it signals crashed and blocks until the
// projection is torn down, so the events just handled are never
// checkpointed — a crash between handling and checkpointing.
type crashingStore struct {
	projection.CheckpointStore
	after   uint64
	once    sync.Once
	crashed chan struct{}
}

func newCrashingStore(s projection.CheckpointStore, after uint64) *crashingStore {
	return &crashingStore{CheckpointStore: s, after: after, crashed: make(chan struct{})}
}

func (s *crashingStore) Save(ctx context.Context, name string, pos uint64) error {
	if pos >= s.after {
		s.once.Do(func() { close(s.crashed) })
		<-ctx.Done()
		return ctx.Err()
	}
	return s.CheckpointStore.Save(ctx, name, pos)
}

// sumModel is an at-least-once read model made idempotent by position:
// per stream, the sum of deposits and the last position applied.
type sumModel struct {
	mu         sync.Mutex
	sums       map[string]int
	last       map[string]uint64
	deliveries int
}

func newSumModel() *sumModel { return &sumModel{sums: map[string]int{}, last: map[string]uint64{}} }

func (m *sumModel) Handle(_ context.Context, batch []projection.Event) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, ev := range batch {
		m.deliveries++
		if ev.Position <= m.last[ev.Stream] {
			continue // seen before the crash
		}
		m.last[ev.Stream] = ev.Position
		m.sums[ev.Stream] += ev.Data.(Deposited).Amount
	}
	return nil
}

func (m *sumModel) snapshot() (map[string]int, int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return maps.Clone(m.sums), m.deliveries
}

var totalsBucket = []byte("totals")

// countInTx is a deliberately non-idempotent read model in bbolt: it adds
// one per event and the amount to a sum. Only exactly-once delivery keeps
// it right.
func countInTx(tx *bolt.Tx, batch []projection.Event) error {
	b, err := tx.CreateBucketIfNotExists(totalsBucket)
	if err != nil {
		return err
	}
	get := func(k string) uint64 {
		if v := b.Get([]byte(k)); len(v) == 8 {
			return binary.BigEndian.Uint64(v)
		}
		return 0
	}
	count, sum := get("count"), get("sum")
	for _, ev := range batch {
		count++
		sum += uint64(ev.Data.(Deposited).Amount)
	}
	if err := b.Put([]byte("count"), binary.BigEndian.AppendUint64(nil, count)); err != nil {
		return err
	}
	return b.Put([]byte("sum"), binary.BigEndian.AppendUint64(nil, sum))
}

func readTotals(t *testing.T, db *bolt.DB) (count, sum uint64) {
	t.Helper()
	if err := db.View(func(tx *bolt.Tx) error {
		if b := tx.Bucket(totalsBucket); b != nil {
			count = binary.BigEndian.Uint64(b.Get([]byte("count")))
			sum = binary.BigEndian.Uint64(b.Get([]byte("sum")))
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return count, sum
}

// TestManager_Close_CrashMidwayResumesWithoutLossOrDoubleCount runs 16
// concurrent writers appending 100,000 events while two projections
// follow them; both are killed mid-way between handling a batch and
// saving its checkpoint, then restarted by a new manager. The at-least-once
// model must equal a from-scratch replay (and what the writers wrote), and
// the exactly-once bbolt model must have counted every event once.
func TestManager_Close_CrashMidwayResumesWithoutLossOrDoubleCount(t *testing.T) {
	const writers, eventsPerAppend = 16, 10
	appendsPerWriter := 625 // 16 * 625 * 10 = 100,000 events
	if testing.Short() {
		appendsPerWriter = 63
	}
	total := uint64(writers * appendsPerWriter * eventsPerAppend)
	ctx := context.Background()
	j, reg := newJournal(t), newRegistry(t)
	db, err := bolt.Open(filepath.Join(t.TempDir(), "readmodel.db"), 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	boltStore, err := boltstore.New(db, boltstore.Config{})
	if err != nil {
		t.Fatal(err)
	}
	memStore := projection.NewMemCheckpoints()
	model := newSumModel()

	// First life: both projections crash once their checkpoint would
	// pass 40% of the events.
	crashAt := total * 2 / 5
	memCrash, boltCrash := newCrashingStore(memStore, crashAt), newCrashingStore(boltStore, crashAt)
	first, err := projection.NewManager(projection.Config{Journal: j, Registry: reg})
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	if err := first.Add(ctx, projection.Projection{Name: "sums", Handler: model, Checkpoints: memCrash}); err != nil {
		t.Fatal(err)
	}
	if err := first.Add(ctx, projection.Projection{Name: "exact", Handler: boltStore.Handler("exact", countInTx), Checkpoints: boltCrash}); err != nil {
		t.Fatal(err)
	}

	var wg sync.WaitGroup
	written := make([]map[string]int, writers)
	writeErrs := make(chan error, writers)
	for w := range writers {
		written[w] = map[string]int{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range appendsPerWriter {
				s := fmt.Sprintf("account-w%d.%d", w, k%25)
				events := make([]orchestrix.Envelope, eventsPerAppend)
				for e := range events {
					amount := w*1000 + k + e
					env, err := reg.Marshal(Deposited{Amount: amount})
					if err != nil {
						writeErrs <- err
						return
					}
					env.Source, env.Subject = "/test", s
					events[e] = env
					written[w][s] += amount
				}
				if _, err := j.Append(ctx, s, journal.Any, events); err != nil {
					writeErrs <- err
					return
				}
			}
		}()
	}

	for _, c := range []*crashingStore{memCrash, boltCrash} {
		select {
		case <-c.crashed:
		case err := <-writeErrs:
			t.Fatal(err)
		case <-time.After(testTimeout):
			t.Fatal("the projections never reached the crash point")
		}
	}
	if err := first.Close(); err != nil { // the kill
		t.Fatal(err)
	}
	_, deliveredBeforeCrash := model.snapshot()

	// Second life, while the writers may still be writing, plus a
	// from-scratch replay to compare with.
	second := newManager(t, projection.Config{Journal: j, Registry: reg})
	replay := newSumModel()
	for _, p := range []projection.Projection{
		{Name: "sums", Handler: model, Checkpoints: memStore},
		{Name: "exact", Handler: boltStore.Handler("exact", countInTx), Checkpoints: boltStore},
		{Name: "replay", Handler: replay, Checkpoints: projection.NewMemCheckpoints()},
	} {
		if err := second.Add(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
	close(writeErrs)
	for err := range writeErrs {
		t.Fatal(err)
	}
	head, err := j.LastPosition(ctx)
	if err != nil || head != total {
		t.Fatalf("journal head %d (%v), want %d", head, err, total)
	}
	for _, name := range []string{"sums", "exact", "replay"} {
		wait(t, second, name, "the head", func(s projection.Status) bool { return s.Live && s.Position == head })
	}

	want := map[string]int{}
	wantSum := 0
	for _, m := range written {
		for s, v := range m {
			want[s] += v
			wantSum += v
		}
	}
	got, deliveries := model.snapshot()
	replayed, replayDeliveries := replay.snapshot()
	if !maps.Equal(got, replayed) || !maps.Equal(got, want) {
		t.Fatalf("read model after the crash differs from the replay or the writes (%d, %d, %d streams)", len(got), len(replayed), len(want))
	}
	if uint64(replayDeliveries) != total {
		t.Fatalf("the replay saw %d events, want %d", replayDeliveries, total)
	}
	if uint64(deliveries) <= total || deliveredBeforeCrash == 0 {
		t.Fatalf("%d deliveries for %d events: the crash did not hit between handling and checkpointing", deliveries, total)
	}
	t.Logf("at-least-once model: %d deliveries for %d events (%d redelivered after the crash)", deliveries, total, uint64(deliveries)-total)
	count, sum := readTotals(t, db)
	if count != total || sum != uint64(wantSum) {
		t.Fatalf("exactly-once model counted %d events summing %d, want %d and %d", count, sum, total, wantSum)
	}
}
