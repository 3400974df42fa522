package storage

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"
)

// limited returns options with maxmemory max and policy p.
func limited(max int64, p Policy) func(*Options) {
	return func(o *Options) {
		o.InMemory, o.Dir = true, ""
		o.Memory = DefaultMemoryConfig()
		o.Memory.MaxMemory, o.Memory.Policy = max, p
	}
}

// fill writes n keys named prefix+i with 100-byte values (all but every
// plainEvery-th with a TTL of an hour, if plainEvery > 0), 100 per
// submission.
func fill(t *testing.T, s *Store, prefix string, n, plainEvery int) {
	t.Helper()
	val := make([]byte, 100)
	for i := 0; i < n; i += 100 {
		err := s.Do(func(tx *Tx) {
			for j := i; j < min(i+100, n); j++ {
				var at int64
				if plainEvery > 0 && j%plainEvery != 0 {
					at = tx.Now() + time.Hour.Milliseconds() + int64(j)
				}
				tx.Set(uint16(j%SlotCount), fmt.Appendf(nil, "%s%d", prefix, j), val, at)
			}
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}

func exists(s *Store, prefix string, i int) bool {
	_, ok := s.Lookup(uint16(i%SlotCount), fmt.Appendf(nil, "%s%d", prefix, i), nil)
	return ok
}

// TestEvictionKeepsMemoryUnderTheLimit floods a store ten times over its
// limit under each evicting policy and checks that memory stays at the
// limit, that keys were evicted, and what each policy promises.
func TestEvictionKeepsMemoryUnderTheLimit(t *testing.T) {
	const max = 4 << 20
	for _, p := range []Policy{AllKeysLRU, AllKeysLFU, AllKeysRandom, VolatileLRU, VolatileLFU, VolatileRandom, VolatileTTL} {
		t.Run(p.String(), func(t *testing.T) {
			s := newStore(t, limited(max, p))
			var mu sync.Mutex
			var handed []Mutation
			s.SetEvictionHandler(func(muts []Mutation) {
				mu.Lock()
				handed = append(handed, muts...)
				mu.Unlock()
			})
			// Nine keys in ten have a TTL, so the volatile policies can
			// evict; the others take a third of the limit.
			n := 10 * max / 250
			fill(t, s, "k", n, 10)
			// A barrier: the eviction right after the last batch is done.
			if err := s.Do(func(*Tx) {}); err != nil {
				t.Fatal(err)
			}
			if used := s.UsedMemory(); used > max*11/10 {
				t.Errorf("used %d bytes with maxmemory %d", used, max)
			}
			ev := s.Evicted()
			if ev == 0 {
				t.Fatal("nothing evicted")
			}
			mu.Lock()
			if int64(len(handed)) != ev {
				t.Errorf("evicted %d keys, the handler got %d", ev, len(handed))
			}
			for _, m := range handed {
				if !m.Rec.Tombstone || m.Rec.Version == 0 {
					t.Fatalf("handed %+v, want a versioned tombstone", m)
				}
			}
			mu.Unlock()
			if p.volatile() {
				for i := 0; i < n; i += 10 {
					if !exists(s, "k", i) {
						t.Fatalf("%v evicted k%d, which has no TTL", p, i)
					}
				}
			}
			if s.OverMemoryLimit() {
				t.Error("OverMemoryLimit with keys left to evict")
			}
		})
	}
}

// TestVolatileTTLEvictsTheNearestExpiryFirst checks volatile-ttl's promise,
// which here is exact: keys that expire sooner go before keys that expire
// later. Keys are written in shuffled order, then the limit is lowered.
func TestVolatileTTLEvictsTheNearestExpiryFirst(t *testing.T) {
	s := newStore(t, limited(1<<30, VolatileTTL))
	const n = 20000
	order := rand.New(rand.NewPCG(3, 4)).Perm(n)
	val := make([]byte, 100)
	for i := 0; i < n; i += 100 {
		err := s.Do(func(tx *Tx) {
			for _, j := range order[i : i+100] {
				tx.Set(uint16(j%SlotCount), fmt.Appendf(nil, "k%d", j), val, tx.Now()+time.Hour.Milliseconds()+int64(j)*1000)
			}
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	cfg := s.MemoryConfig()
	cfg.MaxMemory = s.UsedMemory() / 3
	if err := s.SetMemoryConfig(cfg); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "eviction down to the new limit", func() bool { return s.UsedMemory() <= cfg.MaxMemory })
	kept := 0
	for i := range n {
		if exists(s, "k", i) {
			kept++
		}
	}
	if kept == 0 || kept == n {
		t.Fatalf("%d of %d keys kept", kept, n)
	}
	for i := range n {
		if want := i >= n-kept; exists(s, "k", i) != want {
			t.Fatalf("k%d kept: %v; want the %d latest expiring (k%d on) kept", i, !want, kept, n-kept)
		}
	}
}

// TestNoEvictionRefusesAtTheLimit checks noeviction and a volatile policy
// with nothing to evict: memory grows past the limit only by the last
// batch, then OverMemoryLimit says to refuse, and deletes bring it back.
func TestNoEvictionRefusesAtTheLimit(t *testing.T) {
	const max = 1 << 20
	for _, p := range []Policy{NoEviction, VolatileLRU} {
		t.Run(p.String(), func(t *testing.T) {
			s := newStore(t, limited(max, p))
			n := 2 * max / 250
			fill(t, s, "k", n, 0)
			if s.Evicted() != 0 {
				t.Fatalf("%v evicted %d keys", p, s.Evicted())
			}
			// The next batch finds nothing to evict.
			fill(t, s, "x", 1, 0)
			if !s.OverMemoryLimit() {
				t.Fatalf("used %d of %d, yet not over the limit", s.UsedMemory(), int64(max))
			}
			err := s.Do(func(tx *Tx) {
				for i := range n {
					tx.Delete(uint16(i%SlotCount), fmt.Appendf(nil, "k%d", i))
				}
			})
			if err != nil {
				t.Fatal(err)
			}
			// The tombstones stay a while but take far less.
			waitFor(t, "the store to be under its limit", func() bool {
				fill(t, s, "y", 1, 0)
				return !s.OverMemoryLimit()
			})
		})
	}
}

// TestHotKeysSurviveAFlood reads a small set of keys continuously while a
// flood of other keys is written far past the limit, and checks that LRU
// and LFU keep (nearly all of) the hot set.
func TestHotKeysSurviveAFlood(t *testing.T) {
	const max = 4 << 20
	for _, p := range []Policy{AllKeysLRU, AllKeysLFU} {
		t.Run(p.String(), func(t *testing.T) {
			s := newStore(t, limited(max, p))
			const hot = 500
			fill(t, s, "hot", hot, 0)
			val := make([]byte, 100)
			for round := range 100 {
				for i := range hot {
					s.Lookup(uint16(i%SlotCount), fmt.Appendf(nil, "hot%d", i), nil)
				}
				err := s.Do(func(tx *Tx) {
					for j := range 1000 {
						k := round*1000 + j
						tx.Set(uint16(k%SlotCount), fmt.Appendf(nil, "cold%d", k), val, 0)
					}
				})
				if err != nil {
					t.Fatal(err)
				}
				if p == AllKeysLRU {
					time.Sleep(lruUnit) // Let the LRU clock tell rounds apart.
				}
			}
			lost := 0
			for i := range hot {
				if !exists(s, "hot", i) {
					lost++
				}
			}
			if s.Evicted() < 50000 {
				t.Fatalf("only %d keys evicted", s.Evicted())
			}
			if lost > hot/50 {
				t.Errorf("%v lost %d of %d hot keys", p, lost, hot)
			}
		})
	}
}

// TestLoweringMaxMemoryEvicts lowers the limit of an idle store and checks
// that the background evicts down to it, and only from evictable slots.
func TestLoweringMaxMemoryEvicts(t *testing.T) {
	s := newStore(t, limited(64<<20, AllKeysLRU))
	fill(t, s, "k", 20000, 0)
	for slot := range uint16(SlotCount) {
		s.SetEvictable(slot, slot%2 == 0)
	}
	before := s.UsedMemory()
	cfg := s.MemoryConfig()
	cfg.MaxMemory = before * 2 / 3
	if err := s.SetMemoryConfig(cfg); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "eviction down to the new limit", func() bool { return s.UsedMemory() <= cfg.MaxMemory })
	for i := 1; i < 20000; i += 2 {
		if !exists(s, "k", i) {
			t.Fatalf("k%d evicted from a slot that is not evictable", i)
		}
	}
}

// TestEvictionDemandEvictsBelowTheLimit checks that a demand (what a
// replica asks for) makes a store evict although it is under its own limit.
func TestEvictionDemandEvictsBelowTheLimit(t *testing.T) {
	s := newStore(t, limited(64<<20, AllKeysRandom))
	fill(t, s, "k", 10000, 0)
	before := s.UsedMemory()
	s.SetEvictionDemand(before / 4)
	waitFor(t, "the demand to be met", func() bool { return s.UsedMemory() < before*4/5 })
	if s.mem.demand.Load() != 0 {
		t.Errorf("demand %d left after evicting", s.mem.demand.Load())
	}
}

func TestPolicyNames(t *testing.T) {
	for _, name := range PolicyNames() {
		p, err := ParsePolicy(name)
		if err != nil || p.String() != name {
			t.Errorf("%q parses to %v, %v", name, p, err)
		}
	}
	if _, err := ParsePolicy("lru"); err == nil {
		t.Error("parsed an unknown policy")
	}
	if !slices.Contains(PolicyNames(), "volatile-ttl") {
		t.Error("volatile-ttl missing")
	}
}
