package cluster

import (
	"slices"
	"strings"
	"sync/atomic"

	protocluster "github.com/asynkron/protoactor-go/cluster"

	"github.com/orchestrix/orchestrix/cluster/internal/wire"
)

// peer is one member of a view.
type peer struct {
	id, addr string
	kinds    []string // Orchestrix kind names this member hosts
}

func (p peer) hosts(kind string) bool { return slices.Contains(p.kinds, kind) }

// placement is a set of members over which ids are placed by rendezvous
// hashing: the same function as protoactor-go's Rendezvous (FNV-1a 32 of
// the id then the member's address, highest score wins, members filtered
// by kind), without its locks, over members sorted by address so that
// every member breaks a tie the same way.
type placement []peer

func newPlacement(ps []peer) placement {
	ps = slices.Clone(ps)
	slices.SortFunc(ps, func(a, b peer) int { return strings.Compare(a.addr, b.addr) })
	return placement(ps)
}

// owner returns the address of the owner of kind/id, "" when no member
// hosts kind. skip, when not "", is left out.
func (pl placement) owner(kind, id, skip string) string {
	var best string
	var bestScore uint32
	for _, p := range pl {
		if p.addr == skip || !p.hosts(kind) {
			continue
		}
		if s := score(id, p.addr); best == "" || s > bestScore {
			best, bestScore = p.addr, s
		}
	}
	return best
}

// score is FNV-1a 32 over id then addr.
func score(id, addr string) uint32 {
	h := uint32(2166136261)
	for i := 0; i < len(id); i++ {
		h ^= uint32(id[i])
		h *= 16777619
	}
	for i := 0; i < len(addr); i++ {
		h ^= uint32(addr[i])
		h *= 16777619
	}
	return h
}

// claim is a handoff this member granted in the current epoch: the
// member at addr owns, in its placement pl, the ids this member released
// to it, and this member refuses them (and sends its own callers there)
// until its view changes.
type claim struct {
	id, addr string // the requester's member id and address
	epoch    uint64 // the requester's epoch: only its newest claim counts
	pl       placement
}

// epoch is the handoff round of one view: settled is closed when every
// other member of the view has acknowledged releasing the ids this member
// owns in it, or when the round gave up (ok false: the journal's version
// check is then the only fence for the ids this member gained).
type epoch struct {
	n       uint64
	settled chan struct{}
	ok      atomic.Bool
}

func (e *epoch) isSettled() bool {
	select {
	case <-e.settled:
		return true
	default:
		return false
	}
}

// view is what this member knows of the cluster at one moment. A view is
// immutable once published (Member.cur); every change publishes a copy.
type view struct {
	self string // this member's address
	pl   placement
	// left are the member ids of members that announced a graceful leave;
	// they are out of the placement even while the provider lists them.
	left []string
	// out: this member takes no ids (fenced, or leaving): it is left out
	// of its own placement and refuses every id.
	out bool
	// claims are the handoffs granted in this epoch.
	claims []claim
	ep     *epoch
	// prev is the view before this epoch (its own prev dropped), and
	// prevOK whether its handoff round succeeded: an id this member owned
	// in prev, in a successful round, needs no new round to be served.
	prev   *view
	prevOK bool
}

// owner returns the address of the member that owns kind/id in v, as this
// member places it for its own callers.
func (v *view) owner(kind, id string) string {
	for _, c := range v.claims {
		if c.addr != v.self && c.pl.owner(kind, id, "") == c.addr && v.pl.hasAddr(c.addr) {
			return c.addr
		}
	}
	skip := ""
	if v.out {
		skip = v.self
	}
	if len(v.left) == 0 {
		return v.pl.owner(kind, id, skip)
	}
	pl := make(placement, 0, len(v.pl))
	for _, p := range v.pl {
		if !slices.Contains(v.left, p.id) {
			pl = append(pl, p)
		}
	}
	return pl.owner(kind, id, skip)
}

func (pl placement) hasID(id string) bool {
	return slices.ContainsFunc(pl, func(p peer) bool { return p.id == id })
}

func (pl placement) hasAddr(addr string) bool {
	return slices.ContainsFunc(pl, func(p peer) bool { return p.addr == addr })
}

// owns reports whether this member owns kind/id in v.
func (v *view) owns(kind, id string) bool { return v.owner(kind, id) == v.self }

// ready reports whether this member may serve kind/id, which it owns in
// v, without waiting for the epoch's handoff round: it owned the id in the
// previous view, whose round succeeded, or this round has ended.
func (v *view) ready(kind, id string) bool {
	// Settled first: the common case, and cheaper than placing the id.
	return v.ep.isSettled() || v.prevOK && v.prev != nil && v.prev.owns(kind, id)
}

// others returns the members of v other than this one and the leavers.
func (v *view) others() []peer {
	var out []peer
	for _, p := range v.pl {
		if p.addr != v.self && !slices.Contains(v.left, p.id) {
			out = append(out, p)
		}
	}
	return out
}

// size is how many members v counts (this one included, leavers not).
func (v *view) size() int {
	n := 0
	for _, p := range v.pl {
		if !slices.Contains(v.left, p.id) {
			n++
		}
	}
	return n
}

// next returns a copy of v for a new epoch with placement pl: claims are
// dropped (they last until this member's view changes) and v becomes the
// previous view.
func (v *view) next(n uint64, pl placement) *view {
	prev := *v
	prev.prev = nil
	nv := &view{self: v.self, pl: pl, out: v.out, ep: &epoch{n: n, settled: make(chan struct{})},
		prev: &prev, prevOK: v.ep.isSettled() && v.ep.ok.Load()}
	for _, id := range v.left {
		if pl.hasID(id) {
			nv.left = append(nv.left, id)
		}
	}
	return nv
}

// withClaim returns a copy of v (same epoch) that grants c, in place of
// an older claim of the same member (by member id: a member restarted at
// the same address numbers its epochs afresh); it returns v when that
// member already has a newer claim.
func (v *view) withClaim(c claim) *view {
	nv := *v
	nv.claims = make([]claim, 0, len(v.claims)+1)
	for _, old := range v.claims {
		if old.id != c.id {
			nv.claims = append(nv.claims, old)
		} else if old.epoch > c.epoch {
			return v
		}
	}
	nv.claims = append(nv.claims, c)
	return &nv
}

// peersOf converts protoactor-go members to peers, keeping only the
// Orchestrix kinds.
func peersOf(ms []*protocluster.Member) []peer {
	out := make([]peer, 0, len(ms))
	for _, m := range ms {
		p := peer{id: m.Id, addr: m.Address()}
		for _, k := range m.Kinds {
			if name, ok := strings.CutPrefix(k, kindPrefix); ok {
				p.kinds = append(p.kinds, name)
			}
		}
		out = append(out, p)
	}
	return out
}

func (pl placement) wire() []*wire.Peer {
	out := make([]*wire.Peer, 0, len(pl))
	for _, p := range pl {
		out = append(out, &wire.Peer{Id: p.id, Address: p.addr, Kinds: p.kinds})
	}
	return out
}

func placementOf(ps []*wire.Peer) placement {
	out := make([]peer, 0, len(ps))
	for _, p := range ps {
		out = append(out, peer{id: p.GetId(), addr: p.GetAddress(), kinds: p.GetKinds()})
	}
	return newPlacement(out)
}
