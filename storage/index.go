package storage

import "sync"

// memIndex holds the committed state of every key in memory: the live
// records, the expired ones not yet swept, and recent tombstones. Badger
// stays the store of record (durability, ordered scans, streaming); the
// index serves point reads and the committer's lookups, which in Badger
// cost a search of every memtable and level (in managed mode a read at a
// snapshot never stops at the first version it finds), several microseconds
// each. Only the committer writes it, after a commit succeeds and before
// the commit is acknowledged, so a reader never sees a write that might
// still fail, and always sees one that was acknowledged.
type memIndex struct {
	slots [SlotCount]memSlot
}

// memSlot is one slot's keys. Locking per slot keeps readers of different
// slots apart and lets a whole slot be dropped at once.
type memSlot struct {
	mu sync.RWMutex
	m  map[string]Record
}

// get returns the record stored for key, tombstones and expired records
// included. Record.Value is shared and must not be modified.
func (ix *memIndex) get(slot uint16, key []byte) (Record, bool) {
	s := &ix.slots[slot]
	s.mu.RLock()
	rec, ok := s.m[string(key)]
	s.mu.RUnlock()
	return rec, ok
}

// set stores rec as key's state. rec.Value must never be modified after.
func (ix *memIndex) set(slot uint16, key string, rec Record) {
	s := &ix.slots[slot]
	s.mu.Lock()
	if s.m == nil {
		s.m = make(map[string]Record)
	}
	s.m[key] = rec
	s.mu.Unlock()
}

// forgetTombstone removes key if it is still the tombstone of version v.
func (ix *memIndex) forgetTombstone(slot uint16, key string, v uint64) {
	s := &ix.slots[slot]
	s.mu.Lock()
	if rec, ok := s.m[key]; ok && rec.Tombstone && rec.Version == v {
		delete(s.m, key)
	}
	s.mu.Unlock()
}

// dropSlot forgets every key of a slot.
func (ix *memIndex) dropSlot(slot uint16) {
	s := &ix.slots[slot]
	s.mu.Lock()
	s.m = nil
	s.mu.Unlock()
}

// tombstoneRef is a tombstone in the index, to forget once Badger has
// dropped it too.
type tombstoneRef struct {
	slot    uint16
	key     string
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
