package bolt_test

import (
	"path/filepath"
	"testing"

	"github.com/orchestrix/orchestrix/snapshot"
	"github.com/orchestrix/orchestrix/snapshot/bolt"
)

func benchSave(b *testing.B, opts bolt.Config) {
	s, err := bolt.Open(filepath.Join(b.TempDir(), "bench.db"), opts)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	data := make([]byte, 1024)
	ctx := b.Context()
	v := uint64(0)
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		v++
		if err := s.Save(ctx, snapshot.Snapshot{Stream: "bench", Version: v, Type: "t", Time: at, Data: data}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkStore_Save measures one durable 1 KiB save (one fsynced commit).
func BenchmarkStore_Save(b *testing.B) { benchSave(b, bolt.Config{}) }

// BenchmarkStore_SaveNoSync is the same without fsync (tests only).
func BenchmarkStore_SaveNoSync(b *testing.B) { benchSave(b, bolt.Config{NoSync: true}) }

// BenchmarkStore_Load measures loading a 1 KiB snapshot at or below a
// version from a stream of 1,000 snapshots, among 100 streams.
func BenchmarkStore_Load(b *testing.B) {
	s, err := bolt.Open(filepath.Join(b.TempDir(), "bench.db"), bolt.Config{NoSync: true})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	ctx := b.Context()
	data := make([]byte, 1024)
	streams := []string{"bench"}
	for i := range 99 {
		streams = append(streams, "other-"+string(rune('a'+i%26))+string(rune('a'+i/26)))
	}
	for _, st := range streams {
		n := uint64(10)
		if st == "bench" {
			n = 1000
		}
		for v := uint64(1); v <= n; v++ {
			if err := s.Save(ctx, snapshot.Snapshot{Stream: st, Version: v * 10, Type: "t", Time: at, Data: data}); err != nil {
				b.Fatal(err)
			}
		}
	}
	for b.Loop() {
		got, ok, err := s.Load(ctx, "bench", snapshot.AtOrBelow(5_005))
		if err != nil || !ok || got.Version != 5_000 {
			b.Fatalf("Load: %v %v %d", err, ok, got.Version)
		}
	}
}
