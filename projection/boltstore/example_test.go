package boltstore_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/orchestrix/orchestrix"
	"github.com/orchestrix/orchestrix/journal"
	"github.com/orchestrix/orchestrix/journal/mem"
	"github.com/orchestrix/orchestrix/projection"
	"github.com/orchestrix/orchestrix/projection/boltstore"
)

type MoneyDeposited struct {
	Amount int `json:"amount"`
}

// A balance per account, kept in the same bbolt file as the projection's
// checkpoint and written in the same transaction: a crash between the
// two cannot apply a deposit twice.
func Example() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "boltstore-example-")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)
	db, err := bolt.Open(filepath.Join(dir, "readmodel.db"), 0o600, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer db.Close()

	reg := orchestrix.NewRegistry()
	if err := orchestrix.Register[MoneyDeposited](reg, "bank.money_deposited"); err != nil {
		fmt.Println(err)
		return
	}
	j, err := mem.New(mem.Config{})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer j.Close()
	for _, d := range []struct {
		account string
		amount  int
	}{{"alice", 100}, {"bob", 20}, {"alice", 5}} {
		env, err := reg.Marshal(MoneyDeposited{Amount: d.amount})
		if err != nil {
			fmt.Println(err)
			return
		}
		env.Source, env.Subject = "/bank", d.account
		if _, err := j.Append(ctx, "account-"+d.account, journal.Any, []orchestrix.Envelope{env}); err != nil {
			fmt.Println(err)
			return
		}
	}

	store, err := boltstore.New(db, boltstore.Config{})
	if err != nil {
		fmt.Println(err)
		return
	}
	balances := []byte("balances")
	apply := func(tx *bolt.Tx, batch []projection.Event) error {
		b, err := tx.CreateBucketIfNotExists(balances)
		if err != nil {
			return err
		}
		for _, ev := range batch {
			d, ok := ev.Data.(MoneyDeposited)
			if !ok {
				continue
			}
			key := []byte(ev.Envelope.Subject)
			var v uint64
			if old := b.Get(key); old != nil {
				v = binary.BigEndian.Uint64(old)
			}
			if err := b.Put(key, binary.BigEndian.AppendUint64(nil, v+uint64(d.Amount))); err != nil {
				return err
			}
		}
		return nil
	}
	m, err := projection.NewManager(projection.Config{Journal: j, Registry: reg})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer m.Close()
	if err := m.Add(ctx, projection.Projection{
		Name:        "balances",
		Filter:      projection.Filter{Kinds: []string{"account"}},
		Checkpoints: store,
		Handler:     store.Handler("balances", apply),
		Reset: store.Reset("balances", func(tx *bolt.Tx) error {
			if tx.Bucket(balances) == nil {
				return nil
			}
			return tx.DeleteBucket(balances)
		}),
	}); err != nil {
		fmt.Println(err)
		return
	}
	waitCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := m.Wait(waitCtx, "balances", func(s projection.Status) bool { return s.Position == 3 }); err != nil {
		fmt.Println(err)
		return
	}

	err = db.View(func(tx *bolt.Tx) error {
		pos, err := store.Checkpoint(tx, "balances")
		if err != nil {
			return err
		}
		fmt.Println("checkpoint:", pos)
		return tx.Bucket(balances).ForEach(func(k, v []byte) error {
			fmt.Printf("%s: %d\n", k, binary.BigEndian.Uint64(v))
			return nil
		})
	})
	if err != nil {
		fmt.Println(err)
	}
	// Output:
	// checkpoint: 3
	// alice: 105
	// bob: 20
}
