package orchestrix_test

import (
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/orchestrix/orchestrix"
)

func TestNewID_Parse_IsRFC9562Version7WithCurrentTime(t *testing.T) {
	before := time.Now().Add(-time.Second)
	id, err := uuid.Parse(orchestrix.NewID())
	if err != nil {
		t.Fatal(err)
	}
	if id.Version() != 7 || id.Variant() != uuid.RFC4122 {
		t.Fatalf("version %d variant %v, want 7 and RFC 4122", id.Version(), id.Variant())
	}
	sec, nsec := id.Time().UnixTime()
	if at := time.Unix(sec, nsec); at.Before(before) || at.After(time.Now().Add(time.Second)) {
		t.Fatalf("timestamp %v is not now", at)
	}
}

func TestNewID_ConcurrentCallers_UniqueAndIncreasingPerCaller(t *testing.T) {
	const callers, each = 8, 5000
	ids := make([][]string, callers)
	var wg sync.WaitGroup
	for c := range callers {
		wg.Go(func() {
			for range each {
				ids[c] = append(ids[c], orchestrix.NewID())
			}
		})
	}
	wg.Wait()
	seen := make(map[string]bool, callers*each)
	for c := range callers {
		for i, id := range ids[c] {
			if seen[id] {
				t.Fatalf("id %s handed out twice", id)
			}
			seen[id] = true
			if i > 0 && id <= ids[c][i-1] {
				t.Fatalf("caller %d: %s after %s, want increasing", c, id, ids[c][i-1])
			}
		}
	}
}

func BenchmarkNewID(b *testing.B) {
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			_ = orchestrix.NewID()
		}
	})
}
