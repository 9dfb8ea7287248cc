package actor

import (
	"runtime"
	"testing"
)

// BenchmarkDedupCache_ManyAggregates is the dedup work of one command in
// the many-aggregates scenario, alone: 10,000 aggregates' caches, each
// command looked up (a miss) and then remembered, on an aggregate drawn
// at random, with the default window and cap. cpu-ns/op includes the
// GC's work on what the caches keep (getrusage); live-B/entry is the heap
// the caches hold per remembered command at the end.
//
//	go test -run XXX -bench DedupCache_ManyAggregates -benchtime 2000000x ./actor
func BenchmarkDedupCache_ManyAggregates(b *testing.B) {
	const aggregates = 10_000
	lim := dedupLimits{window: int64(DefaultDedupWindow), max: DefaultDedupMaxEntries}
	caches := make([]dedupCache[benchEvent], aggregates)
	buf := []byte("0190a5b4-0000-7000-8000-000000000000")
	x := uint64(0x9E3779B97F4A7C15)
	b.ReportAllocs()
	heap0 := liveHeap()
	cpu0 := rusage()
	b.ResetTimer()
	for i := range b.N {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		d := &caches[x%aggregates]
		// A fresh id string per command, as a sender's NewID makes one.
		for k, v := len(buf)-1, i; k > len(buf)-13; k, v = k-1, v>>4 {
			buf[k] = "0123456789abcdef"[v&15]
		}
		id := string(buf)
		tag := idTag(id)
		now := int64(i) * 1000
		if _, ok := d.get(id, tag, lim.cutoff(now)); ok {
			b.Fatal("a new id was found")
		}
		d.addNew(Result[benchEvent]{CommandID: id, Events: []benchEvent{{Amount: 1, Memo: "m"}}, Version: uint64(i)}, tag, now, lim)
	}
	b.StopTimer()
	b.ReportMetric(float64(rusage()-cpu0)/float64(b.N), "cpu-ns/op")
	entries := 0
	for i := range caches {
		entries += caches[i].len()
	}
	b.ReportMetric(float64(liveHeap()-heap0)/float64(entries), "live-B/entry")
	runtime.KeepAlive(caches)
}

// liveHeap is the heap in use after a collection.
func liveHeap() int64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapAlloc)
}

type benchEvent struct {
	Amount int64
	Memo   string
}

// BenchmarkDedupCache_HotAggregate is the dedup work of one command on a
// hot aggregate: one cache at the default cap (10,000 entries, each add
// forgets the oldest), each command looked up (a miss) and remembered.
//
//	go test -run XXX -bench DedupCache_HotAggregate ./actor
func BenchmarkDedupCache_HotAggregate(b *testing.B) {
	lim := dedupLimits{window: int64(DefaultDedupWindow), max: DefaultDedupMaxEntries}
	var d dedupCache[benchEvent]
	buf := []byte("0190a5b4-0000-7000-8000-000000000000")
	ids := make([]string, 1<<16)
	for i := range ids {
		for k, v := len(buf)-1, i; k > len(buf)-13; k, v = k-1, v>>4 {
			buf[k] = "0123456789abcdef"[v&15]
		}
		ids[i] = string(buf)
	}
	events := []benchEvent{{Amount: 1, Memo: "m"}}
	i := 0
	add := func() {
		id := ids[i%len(ids)]
		tag := idTag(id)
		now := int64(i) * 1000
		if _, ok := d.get(id, tag, lim.cutoff(now)); ok {
			b.Fatal("a new id was found")
		}
		d.addNew(Result[benchEvent]{CommandID: id, Events: events, Version: uint64(i)}, tag, now, lim)
		i++
	}
	for range 2 * lim.max {
		add()
	}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		add()
	}
}
