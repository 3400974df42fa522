package storage

import (
	"math"
	"unsafe"
)

// expiryItem is a key that can expire, and when: the schedule entry of a
// record with a TTL.
type expiryItem struct {
	at   int64 // unix ms
	slot uint16
	// key is the user key, copied: pointing into the record's buffer would
	// keep an overwritten value alive until the entry is popped.
	key string
}

// expiryQueue is the active expiry's schedule: a min-heap by due time of
// the records that can expire, kept in memory by the committer (which
// alone uses it) and rebuilt from the records at Open, so no expiry index
// goes to Badger and expiry never waits for a persist cycle.
//
// An entry is not removed when its key is overwritten, deleted or loses
// its TTL: a popped entry counts only if the key still holds a live record
// due at that time. The committer adds an entry whenever a record's due
// time changes, so every live record with a TTL has one. A key whose TTL
// is refreshed on every write leaves a stale entry per write, so the queue
// is compacted when it holds more than twice the records that can expire.
type expiryQueue struct {
	items []expiryItem
	// keyBytes is the length of the queued keys.
	keyBytes int64
}

// expiryItemBytes is what an entry costs beside its key: the item and the
// key's allocation header, roughly.
const expiryItemBytes = 40

// bytes is the memory the queue holds.
func (q *expiryQueue) bytes() int64 {
	return int64(cap(q.items))*int64(unsafe.Sizeof(expiryItem{})) + q.keyBytes + int64(len(q.items))*(expiryItemBytes-int64(unsafe.Sizeof(expiryItem{})))
}

func (q *expiryQueue) len() int { return len(q.items) }

// next returns the earliest due time queued, or math.MaxInt64.
func (q *expiryQueue) next() int64 {
	if len(q.items) == 0 {
		return math.MaxInt64
	}
	return q.items[0].at
}

func (q *expiryQueue) push(it expiryItem) {
	q.items = append(q.items, it)
	q.keyBytes += int64(len(it.key))
	for i := len(q.items) - 1; i > 0; {
		parent := (i - 1) / 2
		if q.items[parent].at <= q.items[i].at {
			break
		}
		q.items[parent], q.items[i] = q.items[i], q.items[parent]
		i = parent
	}
}

// popDue removes and returns the earliest entry if it is due at now.
func (q *expiryQueue) popDue(now int64) (expiryItem, bool) {
	if len(q.items) == 0 || q.items[0].at > now {
		return expiryItem{}, false
	}
	return q.popMin(), true
}

// popMin removes and returns the earliest entry; the queue is not empty.
func (q *expiryQueue) popMin() expiryItem {
	top := q.items[0]
	q.keyBytes -= int64(len(top.key))
	last := len(q.items) - 1
	q.items[0] = q.items[last]
	q.items[last] = expiryItem{}
	q.items = q.items[:last]
	q.down(0)
	return top
}

// down moves the entry at i down to its place.
func (q *expiryQueue) down(i int) {
	n := len(q.items)
	for {
		least, l, r := i, 2*i+1, 2*i+2
		if l < n && q.items[l].at < q.items[least].at {
			least = l
		}
		if r < n && q.items[r].at < q.items[least].at {
			least = r
		}
		if least == i {
			return
		}
		q.items[i], q.items[least] = q.items[least], q.items[i]
		i = least
	}
}

func (q *expiryQueue) reset() {
	clear(q.items)
	q.items = q.items[:0]
	q.keyBytes = 0
	q.shrink()
}

// schedule adds the entry of a record that now expires at rec.ExpireAt
// (prev, if had, is the record it replaced): only when its due time is
// new, as an unchanged one is already queued.
func (q *expiryQueue) schedule(slot uint16, key []byte, prev Record, had bool, rec Record) {
	if rec.Tombstone || rec.ExpireAt == 0 || (had && !prev.Tombstone && prev.ExpireAt == rec.ExpireAt) {
		return
	}
	q.push(expiryItem{at: rec.ExpireAt, slot: slot, key: string(key)})
}

// compact drops the stale entries: those whose key no longer holds a live
// record due at that time, and repeats of one that does. It costs one
// index lookup per entry, paid for by the stale entries that made the
// queue grow past its bound.
func (q *expiryQueue) compact(ix *memIndex) {
	seen := make(map[string]struct{}, len(q.items)/2)
	kept := q.items[:0]
	var bk []byte
	for _, it := range q.items {
		rec, ok := ix.get(it.slot, []byte(it.key))
		if !ok || rec.Tombstone || rec.ExpireAt != it.at {
			continue
		}
		bk = appendDataKey(bk[:0], it.slot, []byte(it.key))
		if _, dup := seen[string(bk)]; dup {
			continue
		}
		seen[string(bk)] = struct{}{}
		kept = append(kept, it)
	}
	clear(q.items[len(kept):])
	q.items = kept
	q.keyBytes = 0
	for _, it := range kept {
		q.keyBytes += int64(len(it.key))
	}
	q.shrink()
	for i := len(q.items)/2 - 1; i >= 0; i-- {
		q.down(i)
	}
}

// shrink gives back the backing array of a queue that has emptied (a mass
// expiry, a FlushAll) when it is much larger than what is left.
func (q *expiryQueue) shrink() {
	if cap(q.items) > 1024 && cap(q.items) > 4*len(q.items) {
		q.items = append(make([]expiryItem, 0, 2*len(q.items)), q.items...)
	}
}
