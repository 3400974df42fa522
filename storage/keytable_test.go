package storage

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"unsafe"
)

// TestIndexMatchesMap drives a memIndex and a Go map with the same random
// operations (sets, replacements, tombstones, removals, slot drops, so
// tables grow, shift slots back over holes and shrink) over keys spread on
// a few slots of the same shards, and checks they always agree, digests
// and memory accounting included.
func TestIndexMatchesMap(t *testing.T) {
	for _, keys := range []int{5, 60, 3000} {
		t.Run(fmt.Sprint(keys, "keys"), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(1, uint64(keys)))
			ix := newMemIndex()
			defer ix.close()
			type key struct {
				slot uint16
				k    string
			}
			ref := map[key]Record{}
			slots := []uint16{7, 8, 4000, 16383}
			check := func(step int) {
				t.Helper()
				var digests [SlotCount]uint64
				var bytes int64
				for k, want := range ref {
					got, ok := ix.get(k.slot, []byte(k.k))
					if !ok {
						t.Fatalf("step %d: %v missing", step, k)
					}
					if got.Version != want.Version || got.ExpireAt != want.ExpireAt || got.Tombstone != want.Tombstone || string(got.Value) != string(want.Value) {
						t.Fatalf("step %d: %v = %+v, want %+v", step, k, got, want)
					}
					if !want.Tombstone {
						digests[k.slot] ^= recordHash(k.slot, []byte(k.k), want.Version)
					}
					bytes += int64(blockSizeOf(blockLen(len(k.k), &want)))
				}
				n := 0
				for i := range ix.shards {
					s := &ix.shards[i]
					n += s.t.n
					bytes += int64(s.t.bytes())
				}
				if n != len(ref) {
					t.Fatalf("step %d: index holds %d keys, want %d", step, n, len(ref))
				}
				for _, sl := range slots {
					if ix.digest(sl) != digests[sl] {
						t.Fatalf("step %d: slot %d digest %x, want %x", step, sl, ix.digest(sl), digests[sl])
					}
				}
				if ix.bytes() != bytes {
					t.Fatalf("step %d: index counts %d bytes, blocks and tables take %d", step, ix.bytes(), bytes)
				}
			}
			for step := range 20000 {
				k := key{slots[rng.IntN(len(slots))], fmt.Sprintf("k%d", rng.IntN(keys))}
				switch op := rng.IntN(100); {
				case op < 70:
					v := rng.Uint64N(1 << 40)
					rec := Record{Version: v, Value: []byte(fmt.Sprint("v", v, string(make([]byte, rng.IntN(300)))))}
					switch rng.IntN(5) {
					case 0:
						rec = Record{Version: v, Tombstone: true}
					case 1:
						rec.ExpireAt = int64(v)
					}
					res := ix.set(k.slot, []byte(k.k), &rec, 1, false)
					prev, wasThere := ref[k]
					if res.had != wasThere || (res.had && res.old.Version != prev.Version) {
						t.Fatalf("step %d: set %v replaced (%v, %+v), want (%v, %+v)", step, k, res.had, res.old, wasThere, prev)
					}
					ref[k] = rec
				case op < 95:
					s := ix.shard(k.slot)
					i := s.t.find(ix.a, []byte(k.k), keyTag(k.slot, []byte(k.k)))
					_, there := ref[k]
					if (i >= 0) != there {
						t.Fatalf("step %d: find %v = %d, in map %v", step, k, i, there)
					}
					if i >= 0 {
						s.mu.Lock()
						ix.removeAt(k.slot, s, i)
						s.mu.Unlock()
						delete(ref, k)
					}
				case op < 97:
					sl := slots[rng.IntN(len(slots))]
					ix.dropSlot(sl)
					for k := range ref {
						if k.slot == sl {
							delete(ref, k)
						}
					}
				default:
					// Forget k's tombstone: with another version nothing
					// happens; with its own it goes.
					r, ok := ref[k]
					if !ok || !r.Tombstone {
						break
					}
					tag := uint32(keyTag(k.slot, []byte(k.k)))
					ix.forgetTombstone(k.slot, tag, r.Version+1)
					if _, ok := ix.get(k.slot, []byte(k.k)); !ok {
						t.Fatalf("step %d: forgetting another version removed %v", step, k)
					}
					ix.forgetTombstone(k.slot, tag, r.Version)
					delete(ref, k)
				}
				if step%500 == 0 {
					check(step)
				}
			}
			check(-1)
		})
	}
}

// TestIndexMissingKeys checks lookups of absent keys, including ones that
// share a prefix or a length with present keys, keys of another slot, and
// an empty index.
func TestIndexMissingKeys(t *testing.T) {
	ix := newMemIndex()
	defer ix.close()
	if _, ok := ix.get(1, []byte("a")); ok {
		t.Fatal("empty index found a key")
	}
	for i := range 100 {
		rec := Record{Version: 1, Value: []byte("v")}
		ix.set(1, fmt.Appendf(nil, "key%03d", i), &rec, 0, false)
	}
	for _, k := range []string{"", "key", "key1000", "key100", "kez001", "key00"} {
		if _, ok := ix.get(1, []byte(k)); ok {
			t.Errorf("found absent key %q", k)
		}
	}
	if _, ok := ix.get(2, []byte("key001")); ok {
		t.Error("found a key in another slot")
	}
}

// TestIndexShrinks checks that a table emptied by removals gives its
// memory back.
func TestIndexShrinks(t *testing.T) {
	ix := newMemIndex()
	defer ix.close()
	s := ix.shard(3)
	for i := range 1000 {
		rec := Record{Version: 1, Value: []byte("v")}
		ix.set(3, fmt.Append(nil, i), &rec, 0, false)
	}
	big, full := len(s.t.slots), ix.bytes()
	for i := range 990 {
		i := s.t.find(ix.a, fmt.Append(nil, i), keyTag(3, fmt.Append(nil, i)))
		ix.removeAt(3, s, i)
	}
	if len(s.t.slots) >= big/8 {
		t.Fatalf("table of 10 keys still has %d slots (had %d)", len(s.t.slots), big)
	}
	if ix.bytes() > full/20 {
		t.Fatalf("10 keys take %d bytes, 1000 took %d", ix.bytes(), full)
	}
	for i := 990; i < 1000; i++ {
		if _, ok := ix.get(3, fmt.Append(nil, i)); !ok {
			t.Fatalf("lost key %d while shrinking", i)
		}
	}
}

// BenchmarkIndexGet measures a lookup and a copy of the value (as GET
// does) in the index, at 100k and 1M keys, against the same in Go maps,
// one per slot.
func BenchmarkIndexGet(b *testing.B) {
	for _, n := range []int{100_000, 1 << 20} {
		keys := make([][]byte, n)
		ix := newMemIndex()
		maps := make([]map[string]Record, SlotCount)
		for i := range maps {
			maps[i] = map[string]Record{}
		}
		for i := range keys {
			keys[i] = fmt.Appendf(nil, "key:%012d", i)
			rec := Record{Version: 1, Value: []byte("0123456789")}
			ix.set(uint16(i%SlotCount), keys[i], &rec, 0, false)
			maps[i%SlotCount][string(keys[i])] = rec
		}
		b.Run(fmt.Sprint(n, "/index"), func(b *testing.B) {
			var buf []byte
			for i := 0; b.Loop(); i++ {
				j := (i * 7919) % n
				if !ix.view(uint16(j%SlotCount), keys[j], func(bl block, _ *uint32) { _, v, _ := bl.parts(); buf = append(buf[:0], v...) }) {
					b.Fatal("missing")
				}
			}
		})
		b.Run(fmt.Sprint(n, "/map"), func(b *testing.B) {
			var buf []byte
			for i := 0; b.Loop(); i++ {
				j := (i * 7919) % n
				rec, ok := maps[j%SlotCount][string(keys[j])]
				if !ok {
					b.Fatal("missing")
				}
				buf = append(buf[:0], rec.Value...)
			}
		})
		ix.close()
	}
}

// TestShardLayout checks that a lookup reads one cache line of its shard:
// shards are 128 bytes, and the lock and the table's slots come first.
func TestShardLayout(t *testing.T) {
	if n := unsafe.Sizeof(memShard{}); n != 128 {
		t.Errorf("memShard is %d bytes, want 128", n)
	}
	if end := unsafe.Offsetof(memShard{}.t) + unsafe.Offsetof(keyTable{}.slots) + unsafe.Sizeof([]uint64{}); end > 64 {
		t.Errorf("a shard's table slots end at byte %d, past its first cache line", end)
	}
	if off := unsafe.Offsetof(memIndex{}.shards); off != 0 {
		t.Errorf("shards at offset %d of memIndex, want 0", off)
	}
}
