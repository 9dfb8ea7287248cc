package console

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/orchestrix/orchestrix/actor"
	"github.com/orchestrix/orchestrix/snapshot"
)

// AggregateView lets the console rebuild past states of one aggregate kind
// (time travel). Build it with Aggregate and list it in Config.Aggregates.
type AggregateView struct {
	kind        string
	stream      func(id string) string
	stateAt     func(ctx context.Context, id string, version uint64) (any, uint64, error)
	stateAtTime func(ctx context.Context, id string, t time.Time) (any, uint64, error)
}

// Kind returns the aggregate kind the view rebuilds.
func (v AggregateView) Kind() string { return v.kind }

// Aggregate returns the view of h's aggregates: the console shows their
// state at any version or time through h.StateAt and h.StateAtTime (which
// rebuild from snapshots and the journal without touching live actors).
// States are shown as JSON, so S should encode to JSON meaningfully.
func Aggregate[S, C, E any](h *actor.Handle[S, C, E]) AggregateView {
	return AggregateView{
		kind:   h.Kind(),
		stream: h.Stream,
		stateAt: func(ctx context.Context, id string, version uint64) (any, uint64, error) {
			return h.StateAt(ctx, id, version)
		},
		stateAtTime: func(ctx context.Context, id string, t time.Time) (any, uint64, error) {
			return h.StateAtTime(ctx, id, t)
		},
	}
}

// Change is one difference between two states: the JSON path (such as
// "balance" or "lines.0.sku") and its value before and after ("" when
// absent).
type Change struct {
	Path string `json:"path"`
	From string `json:"from"`
	To   string `json:"to"`
}

// AggregateState is the answer of GET /api/aggregate.
type AggregateState struct {
	Kind   string `json:"kind"`
	ID     string `json:"id"`
	Stream string `json:"stream"`
	Head   uint64 `json:"head"`
	// Version is the version the state is at; State is the state as JSON.
	Version uint64 `json:"version"`
	State   string `json:"state"`
	// Compare, when asked for, is the other version; Changes the
	// differences from it to Version and Between the events in between.
	Compare uint64     `json:"compare,omitempty"`
	Changes []Change   `json:"changes,omitempty"`
	Between []EventRow `json:"between,omitempty"`
	// Snapshots marks the versions of the stream that have a snapshot in
	// Config.Snapshots, newest first (at most maxSnapshotMarkers);
	// FromSnapshot is the newest at or below Version (0 when none): the
	// state was rebuilt from it when the aggregates use the same store.
	Snapshots    []SnapshotMarker `json:"snapshots,omitempty"`
	FromSnapshot uint64           `json:"from_snapshot,omitempty"`
	// Kinds lists the registered aggregate kinds (for the page's form).
	Kinds []string `json:"kinds"`
}

// SnapshotMarker is a stored snapshot of an aggregate: the version it
// includes and when it was taken.
type SnapshotMarker struct {
	Version uint64    `json:"version"`
	Time    time.Time `json:"time"`
}

// maxSnapshotMarkers caps the snapshots listed for one aggregate.
const maxSnapshotMarkers = 100

// snapshotMarkers lists stream's snapshots, newest first, by loading the
// newest below the previous one.
func (c *Console) snapshotMarkers(ctx context.Context, stream string, head uint64) ([]SnapshotMarker, error) {
	if c.cfg.Snapshots == nil {
		return nil, nil
	}
	var out []SnapshotMarker
	below := head
	for len(out) < maxSnapshotMarkers && below > 0 {
		s, ok, err := c.cfg.Snapshots.Load(ctx, stream, snapshot.AtOrBelow(below))
		if err != nil {
			return nil, fmt.Errorf("console: reading the snapshots of %q: %w", stream, err)
		}
		if !ok {
			break
		}
		out = append(out, SnapshotMarker{Version: s.Version, Time: s.Time})
		below = s.Version - 1
	}
	return out, nil
}

func (c *Console) aggregateKinds() []string {
	out := make([]string, 0, len(c.cfg.Aggregates))
	for _, a := range c.cfg.Aggregates {
		out = append(out, a.kind)
	}
	return out
}

func (c *Console) aggregate(r *http.Request) (any, error) {
	kind, err := stringParam(r, "kind", false)
	if err != nil {
		return nil, err
	}
	out := AggregateState{Kinds: c.aggregateKinds()}
	if kind == "" && r.URL.Query().Get("id") == "" {
		return out, nil // the page's empty form
	}
	i := slices.IndexFunc(c.cfg.Aggregates, func(a AggregateView) bool { return a.kind == kind })
	if i < 0 {
		return nil, notFound("console: no aggregate kind %q is registered (Config.Aggregates: %v)", kind, out.Kinds)
	}
	view := c.cfg.Aggregates[i]
	id, err := stringParam(r, "id", true)
	if err != nil {
		return nil, err
	}
	version, err := uintParam(r, "version", 0)
	if err != nil {
		return nil, err
	}
	compare, err := uintParam(r, "compare", 0)
	if err != nil {
		return nil, err
	}
	at, err := timeParam(r, "time")
	if err != nil {
		return nil, err
	}
	ctx := r.Context()
	out.Kind, out.ID, out.Stream = kind, id, view.stream(id)
	if out.Head, err = c.cfg.Journal.Head(ctx, out.Stream); err != nil {
		return nil, err
	}
	if out.Head == 0 {
		return nil, notFound("console: %s %q has no events", kind, id)
	}
	if version > out.Head || compare > out.Head {
		return nil, notFound("console: %s %q has no version %d (head %d)", kind, id, max(version, compare), out.Head)
	}
	var state any
	switch {
	case !at.IsZero():
		state, out.Version, err = view.stateAtTime(ctx, id, at)
	default:
		if version == 0 {
			version = out.Head
		}
		state, out.Version, err = view.stateAt(ctx, id, version)
	}
	if err != nil {
		return nil, err
	}
	if out.Snapshots, err = c.snapshotMarkers(ctx, out.Stream, out.Head); err != nil {
		return nil, err
	}
	for _, m := range out.Snapshots {
		if m.Version <= out.Version {
			out.FromSnapshot = m.Version
			break
		}
	}
	if out.State, err = prettyJSON(state); err != nil {
		return nil, fmt.Errorf("console: encoding the state of %s %q: %w", kind, id, err)
	}
	if r.URL.Query().Has("compare") {
		other, got, err := view.stateAt(ctx, id, compare)
		if err != nil {
			return nil, err
		}
		out.Compare = got
		if out.Changes, err = diff(other, state); err != nil {
			return nil, err
		}
		lo, hi := min(got, out.Version), max(got, out.Version)
		limit := min(c.cfg.MaxPageSize, int(min(hi-lo, math.MaxInt32)))
		for rec, err := range c.cfg.Journal.Read(ctx, out.Stream, lo+1, hi, limit) {
			if err != nil {
				return nil, err
			}
			out.Between = append(out.Between, rowOf(rec))
		}
	}
	return out, nil
}

// diff compares the JSON forms of a and b, leaf by leaf.
func diff(a, b any) ([]Change, error) {
	fa, err := flatten(a)
	if err != nil {
		return nil, err
	}
	fb, err := flatten(b)
	if err != nil {
		return nil, err
	}
	var out []Change
	for p, va := range fa {
		if vb, ok := fb[p]; !ok || vb != va {
			out = append(out, Change{Path: p, From: va, To: vb})
		}
	}
	for p, vb := range fb {
		if _, ok := fa[p]; !ok {
			out = append(out, Change{Path: p, To: vb})
		}
	}
	slices.SortFunc(out, func(x, y Change) int {
		if x.Path < y.Path {
			return -1
		}
		if x.Path > y.Path {
			return 1
		}
		return 0
	})
	return out, nil
}

func flatten(v any) (map[string]string, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	var tree any
	if err := json.Unmarshal(b, &tree); err != nil {
		return nil, err
	}
	out := map[string]string{}
	var walk func(prefix string, n any)
	walk = func(prefix string, n any) {
		join := func(k string) string {
			if prefix == "" {
				return k
			}
			return prefix + "." + k
		}
		switch n := n.(type) {
		case map[string]any:
			for k, c := range n {
				walk(join(k), c)
			}
		case []any:
			for i, c := range n {
				walk(join(strconv.Itoa(i)), c)
			}
		default:
			leaf, _ := json.Marshal(n)
			if prefix == "" {
				prefix = "(state)"
			}
			out[prefix] = string(leaf)
		}
	}
	walk("", tree)
	return out, nil
}
