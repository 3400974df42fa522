package cluster

import (
	"crypto/sha1"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"sort"
	"testing"

	"github.com/zeebo/xxh3"
)

// fixedMembers returns n members with IDs sha1("node-i"), so balance is
// asserted on one known draw rather than on whatever a seed produces.
func fixedMembers(n int) []Member {
	ms := make([]Member, n)
	for i := range ms {
		h := sha1.Sum(fmt.Appendf(nil, "node-%d", i))
		ms[i] = Member{ID: hex.EncodeToString(h[:]), Addr: fmt.Sprintf("10.0.0.%d:6379", i)}
	}
	return ms
}

// randomMembers returns n members with random 40-hex-character IDs.
func randomMembers(rng *rand.Rand, n int) []Member {
	ms := make([]Member, n)
	for i := range ms {
		var b [20]byte
		for k := range b {
			b[k] = byte(rng.Uint32())
		}
		ms[i] = Member{ID: hex.EncodeToString(b[:]), Addr: fmt.Sprintf("10.0.%d.%d:6379", i/256, i%256)}
	}
	return ms
}

// referencePreference computes slot's preference list the slow, obvious way
// (all tokens, binary search, walk), independently of NewRing's moving
// pointer and list sharing.
func referencePreference(members []Member, vnodes, replicas int, slot uint16) []Member {
	type tok struct {
		pos uint64
		m   Member
	}
	var toks []tok
	for _, m := range members {
		for i := range vnodes {
			b := append([]byte(m.ID), byte(i>>24), byte(i>>16), byte(i>>8), byte(i))
			toks = append(toks, tok{xxh3.Hash(b), m})
		}
	}
	sort.Slice(toks, func(a, b int) bool {
		if toks[a].pos != toks[b].pos {
			return toks[a].pos < toks[b].pos
		}
		return toks[a].m.ID < toks[b].m.ID
	})
	pos := uint64(slot) * (1 << 64 / SlotCount)
	start := sort.Search(len(toks), func(i int) bool { return toks[i].pos >= pos })
	var out []Member
	for k := 0; k < len(toks) && len(out) < min(replicas, len(members)); k++ {
		m := toks[(start+k)%len(toks)].m
		if !slices.Contains(out, m) {
			out = append(out, m)
		}
	}
	return out
}

func TestRingEmpty(t *testing.T) {
	tests := []struct {
		name string
		ring *Ring
	}{
		{"no members", NewRing(nil, 16, 3)},
		{"empty slice", NewRing([]Member{}, 0, 0)},
		{"nil ring", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := tt.ring
			if !r.Empty() || r.Len() != 0 {
				t.Errorf("Empty() = %v, Len() = %d; want true, 0", r.Empty(), r.Len())
			}
			if got := r.Owner(0); got != (Member{}) {
				t.Errorf("Owner(0) = %+v, want zero Member", got)
			}
			if got := r.Preference(SlotCount - 1); got != nil {
				t.Errorf("Preference = %v, want nil", got)
			}
			if got := r.Ranges(); got != nil {
				t.Errorf("Ranges = %v, want nil", got)
			}
			if got := r.Members(); len(got) != 0 {
				t.Errorf("Members = %v, want none", got)
			}
			if got := r.PrimarySlots("x"); got != nil {
				t.Errorf("PrimarySlots = %v, want nil", got)
			}
		})
	}
}

func TestRingDeterministic(t *testing.T) {
	tests := []struct {
		n, vnodes, replicas int
	}{
		{1, 16, 1},
		{2, 64, 3},
		{5, 128, 3},
		{16, 256, 2},
		{32, 16, 3},
	}
	rng := rand.New(rand.NewPCG(1, 1))
	for _, tt := range tests {
		t.Run(fmt.Sprintf("n=%d/V=%d/RF=%d", tt.n, tt.vnodes, tt.replicas), func(t *testing.T) {
			ms := randomMembers(rng, tt.n)
			want := NewRing(ms, tt.vnodes, tt.replicas)
			for range 4 {
				shuffled := slices.Clone(ms)
				rng.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
				got := NewRing(shuffled, tt.vnodes, tt.replicas)
				if !reflect.DeepEqual(got.Ranges(), want.Ranges()) {
					t.Fatalf("Ranges differ for member order %v", shuffled)
				}
				if !reflect.DeepEqual(got.Members(), want.Members()) {
					t.Fatalf("Members differ for member order %v", shuffled)
				}
			}
		})
	}
}

func TestRingDuplicateMembers(t *testing.T) {
	ms := fixedMembers(4)
	dup := ms[2]
	dup.Addr = "10.0.0.0:1" // sorts before ms[2].Addr, so this one is kept
	withDup := append(slices.Clone(ms), dup, ms[0])
	want := NewRing(append(slices.Clone(ms[:2]), dup, ms[3]), 64, 2)
	reversed := slices.Clone(withDup)
	slices.Reverse(reversed)
	for _, order := range [][]Member{withDup, reversed} {
		got := NewRing(order, 64, 2)
		if got.Len() != 4 {
			t.Fatalf("Len = %d, want 4", got.Len())
		}
		if !reflect.DeepEqual(got.Ranges(), want.Ranges()) {
			t.Fatalf("duplicate IDs changed placement depending on order")
		}
	}
}

func TestRingCoverage(t *testing.T) {
	tests := []struct {
		n, vnodes, replicas int
	}{
		{1, 1, 1},
		{1, 16, 3},
		{2, 1, 3},
		{2, 64, 3},
		{3, 4, 3},
		{5, 128, 3},
		{8, 256, 1},
		{16, DefaultVNodes, 3},
		{32, 512, 5},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("n=%d/V=%d/RF=%d", tt.n, tt.vnodes, tt.replicas), func(t *testing.T) {
			ms := fixedMembers(tt.n)
			r := NewRing(ms, tt.vnodes, tt.replicas)
			if r.Len() != tt.n || r.Empty() {
				t.Fatalf("Len = %d, Empty = %v; want %d, false", r.Len(), r.Empty(), tt.n)
			}
			ranges := r.Ranges()
			next := 0
			for i, sr := range ranges {
				if int(sr.Start) != next || sr.End < sr.Start {
					t.Fatalf("range %d is %d..%d, want it to start at %d", i, sr.Start, sr.End, next)
				}
				if i > 0 && reflect.DeepEqual(ranges[i-1].Nodes, sr.Nodes) {
					t.Fatalf("ranges %d and %d have the same nodes; runs should be maximal", i-1, i)
				}
				for s := int(sr.Start); s <= int(sr.End); s++ {
					if got := r.Preference(uint16(s)); !reflect.DeepEqual(got, sr.Nodes) {
						t.Fatalf("slot %d: Preference = %v, range says %v", s, got, sr.Nodes)
					}
					if got := r.Owner(uint16(s)); got != sr.Nodes[0] {
						t.Fatalf("slot %d: Owner = %v, range says %v", s, got, sr.Nodes[0])
					}
				}
				next = int(sr.End) + 1
			}
			if next != SlotCount {
				t.Fatalf("ranges end at %d, want %d", next-1, SlotCount-1)
			}
			// PrimarySlots partitions the slots by primary (touching
			// ranges of one primary merged).
			var owner [SlotCount]string
			for _, m := range r.Members() {
				for _, sr := range r.PrimarySlots(m.ID) {
					for s := int(sr.Start); s <= int(sr.End); s++ {
						if owner[s] != "" {
							t.Fatalf("slot %d in the PrimarySlots of %s and %s", s, owner[s], m.ID)
						}
						owner[s] = m.ID
					}
				}
			}
			for s := range SlotCount {
				if want := r.Owner(uint16(s)).ID; owner[s] != want {
					t.Fatalf("slot %d: PrimarySlots say %q, Owner %q", s, owner[s], want)
				}
			}
		})
	}
}

func TestRingPreference(t *testing.T) {
	tests := []struct {
		n, vnodes, replicas int
	}{
		{1, 8, 3},
		{2, 8, 3},
		{3, 8, 3},
		{4, 32, 2},
		{6, 16, 6},
		{7, 64, 10},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("n=%d/V=%d/RF=%d", tt.n, tt.vnodes, tt.replicas), func(t *testing.T) {
			ms := fixedMembers(tt.n)
			r := NewRing(ms, tt.vnodes, tt.replicas)
			wantLen := min(tt.replicas, tt.n)
			for s := range SlotCount {
				got := r.Preference(uint16(s))
				if len(got) != wantLen {
					t.Fatalf("slot %d: %d nodes, want %d", s, len(got), wantLen)
				}
				if got[0] != r.Owner(uint16(s)) {
					t.Fatalf("slot %d: first node %v is not the owner %v", s, got[0], r.Owner(uint16(s)))
				}
				for i := range got {
					if slices.Contains(got[:i], got[i]) {
						t.Fatalf("slot %d: %v repeats a node", s, got)
					}
				}
				// The slow oracle is too slow for every slot; a stride that
				// is prime to SlotCount still hits every part of the ring.
				if s%61 == 0 {
					if want := referencePreference(ms, tt.vnodes, tt.replicas, uint16(s)); !reflect.DeepEqual(got, want) {
						t.Fatalf("slot %d: Preference = %v, reference %v", s, got, want)
					}
				}
			}
		})
	}
}

func TestRingMembers(t *testing.T) {
	ms := fixedMembers(6)
	r := NewRing(ms, 8, 1)
	got := r.Members()
	if !slices.IsSortedFunc(got, func(a, b Member) int { return cmpString(a.ID, b.ID) }) {
		t.Fatalf("Members not sorted by ID: %v", got)
	}
	got[0].ID = "changed"
	if r.Members()[0].ID == "changed" {
		t.Fatalf("Members exposes the ring's own slice")
	}
	ms[1].ID = "changed"
	if slices.ContainsFunc(r.Members(), func(m Member) bool { return m.ID == "changed" }) {
		t.Fatalf("the ring keeps the caller's slice")
	}
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// TestRingBalance holds DefaultVNodes to its purpose: no node of a 3..16
// node cluster gets more than 10% above its fair share of primary slots.
func TestRingBalance(t *testing.T) {
	tests := []struct {
		n      int
		maxAvg float64
	}{}
	for n := 3; n <= 16; n++ {
		tests = append(tests, struct {
			n      int
			maxAvg float64
		}{n, 1.10})
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("n=%d", tt.n), func(t *testing.T) {
			r := NewRing(fixedMembers(tt.n), DefaultVNodes, 1)
			most := 0
			for _, m := range r.Members() {
				slots := 0
				for _, sr := range r.PrimarySlots(m.ID) {
					slots += int(sr.End-sr.Start) + 1
				}
				most = max(most, slots)
			}
			if got := float64(most) * float64(tt.n) / SlotCount; got > tt.maxAvg {
				t.Errorf("max/avg primary slots = %.3f, want <= %.2f", got, tt.maxAvg)
			}
		})
	}
}

// isPrefixWithout reports whether list with drop removed is a prefix of
// of: a consistent-hash change may insert or remove one node in a
// preference list, shifting the rest down, but never reorder it.
func isPrefixWithout(list []Member, drop string, of []Member) bool {
	i := 0
	for _, m := range list {
		if m.ID == drop {
			continue
		}
		if i >= len(of) || of[i] != m {
			return false
		}
		i++
	}
	return true
}

// TestRingMovement checks the point of consistent hashing: a joining node
// takes about 1/(n+1) of the slots, all of them for itself, and a leaving
// node hands over only its own slots; preference lists only gain or lose
// that one node.
func TestRingMovement(t *testing.T) {
	const trials = 6
	tests := []struct {
		n, replicas int
	}{
		{3, 3},
		{5, 2},
		{8, 3},
		{16, 3},
	}
	rng := rand.New(rand.NewPCG(2, 2))
	for _, tt := range tests {
		t.Run(fmt.Sprintf("n=%d", tt.n), func(t *testing.T) {
			var joinMoved, leaveMoved float64
			for range trials {
				ms := randomMembers(rng, tt.n+1)
				before := NewRing(ms[:tt.n], DefaultVNodes, tt.replicas)
				after := NewRing(ms, DefaultVNodes, tt.replicas)
				joiner := ms[tt.n].ID
				leaver := ms[rng.IntN(tt.n)].ID
				left := NewRing(slices.DeleteFunc(slices.Clone(ms[:tt.n]), func(m Member) bool { return m.ID == leaver }), DefaultVNodes, tt.replicas)
				for s := range uint16(SlotCount) {
					old, cur := before.Preference(s), after.Preference(s)
					if old[0] != cur[0] {
						joinMoved++
						if cur[0].ID != joiner {
							t.Fatalf("join: slot %d moved from %s to %s, not to the new node", s, old[0].ID, cur[0].ID)
						}
					}
					if !isPrefixWithout(cur, joiner, old) {
						t.Fatalf("join: slot %d preference %v -> %v is more than inserting the new node", s, old, cur)
					}
					gone := left.Preference(s)
					if old[0] != gone[0] {
						leaveMoved++
						if old[0].ID != leaver {
							t.Fatalf("leave: slot %d moved from %s, which did not leave", s, old[0].ID)
						}
					}
					if !isPrefixWithout(old, leaver, gone) {
						t.Fatalf("leave: slot %d preference %v -> %v is more than dropping the leaver", s, old, gone)
					}
				}
			}
			checkNear := func(what string, moved float64, ideal float64) {
				got := moved / (trials * SlotCount)
				if rel := got/ideal - 1; rel < -0.10 || rel > 0.10 {
					t.Errorf("%s moved %.4f of the slots, want within 10%% of %.4f", what, got, ideal)
				}
			}
			checkNear("join", joinMoved, 1/float64(tt.n+1))
			checkNear("leave", leaveMoved, 1/float64(tt.n))
		})
	}
}

// TestRingLookupAllocs guards the promise that lookups on the request path
// never allocate.
func TestRingLookupAllocs(t *testing.T) {
	r := NewRing(fixedMembers(5), 64, 3)
	var sink int
	allocs := testing.AllocsPerRun(100, func() {
		for s := range uint16(SlotCount) {
			sink += len(r.Preference(s)) + len(r.Owner(s).ID)
		}
	})
	if allocs != 0 {
		t.Fatalf("Owner/Preference allocated %.1f times per pass", allocs)
	}
	_ = sink
}

func BenchmarkOwner(b *testing.B) {
	r := NewRing(fixedMembers(32), DefaultVNodes, 3)
	var sink int
	s := uint16(0)
	for b.Loop() {
		sink += len(r.Owner(s).Addr)
		s = (s + 7919) % SlotCount // jump around so it is not one cached range
	}
	_ = sink
}

func BenchmarkPreference(b *testing.B) {
	r := NewRing(fixedMembers(32), DefaultVNodes, 3)
	var sink int
	s := uint16(0)
	for b.Loop() {
		sink += len(r.Preference(s))
		s = (s + 7919) % SlotCount
	}
	_ = sink
}

func BenchmarkNewRing(b *testing.B) {
	ms := fixedMembers(32)
	for _, v := range []int{256, DefaultVNodes} {
		b.Run(fmt.Sprintf("n=32/V=%d", v), func(b *testing.B) {
			for b.Loop() {
				NewRing(ms, v, 3)
			}
		})
	}
}

// TestPrimarySlotsMergesNeighbours checks that a primary's ranges that
// touch are reported as one, as after a failover a dead node's ranges lie
// next to the new primary's own with other replicas.
func TestPrimarySlotsMergesNeighbours(t *testing.T) {
	a, b, c := Member{ID: "a"}, Member{ID: "b"}, Member{ID: "c"}
	r := ringFromLists([]Member{a, b, c}, func(slot uint16) []Member {
		switch {
		case slot < 24:
			return []Member{a, b}
		case slot < 32:
			return []Member{b, c} // the dead node's, taken over by b
		case slot < 42:
			return []Member{b, a} // b's own
		}
		return []Member{c, a}
	})
	got := r.PrimarySlots("b")
	if len(got) != 1 || got[0].Start != 24 || got[0].End != 41 {
		t.Fatalf("PrimarySlots(b) = %+v, want one range 24-41", got)
	}
	if n := len(r.Ranges()); n != 4 {
		t.Fatalf("%d ranges, want 4 (their node lists differ)", n)
	}
}
