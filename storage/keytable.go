package storage

import (
	"hash/maphash"
	"unsafe"

	"github.com/ringcache/ringcache/storage/internal/arena"
)

// keyTable maps (slot, key) to the key's block: open addressing with linear
// probing and backward-shift deletion, in 8-byte slots held in the arena:
//
//	bits 63-41  tag: the top 23 bits of the key's hash
//	bit  40     the block is a tombstone
//	bit  39     the slot is in use
//	bits 38-0   the block's packed arena.Ref
//
// A key's home slot is derived from its tag alone (tag*size >> 23), so
// that growing, shrinking and backward shifts never read a block; lookups
// read one only when the tag matches (a false match is about one in 8M per
// probe). Tables grow by half when 4/5 full and shrink when under 1/4, so
// a table costs 10-15 bytes per key. Not safe for concurrent use: memShard
// locks it.
type keyTable struct {
	mem   arena.Ref // the slots' block, 0 with no slots
	slots []uint64
	n     int // slots in use
	tombs int // of which tombstones
}

const (
	tagBits      = 23
	tagShift     = 64 - tagBits
	slotTomb     = 1 << 40
	slotUsed     = 1 << 39
	slotRefMask  = 1<<arena.PackedBits - 1
	minTableSize = 8
)

// tableSeed keys the hash: random per process.
var tableSeed = maphash.MakeSeed()

// keyTag is the tag of (slot, key).
func keyTag(slot uint16, key []byte) uint64 {
	return (maphash.Bytes(tableSeed, key) ^ uint64(slot)*0x9e3779b97f4a7c15) >> tagShift
}

func slotTag(s uint64) uint64           { return s >> tagShift }
func slotRef(s uint64) arena.Ref        { return arena.Unpack(s & slotRefMask) }
func (t *keyTable) home(tag uint64) int { return int(tag * uint64(len(t.slots)) >> tagBits) }

func makeSlot(tag uint64, ref arena.Ref, tomb bool) uint64 {
	s := tag<<tagShift | slotUsed | ref.Pack()
	if tomb {
		s |= slotTomb
	}
	return s
}

// blockAt returns the block of a slot in use.
func blockAt(a *arena.Arena, s uint64) block { return block(a.Tail(slotRef(s))) }

// find returns the index of (slot, key)'s table slot, or -1.
func (t *keyTable) find(a *arena.Arena, slot uint16, key []byte, tag uint64) int {
	if t.n == 0 {
		return -1
	}
	size := len(t.slots)
	for i := t.home(tag); ; {
		s := t.slots[i]
		if s == 0 {
			return -1
		}
		if slotTag(s) == tag {
			if b := blockAt(a, s); b.slot() == slot && string(b.key()) == string(key) {
				return i
			}
		}
		if i++; i == size {
			i = 0
		}
	}
}

// get returns (slot, key)'s block.
func (t *keyTable) get(a *arena.Arena, slot uint16, key []byte) (block, bool) {
	i := t.find(a, slot, key, keyTag(slot, key))
	if i < 0 {
		return nil, false
	}
	return blockAt(a, t.slots[i]), true
}

// put makes ref (a block of (slot, key), with tag keyTag(slot, key)) the
// key's block and returns the slot it replaces (0: the key was not there).
func (t *keyTable) put(a *arena.Arena, slot uint16, key []byte, tag uint64, ref arena.Ref, tomb bool) (old uint64) {
	ns := makeSlot(tag, ref, tomb)
	if i := t.find(a, slot, key, tag); i >= 0 {
		old = t.slots[i]
		t.slots[i] = ns
		t.tombs += boolInt(tomb) - boolInt(old&slotTomb != 0)
		return old
	}
	if (t.n+1)*5 > len(t.slots)*4 {
		t.resize(a, max(minTableSize, len(t.slots)*3/2))
	}
	t.insert(ns)
	t.n++
	t.tombs += boolInt(tomb)
	return 0
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// insert puts s in the first free slot from its home; its key is not in
// the table, and the table has room.
func (t *keyTable) insert(s uint64) {
	size := len(t.slots)
	i := t.home(slotTag(s))
	for t.slots[i] != 0 {
		if i++; i == size {
			i = 0
		}
	}
	t.slots[i] = s
}

// remove deletes (slot, key) and returns its block's Ref.
func (t *keyTable) remove(a *arena.Arena, slot uint16, key []byte) (arena.Ref, bool) {
	i := t.find(a, slot, key, keyTag(slot, key))
	if i < 0 {
		return 0, false
	}
	r := slotRef(t.slots[i])
	t.removeAt(a, i)
	return r, true
}

// removeAt empties slot i, shifts back the slots after it that would be
// cut off from their home by the hole, and shrinks a table that has
// become mostly empty.
func (t *keyTable) removeAt(a *arena.Arena, i int) {
	size := len(t.slots)
	t.tombs -= boolInt(t.slots[i]&slotTomb != 0)
	hole := i
	for j := (i + 1) % size; t.slots[j] != 0; j = (j + 1) % size {
		home := t.home(slotTag(t.slots[j]))
		// Move j into the hole unless its home lies cyclically in (hole, j].
		if (j-home+size)%size >= (j-hole+size)%size {
			t.slots[hole] = t.slots[j]
			hole = j
		}
	}
	t.slots[hole] = 0
	t.n--
	if len(t.slots) > minTableSize && t.n*4 < len(t.slots) {
		t.resize(a, tableSize(t.n))
	}
}

// tableSize is a size that holds n slots about 2/3 full.
func tableSize(n int) int { return max(minTableSize, n*3/2+1) }

// resize moves every slot into a table of size slots.
func (t *keyTable) resize(a *arena.Arena, size int) {
	oldRef, old := t.mem, t.slots
	t.mem, t.slots = 0, nil
	if t.n > 0 || size > 0 {
		ref, m, err := a.Alloc(size * 8)
		if err != nil {
			panic("storage: out of memory for a key table: " + err.Error())
		}
		t.mem = ref
		t.slots = unsafe.Slice((*uint64)(unsafe.Pointer(unsafe.SliceData(m))), size)
		clear(t.slots)
	}
	for _, s := range old {
		if s != 0 {
			t.insert(s)
		}
	}
	if oldRef != 0 {
		a.Free(oldRef, len(old)*8)
	}
}

// free gives the table's memory back.
func (t *keyTable) free(a *arena.Arena) {
	if t.mem != 0 {
		a.Free(t.mem, len(t.slots)*8)
	}
	*t = keyTable{}
}

// bytes is the arena memory the table takes.
func (t *keyTable) bytes() int {
	if t.mem == 0 {
		return 0
	}
	return arena.BlockSize(len(t.slots) * 8)
}

// each calls fn with every slot in use, in table order, until fn returns
// false. fn must not change the table.
func (t *keyTable) each(fn func(i int, s uint64) bool) {
	for i, s := range t.slots {
		if s != 0 && !fn(i, s) {
			return
		}
	}
}
