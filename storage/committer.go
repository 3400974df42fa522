package storage

import (
	"fmt"
	"slices"
	"time"
)

// maxBatchSubmissions bounds how many queued submissions one batch takes, so
// that a flood of writes still completes in steps.
const maxBatchSubmissions = submitQueueLen

// hlc is the hybrid logical clock that versions records: the high bits are
// physical milliseconds, the low 16 bits a counter for writes within one
// millisecond. Only the committer uses it.
type hlc struct{ last uint64 }

// next returns a version above every version issued or observed.
func (c *hlc) next(nowMs int64) uint64 {
	v := uint64(nowMs) << 16
	if v <= c.last {
		v = c.last + 1
	}
	c.last = v
	return v
}

// observe moves the clock past a version seen elsewhere.
func (c *hlc) observe(v uint64) {
	if v > c.last {
		c.last = v
	}
}

// committer is the state of the single write goroutine.
//
// A batch's functions run one after the other; their writes go to the
// in-memory index when the batch is done, and the batch's submissions then
// complete: an acknowledged write is in memory (and, through replication, on
// the in-sync replicas), not yet in Badger. Badger is written behind, by the
// persister: the committer stages every write in a map keyed by Badger key,
// so that writes to a hot key between two persist cycles cost Badger one
// entry, and hands the whole map over at the start of each cycle (see
// persist.go). With FsyncAlways a batch completes only once the cycle that
// holds it is written and synced.
type committer struct {
	s  *Store
	tx Tx

	hlc hlc

	// overlay holds the state of every key written by the batch being
	// built, keyed by Badger key, until the batch reaches the index.
	overlay map[string]overlayEntry
	// expiry schedules the records that can expire.
	expiry expiryQueue
	// pool holds eviction candidates between evictions; evictions is the
	// internal submission that carries a batch's evictions.
	pool      evictionPool
	evictions Pending
	// tombs lists the index's tombstones, oldest first.
	tombs tombstoneQueue

	b batch

	p persistState
}

// overlayEntry is a key's state as the batch being built left it.
type overlayEntry struct {
	rec Record
}

// batch is a group of submissions completed together.
type batch struct {
	pendings []*Pending
	// evicted is set when the batch evicted keys (c.evictions holds them).
	evicted bool
	ops     int
	// keys are the overlay keys the batch wrote.
	keys []string
}

func (c *committer) init(s *Store, commitTs uint64) {
	c.s = s
	c.tx.c = c
	c.overlay = make(map[string]overlayEntry)
	c.p.init(s, commitTs)
}

// run is the committer goroutine: it takes every waiting submission, runs
// them as one batch, and repeats until Close; between batches it starts
// persist cycles and takes their results.
func (c *committer) run() {
	defer close(c.s.commitDone)
	defer c.p.stop()
	for {
		submitCh := c.s.submitCh
		if c.p.full() {
			// Backpressure: Badger is behind by more than the bound.
			submitCh = nil
		}
		select {
		case p := <-submitCh:
			c.collect(p)
		case r := <-c.p.results:
			c.p.finished(r)
			c.publishMemory()
		case w := <-c.s.flushCh:
			c.p.addWaiter(w)
		case <-c.p.timer.C:
			c.p.timerFired()
		case <-c.s.stopCommit:
			// The gate is closed, so the queue holds everything that will
			// ever be submitted: complete it all, persist it, then exit.
		drain:
			for {
				select {
				case p := <-c.s.submitCh:
					c.collect(p)
				default:
					break drain
				}
			}
			if err := c.p.persistAll(); err != nil {
				c.s.log.Error("persisting the last writes at close failed", "err", err)
				c.s.closePersistErr = err
			}
			return
		}
		c.p.maybeStart()
	}
}

// collect gathers first and every submission queued behind it into a batch
// and processes it. A drop request ends the batch: the writes before it are
// completed first, then it runs alone.
func (c *committer) collect(first *Pending) {
	if first.drop != nil {
		c.runDrop(first)
		return
	}
	b := c.newBatch()
	b.pendings = append(b.pendings, first)
	var drop *Pending
gather:
	for len(b.pendings) < maxBatchSubmissions {
		select {
		case p := <-c.s.submitCh:
			if p.drop != nil {
				drop = p
				break gather
			}
			b.pendings = append(b.pendings, p)
		default:
			break gather
		}
	}
	c.runBatch(b)
	c.release(b)
	if c.s.excess() > 0 {
		// Evict right away rather than before the next batch, so that
		// memory is within the limit between batches.
		b := c.newBatch()
		c.runBatch(b)
		c.release(b)
	}
	if drop != nil {
		c.runDrop(drop)
	}
}

// release drops the committer's references to a completed batch, so that
// its buffers (a pipeline of a million writes is hundreds of megabytes)
// go as soon as their submitters are done with them.
func (c *committer) release(b *batch) {
	clear(b.pendings)
	b.pendings = b.pendings[:0]
	clear(b.keys)
	b.keys = b.keys[:0]
	tx := &c.tx
	tx.b, tx.p = nil, nil
	clear(tx.writes)
	tx.writes = tx.writes[:0]
	clear(tx.undos)
	tx.undos = tx.undos[:0]
	clear(c.evictions.muts)
	c.evictions.muts = c.evictions.muts[:0]
	if cap(b.pendings) > 4*submitQueueLen {
		b.pendings = nil
	}
	if len(c.overlay) == 0 && cap(b.keys) > 1<<16 {
		// A Go map never shrinks: one that held a huge batch is replaced.
		c.overlay = make(map[string]overlayEntry)
		b.keys = nil
	}
}

// newBatch returns the batch, reset.
func (c *committer) newBatch() *batch {
	b := &c.b
	clear(b.pendings) // Let completed submissions be collected.
	b.pendings = b.pendings[:0]
	b.ops = 0
	b.evicted = false
	clear(b.keys)
	b.keys = b.keys[:0]
	return b
}

// runBatch runs every function of the batch, publishes its writes to the
// index and completes its submissions (or, with FsyncAlways, parks them
// until their writes are on disk).
func (c *committer) runBatch(b *batch) {
	if err := c.p.refusing(); err != nil {
		// Badger has been failing and the backlog is full: refuse rather
		// than grow without bound or wait forever.
		for _, p := range b.pendings {
			p.complete(fmt.Errorf("storage: writes refused, persisting to disk fails: %w", err))
		}
		return
	}
	c.evict(b)
	for _, p := range b.pendings {
		for _, fn := range p.fns {
			b.ops++
			c.runFn(b, p, fn)
		}
	}
	for _, p := range b.pendings {
		p.markRan()
	}
	c.finish(b)
}

// evict makes room before a batch runs: when the node is over its memory
// limit (or replicas ask it to free memory), it evicts keys as the policy
// says, as tombstones with new versions that reach the index with the
// batch and go to the eviction handler after it.
func (c *committer) evict(b *batch) {
	s := c.s
	c.trimTombstones()
	need := s.excess()
	if need <= 0 {
		s.mem.over.Store(false)
		return
	}
	p := &c.evictions
	clear(p.muts)
	p.muts = p.muts[:0]
	tx := &c.tx
	tx.reset(b, p)
	freed, keys := tx.evictStep(need)
	if tx.err != nil {
		tx.rollback()
		s.log.Error("eviction failed", "err", tx.err)
		return
	}
	for _, k := range tx.writes {
		c.p.stage(k)
	}
	demand := s.mem.demand.Load()
	s.mem.demand.Store(max(demand-freed, 0))
	// Over when nothing at all could be evicted for the node's own excess
	// (as Redis's performEvictions fails only with nothing left to evict):
	// a partial step goes on at the next batch. With an allkeys policy,
	// what is left is other primaries' data, which they evict when this
	// node reports its excess: only an empty node is over for good.
	cfg := s.mem.cfg.Load()
	s.mem.over.Store(keys == 0 && need > demand && (cfg.Policy.volatile() || s.total.Load() == 0))
	b.evicted = keys > 0
}

// tombstoneBudget is the share of maxmemory that tombstones may take
// before the oldest are dropped ahead of their TombstoneTTL: evictions (in
// replicated slots) and deletions leave a tombstone each, and under a
// flood of writes at the limit they would otherwise crowd out live keys.
const tombstoneBudget = 32

// trimTombstones forgets tombstones older than TombstoneTTL, and the
// oldest beyond the budget.
func (c *committer) trimTombstones() {
	s := c.s
	c.tombs.expire(s.index, s.Now()-s.opts.TombstoneTTL.Milliseconds())
	if limit := s.mem.cfg.Load().MaxMemory / tombstoneBudget; limit > 0 {
		for s.index.tombBytes.Load()+c.tombs.bytes() > limit && c.tombs.forgetOldest(s.index) {
		}
	}
}

// finish makes a batch's writes current: counts, index, overlay pruned;
// then completes its submissions.
func (c *committer) finish(b *batch) {
	s := c.s
	c.index(b)
	for _, k := range b.keys {
		delete(c.overlay, k)
	}
	// Counted before completing, so a caller that waited sees its batch.
	s.stats.batches.Add(1)
	s.stats.ops.Add(uint64(b.ops))
	s.stats.submissions.Add(uint64(len(b.pendings)))
	if s.parks() {
		c.p.park(b.pendings)
		return
	}
	for _, p := range b.pendings {
		p.complete(nil)
	}
}

// index applies a batch to the in-memory index and the counts, before its

// index applies a batch to the in-memory index and the counts, before its
// submissions are acknowledged, forgets old tombstones, and hands the
// batch's evictions to the eviction handler.
func (c *committer) index(b *batch) {
	s := c.s
	keep := s.keepsAccess()
	apply := func(muts []Mutation) {
		for i := range muts {
			m := &muts[i]
			c.set(m.Slot, m.Key, &m.Rec, keep)
		}
	}
	if b.evicted {
		for i := range c.evictions.muts {
			m := &c.evictions.muts[i]
			if s.replicated[m.Slot].Load() {
				c.set(m.Slot, m.Key, &m.Rec, keep)
				continue
			}
			// No other copy of the slot: nothing a tombstone would order.
			if old, ok := s.index.remove(m.Slot, m.Key); ok {
				s.addCount(m.Slot, countChange(old, true, Record{Tombstone: true}))
			}
		}
	}
	for _, p := range b.pendings {
		apply(p.muts)
	}
	c.trimTombstones()
	if c.expiry.len() > 2*int(s.volatileTotal.Load())+expiryQueueSlack {
		c.expiry.compact(s.index)
	}
	s.nextExpiry.Store(c.expiry.next())
	c.publishMemory()
	c.changed(b)
	if b.evicted {
		s.mem.evicted.Add(int64(len(c.evictions.muts)))
		if h := s.onEvict.Load(); h != nil && *h != nil {
			(*h)(slices.Clone(c.evictions.muts))
		}
	}
}

// set puts a record in the index and keeps the counts, the expiry queue
// and the tombstone queue in step.
func (c *committer) set(slot uint16, key []byte, rec *Record, keepAccess bool) {
	s := c.s
	res := s.index.set(slot, key, rec, s.newAccess(rec), keepAccess)
	s.addCount(slot, countChange(res.old, res.had, *rec))
	c.expiry.schedule(slot, key, res.old, res.had, *rec)
	if rec.Tombstone {
		c.tombs.push(tombstoneRef{at: s.Now(), tag: res.tag, slot: slot, version: rec.Version})
	}
}

// publishMemory updates the memory figures that readers of UsedMemory see
// for what only the committer knows.
func (c *committer) publishMemory() {
	c.s.expiryBytes.Store(c.expiry.bytes() + c.tombs.bytes())
	c.s.persistBytes.Store(c.p.bytes())
}

// expiryQueueSlack is how many stale entries the expiry queue may hold
// beyond twice the records that can expire before it is compacted.
const expiryQueueSlack = 4096

// runFn runs one write function. The function's writes go to the overlay at
// once (so it and later functions see them) but are staged for Badger only
// when it returns without failing, so that a failed function leaves no
// trace; its failure is recorded in its Pending.
func (c *committer) runFn(b *batch, p *Pending, fn func(tx *Tx)) {
	tx := &c.tx
	tx.reset(b, p)
	if err := tx.call(fn); err != nil {
		tx.rollback()
		if p.err == nil {
			p.err = err
		}
		return
	}
	for _, k := range tx.writes {
		c.p.stage(k)
	}
}

// runDrop performs a FlushAll or DropSlot between batches.
func (c *committer) runDrop(p *Pending) {
	s := c.s
	// The cycle in flight may hold writes of the dropped ranges: let it
	// land, then forget what is staged there, so nothing comes back.
	c.p.wait()
	c.p.unstage(p.drop.prefixes)
	var err error
	if f := s.opts.faults; f != nil && f.drop != nil {
		err = f.drop()
	}
	if err == nil && s.db != nil {
		err = s.db.DropPrefix(p.drop.prefixes...)
	}
	switch {
	case err != nil:
		// Part of the range may be gone. Nothing of it is staged or in
		// flight any more, so Badger holds what is left of it: reload the
		// range from there. Only the range: elsewhere the index holds
		// acknowledged writes that Badger may not have yet (a FlushAll's
		// range is everything, and nothing at all is staged).
		s.log.Error("drop failed; reloading the range from Badger", "err", err)
		var rerr error
		if p.drop.slot < 0 {
			_, rerr = s.rebuildCounts()
		} else {
			rerr = s.reloadSlot(uint16(p.drop.slot))
		}
		if rerr != nil {
			s.log.Error("reloading after a failed drop failed", "err", rerr)
		}
		err = fmt.Errorf("storage: drop: %w", err)
	case p.drop.slot < 0:
		for i := range s.counts {
			s.counts[i].Store(0)
			s.volatile[i].Store(0)
		}
		s.index.reset()
		c.expiry.reset()
		c.tombs.reset()
		s.total.Store(0)
		s.volatileTotal.Store(0)
	default:
		slot := uint16(p.drop.slot)
		s.addCount(slot, count{keys: -s.counts[slot].Load(), volatile: -s.volatile[slot].Load()})
		s.index.dropSlot(slot)
	}
	s.nextExpiry.Store(c.expiry.next())
	c.publishMemory()
	c.dropped(p.drop.slot)
	s.stats.batches.Add(1)
	s.stats.submissions.Add(1)
	p.complete(err)
}

// parks reports whether submissions complete only once their writes are in
// Badger (FsyncAlways, on disk).
func (s *Store) parks() bool { return s.opts.Fsync == FsyncAlways && !s.opts.InMemory }

// retryBackoff is how long the persister waits before retrying after Badger
// failed a cycle.
const retryBackoff = time.Second
