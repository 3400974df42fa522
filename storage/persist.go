package storage

import (
	"errors"
	"strings"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// dirtyKeySize is what a staged key counts against Options.MaxUnpersisted:
// its bytes and roughly what the staging map adds.
func dirtyKeySize(k string) int64 { return int64(len(k)) + 64 }

// Write-behind. Badger's write path costs several microseconds per entry
// (its memtable is a skiplist over a large arena: a cache miss per level),
// more than everything else a SET does together, and it runs on one
// goroutine. So writes are acknowledged once they are in the index (and,
// through replication, on the in-sync replicas, which is what makes an
// acknowledged write survive the loss of a node) and reach Badger behind:
//
//   - The committer stages the Badger key of each write in the dirty set,
//     so a key written many times between two cycles costs Badger one
//     entry. Only the key: the value stays in the index alone.
//   - A persist cycle takes the whole dirty set and commits, in as many
//     Badger transactions as it needs, each key's state as the index holds
//     it then (a state at least as new as the one staged; a key the index
//     no longer holds is deleted), on the persister goroutine, while the
//     committer goes on with an empty set. One cycle is in flight at a time,
//     and the next starts as soon as it is done (or PersistInterval after the
//     previous start, whichever is later), so Badger trails the index by
//     about one cycle.
//   - When the keys staged and in flight exceed MaxUnpersisted bytes, the
//     committer stops taking submissions until the cycle in flight ends:
//     Submit then blocks, which is the backpressure.
//   - When Badger fails a cycle, its keys go back to the dirty set and are
//     retried a second later; while that
//     lasts and the backlog is full, writes fail instead of waiting. With
//     FsyncAlways they fail at once, as Redis refuses writes while its
//     append-only file cannot be written; the submissions already parked
//     stay parked (their writes are in the index, visible, and retried)
//     until a cycle that holds them succeeds, or Close gives up on them.
//
// What a node loses when killed (not stopped: Close persists everything) is
// at most the writes of the last cycle or two, which its replicas hold; it
// gets them back by the repair that runs before it serves again. A single
// node without replicas loses them, as Redis loses what it has not yet
// written to its append-only file.
type persistState struct {
	s *Store

	// dirty holds the Badger keys staged in generation gen; spare is an
	// empty set to swap in when a cycle takes dirty.
	dirty      map[string]struct{}
	spare      map[string]struct{}
	dirtyBytes int64
	gen        uint64

	// inflight is the size of the cycle in flight, -1 when none; its
	// generation is gen-1.
	inflight  int64
	lastStart time.Time
	lastErr   error
	persisted uint64 // the last generation written

	// waiters are Flush calls, parked are FsyncAlways batches, each waiting
	// for a generation to be written.
	waiters []flushWaiter
	parked  []parkedPendings

	timer      *time.Timer
	timerArmed bool

	jobs    chan persistJob
	results chan persistResult
	done    chan struct{}

	// commitTs is the last Badger commit timestamp; only the persister
	// goroutine uses it once started.
	commitTs uint64
}

type persistJob struct {
	gen  uint64
	keys map[string]struct{}
}

type persistResult struct {
	gen  uint64
	keys map[string]struct{}
	err  error
}

// flushWaiter is a Flush call: done receives the outcome once generation
// gen is written.
type flushWaiter struct {
	gen  uint64
	done chan error
}

type parkedPendings struct {
	gen      uint64
	pendings []*Pending
}

func (ps *persistState) init(s *Store, commitTs uint64) {
	ps.s = s
	ps.dirty = make(map[string]struct{})
	ps.gen = 1
	ps.inflight = -1
	ps.commitTs = commitTs
	ps.lastStart = time.Now()
	ps.timer = time.NewTimer(time.Hour)
	ps.timer.Stop()
	ps.jobs = make(chan persistJob)
	ps.results = make(chan persistResult, 1)
	ps.done = make(chan struct{})
	go ps.persister()
}

// stage adds a written Badger key to the dirty set. In memory mode there
// is nothing to persist.
func (ps *persistState) stage(bk []byte) {
	if ps.s.db == nil {
		return
	}
	if _, ok := ps.dirty[string(bk)]; ok {
		return
	}
	k := string(bk)
	ps.dirty[k] = struct{}{}
	ps.dirtyBytes += dirtyKeySize(k)
}

// unstage forgets the staged keys that start with any of prefixes. There
// must be no cycle in flight.
func (ps *persistState) unstage(prefixes [][]byte) {
	for k := range ps.dirty {
		for _, p := range prefixes {
			if strings.HasPrefix(k, string(p)) {
				delete(ps.dirty, k)
				ps.dirtyBytes -= dirtyKeySize(k)
				break
			}
		}
	}
}

// bytes is the memory of the writes staged and in flight.
func (ps *persistState) bytes() int64 { return ps.dirtyBytes + max(ps.inflight, 0) }

// full reports whether the committer must stop taking submissions until
// the cycle in flight ends.
func (ps *persistState) full() bool {
	return ps.inflight >= 0 && ps.lastErr == nil && ps.dirtyBytes+ps.inflight >= ps.s.maxUnpersisted()
}

// maxUnpersisted is Options.MaxUnpersisted, lowered to 1/16 of maxmemory
// (at least 64 KiB), so that the staged keys stay within the margin of
// memory a node may take beyond its limit.
func (s *Store) maxUnpersisted() int64 {
	m := s.opts.MaxUnpersisted
	if mm := s.mem.cfg.Load().MaxMemory; mm > 0 {
		m = min(m, max(mm/16, 64<<10))
	}
	return m
}

// refusing returns Badger's last failure while the backlog is full, or
// with FsyncAlways (which acknowledges nothing Badger has not written):
// writes are then refused.
func (ps *persistState) refusing() error {
	if ps.lastErr != nil && (ps.dirtyBytes >= ps.s.maxUnpersisted() || ps.s.parks()) {
		return ps.lastErr
	}
	return nil
}

// park holds FsyncAlways submissions until the generation holding their
// writes (the current one), or a later one, is written.
func (ps *persistState) park(pendings []*Pending) {
	ps.parked = append(ps.parked, parkedPendings{gen: ps.gen, pendings: append([]*Pending(nil), pendings...)})
}

// addWaiter registers a Flush: it is answered once every write staged so far
// is in Badger.
func (ps *persistState) addWaiter(w flushWaiter) {
	switch {
	case len(ps.dirty) > 0:
		w.gen = ps.gen
	case ps.inflight >= 0:
		w.gen = ps.gen - 1
	default:
		w.done <- nil
		return
	}
	ps.waiters = append(ps.waiters, w)
}

// urgent reports whether someone waits for the staged writes, so a cycle
// should start without waiting for PersistInterval.
func (ps *persistState) urgent() bool {
	return len(ps.waiters) > 0 || len(ps.parked) > 0 ||
		ps.dirtyBytes >= ps.s.maxUnpersisted()/2
}

// maybeStart starts a persist cycle if there is something to write, no
// cycle in flight, and it is time; otherwise it arms the timer for when it
// will be.
func (ps *persistState) maybeStart() {
	if ps.inflight < 0 && len(ps.dirty) == 0 {
		// Nothing staged or in flight: everything acknowledged is written
		// (or was dropped), so nobody waits for anything, and no failed
		// write is left to retry. A batch that wrote nothing, or a drop
		// that emptied the staged writes, ends here.
		ps.lastErr = nil
		if len(ps.waiters) > 0 || len(ps.parked) > 0 {
			ps.release(ps.gen, nil)
		}
		return
	}
	if ps.inflight >= 0 {
		return
	}
	wait := ps.s.opts.PersistInterval
	if ps.urgent() {
		wait = 0
	}
	if ps.lastErr != nil {
		wait = retryBackoff
	}
	if d := wait - time.Since(ps.lastStart); d > 0 {
		if !ps.timerArmed {
			ps.timer.Reset(d)
			ps.timerArmed = true
		}
		return
	}
	ps.start()
}

// start hands the dirty map to the persister.
func (ps *persistState) start() {
	if ps.timerArmed {
		ps.timer.Stop()
		ps.timerArmed = false
	}
	job := persistJob{gen: ps.gen, keys: ps.dirty}
	ps.inflight = ps.dirtyBytes
	if ps.spare != nil {
		ps.dirty, ps.spare = ps.spare, nil
	} else {
		ps.dirty = make(map[string]struct{}, min(len(job.keys), maxSpareWrites))
	}
	ps.dirtyBytes = 0
	ps.gen++
	ps.lastStart = time.Now()
	ps.jobs <- job
}

// maxSpareWrites is the largest cycle whose map is kept for the next one.
const maxSpareWrites = 1 << 14

// timerFired notes that the armed timer went off.
func (ps *persistState) timerFired() { ps.timerArmed = false }

// finished takes the result of the cycle in flight.
func (ps *persistState) finished(r persistResult) {
	ps.inflight = -1
	if r.err != nil {
		ps.s.log.Error("writing to Badger failed; retrying", "err", r.err, "keys", len(r.keys))
		ps.lastErr = r.err
		// The keys go back, to be retried with the current generation.
		for k := range r.keys {
			if _, ok := ps.dirty[k]; !ok {
				ps.dirty[k] = struct{}{}
				ps.dirtyBytes += dirtyKeySize(k)
			}
		}
		// Flush reports the failure. The parked submissions' writes are in
		// the index, so failing them would deny a write that readers see
		// and that the next cycle retries: they stay parked until a cycle
		// holding their writes (or newer ones of the same keys) succeeds.
		ps.answerWaiters(r.gen, r.err)
		return
	}
	ps.lastErr = nil
	ps.persisted = r.gen
	// A Go map never shrinks: keeping the map of a burst (a bulk load
	// stages a million keys a cycle) would hold its memory for ever, so
	// only a small one is kept for reuse.
	if len(r.keys) <= maxSpareWrites {
		clear(r.keys)
		ps.spare = r.keys
	}
	ps.release(r.gen, nil)
}

// release answers the waiters and completes the parked submissions of
// generations up to gen.
func (ps *persistState) release(gen uint64, err error) {
	ps.answerWaiters(gen, err)
	n := 0
	for _, pp := range ps.parked {
		if pp.gen <= gen {
			for _, p := range pp.pendings {
				p.complete(err)
			}
			continue
		}
		ps.parked[n] = pp
		n++
	}
	clear(ps.parked[n:])
	ps.parked = ps.parked[:n]
}

// answerWaiters answers the Flush calls waiting for generations up to gen.
func (ps *persistState) answerWaiters(gen uint64, err error) {
	n := 0
	for _, w := range ps.waiters {
		if w.gen <= gen {
			w.done <- err
			continue
		}
		ps.waiters[n] = w
		n++
	}
	clear(ps.waiters[n:])
	ps.waiters = ps.waiters[:n]
}

// wait waits for the cycle in flight, if any, and takes its result.
func (ps *persistState) wait() {
	if ps.inflight >= 0 {
		ps.finished(<-ps.results)
	}
}

// persistAll writes everything staged, now, and returns the failure if
// Badger failed (once: the writes then stay staged).
func (ps *persistState) persistAll() error {
	ps.wait()
	if len(ps.dirty) == 0 {
		return nil
	}
	ps.start()
	r := <-ps.results
	ps.finished(r)
	return r.err
}

// stop ends the persister goroutine after persistAll, failing whatever
// still waits (a write Badger refused to the end).
func (ps *persistState) stop() {
	ps.wait()
	close(ps.jobs)
	<-ps.done
	if len(ps.waiters) > 0 || len(ps.parked) > 0 {
		err := ps.lastErr
		if err == nil {
			err = ErrClosed
		}
		ps.release(^uint64(0), err)
	}
	ps.timer.Stop()
}

// persister is the goroutine that writes cycles to Badger.
func (ps *persistState) persister() {
	defer close(ps.done)
	for job := range ps.jobs {
		err := ps.write(job.keys)
		releaseMappedFiles(ps.s.opts.Dir)
		ps.results <- persistResult{gen: job.gen, keys: job.keys, err: err}
	}
}

// write commits the current state of keys to Badger, in several
// transactions when they exceed one (with FsyncAlways, Badger syncs each),
// and publishes the last commit timestamp for readers. Each key's state is
// copied out of the index under its shard's lock; a key the index does not
// hold (a tombstone swept, a slot dropped) is deleted. A kill between two
// of the transactions leaves some records of the cycle in Badger and not
// others; each record stands alone (its expiry is in its header), so any
// subset is a state the node can restart from and repair.
func (ps *persistState) write(keys map[string]struct{}) error {
	s := ps.s
	txn := s.db.NewTransactionAt(s.readTs.Load(), true)
	defer func() { txn.Discard() }()
	n, chunk := 0, 0
	// The entries' bytes, in chunks that live until their transaction
	// commits.
	var buf []byte
	commit := func() error {
		if n == 0 {
			return nil
		}
		if f := s.opts.faults; f != nil && f.commit != nil {
			if err := f.commit(chunk); err != nil {
				return err
			}
		}
		chunk++
		// Never reuse a timestamp Badger may have seen, whatever happens.
		ps.commitTs++
		err := txn.CommitAt(ps.commitTs, nil)
		n, buf = 0, nil
		if err != nil {
			return err
		}
		s.stats.commits.Add(1)
		return nil
	}
	now := s.Now()
	// add sets e, or with none deletes bk.
	add := func(bk []byte, e *badger.Entry) error {
		do := func() error {
			if e == nil {
				return txn.Delete(bk)
			}
			return txn.SetEntry(e)
		}
		err := do()
		if errors.Is(err, badger.ErrTxnTooBig) {
			if err = commit(); err != nil {
				return err
			}
			txn = s.db.NewTransactionAt(s.readTs.Load(), true)
			err = do()
		}
		if err == nil {
			n++
		}
		return err
	}
	var err error
	var txnBytes int
	for k := range keys {
		bk := []byte(k)
		slot, key, _ := parseDataKey(bk)
		var e *badger.Entry
		buf, e = s.persistEntry(buf, slot, key, bk, now)
		if err = add(bk, e); err != nil {
			break
		}
		// Badger counts a value in its value log as a pointer, so its own
		// transaction limit would let one take tens of megabytes of large
		// values (copied here, then again by Badger): commit sooner.
		if txnBytes += len(bk); e != nil {
			txnBytes += len(e.Value)
		}
		if txnBytes >= persistTxnBytes {
			if err = commit(); err != nil {
				break
			}
			txn = s.db.NewTransactionAt(s.readTs.Load(), true)
			txnBytes = 0
		}
	}
	if err == nil {
		err = commit()
	}
	if err == nil {
		s.stats.cycles.Add(1)
		s.stats.persisted.Add(uint64(len(keys)))
	}
	// Every timestamp issued is complete: readers see what landed, even
	// after a failure, in line with Badger.
	s.readTs.Store(ps.commitTs)
	return err
}

// persistChunk is the size of the buffers persist cycles copy records into,
// and persistTxnBytes the bytes of keys and values after which a cycle
// commits a Badger transaction and starts another.
const (
	persistChunk    = 256 << 10
	persistTxnBytes = 1 << 20
)

// persistEntry builds the Badger entry of (slot, key)'s current state,
// copying it into buf (a fresh chunk when buf is full), and returns buf;
// the entry is nil when the index does not hold the key.
func (s *Store) persistEntry(buf []byte, slot uint16, key, bk []byte, now int64) ([]byte, *badger.Entry) {
	e := &badger.Entry{Key: bk}
	found := s.index.view(slot, key, func(b block, _ *uint32) {
		rec := b.record()
		n := headerLen + len(rec.Value)
		if cap(buf)-len(buf) < n {
			buf = make([]byte, 0, max(persistChunk, n))
		}
		start := len(buf)
		buf = buf[:start+n]
		v := buf[start : start+n : start+n]
		putHeader(v, TypeString, &rec)
		copy(v[headerLen:], rec.Value)
		e.Value = v
		if rec.Tombstone {
			e.UserMeta = flagTombstone
			e.ExpiresAt = uint64((now + s.opts.TombstoneTTL.Milliseconds() + 999) / 1000)
		} else {
			e.ExpiresAt = badgerExpiresAt(rec.ExpireAt, badgerExpiryGraceSecs)
		}
	})
	if !found {
		// Gone from the index without a tombstone: gone from Badger too.
		return buf, nil
	}
	return buf, e
}
