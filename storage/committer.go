package storage

import (
	"errors"
	"fmt"

	"github.com/dgraph-io/badger/v4"
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
// It pipelines: while Badger writes batch N (asynchronously), the committer
// already runs the functions of batch N+1, and hands N+1 to Badger once N is
// done. At most one batch is in flight, so batches are committed and
// published strictly in order. Batch N+1's functions see N's writes through
// the overlay, since they are not published yet; if N then fails, N+1 is
// failed too, as it was computed on a state that never came to be.
type committer struct {
	s  *Store
	tx Tx

	// commitTs is the last commit timestamp handed to Badger.
	commitTs uint64
	hlc      hlc

	// overlay holds the latest state of every key written by the batch in
	// flight or the batch being built, keyed by Badger key: together with
	// the published snapshot it is the current state.
	overlay map[string]overlayEntry
	// tombs lists the index's tombstones, oldest first.
	tombs tombstoneQueue
	// txn collects the writes of the batch being built (of its current
	// chunk, when the batch is too big for one Badger transaction).
	txn *badger.Txn
	// chunkWrites counts the writes in txn.
	chunkWrites int

	// cur is the batch being built, inflight the one Badger is writing
	// (nil when none); they alternate between the two elements of batches.
	cur, inflight *batch
	batches       [2]batch
	seq           uint64
}

// overlayEntry is a key's state as a batch left it.
type overlayEntry struct {
	rec Record
	seq uint64 // the batch that wrote it
}

// batch is a group of submissions committed together.
type batch struct {
	seq      uint64
	pendings []*Pending
	ops      int
	// deltas are count changes of writes not yet committed.
	deltas map[uint16]count
	// keys are the overlay keys the batch wrote, to prune once it is
	// published.
	keys []string
	// done receives the result of the batch's asynchronous commit.
	done chan error
}

func (c *committer) init(s *Store, commitTs uint64) {
	c.s = s
	c.tx.c = c
	c.commitTs = commitTs
	c.overlay = make(map[string]overlayEntry)
	for i := range c.batches {
		c.batches[i].deltas = make(map[uint16]count)
		c.batches[i].done = make(chan error, 1)
	}
}

// run is the committer goroutine: it takes every waiting submission, runs
// them as one batch, and repeats until Close.
func (c *committer) run() {
	defer close(c.s.commitDone)
	for {
		var inflightDone chan error
		if c.inflight != nil {
			inflightDone = c.inflight.done
		}
		select {
		case p := <-c.s.submitCh:
			c.collect(p)
		case err := <-inflightDone:
			c.finishInflight(err)
		case <-c.s.stopCommit:
			// The gate is closed, so the queue holds everything that will
			// ever be submitted: complete it all, then exit.
			for {
				select {
				case p := <-c.s.submitCh:
					c.collect(p)
				default:
					c.waitInflight()
					return
				}
			}
		}
	}
}

// collect gathers first and every submission queued behind it into a batch
// and processes it. A drop request ends the batch: the writes before it are
// committed first, then it runs alone.
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
	if drop != nil {
		c.runDrop(drop)
	}
}

// newBatch returns the batch element not in flight, reset.
func (c *committer) newBatch() *batch {
	b := &c.batches[0]
	if b == c.inflight {
		b = &c.batches[1]
	}
	c.seq++
	b.seq = c.seq
	clear(b.pendings) // Let completed submissions be collected.
	b.pendings = b.pendings[:0]
	b.ops = 0
	clear(b.deltas)
	clear(b.keys)
	b.keys = b.keys[:0]
	c.cur = b
	return b
}

// runBatch runs every function of the batch and hands its writes to Badger.
func (c *committer) runBatch(b *batch) {
	s := c.s
	c.txn = s.db.NewTransactionAt(s.readTs.Load(), true)
	c.chunkWrites = 0

	var err error
run:
	for _, p := range b.pendings {
		for _, fn := range p.fns {
			b.ops++
			if err = c.runFn(b, p, fn); err != nil {
				break run
			}
		}
	}

	for _, p := range b.pendings {
		p.markRan()
	}
	// The batch was built on the in-flight batch's writes: it can only be
	// committed after, and if, that one is.
	if ierr := c.waitInflight(); ierr != nil && err == nil {
		err = fmt.Errorf("an earlier batch failed: %w", ierr)
	}
	if err != nil || c.chunkWrites == 0 {
		c.txn.Discard()
		c.txn = nil
		c.finish(b, err)
		return
	}
	c.commitTs++
	c.inflight = b
	// With a callback, CommitAt always returns nil and reports through it
	// (from another goroutine; done is buffered).
	_ = c.txn.CommitAt(c.commitTs, func(err error) { b.done <- err })
	c.txn = nil
}

// waitInflight waits for the batch in flight, if any, and finishes it. It
// returns that batch's commit error.
func (c *committer) waitInflight() error {
	if c.inflight == nil {
		return nil
	}
	err := <-c.inflight.done
	c.finishInflight(err)
	return err
}

// finishInflight finishes the batch in flight once Badger reports on it.
func (c *committer) finishInflight(err error) {
	b := c.inflight
	c.inflight = nil
	if err == nil {
		c.s.stats.commits.Add(1)
	}
	c.finish(b, err)
}

// finish completes a batch whose writes are all committed (or failed):
// publish, count, prune the overlay, complete the submissions.
func (c *committer) finish(b *batch, err error) {
	s := c.s
	if err == nil {
		for slot, d := range b.deltas {
			s.addCount(slot, d)
		}
		c.index(b)
	}
	// Publish before completing, so that a client that saw its write
	// acknowledged reads it back. Every commit timestamp issued is complete
	// here (at most one batch is ever in flight), including, after a
	// failure, any chunk that did commit: reads stay in line with Badger.
	s.readTs.Store(c.commitTs)

	if err != nil {
		s.log.Error("commit failed; failing the whole batch", "err", err, "submissions", len(b.pendings))
		err = fmt.Errorf("storage: commit: %w", err)
		// The overlay may hold writes that never happened, which the batch
		// being built (if any) read; it fails too, see runBatch.
		clear(c.overlay)
	} else {
		for _, k := range b.keys {
			if e, ok := c.overlay[k]; ok && e.seq == b.seq {
				delete(c.overlay, k)
			}
		}
	}
	// Counted before completing, so a caller that waited sees its batch.
	s.stats.batches.Add(1)
	s.stats.ops.Add(uint64(b.ops))
	s.stats.submissions.Add(uint64(len(b.pendings)))
	for _, p := range b.pendings {
		p.complete(err)
	}
}

// index applies a committed batch to the in-memory index, before its
// submissions are acknowledged, and forgets tombstones Badger has dropped.
func (c *committer) index(b *batch) {
	s := c.s
	now := s.Now()
	for _, p := range b.pendings {
		for _, m := range p.muts {
			k := frozenString(m.dataKey)
			s.index.set(m.Slot, k, m.Rec)
			if m.Rec.Tombstone {
				c.tombs.push(tombstoneRef{slot: m.Slot, key: k, version: m.Rec.Version, at: now})
			}
		}
	}
	c.tombs.expire(&s.index, now-s.opts.TombstoneTTL.Milliseconds())
}

// runFn runs one write function. The function's writes go to the overlay at
// once (so it and later functions see them) but reach the Badger
// transaction only when it returns without failing, so that a failed
// function leaves no trace. The error returned is a commit error, which
// aborts the batch; a function's own failure is recorded in its Pending.
func (c *committer) runFn(b *batch, p *Pending, fn func(tx *Tx)) error {
	tx := &c.tx
	tx.reset(b, p)
	if err := tx.call(fn); err != nil {
		tx.rollback()
		if p.err == nil {
			p.err = err
		}
		return nil
	}
	for i := range tx.writes {
		if err := c.write(&tx.writes[i]); err != nil {
			return err
		}
	}
	for _, d := range tx.deltas {
		b.deltas[d.slot] = b.deltas[d.slot].plus(d.delta)
	}
	return nil
}

// write adds one write to the current chunk. When Badger says the
// transaction is full, the chunk is committed first, synchronously and
// unpublished (readers keep the previous snapshot until the whole batch is
// in, so a batch still becomes visible at once).
func (c *committer) write(w *write) error {
	err := c.addToTxn(w)
	if errors.Is(err, badger.ErrTxnTooBig) {
		if err = c.commitChunk(); err != nil {
			return err
		}
		c.txn = c.s.db.NewTransactionAt(c.s.readTs.Load(), true)
		err = c.addToTxn(w)
	}
	if err != nil {
		return err
	}
	c.chunkWrites++
	return nil
}

func (c *committer) addToTxn(w *write) error {
	if w.entry != nil {
		return c.txn.SetEntry(w.entry)
	}
	return c.txn.Delete(w.delKey)
}

// commitChunk commits the current chunk of a batch that is too big for one
// Badger transaction.
func (c *committer) commitChunk() error {
	// Commits go in order, and the batch rests on the one in flight.
	if err := c.waitInflight(); err != nil {
		return fmt.Errorf("an earlier batch failed: %w", err)
	}
	if c.chunkWrites == 0 {
		return nil
	}
	// Never reuse a timestamp Badger may have seen, whatever happens.
	c.commitTs++
	err := c.txn.CommitAt(c.commitTs, nil)
	c.chunkWrites = 0
	if err != nil {
		// Some of the chunk may have landed: counts can be off until the
		// next Open recounts. The batch fails and is logged.
		return err
	}
	c.s.stats.commits.Add(1)
	// The deltas so far belong to functions whose writes are all in
	// committed chunks.
	b := c.cur
	for slot, d := range b.deltas {
		c.s.addCount(slot, d)
	}
	clear(b.deltas)
	return nil
}

// runDrop performs a FlushAll or DropSlot between batches.
func (c *committer) runDrop(p *Pending) {
	s := c.s
	c.waitInflight()
	err := s.db.DropPrefix(p.drop.prefixes...)
	switch {
	case err != nil:
		// Part of the range may be gone: recount from what is left.
		s.log.Error("drop failed; recounting keys", "err", err)
		if _, rerr := s.rebuildCounts(); rerr != nil {
			s.log.Error("recount failed", "err", rerr)
		}
		err = fmt.Errorf("storage: drop: %w", err)
	case p.drop.slot < 0:
		for i := range s.counts {
			s.counts[i].Store(0)
			s.volatile[i].Store(0)
		}
		s.index.reset()
		s.total.Store(0)
		s.volatileTotal.Store(0)
	default:
		slot := uint16(p.drop.slot)
		s.addCount(slot, count{keys: -s.counts[slot].Load(), volatile: -s.volatile[slot].Load()})
		s.index.dropSlot(slot)
	}
	s.stats.batches.Add(1)
	s.stats.submissions.Add(1)
	p.complete(err)
}
