package pii_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/orchestrix/orchestrix"
	"github.com/orchestrix/orchestrix/actor"
	"github.com/orchestrix/orchestrix/aggregate"
	"github.com/orchestrix/orchestrix/journal"
	boltjournal "github.com/orchestrix/orchestrix/journal/bolt"
	"github.com/orchestrix/orchestrix/journal/mem"
	"github.com/orchestrix/orchestrix/pii"
	boltkeys "github.com/orchestrix/orchestrix/pii/bolt"
	"github.com/orchestrix/orchestrix/projection"
	"github.com/orchestrix/orchestrix/snapshot"
	boltsnapshot "github.com/orchestrix/orchestrix/snapshot/bolt"
)

// The customer aggregate of the end-to-end test.
type (
	Customer struct {
		Name    string `pii:"data"`
		Email   string `pii:"data"`
		Country string
		Orders  int
	}
	Register   struct{ Name, Email, Country string }
	PlaceOrder struct{}
	Registered struct {
		Name    string `pii:"data"`
		Email   string `pii:"data"`
		Country string
	}
	OrderCounted struct{ N int }
)

var customers = aggregate.Definition[Customer, any, any]{
	Kind:          "customer",
	Initial:       func(string) Customer { return Customer{} },
	SnapshotEvery: 2,
	Decide: func(s Customer, c any) ([]any, error) {
		switch c := c.(type) {
		case Register:
			return []any{Registered{Name: c.Name, Email: c.Email, Country: c.Country}}, nil
		case PlaceOrder:
			return []any{OrderCounted{N: s.Orders + 1}}, nil
		}
		return nil, errors.New("unknown command")
	},
	Evolve: func(s Customer, e any) Customer {
		switch e := e.(type) {
		case Registered:
			s.Name, s.Email, s.Country = e.Name, e.Email, e.Country
		case OrderCounted:
			s.Orders = e.N
		}
		return s
	},
	Events: []aggregate.EventType{
		aggregate.Event[Registered]("test.customer.registered"),
		aggregate.Event[OrderCounted]("test.customer.order_counted"),
	},
}

// world is one process's view: journal, snapshots, keys, runtime.
type world struct {
	journal   *boltjournal.Journal
	snapshots *boltsnapshot.Store
	keys      *boltkeys.Store
	registry  *orchestrix.Registry
	system    *actor.System
	handle    *actor.Handle[Customer, any, any]
}

func openWorld(t *testing.T, dir string) *world {
	t.Helper()
	j, err := boltjournal.Open(filepath.Join(dir, "journal.db"), boltjournal.Config{NoSync: true})
	require.NoError(t, err)
	snaps, err := boltsnapshot.New(j.DB(), boltsnapshot.Config{})
	require.NoError(t, err)
	keys, err := boltkeys.Open(filepath.Join(dir, "keys.db"), boltkeys.Config{NoSync: true})
	require.NoError(t, err)
	codec, err := pii.NewCodec(pii.Config{Keys: keys})
	require.NoError(t, err)
	reg := orchestrix.NewRegistry(orchestrix.WithCodec(codec))
	sys, err := actor.NewSystem(actor.Config{Journal: j, Snapshots: snaps, Registry: reg})
	require.NoError(t, err)
	h, err := actor.Register(sys, customers)
	require.NoError(t, err)
	return &world{journal: j, snapshots: snaps, keys: keys, registry: reg, system: sys, handle: h}
}

func (w *world) close(t *testing.T) {
	t.Helper()
	require.NoError(t, w.system.Shutdown(context.Background()))
	require.NoError(t, w.snapshots.Close())
	require.NoError(t, w.journal.Close())
	require.NoError(t, w.keys.Close())
}

// directory is a projection's read model: name and country per customer.
type directory struct {
	mu   sync.Mutex
	rows map[string]Registered
}

func (d *directory) get(id string) Registered {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.rows[id]
}

func (d *directory) projection() projection.Projection {
	return projection.Projection{
		Name:   "directory",
		Filter: projection.Filter{Kinds: []string{"customer"}},
		Handler: projection.EachEvent(func(_ context.Context, ev projection.Event) error {
			if r, ok := ev.Data.(Registered); ok {
				d.mu.Lock()
				d.rows[ev.Envelope.Subject] = r
				d.mu.Unlock()
			}
			return nil
		}),
		Reset: func(context.Context) error {
			d.mu.Lock()
			d.rows = map[string]Registered{}
			d.mu.Unlock()
			return nil
		},
	}
}

func waitCaughtUp(t *testing.T, m *projection.Manager, j journal.Watcher) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	head, err := j.LastPosition(ctx)
	require.NoError(t, err)
	_, err = m.Wait(ctx, "directory", func(s projection.Status) bool { return s.Position >= head })
	require.NoError(t, err)
}

func TestEraser_Erase_PersonalDataErasedEverywhere(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	w := openWorld(t, dir)

	const aliceName, aliceEmail = "Alice Liddell", "alice.liddell@example.org"
	_, err := w.handle.Send(ctx, "alice", Register{Name: aliceName, Email: aliceEmail, Country: "GB"})
	require.NoError(t, err)
	_, err = w.handle.Send(ctx, "bob", Register{Name: "Bob Builder", Email: "bob@example.org", Country: "FR"})
	require.NoError(t, err)
	for range 3 {
		_, err = w.handle.Send(ctx, "alice", PlaceOrder{})
		require.NoError(t, err)
	}
	aliceKey, err := w.keys.GetOrCreate(ctx, "alice")
	require.NoError(t, err)

	// Snapshots are taken asynchronously: wait for one of alice's.
	var snap snapshot.Snapshot
	require.Eventually(t, func() bool {
		s, ok, err := w.snapshots.Load(ctx, w.handle.Stream("alice"), snapshot.Latest)
		snap = s
		return err == nil && ok
	}, 10*time.Second, time.Millisecond)
	require.NotContains(t, string(snap.Data), aliceName, "snapshot holds personal data in the clear")
	require.Contains(t, string(snap.Data), "enc:v1:")

	// A projection built before the erasure shows the data.
	dirModel := &directory{rows: map[string]Registered{}}
	m, err := projection.NewManager(projection.Config{Journal: w.journal, Registry: w.registry, Checkpoints: projection.NewMemCheckpoints()})
	require.NoError(t, err)
	defer m.Close()
	require.NoError(t, m.Add(ctx, dirModel.projection()))
	waitCaughtUp(t, m, w.journal)
	require.Equal(t, aliceName, dirModel.get("alice").Name)

	eraser := &pii.Eraser{Keys: w.keys, Journal: w.journal, Clock: func() time.Time { return time.Unix(1_800_000_000, 0) }}
	erasure, err := eraser.Erase(ctx, "alice", "ticket 42")
	require.NoError(t, err)
	require.Equal(t, pii.ErasureStream("alice"), erasure.Record.Stream)
	require.False(t, erasure.Repeated)
	again, err := eraser.Erase(ctx, "alice", "ticket 42")
	require.NoError(t, err)
	require.True(t, again.Repeated)
	require.Equal(t, erasure.Record.Position, again.Record.Position)

	// Journal reads through the registry: erased, rest intact, bob intact.
	for rec, err := range w.journal.Read(ctx, w.handle.Stream("alice"), 1, 1, 1) {
		require.NoError(t, err)
		v, err := w.registry.Unmarshal(rec.Envelope)
		require.NoError(t, err)
		require.Equal(t, Registered{Name: pii.Erased, Email: pii.Erased, Country: "GB"}, v)
	}
	for rec, err := range w.journal.Read(ctx, w.handle.Stream("bob"), 1, 1, 1) {
		require.NoError(t, err)
		v, err := w.registry.Unmarshal(rec.Envelope)
		require.NoError(t, err)
		require.Equal(t, "Bob Builder", v.(Registered).Name)
	}
	// Erasure record readable by anyone who registers its type.
	reg := orchestrix.NewRegistry()
	require.NoError(t, pii.RegisterEvents(reg))
	v, err := reg.Unmarshal(erasure.Record.Envelope)
	require.NoError(t, err)
	require.Equal(t, pii.SubjectErased{Subject: "alice", Reason: "ticket 42"}, v)

	// The snapshot decodes to erased fields.
	state, err := func() (Customer, error) {
		var c Customer
		err := w.registry.Codec().Decode(snap.Data, &c)
		return c, err
	}()
	require.NoError(t, err)
	require.Equal(t, pii.Erased, state.Name)
	require.NotZero(t, state.Orders)

	// New personal data for alice is refused, and nothing is stored.
	_, err = w.handle.Send(ctx, "alice", Register{Name: "Alice Again", Country: "GB"})
	require.ErrorIs(t, err, pii.ErrErased)

	// Projection rebuilt: erased.
	require.NoError(t, m.Rebuild(ctx, "directory"))
	waitCaughtUp(t, m, w.journal)
	require.Equal(t, Registered{Name: pii.Erased, Email: pii.Erased, Country: "GB"}, dirModel.get("alice"))
	require.Equal(t, "Bob Builder", dirModel.get("bob").Name)
	require.NoError(t, m.Close())

	// Restart: recovery (snapshot + events) yields erased fields.
	w.close(t)
	w = openWorld(t, dir)
	defer w.close(t)
	got, version, err := w.handle.State(ctx, "alice")
	require.NoError(t, err)
	require.Equal(t, uint64(4), version)
	require.Equal(t, Customer{Name: pii.Erased, Email: pii.Erased, Country: "GB", Orders: 3}, got)
	past, _, err := w.handle.StateAt(ctx, "alice", 1)
	require.NoError(t, err)
	require.Equal(t, pii.Erased, past.Name)
	_, err = w.handle.Send(ctx, "alice", PlaceOrder{}) // the aggregate still works
	require.NoError(t, err)
	_, err = w.handle.Send(ctx, "alice", Register{Name: "Alice Again", Country: "GB"})
	require.ErrorIs(t, err, pii.ErrErased)

	// The raw files: no plaintext in the journal (it never was), no key
	// material in the journal or the key store.
	for _, name := range []string{"journal.db", "keys.db"} {
		raw, err := os.ReadFile(filepath.Join(dir, name))
		require.NoError(t, err)
		for _, secret := range [][]byte{[]byte(aliceName), []byte(aliceEmail), aliceKey.Material} {
			require.False(t, bytes.Contains(raw, secret), "%s contains %q", name, secret)
		}
	}
	raw, err := os.ReadFile(filepath.Join(dir, "journal.db"))
	require.NoError(t, err)
	require.False(t, bytes.Contains(raw, []byte("Bob Builder")), "bob's name in the clear")
	require.True(t, bytes.Contains(raw, []byte(`"Country":"FR"`)), "the rest of the events is stored as is")
}

func TestEraser_Erase_RecordFails_ReportsAndRetries(t *testing.T) {
	ctx := context.Background()
	j, err := mem.New(mem.Config{})
	require.NoError(t, err)
	keys := pii.NewMemKeyStore()
	k, err := keys.GetOrCreate(ctx, "alice")
	require.NoError(t, err)
	require.NoError(t, j.Close())

	e := &pii.Eraser{Keys: keys, Journal: j}
	_, err = e.Erase(ctx, "alice", "")
	require.ErrorIs(t, err, orchestrix.ErrClosed)
	_, err = keys.Get(ctx, k.ID)
	require.ErrorIs(t, err, pii.ErrErased, "the key is destroyed even though recording failed")

	_, err = (&pii.Eraser{Keys: keys}).Erase(ctx, "alice", "")
	require.Error(t, err)
	_, err = e.Erase(ctx, "", "")
	require.ErrorIs(t, err, pii.ErrNoSubject)
}

// batchKeys is a MemKeyStore that counts DeleteMany calls.
type batchKeys struct {
	*pii.MemKeyStore
	batches int
}

func (b *batchKeys) DeleteMany(ctx context.Context, subjects []string) error {
	b.batches++
	for _, s := range subjects {
		if err := b.Delete(ctx, s); err != nil {
			return err
		}
	}
	return nil
}

func TestEraser_EraseMany_UsesBatchDeleterAndRecordsEach(t *testing.T) {
	ctx := context.Background()
	for _, batch := range []bool{false, true} {
		mk := pii.NewMemKeyStore()
		var keys pii.KeyStore = mk
		bk := &batchKeys{MemKeyStore: mk}
		if batch {
			keys = bk
		}
		j, err := mem.New(mem.Config{})
		require.NoError(t, err)
		alice, err := keys.GetOrCreate(ctx, "alice")
		require.NoError(t, err)
		bob, err := keys.GetOrCreate(ctx, "bob")
		require.NoError(t, err)
		e := &pii.Eraser{Keys: keys, Journal: j}
		_, err = e.EraseMany(ctx, []string{"alice", ""}, "bad")
		require.ErrorIs(t, err, pii.ErrNoSubject)
		_, err = keys.Get(ctx, alice.ID)
		require.NoError(t, err, "a rejected batch erased a subject")

		got, err := e.EraseMany(ctx, []string{"alice", "carol"}, "request #7")
		require.NoError(t, err)
		require.Len(t, got, 2)
		for i, subject := range []string{"alice", "carol"} {
			require.Equal(t, pii.ErasureStream(subject), got[i].Record.Stream)
			require.False(t, got[i].Repeated)
		}
		_, err = keys.Get(ctx, alice.ID)
		require.ErrorIs(t, err, pii.ErrErased)
		_, err = keys.Get(ctx, bob.ID)
		require.NoError(t, err)
		if batch {
			require.Equal(t, 1, bk.batches, "EraseMany did not take the BatchDeleter path")
		}
		again, err := e.EraseMany(ctx, []string{"carol"}, "request #8")
		require.NoError(t, err)
		require.True(t, again[0].Repeated)
		require.Equal(t, got[1].Record.Position, again[0].Record.Position)
	}
}
