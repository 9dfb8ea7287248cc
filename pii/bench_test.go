package pii_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/orchestrix/orchestrix"
	"github.com/orchestrix/orchestrix/pii"
	boltkeys "github.com/orchestrix/orchestrix/pii/bolt"
)

// benchEvent has two personal fields among ordinary ones; benchPlain is
// the same without tags.
type (
	benchEvent struct {
		CustomerID string
		Name       string `pii:"data"`
		Email      string `pii:"data"`
		Country    string
		Amount     int64
		Items      []string
	}
	benchPlain struct {
		CustomerID string
		Name       string
		Email      string
		Country    string
		Amount     int64
		Items      []string
	}
)

func benchCodecs(b *testing.B) map[string]orchestrix.Codec {
	mem, err := pii.NewCodec(pii.Config{Keys: pii.NewMemKeyStore()})
	if err != nil {
		b.Fatal(err)
	}
	store, err := boltkeys.Open(filepath.Join(b.TempDir(), "keys.db"), boltkeys.Config{NoSync: true})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { store.Close() })
	bolt, err := pii.NewCodec(pii.Config{Keys: store})
	if err != nil {
		b.Fatal(err)
	}
	return map[string]orchestrix.Codec{"json": orchestrix.JSONCodec{}, "pii-mem": mem, "pii-bolt": bolt}
}

func encodeFor(c orchestrix.Codec, v any) ([]byte, error) {
	if sc, ok := c.(orchestrix.SubjectCodec); ok {
		return sc.EncodeFor(context.Background(), "customer-1", v)
	}
	return c.Encode(v)
}

var (
	tagged = benchEvent{CustomerID: "customer-1", Name: "Alice Liddell", Email: "alice@example.org",
		Country: "GB", Amount: 1250, Items: []string{"tea", "cake"}}
	untagged = benchPlain(tagged)
)

func BenchmarkCodec_Encode(b *testing.B) {
	for _, name := range []string{"json", "pii-mem", "pii-bolt"} {
		c := benchCodecs(b)[name]
		for _, tc := range []struct {
			name string
			v    any
		}{{"untagged", untagged}, {"tagged", tagged}} {
			if name == "json" && tc.name == "tagged" {
				continue
			}
			b.Run(name+"/"+tc.name, func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					if _, err := encodeFor(c, tc.v); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

func BenchmarkCodec_Decode(b *testing.B) {
	for _, name := range []string{"json", "pii-mem", "pii-bolt"} {
		c := benchCodecs(b)[name]
		for _, tc := range []struct {
			name string
			v    any
			out  func() any
		}{
			{"untagged", untagged, func() any { return new(benchPlain) }},
			{"tagged", tagged, func() any { return new(benchEvent) }},
		} {
			if name == "json" && tc.name == "tagged" {
				continue
			}
			data, err := encodeFor(c, tc.v)
			if err != nil {
				b.Fatal(err)
			}
			b.Run(name+"/"+tc.name, func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					if err := c.Decode(data, tc.out()); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
