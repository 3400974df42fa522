package storage

import (
	"errors"
	"time"

	"github.com/dgraph-io/badger/v4"
)

const (
	// expiryBatchLimit bounds the keys one expiry step removes, so that a
	// mass expiry does not monopolise the committer; the loop goes again at
	// once while steps come back full.
	expiryBatchLimit = 1000

	// badgerExpiryGraceSecs is added to the Badger ExpiresAt of records
	// that expire. Badger hides a record once its ExpiresAt passes; if that
	// happened before the expiry loop removed the record, the loop (and
	// every write) would find nothing there and the key count would never
	// drop. The loop normally removes a record within ExpiryInterval of its
	// expiry, so the grace only matters when it falls minutes behind, or
	// after downtime, when Badger's own expiry takes over. Reads never
	// depend on it: they check the header's millisecond expiry.
	badgerExpiryGraceSecs = 5 * 60

	// maintenanceInterval is the period of the housekeeping loop.
	maintenanceInterval = time.Second
	// valueLogGCInterval is how often the value log is garbage collected.
	valueLogGCInterval = 5 * time.Minute
	// valueLogGCDiscardRatio is the share of stale data that makes a value
	// log file worth rewriting.
	valueLogGCDiscardRatio = 0.5
)

// expiryLoop is the active expiry: every ExpiryInterval it removes keys
// whose time has come, without waiting for a client to touch them, so that
// counts and disk follow the live keys.
func (s *Store) expiryLoop() {
	defer s.bgWG.Done()
	t := time.NewTicker(s.opts.ExpiryInterval)
	defer t.Stop()
	for {
		select {
		case <-s.stopBg:
			return
		case <-t.C:
		}
		for {
			n, err := s.expireDue(expiryBatchLimit)
			if err != nil {
				if !errors.Is(err, ErrClosed) {
					s.log.Error("active expiry failed", "err", err)
				}
				break
			}
			if n < expiryBatchLimit {
				break
			}
			select {
			case <-s.stopBg:
				return
			default:
			}
		}
	}
}

// dueEntry is an expiry-index entry that has come due.
type dueEntry struct {
	indexKey []byte
	expireAt int64
	slot     uint16
	key      []byte
}

// expireDue processes up to limit due expiry-index entries through the
// committer and returns how many it found.
func (s *Store) expireDue(limit int) (int, error) {
	due, err := s.scanDue(s.Now(), limit)
	if err != nil || len(due) == 0 {
		return 0, err
	}
	var n uint64
	if err := s.Do(func(tx *Tx) { n = tx.expire(due) }); err != nil {
		return 0, err
	}
	s.stats.expired.Add(n)
	// The index entries are read from Badger, which the deletions reach
	// behind: wait for them, or the next scan finds the same entries again.
	if err := s.Flush(); err != nil {
		return 0, err
	}
	return len(due), nil
}

// scanDue returns up to limit expiry-index entries due at or before now, in
// due order, copied out of Badger.
func (s *Store) scanDue(now int64, limit int) ([]dueEntry, error) {
	if !s.gate.enter() {
		return nil, ErrClosed
	}
	defer s.gate.exit()
	ts := s.readers.acquire(&s.readTs)
	defer s.readers.release(ts)
	txn := s.db.NewTransactionAt(ts, false)
	defer txn.Discard()
	it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{expiryIndexPrefix}})
	defer it.Close()

	var due []dueEntry
	for it.Rewind(); it.Valid() && len(due) < limit; it.Next() {
		ik := it.Item().KeyCopy(nil)
		expireAt, slot, key, ok := parseExpiryKey(ik)
		if !ok {
			s.log.Warn("malformed expiry-index key; dropping it", "key", ik)
			due = append(due, dueEntry{indexKey: ik, slot: SlotCount})
			continue
		}
		if expireAt > now {
			break // The index is in due order.
		}
		due = append(due, dueEntry{indexKey: ik, expireAt: expireAt, slot: slot, key: key})
	}
	return due, nil
}

// expire is the write function of an expiry step. For each due entry whose
// key still holds the record it was written for (same expiry, now past), it
// writes a tombstone carrying that record's own version: a late copy of the
// record (or anything older) cannot bring it back, while any newer write
// still wins. Every processed index entry is deleted. It returns how many
// keys it expired.
func (tx *Tx) expire(due []dueEntry) uint64 {
	var n uint64
	for i := range due {
		e := &due[i]
		if e.slot < SlotCount && len(e.key) <= MaxKeyLen {
			cur, ok, err := tx.lookup(tx.dataKey(e.slot, e.key), false)
			switch {
			case err != nil:
				// Leave the record alone, but drop the entry, so that one bad
				// record cannot stall expiry for good.
				tx.c.s.log.Error("expiry: cannot read key; dropping its index entry", "slot", e.slot, "key", e.key, "err", err)
			case ok && !cur.Tombstone && cur.ExpireAt == e.expireAt && cur.ExpireAt <= tx.now:
				tx.put(e.slot, e.key, Record{Version: cur.Version, Tombstone: true})
				n++
			}
		}
		tx.writes = append(tx.writes, write{key: e.indexKey, delete: true})
	}
	return n
}

// maintenanceLoop does Badger housekeeping once a second: the everysec
// fsync, advancing the discard timestamp (in managed mode Badger keeps every
// version until told which are no longer needed), and, on disk, periodic
// value-log garbage collection.
func (s *Store) maintenanceLoop() {
	defer s.bgWG.Done()
	t := time.NewTicker(maintenanceInterval)
	defer t.Stop()
	var discardTs uint64
	// lagged is the timestamp published one tick ago. Point reads do not
	// register their snapshot (that would cost the hot path a shared
	// write), so the discard timestamp trails the published one by a tick:
	// far longer than any single lookup takes. Scans register, and clamp it.
	lagged := s.readTs.Load()
	lastGC := time.Now()
	for {
		select {
		case <-s.stopBg:
			return
		case <-t.C:
		}
		if s.opts.Fsync == FsyncEverySec && !s.opts.InMemory {
			if err := s.db.Sync(); err != nil {
				s.log.Error("fsync failed", "err", err)
			}
		}

		cur := s.readTs.Load()
		if d := s.readers.clamp(lagged); d > discardTs {
			s.db.SetDiscardTs(d)
			discardTs = d
		}
		lagged = cur

		if !s.opts.InMemory && time.Since(lastGC) >= valueLogGCInterval {
			s.valueLogGC()
			lastGC = time.Now()
		}
	}
}

// valueLogGC rewrites value-log files that are mostly stale, a few at a
// time, stopping early on Close.
func (s *Store) valueLogGC() {
	for range 10 {
		select {
		case <-s.stopBg:
			return
		default:
		}
		err := s.db.RunValueLogGC(valueLogGCDiscardRatio)
		if err != nil {
			if !errors.Is(err, badger.ErrNoRewrite) && !errors.Is(err, badger.ErrRejected) {
				s.log.Warn("value log GC failed", "err", err)
			}
			return
		}
	}
}
