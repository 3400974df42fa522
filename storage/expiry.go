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
	// happened before the expiry loop removed the record, a restart would
	// not load it and the tombstone the loop writes for it would be all
	// Badger keeps. The loop normally removes a record within
	// ExpiryInterval of its expiry, so the grace only matters when a node
	// is down for minutes, when Badger's own expiry takes over. Reads never
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
// counts and disk follow the live keys. It also evicts when the store is
// over its memory limit and no write came to do it.
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
		if s.excess() > 0 {
			// Over the limit with no writes to make room before: a lower
			// maxmemory, or replicas asking. Any batch evicts first.
			if err := s.Do(func(*Tx) {}); err != nil && !errors.Is(err, ErrClosed) {
				s.log.Error("eviction failed", "err", err)
			}
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

// expireDue runs one step of active expiry through the committer: up to
// limit due entries of the expiry queue. It returns how many entries it
// took, so the loop knows whether more may be due.
func (s *Store) expireDue(limit int) (int, error) {
	if s.nextExpiry.Load() > s.Now() {
		return 0, nil
	}
	var taken int
	err := s.submit(&Pending{fns: []func(*Tx){func(tx *Tx) {
		var expired uint64
		taken, expired = tx.expireDue(limit)
		// Counted in the committer, so a caller that waited for a later
		// batch sees it.
		s.stats.expired.Add(expired)
	}}, cause: CauseExpired, done: make(chan struct{}), ran: make(chan struct{})}).Wait()
	if err != nil {
		return 0, err
	}
	return taken, nil
}

// expireDue is the write function of an expiry step. It takes up to limit
// due entries from the expiry queue; for each whose key still holds a live
// record due at that time, it writes a tombstone carrying that record's
// own version: a late copy of the record (or anything older) cannot bring
// it back, while any newer write still wins. It returns how many entries
// it took and how many keys it expired.
func (tx *Tx) expireDue(limit int) (taken int, expired uint64) {
	q := &tx.c.expiry
	for taken < limit {
		it, ok := q.popDue(tx.now)
		if !ok {
			break
		}
		taken++
		key := []byte(it.key)
		cur, ok, err := tx.lookup(tx.dataKey(it.slot, key), false)
		if err != nil {
			// Leave the record alone rather than fail the step, which would
			// lose the entries it took.
			tx.c.s.log.Error("expiry: cannot read key; skipping it", "slot", it.slot, "key", key, "err", err)
			continue
		}
		if ok && !cur.Tombstone && cur.ExpireAt == it.at {
			tx.put(it.slot, key, Record{Version: cur.Version, Tombstone: true})
			expired++
		}
	}
	q.shrink()
	return taken, expired
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

// Expired reports whether key holds a record whose time has passed and
// that the active expiry has not removed yet: one that reads already
// report as missing, and that Tx.RemoveExpired would remove. Like
// Lookup, it reads under the key's shard lock only.
func (s *Store) Expired(slot uint16, key []byte) bool {
	if slot >= SlotCount {
		return false
	}
	expired := false
	s.index.view(slot, key, func(b block, _ *uint32) {
		at := b.expireAt()
		expired = !b.tombstone() && at != 0 && at <= s.Now()
	})
	return expired
}

// RemoveExpired is a lazy expiry: if key holds a record whose time has
// passed, it removes it as the active expiry would, with a tombstone
// carrying the record's own version (a copy on another node goes by its
// own expiry, not by this write), and reports whether it did. It is for
// callers that report an expiry when a command finds it, as Redis does;
// a key it finds live, missing or oversized is left alone.
func (tx *Tx) RemoveExpired(slot uint16, key []byte) bool {
	if tx.err != nil || slot >= SlotCount || len(key) > MaxKeyLen {
		return false
	}
	cur, ok := tx.stored(tx.dataKey(slot, key), false)
	if !ok || cur.Tombstone || cur.ExpireAt == 0 || cur.ExpireAt > tx.now {
		return false
	}
	tx.put(slot, key, Record{Version: cur.Version, Tombstone: true})
	return true
}
