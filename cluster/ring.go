package cluster

import (
	"cmp"
	"encoding/binary"
	"slices"

	"github.com/zeebo/xxh3"
)

// DefaultVNodes is the number of tokens each member places on the ring
// unless told otherwise.
//
// A member's share of the ring is the sum of its V arcs, so it strays from
// 1/n by about 1/sqrt(V), and the busiest of n members by roughly twice
// that. Measured over 200 random ID sets per size (go run ./bench/ring
// -trials 200), the mean max/avg primary slots at 16 nodes is 1.118 for
// V=256, 1.083 for 512, 1.058 for 1024; the share of 3..16-node ID sets
// above 1.10 is up to 65%, 23% and 2%. 1024 is the smallest power of two
// that meets the 1.10 target for nearly every cluster of that size. More
// buys little: from 16 nodes on the tokens outnumber the 16384 slots, and
// the slot grid itself (about 1000 slots a node at n=16, 500 at n=32) keeps
// max/avg near 1.05 and 1.08 whatever V is; meanwhile each token adds build
// time and CLUSTER SLOTS ranges (about 600 a node at n=16 for V=1024).
const DefaultVNodes = 1024

// slotShift places slot s at ring position s<<slotShift, i.e.
// s * 2^64/SlotCount, so the slots sit evenly spaced and their positions do
// not depend on the members.
const slotShift = 64 - 14

// Member is what the ring needs to know of a node.
type Member struct {
	// ID is the node's identity (40 hex characters, as in CLUSTER NODES);
	// it alone decides where the node's tokens fall.
	ID string
	// Addr is the ip:port clients connect to.
	Addr string
	// Bus is the node's gossip port (Redis's cluster bus port, in CLUSTER
	// NODES), kept while a failed node stays on the ring.
	Bus int
}

// SlotRange is a contiguous run of slots sharing one preference list.
type SlotRange struct {
	// Start and End are the first and last slot of the run (End inclusive,
	// as CLUSTER SLOTS reports it).
	Start, End uint16
	// Nodes is the preference list of every slot in the run, primary first.
	// It is shared with the Ring and must not be modified.
	Nodes []Member
}

// Ring maps slots to members by consistent hashing. It is a pure,
// deterministic function of the member set, vnodes and replicas, so every
// node that sees the same membership computes the same placement. A Ring is
// immutable once built and safe for any number of concurrent readers; a nil
// *Ring behaves as an empty one.
type Ring struct {
	members []Member    // sorted by ID, unique IDs
	ranges  []SlotRange // maximal runs, ascending, covering every slot
	// slotRange indexes ranges by slot. Looking a slot up through its run
	// keeps the table at 2 bytes a slot instead of a slice header a slot,
	// and SlotCount runs at most fit in a uint16.
	slotRange []uint16
}

// token is one virtual node: a position on the ring and the index of its
// member in Ring.members.
type token struct {
	pos uint64
	m   uint32
}

// NewRing builds the ring of members, each placing vnodes tokens, with
// preference lists of replicas distinct members (1 = primary only). The
// order of members does not matter. Members sharing an ID count once (the
// one with the smallest Addr is kept, so the result still does not depend on
// the order). vnodes < 1 means DefaultVNodes; replicas < 1 means 1.
func NewRing(members []Member, vnodes int, replicas int) *Ring {
	if vnodes < 1 {
		vnodes = DefaultVNodes
	}
	if replicas < 1 {
		replicas = 1
	}
	ms := slices.Clone(members)
	slices.SortFunc(ms, func(a, b Member) int {
		return cmp.Or(cmp.Compare(a.ID, b.ID), cmp.Compare(a.Addr, b.Addr))
	})
	ms = slices.CompactFunc(ms, func(a, b Member) bool { return a.ID == b.ID })
	r := &Ring{members: ms}
	if len(ms) == 0 {
		return r
	}

	tokens := make([]token, 0, len(ms)*vnodes)
	var buf []byte
	for mi, m := range ms {
		buf = append(append(buf[:0], m.ID...), 0, 0, 0, 0)
		idx := buf[len(m.ID):]
		for i := range vnodes {
			binary.BigEndian.PutUint32(idx, uint32(i))
			tokens = append(tokens, token{pos: xxh3.Hash(buf), m: uint32(mi)})
		}
	}
	// Members are sorted by ID, so breaking position ties by member index
	// breaks them by ID: colliding tokens resolve the same way everywhere.
	slices.SortFunc(tokens, func(a, b token) int {
		if a.pos != b.pos {
			return cmp.Compare(a.pos, b.pos)
		}
		return cmp.Compare(a.m, b.m)
	})

	rf := min(replicas, len(ms))
	var (
		// lists deduplicates preference lists across the whole ring, so a
		// ring with few members and many runs holds each distinct list once
		// and runs can be compared by identity. It is keyed by a hash of the
		// member indices to spare a string allocation per token; a hit is
		// confirmed by comparing members, and a (practically impossible)
		// collision merely leaves a duplicate list unshared.
		lists = make(map[uint64][]Member)
		key   []byte
		idxs  = make([]uint32, 0, rf)
		// seen[m] == gen marks m as already in the list being built; bumping
		// gen clears it for the next list without touching the slice.
		seen = make([]uint32, len(ms))
		gen  uint32
		// arena hands out the lists in chunks: one allocation per list would
		// dominate the build.
		arena []Member
		j     int // first token at or after the current slot's position
		cur   = -1
		pref  []Member
	)
	r.slotRange = make([]uint16, SlotCount)
	for s := range SlotCount {
		pos := uint64(s) << slotShift
		for j < len(tokens) && tokens[j].pos < pos {
			j++
		}
		t := j
		if t == len(tokens) {
			t = 0 // past the last token: wrap around
		}
		if t != cur {
			// Most tokens own one or a few consecutive slots, so the list is
			// worked out once per token, not per slot.
			cur = t
			gen++
			idxs = idxs[:0]
			for k := t; len(idxs) < rf; k = (k + 1) % len(tokens) {
				if m := tokens[k].m; seen[m] != gen {
					seen[m] = gen
					idxs = append(idxs, m)
				}
			}
			key = key[:0]
			for _, m := range idxs {
				key = binary.BigEndian.AppendUint32(key, m)
			}
			h := xxh3.Hash(key)
			if pref = lists[h]; !sameMembers(pref, ms, idxs) {
				if len(arena)+rf > cap(arena) {
					arena = make([]Member, 0, 256*rf)
				}
				pref = arena[len(arena) : len(arena)+rf : len(arena)+rf]
				arena = arena[:len(arena)+rf]
				for i, m := range idxs {
					pref[i] = ms[m]
				}
				if _, taken := lists[h]; !taken {
					lists[h] = pref
				}
			}
		}
		// Identical lists are the same slice (see lists), so comparing the
		// first element's address compares contents.
		if n := len(r.ranges); n > 0 && &r.ranges[n-1].Nodes[0] == &pref[0] {
			r.ranges[n-1].End = uint16(s)
		} else {
			r.ranges = append(r.ranges, SlotRange{Start: uint16(s), End: uint16(s), Nodes: pref})
		}
		r.slotRange[s] = uint16(len(r.ranges) - 1)
	}
	r.ranges = slices.Clip(r.ranges)
	return r
}

// Owner returns the primary of slot (which must be below SlotCount), or the
// zero Member if the ring is empty.
func (r *Ring) Owner(slot uint16) Member {
	if r.Empty() {
		return Member{}
	}
	nodes := r.ranges[r.slotRange[slot]].Nodes
	if len(nodes) == 0 {
		return Member{}
	}
	return nodes[0]
}

// Preference returns the preference list of slot (which must be below
// SlotCount): its primary, then the next replicas-1 distinct members
// clockwise, fewer if the ring has fewer members; nil if it is empty. The
// slice is shared with the Ring, so the lookup never allocates; callers must
// not modify it.
func (r *Ring) Preference(slot uint16) []Member {
	if r.Empty() {
		return nil
	}
	return r.ranges[r.slotRange[slot]].Nodes
}

// Members returns the members sorted by ID, in a new slice.
func (r *Ring) Members() []Member {
	if r == nil {
		return nil
	}
	return slices.Clone(r.members)
}

// Ranges returns the maximal runs of consecutive slots sharing a preference
// list, ascending and covering 0..SlotCount-1 exactly once, or nil for an
// empty ring. The slice is new; the Nodes in it are shared with the Ring and
// must not be modified.
func (r *Ring) Ranges() []SlotRange {
	if r == nil {
		return nil
	}
	return slices.Clone(r.ranges)
}

// PrimarySlots returns, ascending, the ranges whose primary is the member
// with the given ID, or nil if it is primary for none. The Nodes in them are
// shared with the Ring and must not be modified.
func (r *Ring) PrimarySlots(id string) []SlotRange {
	if r == nil {
		return nil
	}
	var out []SlotRange
	for _, sr := range r.ranges {
		if len(sr.Nodes) == 0 || sr.Nodes[0].ID != id {
			continue
		}
		// Neighbouring ranges of one primary (a failover leaves the dead
		// node's ranges next to the new primary's own) read as one.
		if n := len(out); n > 0 && out[n-1].End+1 == sr.Start {
			out[n-1].End = sr.End
			continue
		}
		out = append(out, sr)
	}
	return out
}

// Len returns the number of members.
func (r *Ring) Len() int {
	if r == nil {
		return 0
	}
	return len(r.members)
}

// Empty reports whether the ring has no members, in which case no slot has
// an owner.
func (r *Ring) Empty() bool {
	return r.Len() == 0
}

// sameMembers reports whether list holds exactly ms[idxs[0]], ms[idxs[1]], ...
func sameMembers(list, ms []Member, idxs []uint32) bool {
	if len(list) != len(idxs) {
		return false
	}
	for i, m := range idxs {
		if list[i].ID != ms[m].ID {
			return false
		}
	}
	return true
}

// ringFromLists builds a Ring whose node list for each slot is list(slot)
// (primary first; empty for a slot nobody serves), merging consecutive
// equal lists into ranges. list may reuse its result's backing array
// between calls: the lists are copied.
func ringFromLists(members []Member, list func(slot uint16) []Member) *Ring {
	ms := slices.Clone(members)
	slices.SortFunc(ms, func(a, b Member) int {
		return cmp.Or(cmp.Compare(a.ID, b.ID), cmp.Compare(a.Addr, b.Addr))
	})
	ms = slices.CompactFunc(ms, func(a, b Member) bool { return a.ID == b.ID })
	r := &Ring{members: ms, slotRange: make([]uint16, SlotCount)}
	if len(ms) == 0 {
		return r
	}
	for s := range SlotCount {
		l := list(uint16(s))
		if n := len(r.ranges); n > 0 && slices.Equal(r.ranges[n-1].Nodes, l) {
			r.ranges[n-1].End = uint16(s)
		} else {
			r.ranges = append(r.ranges, SlotRange{Start: uint16(s), End: uint16(s), Nodes: slices.Clone(l)})
		}
		r.slotRange[s] = uint16(len(r.ranges) - 1)
	}
	r.ranges = slices.Clip(r.ranges)
	return r
}
