package storage

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// submitQueueLen is the capacity of the committer's queue. It bounds how
// many submissions can wait (Submit blocks beyond it, which is the
// backpressure) and, with maxBatchSubmissions, how big one batch can get.
const submitQueueLen = 4096

// Record is the replicated state of one key.
type Record struct {
	// Value is the payload. Slices handed out by the store must not be
	// modified.
	Value []byte
	// ExpireAt is the absolute expiry in unix milliseconds, 0 for none.
	ExpireAt int64
	// Version orders the states of a key: a replica keeps the highest.
	Version uint64
	// Tombstone marks a deletion. A tombstone has no value.
	Tombstone bool
	// Raw marks a string built in place (APPEND, SETRANGE), which Redis
	// holds, and OBJECT ENCODING reports, as "raw" whatever its content.
	Raw bool
}

// Mutation is one key's new state, as produced by a write (what replication
// ships).
type Mutation struct {
	Slot uint16
	Key  []byte
	Rec  Record
}

// Stats are cumulative counters of the committer's and the expiry loop's
// work, for monitoring and tests.
type Stats struct {
	// Submissions is the number of Submit calls (and FlushAll/DropSlot
	// requests) the committer completed.
	Submissions uint64
	// Ops is the number of write functions the committer ran.
	Ops uint64
	// Batches is the number of batches: groups of submissions the committer
	// took from its queue at once and completed together.
	Batches uint64
	// Commits is the number of Badger transactions committed (a persist
	// cycle that exceeds Badger's transaction size is split into several).
	Commits uint64
	// Cycles is the number of persist cycles that wrote to Badger, and
	// Persisted the number of entries they wrote: writes to a key staged
	// between two cycles reach Badger as one entry.
	Cycles, Persisted uint64
	// Expired is the number of keys the active-expiry loop removed.
	Expired uint64
}

// Store is an in-memory keyspace, written behind to Badger unless it runs
// in memory only, with one committer goroutine. All methods are safe for
// concurrent use.
type Store struct {
	opts Options
	log  *slog.Logger
	db   *badger.DB // nil in memory mode

	// maxValueLen is the longest payload a write may carry.
	maxValueLen int

	// readTs is the last published commit timestamp: every commit at or
	// below it is complete, so readers use it as their snapshot.
	readTs atomic.Uint64

	// counts holds the number of non-tombstone records of each slot, and
	// total their sum; only the committer changes them.
	counts [SlotCount]atomic.Int64
	total  atomic.Int64
	// volatile and volatileTotal count the keys that have an expiry.
	volatile      [SlotCount]atomic.Int64
	volatileTotal atomic.Int64

	gate    gate
	readers readerSet

	// index is the current state of every key, in memory, for reads and
	// the committer's lookups; Badger trails it.
	index *memIndex

	submitCh   chan *Pending
	flushCh    chan flushWaiter
	stopCommit chan struct{} // closed by Close: drain the queue and exit
	commitDone chan struct{} // closed by the committer when it exits
	stopBg     chan struct{} // closed by Close: background loops exit
	bgWG       sync.WaitGroup

	closeOnce sync.Once
	closeErr  error
	// closePersistErr is set by the committer when Close could not write
	// the last acknowledged writes to Badger.
	closePersistErr error

	// nextExpiry is the expiry queue's earliest due time (unix ms), or
	// math.MaxInt64: the expiry loop wakes the committer only when it has
	// come.
	nextExpiry atomic.Int64

	stats struct {
		submissions, ops, batches, commits, cycles, persisted, expired atomic.Uint64
	}

	// mem is the memory limit and policy, and the eviction state.
	mem memoryState
	// notEvictable marks the slots whose keys this node must not evict
	// (SetEvictable).
	notEvictable [SlotCount]atomic.Bool
	// replicated marks the slots with copies on other nodes
	// (SetReplicated).
	replicated [SlotCount]atomic.Bool
	onEvict    atomic.Pointer[func(muts []Mutation)]
	onChange   atomic.Pointer[func(ch Change)]
	// expiryBytes and persistBytes are the memory of the expiry queue and
	// of the writes not yet in Badger, published by the committer.
	expiryBytes, persistBytes atomic.Int64

	// c is the committer's state, touched only by the committer goroutine.
	c committer
}

// UsedMemory is what the keyspace and the buffers that grow with writes
// take, in bytes: every record's block and the tables that find them (at
// their allocation size), the expiry and tombstone queues, the keys staged
// for Badger and Badger's memtables (INFO's used_memory).
func (s *Store) UsedMemory() int64 { return s.countedMemory() + s.persistenceMemory() }

// persistenceMemory is what persistence holds: the staged keys and
// Badger's memtables (a fixed buffer, but one that a loaded node fills).
func (s *Store) persistenceMemory() int64 {
	if s.db == nil {
		return 0
	}
	return s.persistBytes.Load() + badgerMemtables*s.opts.MemTableSize
}

// countedMemory is UsedMemory without what persistence holds: what
// MaxMemory limits. As Redis leaves its AOF buffer out of the comparison
// (mem_not_counted_for_evict), so does the store: every eviction stages a
// key, and counting them would make evicting take more room. The staging
// has its own bound, MaxUnpersisted, at most 1/16 of MaxMemory, and the
// memtables are fixed.
func (s *Store) countedMemory() int64 { return s.index.bytes() + s.expiryBytes.Load() }

// MemoryStats breaks UsedMemory down.
type MemoryStats struct {
	// Keyspace is the records' blocks and the tables (Tombstones of it
	// the deletion markers); Mapped is the memory the keyspace holds from
	// the operating system, free blocks between live ones included.
	Keyspace, Tombstones, Mapped int64
	// Expiry is the expiry schedule, Unpersisted the writes not yet in
	// Badger, Persistence those and Badger's memtables: what MaxMemory
	// leaves out.
	Expiry, Unpersisted, Persistence int64
	// Blocks is the number of records' blocks and tables.
	Blocks int64
}

// MemoryStats returns the parts of UsedMemory.
func (s *Store) MemoryStats() MemoryStats {
	return MemoryStats{
		Keyspace:    s.index.bytes(),
		Tombstones:  s.index.tombBytes.Load(),
		Mapped:      s.index.a.Mapped(),
		Expiry:      s.expiryBytes.Load(),
		Unpersisted: s.persistBytes.Load(),
		Persistence: s.persistenceMemory(),
		Blocks:      s.index.a.Blocks(),
	}
}

// Open opens (or creates) the store described by opts, rebuilds the key
// counts with one key scan, and starts the committer and the background
// loops (active expiry, Badger housekeeping, and the everysec fsync).
func Open(opts Options) (*Store, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	startClocks()
	s := &Store{
		opts:       opts,
		log:        opts.Logger.With("component", "storage"),
		submitCh:   make(chan *Pending, submitQueueLen),
		flushCh:    make(chan flushWaiter),
		stopCommit: make(chan struct{}),
		commitDone: make(chan struct{}),
		stopBg:     make(chan struct{}),
		index:      newMemIndex(),
	}
	s.gate.init()
	s.c.s = s // Loading puts records through the committer's bookkeeping.
	mc := opts.Memory
	s.mem.cfg.Store(&mc)
	var ts uint64
	start := time.Now()
	if !opts.InMemory {
		if s.db, err = badger.OpenManaged(opts.badgerOptions()); err != nil {
			s.index.close()
			return nil, fmt.Errorf("storage: open badger: %w", err)
		}
		// Commit timestamps only need to exceed every version in Badger.
		ts = s.db.MaxVersion()
		s.readTs.Store(ts)
		maxVersion, err := s.rebuildCounts()
		if err == nil {
			err = s.dropLegacyExpiryIndex()
		}
		if err != nil {
			_ = s.db.Close()
			s.index.close()
			return nil, fmt.Errorf("storage: load keys: %w", err)
		}
		// Physical time normally dominates the clock, but starting past
		// every stored version keeps versions increasing even if the wall
		// clock went back while the node was down.
		s.c.hlc.observe(maxVersion)
		releaseMappedFiles(opts.Dir) // Loading read every table.
	}
	s.maxValueLen = s.computeMaxValueLen()
	s.nextExpiry.Store(s.c.expiry.next())
	s.log.Info("storage opened", "dir", opts.Dir, "in_memory", opts.InMemory,
		"keys", s.total.Load(), "load_time", time.Since(start).Round(time.Millisecond))

	// Last, after everything that can fail: init starts the persister.
	s.c.init(s, ts)
	s.c.publishMemory()
	go s.c.run()
	s.bgWG.Add(1)
	go s.expiryLoop()
	if s.db != nil {
		s.bgWG.Add(1)
		go s.maintenanceLoop()
	}
	return s, nil
}

// dropLegacyExpiryIndex removes the expiry index that earlier versions
// kept in Badger, if any of it is left: the schedule is now rebuilt from
// the records' headers at Open.
func (s *Store) dropLegacyExpiryIndex() error {
	txn := s.db.NewTransactionAt(s.readTs.Load(), false)
	it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{legacyExpiryIndexPrefix}})
	it.Rewind()
	found := it.Valid()
	it.Close()
	txn.Discard()
	if !found {
		return nil
	}
	return s.db.DropPrefix([]byte{legacyExpiryIndexPrefix})
}

// computeMaxValueLen derives the payload limit from Badger's: on disk a
// value must fit in one value-log file with its key, entry header and
// record header. In memory there is no Badger, and no limit but the int32
// lengths of the replication and value formats.
func (s *Store) computeMaxValueLen() int {
	limit := int64(math.MaxInt32)
	if s.db != nil {
		limit = min(limit, s.db.Opts().ValueLogFileSize-headerLen-maxBadgerKeyLen-64)
	}
	if s.opts.MaxValueLen > 0 {
		limit = min(limit, int64(s.opts.MaxValueLen))
	}
	return int(limit)
}

// MaxValueLen is the longest value a write may carry; longer ones fail with
// ErrValueTooLarge. It is about 1 GiB on disk.
func (s *Store) MaxValueLen() int { return s.maxValueLen }

// Close stops accepting submissions, lets every pending one complete, stops
// the background loops and closes Badger. Reads and submissions after Close
// fail with ErrClosed. Close waits for reads in progress (including a
// ScanSlot) to return, so it must not be called from a read callback or a
// write function. It is idempotent.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		// After the gate closes no read or Submit is inside the store, and
		// everything submitted is in the queue.
		s.gate.close()
		close(s.stopBg)
		s.bgWG.Wait()
		close(s.stopCommit)
		<-s.commitDone
		if s.db != nil {
			s.closeErr = s.db.Close()
		}
		s.index.close()
		if s.closeErr != nil {
			s.closeErr = fmt.Errorf("storage: close badger: %w", s.closeErr)
		}
		if s.closePersistErr != nil {
			s.closeErr = errors.Join(fmt.Errorf("storage: persisting at close: %w", s.closePersistErr), s.closeErr)
		}
	})
	return s.closeErr
}

// Now is the clock the store uses for expiry: unix milliseconds.
func (s *Store) Now() int64 { return time.Now().UnixMilli() }

// Stats returns a snapshot of the store's counters.
func (s *Store) Stats() Stats {
	return Stats{
		Submissions: s.stats.submissions.Load(),
		Ops:         s.stats.ops.Load(),
		Batches:     s.stats.batches.Load(),
		Commits:     s.stats.commits.Load(),
		Cycles:      s.stats.cycles.Load(),
		Persisted:   s.stats.persisted.Load(),
		Expired:     s.stats.expired.Load(),
	}
}

// Len is the number of keys in the store (see the package comment on
// counting). It is O(1).
func (s *Store) Len() int64 { return s.total.Load() }

// CountSlot is the number of keys in one slot. It is O(1).
func (s *Store) CountSlot(slot uint16) int64 {
	if slot >= SlotCount {
		return 0
	}
	return s.counts[slot].Load()
}

// Get returns the live record of a key, with a copy of its value. A
// tombstone or an expired record is reported as not found.
func (s *Store) Get(slot uint16, key []byte) (Record, bool, error) {
	var out Record
	found, err := s.View(slot, key, func(r Record) {
		out = r
		// A non-nil copy even for an empty value.
		out.Value = append(make([]byte, 0, len(r.Value)), r.Value...)
	})
	return out, found, err
}

// Lookup returns the live record of a key, its value appended to buf[:0]
// (so a caller that reuses buf allocates nothing). It counts as an access
// for eviction. It never waits for a commit. It is the hot path of every
// read, so it skips the gate that View takes (an atomic add both cores
// would fight over): the key's shard lock is enough, as the keyspace
// empties its tables under those locks before it gives memory back. After
// Close it finds nothing.
func (s *Store) Lookup(slot uint16, key []byte, buf []byte) (Record, bool) {
	if slot >= SlotCount {
		return Record{}, false
	}
	var out Record
	found := false
	s.index.view(slot, key, func(b block, access *uint32) {
		if b.tombstone() {
			return
		}
		// The clock is read only for keys that can expire.
		if at := b.expireAt(); at != 0 && at <= s.Now() {
			return
		}
		found = true
		s.touch(access)
		out = b.record()
		out.Value = append(buf[:0], out.Value...)
		if out.Value == nil {
			out.Value = []byte{} // Found: an empty value, not a missing one.
		}
	})
	return out, found
}

// View calls fn with the live record of a key, if there is one, without
// copying its value: Record.Value is valid only inside fn, which runs
// under a lock of the key's shard and must not call the store. It reports
// whether fn was called, and counts as an access for eviction. It never
// waits for a commit.
func (s *Store) View(slot uint16, key []byte, fn func(Record)) (bool, error) {
	if !s.gate.enter() {
		return false, ErrClosed
	}
	defer s.gate.exit()
	if slot >= SlotCount {
		return false, nil
	}
	found := false
	s.index.view(slot, key, func(b block, access *uint32) {
		// The clock is read only for keys that can expire.
		if b.tombstone() {
			return
		}
		if at := b.expireAt(); at != 0 && at <= s.Now() {
			return
		}
		found = true
		s.touch(access)
		fn(b.record())
	})
	return found, nil
}

// ScanSlot calls fn for each live key of slot in key order, starting strictly
// after the key after (nil: from the first key), until fn returns false,
// with the key's record without its value. The scan copies the slot's keys
// out of the index at once; writes that complete while fn runs are not
// seen, and fn may call the store's read methods.
func (s *Store) ScanSlot(slot uint16, after []byte, fn func(key []byte, rec Record) bool) error {
	now := s.Now()
	return s.visitSlot(slot, after, false, false, func(key []byte, rec Record) bool {
		if !rec.liveAt(now) {
			return true
		}
		return fn(key, rec)
	})
}

// StreamSlot calls fn with every stored state of slot (tombstones and
// expired records included, as replication ships them) in key order, as
// ScanSlot does, until fn returns false. The mutation's Key and Rec.Value
// are copies the caller may keep, but must not modify.
func (s *Store) StreamSlot(slot uint16, fn func(m Mutation) bool) error {
	return s.visitSlot(slot, nil, true, true, func(key []byte, rec Record) bool {
		return fn(Mutation{Slot: slot, Key: key, Rec: rec})
	})
}

// SlotDigest is a digest of a slot's stored states: equal digests mean
// (barring a 64-bit collision) the same live keys at the same versions.
// Tombstones do not count, so a tombstone and nothing compare equal. It is
// O(1).
func (s *Store) SlotDigest(slot uint16) uint64 {
	if slot >= SlotCount {
		return 0
	}
	return s.index.digest(slot)
}

// visitSlot is ScanSlot and StreamSlot: it visits the records of a slot
// after a key, in key order, skipping tombstones unless withTombstones.
// They come from the index, which is current, rather than from Badger,
// which trails it by a persist cycle.
func (s *Store) visitSlot(slot uint16, after []byte, withTombstones, withValues bool, fn func(key []byte, rec Record) bool) error {
	if !s.gate.enter() {
		return ErrClosed
	}
	defer s.gate.exit()
	if slot >= SlotCount {
		return fmt.Errorf("storage: slot %d out of range", slot)
	}
	recs := s.index.slotRecords(slot, withValues)
	i := 0
	if after != nil {
		i, _ = slices.BinarySearchFunc(recs, after, func(r slotRecord, after []byte) int {
			return bytes.Compare(r.key, after)
		})
		if i < len(recs) && bytes.Equal(recs[i].key, after) {
			i++
		}
	}
	for _, r := range recs[i:] {
		if !withTombstones && r.rec.Tombstone {
			continue
		}
		if !fn(r.key, r.rec) {
			break
		}
	}
	return nil
}

// Flush waits until every write acknowledged before the call is in Badger
// (written; synced only as the fsync policy says), and returns the failure
// if Badger failed that.
func (s *Store) Flush() error {
	if !s.gate.enter() {
		return ErrClosed
	}
	defer s.gate.exit()
	w := flushWaiter{done: make(chan error, 1)}
	s.flushCh <- w
	return <-w.done
}

// rebuildCounts recomputes the per-slot counts and the in-memory index from
// one scan of the user-data range, and returns the highest record version
// seen. It runs at Open, before the committer starts, or inside the
// committer.
func (s *Store) rebuildCounts() (uint64, error) {
	var counts, volatile [SlotCount]int64
	var total, volatileTotal int64
	var maxVersion uint64

	ts := s.readers.acquire(&s.readTs)
	defer s.readers.release(ts)
	txn := s.db.NewTransactionAt(ts, false)
	defer txn.Discard()
	it := txn.NewIterator(badger.IteratorOptions{})
	defer it.Close()
	s.index.reset()
	s.c.expiry.reset()
	s.c.tombs.reset()
	var slot uint16
	var key []byte
	load := func(v []byte) error {
		rec, err := loadRecord(v)
		if err != nil {
			return err
		}
		maxVersion = max(maxVersion, rec.Version)
		if !rec.Tombstone && rec.ExpireAt != 0 {
			volatile[slot]++
			volatileTotal++
		}
		s.setLoaded(slot, key, &rec)
		return nil
	}
	for it.Seek([]byte{slotKeyFlag}); it.Valid(); it.Next() {
		item := it.Item()
		var ok bool
		slot, key, ok = parseDataKey(item.Key())
		if !ok || slot >= SlotCount {
			break // Past the user-data range (0x80..0xBF): nothing else follows.
		}
		if item.UserMeta()&flagTombstone == 0 {
			counts[slot]++
			total++
		}
		if err := item.Value(load); err != nil {
			return 0, fmt.Errorf("key %q: %w", item.Key(), err)
		}
	}
	for i := range counts {
		s.counts[i].Store(counts[i])
		s.volatile[i].Store(volatile[i])
	}
	s.total.Store(total)
	s.volatileTotal.Store(volatileTotal)
	return maxVersion, nil
}

// setLoaded puts a record read from Badger in the index and schedules its
// expiry.
func (s *Store) setLoaded(slot uint16, key []byte, rec *Record) {
	s.c.set(slot, key, rec, false)
}

// reloadSlot replaces one slot's records in the index, and its counts, with
// what Badger holds of it. It runs in the committer, when Badger holds
// every write of the slot (nothing of it staged or in flight), while other
// slots keep their acknowledged writes that Badger has not yet got. On a
// read error the slot is left as it was.
func (s *Store) reloadSlot(slot uint16) error {
	ts := s.readers.acquire(&s.readTs)
	defer s.readers.release(ts)
	txn := s.db.NewTransactionAt(ts, false)
	defer txn.Discard()
	p := slotPrefix(slot)
	it := txn.NewIterator(badger.IteratorOptions{Prefix: p[:]})
	defer it.Close()
	type loaded struct {
		key []byte
		rec Record
	}
	var recs []loaded
	for it.Rewind(); it.Valid(); it.Next() {
		item := it.Item()
		_, key, _ := parseDataKey(item.Key())
		err := item.Value(func(v []byte) error {
			rec, err := loadRecord(v)
			rec.Value = bytes.Clone(rec.Value)
			recs = append(recs, loaded{bytes.Clone(key), rec})
			return err
		})
		if err != nil {
			return fmt.Errorf("key %q: %w", item.Key(), err)
		}
	}
	s.addCount(slot, count{keys: -s.counts[slot].Load(), volatile: -s.volatile[slot].Load()})
	s.index.dropSlot(slot)
	for _, l := range recs {
		s.setLoaded(slot, l.key, &l.rec)
	}
	return nil
}

// loadRecord decodes a Badger value: the header, then the payload, which
// aliases v.
func loadRecord(v []byte) (Record, error) {
	h, payload, err := decodeHeader(v)
	if err != nil {
		return Record{}, err
	}
	rec := Record{Version: h.version, ExpireAt: h.expireAt, Tombstone: h.tombstone(), Raw: h.flags&flagRaw != 0}
	if !rec.Tombstone {
		rec.Value = payload
	} else {
		rec.ExpireAt = 0
	}
	return rec, nil
}

// count is a change in a slot's key counts.
type count struct{ keys, volatile int64 }

// countChange is the count change of replacing prev (had: if there was
// one) with rec: counts follow stored non-tombstone records, expired or
// not, and the volatile count those with an expiry.
func countChange(prev Record, had bool, rec Record) count {
	var d count
	if had && !prev.Tombstone {
		d.keys--
		if prev.ExpireAt != 0 {
			d.volatile--
		}
	}
	if !rec.Tombstone {
		d.keys++
		if rec.ExpireAt != 0 {
			d.volatile++
		}
	}
	return d
}

// addCount applies a count change to one slot.
func (s *Store) addCount(slot uint16, d count) {
	if d.keys != 0 {
		s.counts[slot].Add(d.keys)
		s.total.Add(d.keys)
	}
	if d.volatile != 0 {
		s.volatile[slot].Add(d.volatile)
		s.volatileTotal.Add(d.volatile)
	}
}

// ExpiresLen is the number of keys that have an expiry (INFO's
// "expires"). It is O(1).
func (s *Store) ExpiresLen() int64 { return s.volatileTotal.Load() }

// gate lets Close wait for every read and Submit in progress and refuse new
// ones, without a lock on the read path: entering is one atomic add. Unlike a
// sync.RWMutex it allows nesting (a ScanSlot callback may call Get) without
// deadlocking against a waiting Close.
type gate struct {
	n       atomic.Int64
	closed  atomic.Bool
	once    sync.Once
	drained chan struct{}
}

func (g *gate) init() { g.drained = make(chan struct{}) }

// enter registers a caller; false means the store is closed.
func (g *gate) enter() bool {
	g.n.Add(1)
	if g.closed.Load() {
		g.exit()
		return false
	}
	return true
}

// exit unregisters a caller that entered.
func (g *gate) exit() {
	if g.n.Add(-1) == 0 && g.closed.Load() {
		g.once.Do(func() { close(g.drained) })
	}
}

// close refuses new callers and waits for those inside to exit.
func (g *gate) close() {
	g.closed.Store(true)
	if g.n.Load() == 0 {
		g.once.Do(func() { close(g.drained) })
	}
	<-g.drained
}

// readerSet tracks the snapshots of long-running reads (scans), so that the
// discard timestamp given to Badger never passes one: in managed mode Badger
// compacts away versions at or below it that a newer version shadows.
type readerSet struct {
	mu     sync.Mutex
	active map[uint64]int
}

// acquire takes the current published timestamp as a reader's snapshot and
// registers it, atomically with respect to minActive.
func (r *readerSet) acquire(readTs *atomic.Uint64) uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.active == nil {
		r.active = make(map[uint64]int)
	}
	ts := readTs.Load()
	r.active[ts]++
	return ts
}

// release unregisters a snapshot taken by acquire.
func (r *readerSet) release(ts uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.active[ts]--; r.active[ts] <= 0 {
		delete(r.active, ts)
	}
}

// clamp returns ts lowered to the oldest registered snapshot.
func (r *readerSet) clamp(ts uint64) uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	for t := range r.active {
		ts = min(ts, t)
	}
	return ts
}
