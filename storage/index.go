package storage

import (
	"bytes"
	"slices"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/zeebo/xxh3"

	"github.com/ringcache/ringcache/storage/internal/arena"
)

// frozenString views b as a string without copying. b must never change
// afterwards.
func frozenString(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }

// memIndex is the keyspace: the current state of every key (live records,
// expired ones not yet swept, recent tombstones), each a block in an
// arena outside the Go heap (block.go), found through one key table per
// slot (keytable.go) held in the same arena. It is ahead of Badger, which
// persist cycles write behind it (persist.go), and it serves every read.
//
// Only the committer writes it: it builds a batch's blocks when the batch
// is done and before the batch's submissions complete, so a reader always
// sees an acknowledged write. Readers on other goroutines take their
// slot's read lock and copy what they need before releasing it (view,
// slotRecords): a block is freed only after the committer has unlinked it
// under the write lock, so no reader holds it then. The committer reads
// without locks (get): nobody else changes the index, and it frees a
// block only when it replaces or removes it, after the batch's functions
// (which may hold its value) have run.
type memIndex struct {
	// shards first: the struct is allocated page-aligned, so each shard
	// starts a cache line.
	shards [SlotCount]memShard
	a      *arena.Arena
	// tombstones counts the tombstone blocks, tombBytes their memory.
	tombstones, tombBytes atomic.Int64
}

// recordHash is a record's contribution to its slot's digest: it changes
// with the key and with the version, which names the state.
func recordHash(slot uint16, key []byte, version uint64) uint64 {
	var buf [128]byte
	return xxh3.HashSeed(appendDataKey(buf[:0], slot, key), version)
}

// memShard is one slot's keys: its table, the lock readers share, and its
// digest, the XOR of recordHash over its live (non-tombstone) records (XOR
// makes it order-free and O(1) to update, so two nodes compare a slot's
// contents with eight bytes).
type memShard struct {
	mu     sync.RWMutex
	t      keyTable
	digest atomic.Uint64
	_      [128 - 24 - 48 - 8]byte // a shard is two cache lines, the hot one first
}

func newMemIndex() *memIndex { return &memIndex{a: arena.New()} }

func (ix *memIndex) shard(slot uint16) *memShard { return &ix.shards[slot] }

// get returns the record stored for key, tombstones and expired records
// included, for the committer: Record.Value is the block's memory, valid
// until the committer replaces or removes the key.
func (ix *memIndex) get(slot uint16, key []byte) (Record, bool) {
	b, i := ix.shard(slot).t.get(ix.a, slot, key)
	if i < 0 {
		return Record{}, false
	}
	return b.record(), true
}

// getBlock is get for the committer's callers that need the block itself.
func (ix *memIndex) getBlock(slot uint16, key []byte) (block, bool) {
	b, i := ix.shard(slot).t.get(ix.a, slot, key)
	return b, i >= 0
}

// view calls fn with key's block and its access word under the slot's
// read lock, for readers on any goroutine; fn must copy what it keeps and
// must not call the store.
func (ix *memIndex) view(slot uint16, key []byte, fn func(b block, access *uint32)) bool {
	s := ix.shard(slot)
	s.mu.RLock()
	b, i := s.t.get(ix.a, slot, key)
	if i >= 0 {
		fn(b, s.t.accessWord(i))
	}
	s.mu.RUnlock()
	return i >= 0
}

// setResult is what set tells the committer about the state it replaced.
type setResult struct {
	old Record // without its value
	had bool
	tag uint32 // the key's tag, to find it again without the key
	// delta is the change in the keyspace's memory.
	delta int64
}

// set stores rec as (slot, key)'s state in a new block, copying the key
// and the value, and frees the block it replaces. access is the key's new
// access word; with keepAccess, a live key keeps its own.
func (ix *memIndex) set(slot uint16, key []byte, rec *Record, access uint32, keepAccess bool) setResult {
	n := blockLen(len(key), rec)
	ref, mem, err := ix.a.Alloc(n)
	if err != nil {
		panic("storage: out of memory for a record: " + err.Error())
	}
	putBlock(mem, key, rec)
	tag := keyTag(slot, key)
	s := ix.shard(slot)
	tablesBefore := s.t.bytes()
	s.mu.Lock()
	oldSlot := s.t.put(ix.a, key, tag, ref, rec.Tombstone, access, keepAccess)
	s.mu.Unlock()

	res := setResult{delta: int64(arena.BlockSize(n) + s.t.bytes() - tablesBefore), tag: uint32(tag)}
	if rec.Tombstone {
		ix.tombstones.Add(1)
		ix.tombBytes.Add(int64(arena.BlockSize(n)))
	}
	var d uint64
	if oldSlot != 0 {
		ob := blockAt(ix.a, oldSlot)
		res.had = true
		res.old = ob.record()
		res.old.Value = nil
		_, _, oldLen := ob.parts()
		ix.a.Free(slotRef(oldSlot), oldLen)
		res.delta -= int64(arena.BlockSize(oldLen))
		if res.old.Tombstone {
			ix.tombstones.Add(-1)
			ix.tombBytes.Add(-int64(arena.BlockSize(oldLen)))
		} else {
			d ^= recordHash(slot, key, res.old.Version)
		}
	}
	if !rec.Tombstone {
		d ^= recordHash(slot, key, rec.Version)
	}
	if d != 0 {
		// Only the committer writes: a plain read-modify-write is safe.
		s.digest.Store(s.digest.Load() ^ d)
	}
	return res
}

// removeAt forgets the key in table slot i of the slot's shard s without a
// trace (no tombstone): for tombstones that have served their time, and
// dropped slots. The caller holds s's write lock; the block is freed.
func (ix *memIndex) removeAt(slot uint16, s *memShard, i int) {
	ts := s.t.slots[i]
	b := blockAt(ix.a, ts)
	k, _, n := b.parts()
	if b.tombstone() {
		ix.tombstones.Add(-1)
		ix.tombBytes.Add(-int64(arena.BlockSize(n)))
	} else {
		s.digest.Store(s.digest.Load() ^ recordHash(slot, k, b.version()))
	}
	s.t.removeAt(ix.a, i)
	ix.a.Free(slotRef(ts), n)
}

// remove forgets (slot, key) without a trace (no tombstone) and returns
// the record it held, without its value.
func (ix *memIndex) remove(slot uint16, key []byte) (Record, bool) {
	s := ix.shard(slot)
	i := s.t.find(ix.a, key, keyTag(slot, key))
	if i < 0 {
		return Record{}, false
	}
	rec := blockAt(ix.a, s.t.slots[i]).record()
	rec.Value = nil
	s.mu.Lock()
	ix.removeAt(slot, s, i)
	s.mu.Unlock()
	return rec, true
}

// forgetTombstone removes the tombstone of version v of a key of slot
// whose tag is tag, if the index still holds it (the key may have been
// written again since, or its slot dropped).
func (ix *memIndex) forgetTombstone(slot uint16, tag uint32, v uint64) {
	s := ix.shard(slot)
	t := &s.t
	if t.tombs == 0 {
		return
	}
	size := len(t.slots)
	for i := t.home(uint64(tag)); ; {
		ts := t.slots[i]
		if ts == 0 {
			return
		}
		if ts&slotTomb != 0 && slotTag(ts) == uint64(tag) && blockAt(ix.a, ts).version() == v {
			s.mu.Lock()
			ix.removeAt(slot, s, i)
			s.mu.Unlock()
			return
		}
		if i++; i == size {
			i = 0
		}
	}
}

// slotRecord is a record of the index with its key, copied out of it.
type slotRecord struct {
	key []byte
	rec Record
}

// slotRecords returns every record of one slot (tombstones and expired
// records included), sorted by key: keys, and with withValues values,
// copied into Go memory under the slot's read lock.
func (ix *memIndex) slotRecords(slot uint16, withValues bool) []slotRecord {
	type pos struct{ start, klen, vlen int }
	s := ix.shard(slot)
	var recs []slotRecord
	var at []pos
	var buf []byte
	s.mu.RLock()
	for _, ts := range s.t.slots {
		if ts == 0 {
			continue
		}
		b := blockAt(ix.a, ts)
		k, v, _ := b.parts()
		rec := b.record()
		rec.Value = nil
		p := pos{start: len(buf), klen: len(k)}
		buf = append(buf, k...)
		if withValues && !rec.Tombstone {
			buf = append(buf, v...)
			p.vlen = len(v)
		}
		recs = append(recs, slotRecord{rec: rec})
		at = append(at, p)
	}
	s.mu.RUnlock()
	for i := range recs {
		p := at[i]
		ke := p.start + p.klen
		recs[i].key = buf[p.start:ke:ke]
		if withValues && !recs[i].rec.Tombstone {
			recs[i].rec.Value = buf[ke : ke+p.vlen : ke+p.vlen]
		}
	}
	slices.SortFunc(recs, func(a, b slotRecord) int { return bytes.Compare(a.key, b.key) })
	return recs
}

// dropSlot forgets every key of a slot.
func (ix *memIndex) dropSlot(slot uint16) {
	s := ix.shard(slot)
	s.mu.Lock()
	for _, ts := range s.t.slots {
		if ts == 0 {
			continue
		}
		_, _, n := blockAt(ix.a, ts).parts()
		if ts&slotTomb != 0 {
			ix.tombstones.Add(-1)
			ix.tombBytes.Add(-int64(arena.BlockSize(n)))
		}
		ix.a.Free(slotRef(ts), n)
	}
	s.t.free(ix.a)
	s.mu.Unlock()
	s.digest.Store(0)
}

// digest is a slot's digest.
func (ix *memIndex) digest(slot uint16) uint64 { return ix.shards[slot].digest.Load() }

// reset forgets every key and gives the memory back.
func (ix *memIndex) reset() {
	for i := range ix.shards {
		s := &ix.shards[i]
		s.mu.Lock()
		s.t = keyTable{}
		s.mu.Unlock()
		s.digest.Store(0)
	}
	ix.a.Release()
	ix.tombstones.Store(0)
	ix.tombBytes.Store(0)
}

// bytes is the memory the keyspace takes: every block and table, at their
// size class.
func (ix *memIndex) bytes() int64 { return ix.a.Allocated() }

// close gives the memory back; nobody may use the index after.
func (ix *memIndex) close() { ix.reset() }

// tombstoneRef names a tombstone in the index without holding its memory:
// the key's slot and tag and the tombstone's version find it again (or
// find that it has gone).
type tombstoneRef struct {
	at      int64 // unix ms when it was indexed
	version uint64
	tag     uint32
	slot    uint16
}

// tombstoneQueue lists the index's tombstones in the order they were
// written, so the oldest are forgotten first. Only the committer uses it.
type tombstoneQueue struct {
	refs []tombstoneRef
	head int
}

func (q *tombstoneQueue) push(r tombstoneRef) { q.refs = append(q.refs, r) }

// bytes is the queue's memory.
func (q *tombstoneQueue) bytes() int64 {
	return int64(cap(q.refs)) * int64(unsafe.Sizeof(tombstoneRef{}))
}

// expire forgets the tombstones written at or before cutoff.
func (q *tombstoneQueue) expire(ix *memIndex, cutoff int64) {
	for q.head < len(q.refs) && q.refs[q.head].at <= cutoff {
		q.forgetOldest(ix)
	}
}

// forgetOldest forgets the oldest tombstone, and reports whether there
// was one.
func (q *tombstoneQueue) forgetOldest(ix *memIndex) bool {
	if q.head == len(q.refs) {
		return false
	}
	r := q.refs[q.head]
	ix.forgetTombstone(r.slot, r.tag, r.version)
	q.head++
	// Compact once the consumed prefix dominates, keeping pushes
	// amortised O(1), and give back a mostly empty array.
	if q.head > 1024 && q.head*2 > len(q.refs) {
		n := copy(q.refs, q.refs[q.head:])
		q.refs = q.refs[:n]
		q.head = 0
		if cap(q.refs) > 4*n+1024 {
			q.refs = append(make([]tombstoneRef, 0, 2*n), q.refs...)
		}
	}
	return true
}

func (q *tombstoneQueue) reset() {
	q.refs = nil
	q.head = 0
}
