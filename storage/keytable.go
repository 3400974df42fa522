package storage

import (
	"hash/maphash"
	"sync/atomic"
	"unsafe"

	"github.com/ringcache/ringcache/storage/internal/arena"
)

// keyTable maps the keys of one slot to their blocks: open addressing with
// linear probing and backward-shift deletion, in 8-byte slots held in the
// arena:
//
//	bits 63-41  tag: the top 23 bits of the key's hash
//	bit  40     the block is a tombstone
//	bit  39     the slot is in use
//	bits 38-0   the block's packed arena.Ref
//
// Beside each slot, in the same allocation, is the key's access word (the
// LRU clock or LFU counter, evict.go), read and written atomically by
// readers: eviction samples it without reading any block.
//
// A key's home slot is derived from its tag alone (tag*size >> 23), so
// that growing, shrinking and backward shifts never read a block; lookups
// read one only when the tag matches (a false match is about one in 8M per
// probe). Tables grow by a quarter when 85% full and shrink when under
// 1/4, so a table costs 14-18 bytes per key. Not safe for concurrent use: memShard
// locks it.
type keyTable struct {
	// slots comes first: with its shard's lock it is all a lookup reads
	// of the shard, in one cache line. The access words follow the slots
	// in the same block.
	slots []uint64
	mem   arena.Ref // the slots' and access words' block, 0 with none
	n     int       // slots in use
	tombs int       // of which tombstones
}

const (
	tagBits      = 23
	tagShift     = 64 - tagBits
	slotTomb     = 1 << 40
	slotUsed     = 1 << 39
	slotRefMask  = 1<<arena.PackedBits - 1
	minTableSize = 4
	// tableSlotBytes is a slot and its access word.
	tableSlotBytes = 8 + 4
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

// find returns the index of key's table slot, or -1.
func (t *keyTable) find(a *arena.Arena, key []byte, tag uint64) int {
	if t.n == 0 {
		return -1
	}
	size := len(t.slots)
	for i := t.home(tag); ; {
		s := t.slots[i]
		if s == 0 {
			return -1
		}
		if slotTag(s) == tag && string(blockAt(a, s).key()) == string(key) {
			return i
		}
		if i++; i == size {
			i = 0
		}
	}
}

// get returns key's block and the index of its slot.
func (t *keyTable) get(a *arena.Arena, slot uint16, key []byte) (block, int) {
	i := t.find(a, key, keyTag(slot, key))
	if i < 0 {
		return nil, -1
	}
	return blockAt(a, t.slots[i]), i
}

// accessWord is the access word of slot i, for atomic use.
func (t *keyTable) accessWord(i int) *uint32 {
	return (*uint32)(unsafe.Add(unsafe.Pointer(unsafe.SliceData(t.slots)), 8*len(t.slots)+4*i))
}

// accessWords is the table's access words, for the committer.
func (t *keyTable) accessWords() []uint32 {
	if len(t.slots) == 0 {
		return nil
	}
	return unsafe.Slice(t.accessWord(0), len(t.slots))
}

// put makes ref (a block of key, with tag keyTag(slot, key)) the key's
// block, with access as its access word (or, with keep, the replaced live
// block's), and returns the slot it replaces (0: the key was not there).
func (t *keyTable) put(a *arena.Arena, key []byte, tag uint64, ref arena.Ref, tomb bool, access uint32, keep bool) (old uint64) {
	ns := makeSlot(tag, ref, tomb)
	if i := t.find(a, key, tag); i >= 0 {
		old = t.slots[i]
		t.slots[i] = ns
		t.tombs += boolInt(tomb) - boolInt(old&slotTomb != 0)
		if !keep || old&slotTomb != 0 || tomb {
			atomic.StoreUint32(t.accessWord(i), access)
		}
		return old
	}
	if (t.n+1)*20 > len(t.slots)*17 {
		t.resize(a, max(minTableSize, len(t.slots)*5/4+1))
	}
	t.insert(ns, access)
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

// insert puts s, with its access word, in the first free slot from its
// home; its key is not in the table, and the table has room.
func (t *keyTable) insert(s uint64, access uint32) {
	size := len(t.slots)
	i := t.home(slotTag(s))
	for t.slots[i] != 0 {
		if i++; i == size {
			i = 0
		}
	}
	t.slots[i] = s
	*t.accessWord(i) = access
}

// removeAt empties slot i, shifts back the slots after it that would be
// cut off from their home by the hole, and shrinks a table that has
// become mostly empty.
func (t *keyTable) removeAt(a *arena.Arena, i int) {
	size := len(t.slots)
	t.tombs -= boolInt(t.slots[i]&slotTomb != 0)
	access := t.accessWords()
	hole := i
	for j := (i + 1) % size; t.slots[j] != 0; j = (j + 1) % size {
		home := t.home(slotTag(t.slots[j]))
		// Move j into the hole unless its home lies cyclically in (hole, j].
		if (j-home+size)%size >= (j-hole+size)%size {
			t.slots[hole] = t.slots[j]
			access[hole] = access[j]
			hole = j
		}
	}
	t.slots[hole] = 0
	t.n--
	switch {
	case t.n == 0:
		t.resize(a, 0)
	case len(t.slots) > minTableSize && t.n*4 < len(t.slots):
		t.resize(a, tableSize(t.n))
	}
}

// tableSize is a size that holds n slots about 3/4 full.
func tableSize(n int) int { return max(minTableSize, n*4/3+1) }

// resize moves every slot into a table of size slots (0: no memory).
func (t *keyTable) resize(a *arena.Arena, size int) {
	oldRef, old, oldAccess := t.mem, t.slots, t.accessWords()
	t.mem, t.slots = 0, nil
	if size > 0 {
		ref, m, err := a.Alloc(size * tableSlotBytes)
		if err != nil {
			panic("storage: out of memory for a key table: " + err.Error())
		}
		t.mem = ref
		t.slots = unsafe.Slice((*uint64)(unsafe.Pointer(unsafe.SliceData(m))), size)
		clear(t.slots)
	}
	for i, s := range old {
		if s != 0 {
			t.insert(s, oldAccess[i])
		}
	}
	if oldRef != 0 {
		a.Free(oldRef, len(old)*tableSlotBytes)
	}
}

// free gives the table's memory back.
func (t *keyTable) free(a *arena.Arena) {
	if t.mem != 0 {
		a.Free(t.mem, len(t.slots)*tableSlotBytes)
	}
	*t = keyTable{}
}

// bytes is the arena memory the table takes.
func (t *keyTable) bytes() int {
	if t.mem == 0 {
		return 0
	}
	return arena.BlockSize(len(t.slots) * tableSlotBytes)
}
