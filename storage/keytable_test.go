package storage

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

func testEntry(key string, version uint64, value string, tombstone bool) entry {
	rec := Record{Value: []byte(value), Version: version, ExpireAt: int64(version) * 10, Tombstone: tombstone}
	if tombstone {
		rec.Value = nil
	}
	e, _ := newEntry(0, nil, &rec, TypeString)
	return append(entry(key), e[slotPrefixLen:]...)
}

// TestKeyTableMatchesMap drives a keyTable and a Go map with the same random
// operations (sets, replacements, removals, bulk deletions, so tables grow,
// shift entries back over holes and shrink) and checks they always agree.
func TestKeyTableMatchesMap(t *testing.T) {
	for _, keys := range []int{5, 60, 2000} {
		t.Run(fmt.Sprint(keys, "keys"), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(1, uint64(keys)))
			var tab keyTable
			ref := map[string]Record{}
			check := func(step int) {
				t.Helper()
				if tab.n != len(ref) {
					t.Fatalf("step %d: table holds %d keys, want %d", step, tab.n, len(ref))
				}
				for k, want := range ref {
					s, ok := tab.get(k)
					if !ok {
						t.Fatalf("step %d: %q missing", step, k)
					}
					got := s.record()
					if got.Version != want.Version || got.ExpireAt != want.ExpireAt || got.Tombstone != want.Tombstone || string(got.Value) != string(want.Value) {
						t.Fatalf("step %d: %q = %+v, want %+v", step, k, got, want)
					}
				}
				seen := 0
				tab.all(func(s *tableSlot) bool { seen++; _, ok := ref[s.key()]; return ok })
				if seen != len(ref) {
					t.Fatalf("step %d: iteration saw %d keys, want %d", step, seen, len(ref))
				}
			}
			for step := range 20000 {
				k := fmt.Sprintf("k%d", rng.IntN(keys))
				switch op := rng.IntN(100); {
				case op < 60:
					v := rng.Uint64N(1 << 40)
					tomb := rng.IntN(10) == 0
					e := testEntry(k, v, fmt.Sprint("v", v), tomb)
					old, had := tab.set(e, len(k))
					prev, wasThere := ref[k]
					if had != wasThere || (had && old.record().Version != prev.Version) {
						t.Fatalf("step %d: set %q replaced (%v, %+v), want (%v, %+v)", step, k, had, old.record(), wasThere, prev)
					}
					ref[k] = e.record(len(k))
				case op < 97:
					_, want := ref[k]
					if got := tab.remove(k); got != want {
						t.Fatalf("step %d: remove %q = %v, want %v", step, k, got, want)
					}
					delete(ref, k)
				default:
					odd := func(key string) bool { return len(key)%2 == 1 }
					tab.deleteIf(func(s *tableSlot) bool { return odd(s.key()) })
					for k := range ref {
						if odd(k) {
							delete(ref, k)
						}
					}
				}
				if step%500 == 0 || keys < 100 {
					check(step)
				}
				if len(tab.slots) > 0 && (tab.n*4 > len(tab.slots)*3) {
					t.Fatalf("step %d: table %d/%d is over 3/4 full", step, tab.n, len(tab.slots))
				}
			}
			check(-1)
		})
	}
}

// TestKeyTableMissingKeys checks lookups of absent keys, including ones that
// share a prefix or a length with present keys, and an empty table.
func TestKeyTableMissingKeys(t *testing.T) {
	var tab keyTable
	if _, ok := tab.get("a"); ok {
		t.Fatal("empty table found a key")
	}
	for i := range 100 {
		k := fmt.Sprintf("key%03d", i)
		tab.set(testEntry(k, 1, "v", false), len(k))
	}
	for _, k := range []string{"", "key", "key1000", "key100", "kez001", "key00"} {
		if _, ok := tab.get(k); ok {
			t.Errorf("found absent key %q", k)
		}
	}
	if tab.remove("key100") {
		t.Error("removed an absent key")
	}
}

// TestKeyTableShrinks checks that a table emptied by removals gives its
// slots back.
func TestKeyTableShrinks(t *testing.T) {
	var tab keyTable
	for i := range 1000 {
		k := fmt.Sprint(i)
		tab.set(testEntry(k, 1, "v", false), len(k))
	}
	big := len(tab.slots)
	for i := range 990 {
		tab.remove(fmt.Sprint(i))
	}
	if len(tab.slots) >= big/8 {
		t.Fatalf("table of 10 keys still has %d slots (had %d)", len(tab.slots), big)
	}
	for i := 990; i < 1000; i++ {
		if _, ok := tab.get(fmt.Sprint(i)); !ok {
			t.Fatalf("lost key %d while shrinking", i)
		}
	}
}

// BenchmarkKeyTableGet compares a lookup (and a read of the value, as GET
// does) in 4096 keyTables with the same in 4096 Go maps, at the index's
// sharding.
func BenchmarkKeyTableGet(b *testing.B) {
	const shards = 4096
	for _, n := range []int{100_000, 1 << 20} {
		keys := make([]string, n)
		tabs := make([]keyTable, shards)
		maps := make([]map[string]Record, shards)
		for i := range maps {
			maps[i] = map[string]Record{}
		}
		for i := range keys {
			keys[i] = fmt.Sprintf("\x80\x01key:%012d", i)
			e := testEntry(keys[i], 1, "0123456789", false)
			tabs[i%shards].set(e, len(keys[i]))
			maps[i%shards][keys[i]] = e.record(len(keys[i]))
		}
		b.Run(fmt.Sprint(n, "/keyTable"), func(b *testing.B) {
			sum := 0
			for i := 0; b.Loop(); i++ {
				j := (i * 7919) % n
				s, ok := tabs[j%shards].get(keys[j])
				if !ok {
					b.Fatal("missing")
				}
				sum += int(s.record().Value[0])
			}
		})
		b.Run(fmt.Sprint(n, "/map"), func(b *testing.B) {
			sum := 0
			for i := 0; b.Loop(); i++ {
				j := (i * 7919) % n
				rec, ok := maps[j%shards][keys[j]]
				if !ok {
					b.Fatal("missing")
				}
				sum += int(rec.Value[0])
			}
		})
	}
}
