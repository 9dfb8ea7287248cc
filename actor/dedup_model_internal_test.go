package actor

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"
)

// modelCmd is a command the model test executed: its id and what the
// cache must answer for it while it is remembered.
type modelCmd struct {
	id       string
	at       int64
	version  uint64 // of its last event
	position uint64
	events   int
}

// dedupModel is the reference the cache is checked against: the
// remembered commands, oldest first, under the same rules (expiry by the
// window, oldest first at the cap), and the journal of every command
// that had events, for restores.
type dedupModel struct {
	lim      dedupLimits
	mem      []modelCmd
	journal  []modelCmd
	byID     map[string]int // index in mem + memBase
	memBase  int
	lastSeen []string // ids executed, for retries
}

func (m *dedupModel) find(id string) (modelCmd, bool) {
	i, ok := m.byID[id]
	if !ok {
		return modelCmd{}, false
	}
	return m.mem[i-m.memBase], true
}

func (m *dedupModel) dropOldest() {
	c := m.mem[0]
	if m.byID[c.id] == m.memBase {
		delete(m.byID, c.id)
	}
	m.mem = m.mem[1:]
	m.memBase++
}

func (m *dedupModel) expire(cutoff int64) {
	for len(m.mem) > 0 && m.mem[0].at < cutoff {
		m.dropOldest()
	}
}

func (m *dedupModel) push(c modelCmd) {
	for len(m.mem) >= m.lim.max {
		m.dropOldest()
	}
	m.mem = append(m.mem, c)
	m.byID[c.id] = m.memBase + len(m.mem) - 1
}

// restore rebuilds the model as recovery rebuilds a cache: from the
// journal's commands stamped at or after cutoff, in order, an id already
// remembered skipped, and a command that follows one with the same id
// taken for more events of it (recovery sees events, not commands).
func (m *dedupModel) restore(cutoff int64) {
	m.mem, m.byID, m.memBase = nil, map[string]int{}, 0
	for _, c := range m.journal {
		if c.at < cutoff {
			continue
		}
		if k := len(m.mem); k > 0 && m.mem[k-1].id == c.id {
			last := &m.mem[k-1]
			last.version, last.position = c.version, c.position
			last.events += c.events
			continue
		}
		m.expire(m.lim.cutoff(c.at))
		if _, ok := m.find(c.id); ok {
			continue
		}
		m.push(c)
	}
}

// checkIndex verifies that the index, when there is one, has a slot for
// every entry and nothing else.
func checkIndex[E any](t *testing.T, d *dedupCache[E], ctx string) {
	t.Helper()
	if d.index.slots == nil {
		require.LessOrEqual(t, d.n, dedupIndexAt, "%s: no index past dedupIndexAt entries", ctx)
		return
	}
	require.Equal(t, d.n, d.index.n, "%s: index count", ctx)
	var want []uint64
	for i := range d.n {
		e := d.at(i)
		want = append(want, dedupWord(e.tag, d.headSeq+uint64(i)))
	}
	var got []uint64
	for _, w := range d.index.slots {
		if w != 0 {
			got = append(got, w)
		}
	}
	slices.Sort(want)
	slices.Sort(got)
	require.Equal(t, want, got, "%s: index slots", ctx)
}

// The cache answers as a plain model of it does, through random commands
// and retries, time passing (expiry), the cap, restores from the journal
// (recovery's addEvent), and ids of every stored form whose hashes are
// forced to collide in part or in full: every retry of a remembered
// command is found with its own result, and no other id is.
func TestDedupCache_MatchesModel_RandomOps(t *testing.T) {
	tags := map[string]func(string) uint64{
		"maphash": idTag,
		// Every slot has the same upper half: one probe run for all.
		"low-32-bits": func(id string) uint64 { return idTag(id) & 0xffff_ffff },
		// Four hashes in all: full collisions, told apart by the ids.
		"four-tags": func(id string) uint64 { return idTag(id) & 3 },
		// Upper halves collide (the slots' candidates), full hashes do not.
		"upper-collide": func(id string) uint64 { return idTag(id)&0x3_ffff_ffff | 0xabc0_0000_0000_0000 },
	}
	for name, tag := range tags {
		for _, max := range []int{3, dedupIndexAt + 1, 16, 100, 700} {
			t.Run(fmt.Sprintf("%s/max=%d", name, max), func(t *testing.T) {
				for s := range uint64(2) {
					seed := s*1000 + uint64(max)
					runDedupModel(t, seed, tag, dedupLimits{window: 1000, max: max})
				}
			})
		}
	}
}

func runDedupModel(t *testing.T, seed uint64, tag func(string) uint64, lim dedupLimits) {
	rng := rand.New(rand.NewPCG(seed, 7))
	m := &dedupModel{lim: lim, byID: map[string]int{}}
	var d dedupCache[int]
	now := int64(0)
	var version, position uint64
	next := 0
	newID := func() string {
		next++
		switch next % 3 {
		case 0:
			return fmt.Sprintf("0190a5b4-0000-7000-8000-%012x", next) // a canonical UUID
		case 1:
			return fmt.Sprint("c", next) // short, inline
		default:
			return fmt.Sprintf("a-longer-command-id-%08d", next) // in the chunk's arena
		}
	}
	steps := 3000
	if testing.Short() {
		steps = 1500
	}
	for step := range steps {
		ctx := fmt.Sprintf("seed %d step %d", seed, step)
		switch r := rng.IntN(1000); {
		case r < 300:
			now += int64(rng.IntN(5))
		case r < 303:
			now += lim.window / 2 // many expire at once
		case r < 310:
			// Restore from the journal, as an aggregate's recovery does.
			cutoff := lim.cutoff(now)
			var rd dedupCache[int]
			for _, c := range m.journal {
				if c.at < cutoff {
					continue
				}
				for k := range c.events {
					v := c.version - uint64(c.events-1-k)
					rd.addEvent(c.id, tag(c.id), 0, v, c.position, c.at, lim)
				}
			}
			m.restore(cutoff)
			d = rd
			checkIndex(t, &d, ctx+" (restored)")
		default:
			// A command: a retry of an earlier one (remembered or not) or
			// a new one.
			var id string
			if len(m.lastSeen) > 0 && rng.IntN(3) == 0 {
				id = m.lastSeen[len(m.lastSeen)-1-rng.IntN(min(len(m.lastSeen), 3*lim.max))]
			} else {
				id = newID()
			}
			cutoff := lim.cutoff(now)
			m.expire(cutoff)
			want, remembered := m.find(id)
			hit, ok := d.get(id, tag(id), cutoff)
			require.Equal(t, remembered, ok, "%s: %q remembered", ctx, id)
			if ok {
				require.Equal(t, want.version, hit.res.Version, "%s: %q", ctx, id)
				require.Equal(t, want.position, hit.res.Position, "%s: %q", ctx, id)
				require.Equal(t, want.events, hit.events, "%s: %q", ctx, id)
				require.Equal(t, id, hit.res.CommandID)
				break
			}
			events := rng.IntN(4) // 0: a command without events, remembered all the same
			version += uint64(events)
			position += uint64(events)
			c := modelCmd{id: id, at: now, version: version, position: position, events: events}
			d.addNew(Result[int]{CommandID: id, Version: version, Position: position, Events: make([]int, events)}, tag(id), now, lim)
			m.expire(lim.cutoff(now))
			m.push(c)
			if events > 0 {
				m.journal = append(m.journal, c)
			}
			m.lastSeen = append(m.lastSeen, id)
		}
		require.Equal(t, len(m.mem), d.len(), "%s: entries", ctx)
		if step%97 == 0 {
			checkIndex(t, &d, ctx)
		}
	}
	// Finally every id ever used is asked for.
	cutoff := lim.cutoff(now)
	for _, id := range m.lastSeen {
		m.expire(cutoff)
		want, remembered := m.find(id)
		hit, ok := d.get(id, tag(id), cutoff)
		require.Equal(t, remembered, ok, "seed %d end: %q remembered", seed, id)
		if ok {
			require.Equal(t, want.version, hit.res.Version, "seed %d end: %q", seed, id)
		}
	}
	checkIndex(t, &d, fmt.Sprintf("seed %d end", seed))
}

// The index on its own: slots inserted and removed at random (FIFO and
// not), with hashes whose homes collide, stay findable until removed, and
// removing one never hides another (backward shift).
func TestDedupIndex_InsertRemove_KeepsEverySlotReachable(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var x dedupIndex
	x.init(0)
	live := map[uint64]uint64{} // seq → tag
	var seq uint64
	for step := range 20000 {
		if len(live) == 0 || rng.IntN(2) == 0 && len(live) < 3000 {
			tag := rng.Uint64() & 0x0000_00ff_0000_0000 // 256 distinct upper halves: long runs
			x.insert(tag, seq)
			live[seq] = tag
			seq++
		} else {
			var victim uint64
			for s := range live { // random
				victim = s
				break
			}
			require.True(t, x.remove(live[victim], victim), "step %d: seq %d", step, victim)
			delete(live, victim)
			require.False(t, x.remove(live[victim], victim), "removed twice")
		}
		if step%101 == 0 {
			require.Equal(t, len(live), x.n)
			for s, tag := range live {
				require.True(t, reachable(&x, dedupWord(tag, s)), "step %d: seq %d unreachable", step, s)
			}
			require.LessOrEqual(t, 2*x.n, len(x.slots), "at most half full")
		}
	}
}

// reachable reports whether w is found by probing from its home.
func reachable(x *dedupIndex, w uint64) bool {
	m := x.mask()
	for i := x.home(uint32(w >> 32)); x.slots[i] != 0; i = (i + 1) & m {
		if x.slots[i] == w {
			return true
		}
	}
	return false
}

// The pending set finds exactly the commands added and not yet removed,
// through random adds and removals (mostly oldest first, as batches
// complete, sometimes another), across its first command held in the set
// itself, its queue on the heap and its map index; and once it outgrew
// its inline slot, that slot keeps no command alive.
func TestPendingSet_MatchesModel_RandomOps(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	var s pendingSet[int]
	var live []*pendingCmd[int] // in arrival order
	next := 0
	for step := range 20000 {
		switch {
		case len(live) == 0 || rng.IntN(100) < 50 && len(live) < 3*pendingIndexAt:
			id := fmt.Sprint("p", next)
			next++
			p := &pendingCmd[int]{tag: idTag(id) & 7, res: Result[int]{CommandID: id}}
			s.add(p)
			live = append(live, p)
		default:
			i := 0
			if rng.IntN(10) == 0 {
				i = rng.IntN(len(live))
			}
			s.remove(live[i])
			live = slices.Delete(live, i, i+1)
		}
		require.Equal(t, len(live), s.len(), "step %d", step)
		if cap(s.q) > 1 {
			require.Nil(t, s.one[0].p, "step %d: the inline slot keeps a command", step)
		}
		for _, p := range live {
			require.Same(t, p, s.get(p.res.CommandID, p.tag), "step %d: %s", step, p.res.CommandID)
		}
		for k := range 3 {
			id := fmt.Sprint("p", next+k) // never added yet
			require.Nil(t, s.get(id, idTag(id)&7))
		}
		if step > 0 && step%5000 == 0 {
			for len(live) > 0 {
				s.remove(live[0])
				live = live[1:]
			}
			require.Zero(t, s.len())
		}
	}
}
