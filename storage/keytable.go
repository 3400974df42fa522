package storage

import (
	"encoding/binary"
	"hash/maphash"
	"unsafe"
)

// entry is one key's state as the in-memory index keeps it: a single
// immutable buffer laid out as the Badger data key, the record header and
// the value (the layout Tx.put builds), so a lookup's key comparison, the
// header and the value are one allocation and neighbouring cache lines.
type entry []byte

// newEntry builds the entry of rec for (slot, key) in one allocation,
// copying the value (the header is written from rec), and returns it with
// the length of its Badger data key.
func newEntry(slot uint16, key []byte, rec *Record, typ ValueType) (entry, int) {
	klen := slotPrefixLen + len(key)
	e := make(entry, klen+headerLen+len(rec.Value))
	appendDataKey(e[:0], slot, key)
	putHeader(e[klen:], typ, rec)
	copy(e[klen+headerLen:], rec.Value)
	return e, klen
}

// record decodes the entry stored with a key of klen bytes. The value is
// shared with the entry; a tombstone has none.
func (e entry) record(klen int) Record {
	h := e[klen : klen+headerLen]
	rec := Record{
		Version:   binary.BigEndian.Uint64(h[1:9]),
		ExpireAt:  int64(binary.BigEndian.Uint64(h[9:17])),
		Tombstone: h[0]&flagTombstone != 0,
	}
	if !rec.Tombstone {
		rec.Value = e[klen+headerLen:]
	}
	return rec
}

// tableSlot is one slot of a keyTable: 16 bytes with a single pointer, where
// a Go map[string]Record spends 64 bytes and three pointers per key (and
// its lookups touch the group's control word, the key header, the key bytes
// and the value: four cache misses on a large index, against two here).
type tableSlot struct {
	p    *byte  // the entry's first byte; nil: the slot is empty
	n    uint32 // the entry's length
	klen uint16 // the length of its Badger data key
	tag  uint16 // the hash's top bits, so most mismatches skip the entry
}

func (s *tableSlot) key() string { return unsafe.String(s.p, int(s.klen)) }

func (s *tableSlot) entry() entry { return unsafe.Slice(s.p, int(s.n)) }

func (s *tableSlot) record() Record { return s.entry().record(int(s.klen)) }

// keyTable maps Badger data keys to entries: open addressing with linear
// probing and backward-shift deletion (no deletion markers), kept between
// 3/16 and 3/4 full. Not safe for concurrent use: memShard locks it.
type keyTable struct {
	slots []tableSlot // a power of two long, or nil
	n     int
}

const minTableSlots = 8

// tableSeed keys the hash: a fixed process-wide seed, random per process.
var tableSeed = maphash.MakeSeed()

func tableHash(key string) uint64 { return maphash.String(tableSeed, key) }

// find returns the index of key's slot, or -1.
func (t *keyTable) find(key string, h uint64) int {
	if t.n == 0 {
		return -1
	}
	mask := uint64(len(t.slots) - 1)
	tag := uint16(h >> 48)
	for i := h & mask; ; i = (i + 1) & mask {
		s := &t.slots[i]
		if s.p == nil {
			return -1
		}
		if s.tag == tag && int(s.klen) == len(key) && s.key() == key {
			return int(i)
		}
	}
}

// get returns key's entry slot.
func (t *keyTable) get(key string) (tableSlot, bool) {
	i := t.find(key, tableHash(key))
	if i < 0 {
		return tableSlot{}, false
	}
	return t.slots[i], true
}

// set stores e, whose data key is its first klen bytes, and returns the
// slot it replaces.
func (t *keyTable) set(e entry, klen int) (old tableSlot, had bool) {
	key := unsafe.String(unsafe.SliceData(e), klen)
	h := tableHash(key)
	ns := tableSlot{p: unsafe.SliceData(e), n: uint32(len(e)), klen: uint16(klen), tag: uint16(h >> 48)}
	if i := t.find(key, h); i >= 0 {
		old = t.slots[i]
		t.slots[i] = ns
		return old, true
	}
	if (t.n+1)*4 > len(t.slots)*3 {
		t.resize(max(minTableSlots, len(t.slots)*2))
	}
	t.insert(ns, h)
	t.n++
	return tableSlot{}, false
}

// insert puts s in the first empty slot of its probe sequence; s's key is
// not in the table.
func (t *keyTable) insert(s tableSlot, h uint64) {
	mask := uint64(len(t.slots) - 1)
	i := h & mask
	for t.slots[i].p != nil {
		i = (i + 1) & mask
	}
	t.slots[i] = s
}

// remove deletes key and reports whether it was there.
func (t *keyTable) remove(key string) bool {
	i := t.find(key, tableHash(key))
	if i < 0 {
		return false
	}
	t.removeAt(i)
	t.maybeShrink()
	return true
}

// removeAt empties slot i and shifts back the entries after it that would
// no longer be reachable across the hole.
func (t *keyTable) removeAt(i int) {
	mask := len(t.slots) - 1
	hole := i
	for j := (i + 1) & mask; t.slots[j].p != nil; j = (j + 1) & mask {
		home := int(tableHash(t.slots[j].key())) & mask
		// Move j into the hole unless its home lies cyclically in (hole, j].
		if (j-home)&mask >= (j-hole)&mask {
			t.slots[hole] = t.slots[j]
			hole = j
		}
	}
	t.slots[hole] = tableSlot{}
	t.n--
}

// deleteIf removes every entry for which drop returns true. drop must not
// use the table.
func (t *keyTable) deleteIf(drop func(s *tableSlot) bool) {
	if t.n == 0 {
		return
	}
	kept := t.slots[:0:0]
	for i := range t.slots {
		if s := &t.slots[i]; s.p != nil && !drop(s) {
			kept = append(kept, *s)
		}
	}
	if len(kept) == t.n {
		return
	}
	t.slots, t.n = nil, 0
	if len(kept) > 0 {
		t.resize(tableSize(len(kept)))
		for _, s := range kept {
			t.insert(s, tableHash(s.key()))
		}
		t.n = len(kept)
	}
}

// maybeShrink halves the table when it has become less than 3/16 full, so
// a shard that lost most of its keys gives the memory back.
func (t *keyTable) maybeShrink() {
	if len(t.slots) > minTableSlots && t.n*16 < len(t.slots)*3 {
		if t.n == 0 {
			t.slots = nil
			return
		}
		t.resize(tableSize(t.n))
	}
}

// tableSize is the smallest table that holds n entries at most 3/4 full.
func tableSize(n int) int {
	size := minTableSlots
	for n*4 > size*3 {
		size *= 2
	}
	return size
}

// resize rehashes every entry into a table of size slots.
func (t *keyTable) resize(size int) {
	old := t.slots
	t.slots = make([]tableSlot, size)
	for i := range old {
		if s := &old[i]; s.p != nil {
			t.insert(*s, tableHash(s.key()))
		}
	}
}

// all calls fn with every slot, in no order, until fn returns false.
func (t *keyTable) all(fn func(s *tableSlot) bool) {
	for i := range t.slots {
		if s := &t.slots[i]; s.p != nil && !fn(s) {
			return
		}
	}
}
