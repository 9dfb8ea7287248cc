package projection_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/orchestrix/orchestrix"
	"github.com/orchestrix/orchestrix/journal"
	"github.com/orchestrix/orchestrix/projection"
)

// BenchmarkManager_CatchUp measures how fast a projection catches up on
// 100,000 events already in the in-memory journal: reading, decoding with
// the registry (JSON), handing batches to a trivial handler and saving
// checkpoints. Reported as events/s.
func BenchmarkManager_CatchUp(b *testing.B) {
	const events, perAppend = 100_000, 100
	ctx := context.Background()
	j, reg := newJournal(b), newRegistry(b)
	for a := range events / perAppend {
		batch := make([]orchestrix.Envelope, perAppend)
		for i := range batch {
			env, err := reg.Marshal(Deposited{Amount: i})
			if err != nil {
				b.Fatal(err)
			}
			env.Source, env.Subject = "/bench", fmt.Sprint(a%100)
			batch[i] = env
		}
		if _, err := j.Append(ctx, fmt.Sprintf("account-%d", a%100), journal.Any, batch); err != nil {
			b.Fatal(err)
		}
	}
	m := newManager(b, projection.Config{Journal: j, Registry: reg, Checkpoints: projection.NewMemCheckpoints()})
	var total int
	h := projection.HandlerFunc(func(_ context.Context, batch []projection.Event) error {
		for _, ev := range batch {
			total += ev.Data.(Deposited).Amount
		}
		return nil
	})
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		name := fmt.Sprint("p", i)
		if err := m.Add(ctx, projection.Projection{Name: name, Handler: h, BatchSize: 1024}); err != nil {
			b.Fatal(err)
		}
		if _, err := m.Wait(ctx, name, func(s projection.Status) bool { return s.Live && s.Position == events }); err != nil {
			b.Fatal(err)
		}
		if err := m.Stop(ctx, name); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(events)*float64(b.N)/b.Elapsed().Seconds(), "events/s")
}
