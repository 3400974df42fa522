package storage

import (
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/zeebo/xxh3"
)

// frozenString views b as a string without copying. b must never change
// afterwards: the index uses it for keys that live in the same immutable
// buffer as the record's value, so a lookup's key comparison and the value
// read that follows touch neighbouring memory instead of two allocations.
func frozenString(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }

// memIndex holds the current state of every key in memory: the live
// records, the expired ones not yet swept, and recent tombstones. It is
// ahead of Badger, which persist cycles write behind it (persist.go), and
// it serves every read: point reads, scans, streaming, and the committer's
// lookups, which in Badger cost a search of every memtable and level (in
// managed mode a read at a snapshot never stops at the first version it
// finds), several microseconds each. Badger is what a restart reloads it
// from. Only the committer writes it, when a batch's functions have run
// and before the batch's submissions complete, so a reader always sees an
// acknowledged write. With FsyncAlways a reader may see a write before it
// is acknowledged (it waits for Badger), as a Redis client may read a key
// whose writer still waits for its fsync; such a write stays in the index
// and is retried until Badger takes it.
type memIndex struct {
	shards [indexShards]memShard
	// digests holds each slot's digest: the XOR of recordHash over its
	// live (non-tombstone) records. XOR makes it order-free and O(1) to
	// update, so two nodes compare a slot's contents with eight bytes.
	digests [SlotCount]atomic.Uint64
}

// recordHash is a record's contribution to its slot's digest: it changes
// with the key and with the version, which names the state.
func recordHash(bk string, version uint64) uint64 {
	return xxh3.HashStringSeed(bk, version)
}

// indexShards spreads the index over locks and tables. Shards are chosen
// by slot, so dropping a slot touches one shard. 4096 shards keep a slot's
// visit (ScanSlot, StreamSlot) to a quarter of a shard's keys and each
// shard's lock and table small.
const indexShards = 4096

type memShard struct {
	mu sync.RWMutex
	t  keyTable // keyed by the Badger data key: slot prefix + key
}

func (ix *memIndex) shard(slot uint16) *memShard { return &ix.shards[slot%indexShards] }

// get returns the record stored for key, tombstones and expired records
// included. Record.Value is shared and must not be modified.
func (ix *memIndex) get(slot uint16, key []byte) (Record, bool) {
	var buf [128]byte
	k := appendDataKey(buf[:0], slot, key)
	s := ix.shard(slot)
	s.mu.RLock()
	ts, ok := s.t.get(unsafe.String(unsafe.SliceData(k), len(k)))
	s.mu.RUnlock()
	if !ok {
		return Record{}, false
	}
	return ts.record(), true
}

// set stores e, an entry whose Badger data key (in slot) is its first klen
// bytes, as that key's state, and returns the record it replaces, if any.
// e must never be modified after.
func (ix *memIndex) set(slot uint16, e entry, klen int) (old Record, had bool) {
	s := ix.shard(slot)
	s.mu.Lock()
	prev, had := s.t.set(e, klen)
	s.mu.Unlock()
	bk := frozenString(e[:klen])
	rec := e.record(klen)
	var d uint64
	if had {
		old = prev.record()
		if !old.Tombstone {
			d ^= recordHash(bk, old.Version)
		}
	}
	if !rec.Tombstone {
		d ^= recordHash(bk, rec.Version)
	}
	if d != 0 {
		// Only the committer writes: a plain read-modify-write is safe.
		ix.digests[slot].Store(ix.digests[slot].Load() ^ d)
	}
	return old, had
}

// slotRecord is a record of the index with its Badger data key.
type slotRecord struct {
	key string
	rec Record
}

// slotRecords returns every record of one slot (tombstones and expired
// records included), sorted by key.
func (ix *memIndex) slotRecords(slot uint16) []slotRecord {
	p := slotPrefix(slot)
	s := ix.shard(slot)
	s.mu.RLock()
	var recs []slotRecord
	s.t.all(func(ts *tableSlot) bool {
		if k := ts.key(); k[0] == p[0] && k[1] == p[1] {
			recs = append(recs, slotRecord{k, ts.record()})
		}
		return true
	})
	s.mu.RUnlock()
	slices.SortFunc(recs, func(a, b slotRecord) int { return strings.Compare(a.key, b.key) })
	return recs
}

// forgetTombstone removes bk if it is still the tombstone of version v.
func (ix *memIndex) forgetTombstone(slot uint16, bk string, v uint64) {
	s := ix.shard(slot)
	s.mu.Lock()
	if ts, ok := s.t.get(bk); ok {
		if rec := ts.record(); rec.Tombstone && rec.Version == v {
			s.t.remove(bk)
		}
	}
	s.mu.Unlock()
}

// dropSlot forgets every key of a slot.
func (ix *memIndex) dropSlot(slot uint16) {
	p := slotPrefix(slot)
	s := ix.shard(slot)
	s.mu.Lock()
	s.t.deleteIf(func(ts *tableSlot) bool {
		k := ts.key()
		return k[0] == p[0] && k[1] == p[1]
	})
	s.mu.Unlock()
	ix.digests[slot].Store(0)
}

// reset forgets every key.
func (ix *memIndex) reset() {
	for i := range ix.shards {
		s := &ix.shards[i]
		s.mu.Lock()
		s.t = keyTable{}
		s.mu.Unlock()
	}
	for i := range ix.digests {
		ix.digests[i].Store(0)
	}
}

// tombstoneRef is a tombstone in the index, to forget once Badger has
// dropped it too.
type tombstoneRef struct {
	slot    uint16
	key     string // Badger data key
	version uint64
	at      int64 // unix ms when it was indexed
}

// tombstoneQueue lists the index's tombstones in the order they were
// written, so the oldest are forgotten first. Only the committer uses it.
type tombstoneQueue struct {
	refs []tombstoneRef
	head int
}

func (q *tombstoneQueue) push(r tombstoneRef) { q.refs = append(q.refs, r) }

// expire forgets the tombstones written at or before cutoff.
func (q *tombstoneQueue) expire(ix *memIndex, cutoff int64) {
	for q.head < len(q.refs) && q.refs[q.head].at <= cutoff {
		r := &q.refs[q.head]
		ix.forgetTombstone(r.slot, r.key, r.version)
		*r = tombstoneRef{}
		q.head++
	}
	// Compact once the consumed prefix dominates, keeping pushes amortised O(1).
	if q.head > 1024 && q.head*2 > len(q.refs) {
		n := copy(q.refs, q.refs[q.head:])
		clear(q.refs[n:])
		q.refs = q.refs[:n]
		q.head = 0
	}
}

func (q *tombstoneQueue) reset() {
	clear(q.refs)
	q.refs = q.refs[:0]
	q.head = 0
}
