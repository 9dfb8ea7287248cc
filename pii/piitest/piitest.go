// Package piitest is the conformance suite every pii.KeyStore passes.
//
//	func TestStore_Conformance(t *testing.T) {
//		piitest.RunKeyStore(t, piitest.Features{Durable: true}, func(t *testing.T, dir string) pii.KeyStore {
//			s, err := bolt.Open(filepath.Join(dir, "keys.db"), bolt.Config{NoSync: true})
//			require.NoError(t, err)
//			return s
//		})
//	}
package piitest

import (
	"bytes"
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/orchestrix/orchestrix"
	"github.com/orchestrix/orchestrix/pii"
)

// Features declares what a key store can do beyond the contract.
type Features struct {
	// Durable stores keep keys and erasures across a close and reopen of
	// the same directory.
	Durable bool
}

// Factory opens a store keeping its data in dir. Called twice with the same
// dir (after closing the first store), a durable store must reopen the
// same data. The suite closes every store it opens.
type Factory func(t *testing.T, dir string) pii.KeyStore

// RunKeyStore runs the conformance suite against the stores open makes.
func RunKeyStore(t *testing.T, f Features, open Factory) {
	ctx := context.Background()
	newStore := func(t *testing.T) pii.KeyStore {
		s := open(t, t.TempDir())
		t.Cleanup(func() { s.Close() })
		return s
	}

	t.Run("GetOrCreate_SameSubject_ReturnsSameKey", func(t *testing.T) {
		s := newStore(t)
		a, err := s.GetOrCreate(ctx, "alice")
		must(t, err)
		b, err := s.GetOrCreate(ctx, "alice")
		must(t, err)
		if a.ID != b.ID || !bytes.Equal(a.Material, b.Material) {
			t.Fatalf("two keys for one subject: %q and %q", a.ID, b.ID)
		}
		if len(a.Material) != pii.KeySize {
			t.Fatalf("material has %d bytes, want %d", len(a.Material), pii.KeySize)
		}
		c, err := s.GetOrCreate(ctx, "bob")
		must(t, err)
		if c.ID == a.ID || bytes.Equal(c.Material, a.Material) {
			t.Fatal("two subjects share a key")
		}
	})

	t.Run("Get_CreatedKey_ReturnsItAndCallerOwnsMaterial", func(t *testing.T) {
		s := newStore(t)
		k, err := s.GetOrCreate(ctx, "alice")
		must(t, err)
		want := bytes.Clone(k.Material)
		clear(k.Material)
		got, err := s.Get(ctx, k.ID)
		must(t, err)
		if got.ID != k.ID || !bytes.Equal(got.Material, want) {
			t.Fatal("Get does not return the created key (or shares its material with a caller)")
		}
	})

	t.Run("Get_UnknownID_MatchesErrUnknownKeyAndErrCorrupt", func(t *testing.T) {
		s := newStore(t)
		_, err := s.Get(ctx, "no-such-key")
		if !errors.Is(err, pii.ErrUnknownKey) || !errors.Is(err, orchestrix.ErrCorrupt) {
			t.Fatalf("Get(unknown) = %v, want ErrUnknownKey", err)
		}
	})

	t.Run("Delete_Subject_ErasesOnlyItsKeys", func(t *testing.T) {
		s := newStore(t)
		a, err := s.GetOrCreate(ctx, "alice")
		must(t, err)
		b, err := s.GetOrCreate(ctx, "bob")
		must(t, err)
		must(t, s.Delete(ctx, "alice"))
		if _, err := s.Get(ctx, a.ID); !errors.Is(err, pii.ErrErased) {
			t.Fatalf("Get(erased key) = %v, want ErrErased", err)
		}
		if _, err := s.GetOrCreate(ctx, "alice"); !errors.Is(err, pii.ErrErased) {
			t.Fatalf("GetOrCreate(erased subject) = %v, want ErrErased", err)
		}
		got, err := s.Get(ctx, b.ID)
		must(t, err)
		if !bytes.Equal(got.Material, b.Material) {
			t.Fatal("erasing alice changed bob's key")
		}
		must(t, s.Delete(ctx, "alice")) // idempotent
	})

	t.Run("Delete_UnknownSubject_MarksItErased", func(t *testing.T) {
		s := newStore(t)
		must(t, s.Delete(ctx, "carol"))
		if _, err := s.GetOrCreate(ctx, "carol"); !errors.Is(err, pii.ErrErased) {
			t.Fatalf("GetOrCreate after Delete = %v, want ErrErased", err)
		}
	})

	t.Run("GetOrCreate_BadSubject_Rejected", func(t *testing.T) {
		s := newStore(t)
		if _, err := s.GetOrCreate(ctx, ""); !errors.Is(err, pii.ErrNoSubject) {
			t.Fatalf("GetOrCreate(\"\") = %v, want ErrNoSubject", err)
		}
		long := string(bytes.Repeat([]byte("x"), pii.MaxSubjectLen+1))
		if _, err := s.GetOrCreate(ctx, long); !errors.Is(err, pii.ErrInvalidSubject) {
			t.Fatalf("GetOrCreate(long) = %v, want ErrInvalidSubject", err)
		}
		if err := s.Delete(ctx, ""); !errors.Is(err, pii.ErrNoSubject) {
			t.Fatalf("Delete(\"\") = %v, want ErrNoSubject", err)
		}
	})

	t.Run("GetOrCreate_Concurrent_OneKeyPerSubject", func(t *testing.T) {
		s := newStore(t)
		const n = 8
		ids := make([]string, n)
		errs := make([]error, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				var k pii.Key
				k, errs[i] = s.GetOrCreate(ctx, "alice")
				ids[i] = k.ID
			})
		}
		wg.Wait()
		for i := range n {
			must(t, errs[i])
			if ids[i] != ids[0] {
				t.Fatalf("concurrent first calls created keys %q and %q", ids[0], ids[i])
			}
		}
	})

	t.Run("Calls_CancelledContext_ReturnContextError", func(t *testing.T) {
		s := newStore(t)
		k, err := s.GetOrCreate(ctx, "alice")
		must(t, err)
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		if _, err := s.GetOrCreate(cctx, "bob"); !errors.Is(err, context.Canceled) {
			t.Fatalf("GetOrCreate = %v, want context.Canceled", err)
		}
		if _, err := s.Get(cctx, k.ID); !errors.Is(err, context.Canceled) {
			t.Fatalf("Get = %v, want context.Canceled", err)
		}
		if err := s.Delete(cctx, "alice"); !errors.Is(err, context.Canceled) {
			t.Fatalf("Delete = %v, want context.Canceled", err)
		}
		if _, err := s.Get(ctx, k.ID); err != nil {
			t.Fatalf("a cancelled Delete erased the key: %v", err)
		}
	})

	t.Run("Close_ThenCalls_ReturnErrClosed", func(t *testing.T) {
		s := open(t, t.TempDir())
		k, err := s.GetOrCreate(ctx, "alice")
		must(t, err)
		must(t, s.Close())
		must(t, s.Close())
		if _, err := s.GetOrCreate(ctx, "alice"); !errors.Is(err, orchestrix.ErrClosed) {
			t.Fatalf("GetOrCreate = %v, want ErrClosed", err)
		}
		if _, err := s.Get(ctx, k.ID); !errors.Is(err, orchestrix.ErrClosed) {
			t.Fatalf("Get = %v, want ErrClosed", err)
		}
		if err := s.Delete(ctx, "alice"); !errors.Is(err, orchestrix.ErrClosed) {
			t.Fatalf("Delete = %v, want ErrClosed", err)
		}
	})

	t.Run("DeleteMany_ErasesEachAndOnlyThem", func(t *testing.T) {
		s := newStore(t)
		bd, ok := s.(pii.BatchDeleter)
		if !ok {
			t.Skip("the store is not a pii.BatchDeleter")
		}
		var erased []pii.Key
		for _, subject := range []string{"alice", "bob", "carol"} {
			k, err := s.GetOrCreate(ctx, subject)
			must(t, err)
			erased = append(erased, k)
		}
		dave, err := s.GetOrCreate(ctx, "dave")
		must(t, err)
		if err := bd.DeleteMany(ctx, []string{"alice", ""}); !errors.Is(err, pii.ErrNoSubject) {
			t.Fatalf("DeleteMany with an empty subject = %v, want ErrNoSubject", err)
		}
		if _, err := s.Get(ctx, erased[0].ID); err != nil {
			t.Fatalf("a rejected DeleteMany erased alice: %v", err)
		}
		must(t, bd.DeleteMany(ctx, []string{"alice", "bob", "carol", "erin", "alice"}))
		for _, k := range erased {
			if _, err := s.Get(ctx, k.ID); !errors.Is(err, pii.ErrErased) {
				t.Fatalf("Get(erased key) = %v, want ErrErased", err)
			}
		}
		if _, err := s.GetOrCreate(ctx, "erin"); !errors.Is(err, pii.ErrErased) {
			t.Fatalf("GetOrCreate(erin) = %v, want ErrErased", err)
		}
		got, err := s.Get(ctx, dave.ID)
		must(t, err)
		if !bytes.Equal(got.Material, dave.Material) {
			t.Fatal("DeleteMany changed dave's key")
		}
		must(t, bd.DeleteMany(ctx, nil))
	})

	if !f.Durable {
		return
	}
	t.Run("Reopen_KeepsKeysAndErasures", func(t *testing.T) {
		dir := t.TempDir()
		s := open(t, dir)
		a, err := s.GetOrCreate(ctx, "alice")
		must(t, err)
		b, err := s.GetOrCreate(ctx, "bob")
		must(t, err)
		must(t, s.Delete(ctx, "bob"))
		must(t, s.Close())

		s = open(t, dir)
		defer s.Close()
		got, err := s.GetOrCreate(ctx, "alice")
		must(t, err)
		if got.ID != a.ID || !bytes.Equal(got.Material, a.Material) {
			t.Fatal("alice's key changed across a reopen")
		}
		if _, err := s.Get(ctx, b.ID); !errors.Is(err, pii.ErrErased) {
			t.Fatalf("Get(bob's key) after reopen = %v, want ErrErased", err)
		}
		if _, err := s.GetOrCreate(ctx, "bob"); !errors.Is(err, pii.ErrErased) {
			t.Fatalf("GetOrCreate(bob) after reopen = %v, want ErrErased", err)
		}
	})
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
