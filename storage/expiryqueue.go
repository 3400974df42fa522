package storage

import "math"

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
// is rebuilt from the index when it holds more than twice the records that
// can expire.
type expiryQueue struct {
	items []expiryItem
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
	top := q.items[0]
	last := len(q.items) - 1
	q.items[0] = q.items[last]
	q.items[last] = expiryItem{}
	q.items = q.items[:last]
	q.down(0)
	return top, true
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

// rebuild replaces the queue with one entry per record of the index that
// can expire.
func (q *expiryQueue) rebuild(ix *memIndex) {
	q.reset()
	for i := range ix.shards {
		sh := &ix.shards[i]
		sh.mu.RLock()
		sh.t.all(func(ts *tableSlot) bool {
			if rec := ts.record(); !rec.Tombstone && rec.ExpireAt != 0 {
				slot, key, _ := parseDataKey(ts.entry()[:ts.klen])
				q.items = append(q.items, expiryItem{at: rec.ExpireAt, slot: slot, key: string(key)})
			}
			return true
		})
		sh.mu.RUnlock()
	}
	for i := len(q.items)/2 - 1; i >= 0; i-- {
		q.down(i)
	}
}
