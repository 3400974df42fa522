package storage

import (
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/ringcache/ringcache/storage/internal/arena"
)

// Policy is a maxmemory policy, with Redis's names and meaning: which keys
// a node evicts when its memory passes Options.MaxMemory.
type Policy int32

// The eight policies of Redis.
const (
	// NoEviction evicts nothing: commands that may grow memory fail with
	// OOM while the node is over its limit.
	NoEviction Policy = iota
	AllKeysLRU
	VolatileLRU
	AllKeysLFU
	VolatileLFU
	AllKeysRandom
	VolatileRandom
	// VolatileTTL evicts the keys with the nearest expiry first.
	VolatileTTL
)

var policyNames = [...]string{"noeviction", "allkeys-lru", "volatile-lru", "allkeys-lfu", "volatile-lfu", "allkeys-random", "volatile-random", "volatile-ttl"}

func (p Policy) String() string {
	if p < 0 || int(p) >= len(policyNames) {
		return fmt.Sprintf("policy(%d)", int32(p))
	}
	return policyNames[p]
}

// ParsePolicy reads a policy name as Redis writes it.
func ParsePolicy(name string) (Policy, error) {
	for i, n := range policyNames {
		if n == name {
			return Policy(i), nil
		}
	}
	return 0, fmt.Errorf("storage: unknown maxmemory policy %q", name)
}

// PolicyNames lists the policies' names, in Redis's order of its error text.
func PolicyNames() []string { return policyNames[:] }

func (p Policy) volatile() bool {
	return p == VolatileLRU || p == VolatileLFU || p == VolatileRandom || p == VolatileTTL
}
func (p Policy) lfu() bool { return p == AllKeysLFU || p == VolatileLFU }

// MemoryConfig is what a node may hold and how it makes room. Every field
// can change while the store runs (Store.SetMemoryConfig), as Redis's
// CONFIG SET does.
type MemoryConfig struct {
	// MaxMemory is the limit in bytes on the keyspace (Store.UsedMemory
	// but the keys staged for Badger, which have their own bound); 0
	// means none.
	MaxMemory int64
	Policy    Policy
	// Samples is how many keys each eviction looks at (Redis's
	// maxmemory-samples, default 5): more cost more CPU and come closer to
	// true LRU/LFU.
	Samples int
	// LFULogFactor and LFUDecayTime (minutes) shape the LFU counter as
	// Redis's lfu-log-factor (10) and lfu-decay-time (1) do.
	LFULogFactor int
	LFUDecayTime int
}

// DefaultMemoryConfig is Redis's: no limit, noeviction, 5 samples.
func DefaultMemoryConfig() MemoryConfig {
	return MemoryConfig{Policy: NoEviction, Samples: 5, LFULogFactor: 10, LFUDecayTime: 1}
}

// Validate reports the first out-of-range field.
func (m MemoryConfig) Validate() error {
	switch {
	case m.MaxMemory < 0:
		return fmt.Errorf("storage: maxmemory %d is negative", m.MaxMemory)
	case m.Policy < 0 || int(m.Policy) >= len(policyNames):
		return fmt.Errorf("storage: unknown maxmemory policy %d", m.Policy)
	case m.Samples < 1:
		return fmt.Errorf("storage: maxmemory-samples %d must be at least 1", m.Samples)
	case m.LFULogFactor < 0:
		return fmt.Errorf("storage: lfu-log-factor %d is negative", m.LFULogFactor)
	case m.LFUDecayTime < 0:
		return fmt.Errorf("storage: lfu-decay-time %d is negative", m.LFUDecayTime)
	}
	return nil
}

// memoryState is the store's live memory configuration, read without locks.
type memoryState struct {
	cfg atomic.Pointer[MemoryConfig]
	// over is set while the committer could not bring memory under the
	// limit (nothing left that the policy may evict, or noeviction).
	over atomic.Bool
	// demand is memory that replicas of this node's slots ask it to free
	// (SetEvictionDemand), on top of its own excess.
	demand atomic.Int64
	// evicted counts evicted keys.
	evicted atomic.Int64
}

// The access word of a key (keytable.go): with an LRU policy, or none,
// the time of the last access in 10 ms units (wrapping after 497 days);
// with an LFU policy, Redis's logarithmic counter in the low 8 bits and
// the second of the last access above them (24 bits, wrapping after 194
// days; Redis keeps minutes): the decay counts minutes from it, and among
// keys of equal counters eviction takes the one idle longest.
const (
	lruUnit    = 10 * time.Millisecond
	lfuInitVal = 5
)

// The clocks are read on every access, so a goroutine ticks them (as
// Redis caches its LRU clock in serverCron) instead of each access asking
// the time.
var (
	processStart = time.Now()
	clockLRU     atomic.Uint32
	clockSeconds atomic.Uint32
	clockOnce    sync.Once
)

// startClocks starts the ticking of the access clocks, once per process.
func startClocks() {
	clockOnce.Do(func() {
		tick := func() {
			clockLRU.Store(uint32(time.Since(processStart) / lruUnit))
			clockSeconds.Store(uint32(time.Now().Unix()) & (1<<24 - 1))
		}
		tick()
		go func() {
			for range time.Tick(lruUnit) {
				tick()
			}
		}()
	})
}

// lruClock is now in lruUnits.
func lruClock() uint32 { return clockLRU.Load() }

// lfuSeconds is now in seconds, 24 bits.
func lfuSeconds() uint32 { return clockSeconds.Load() }

// lfuIdle is how many seconds ago a key with LFU access word a was last
// used.
func lfuIdle(a uint32) uint32 { return (lfuSeconds() - a>>8) & (1<<24 - 1) }

// lruIdle is how long ago, in lruUnits, a block with access value a was
// last used.
func lruIdle(a uint32) uint32 { return lruClock() - a }

// lfuDecayed is the LFU counter of access value a after the decay that
// the minutes since it was last used call for (one per decayTime).
func lfuDecayed(a uint32, decayTime int) uint32 {
	counter := a & 0xff
	if decayTime <= 0 {
		return counter
	}
	periods := lfuIdle(a) / (60 * uint32(decayTime))
	if periods >= counter {
		return 0
	}
	return counter - periods
}

// lfuIncr increments an LFU counter with probability 1/((c-init)*f+1), as
// Redis's LFULogIncr: counts grow logarithmically with accesses.
func lfuIncr(counter uint32, logFactor int) uint32 {
	if counter == 255 {
		return 255
	}
	base := float64(counter) - lfuInitVal
	if base < 0 {
		base = 0
	}
	if rand.Float64() < 1/(base*float64(logFactor)+1) {
		counter++
	}
	return counter
}

// newAccess is the access field of a block being written.
func (s *Store) newAccess(rec *Record) uint32 {
	if rec.Tombstone {
		return uint32(time.Now().Unix())
	}
	if s.mem.cfg.Load().Policy.lfu() {
		return lfuSeconds()<<8 | lfuInitVal
	}
	return lruClock()
}

// keepsAccess reports whether an overwrite keeps the old block's access
// field: with LFU, as Redis keeps a key's counter when SET replaces it.
func (s *Store) keepsAccess() bool { return s.mem.cfg.Load().Policy.lfu() }

// touch records a read of a live key whose access word is w, under its
// slot's read lock.
func (s *Store) touch(w *uint32) {
	cfg := s.mem.cfg.Load()
	if !cfg.Policy.lfu() {
		if now := lruClock(); atomic.LoadUint32(w) != now {
			atomic.StoreUint32(w, now)
		}
		return
	}
	for {
		old := atomic.LoadUint32(w)
		c := lfuIncr(lfuDecayed(old, cfg.LFUDecayTime), cfg.LFULogFactor)
		nv := lfuSeconds()<<8 | c
		if nv == old || atomic.CompareAndSwapUint32(w, old, nv) {
			return
		}
	}
}

// ObjectFreq is a key's LFU counter (OBJECT FREQ), ok false for a key that
// does not exist. It does not count as an access.
func (s *Store) ObjectFreq(slot uint16, key []byte) (int, bool) {
	if !s.gate.enter() {
		return 0, false
	}
	defer s.gate.exit()
	var n int
	ok := s.peek(slot, key, func(_ block, w *uint32) {
		n = int(lfuDecayed(atomic.LoadUint32(w), s.mem.cfg.Load().LFUDecayTime))
	})
	return n, ok
}

// ObjectIdleTime is how long since a key was last read or written (OBJECT
// IDLETIME), ok false for a key that does not exist.
func (s *Store) ObjectIdleTime(slot uint16, key []byte) (time.Duration, bool) {
	if !s.gate.enter() {
		return 0, false
	}
	defer s.gate.exit()
	var d time.Duration
	ok := s.peek(slot, key, func(_ block, w *uint32) { d = time.Duration(lruIdle(atomic.LoadUint32(w))) * lruUnit })
	return d, ok
}

// MemoryUsage is what a key costs (MEMORY USAGE): its block, its share of
// its table, and its expiry entry if it has one.
func (s *Store) MemoryUsage(slot uint16, key []byte) (int64, bool) {
	if !s.gate.enter() {
		return 0, false
	}
	defer s.gate.exit()
	var n int64
	ok := s.peek(slot, key, func(b block, _ *uint32) {
		_, _, l := b.parts()
		n = int64(blockSizeOf(l)) + tableBytesPerKey
		if b.expireAt() != 0 {
			n += expiryItemBytes + int64(len(key))
		}
	})
	return n, ok
}

// Peek calls fn with the live record of a key, as View does, but without
// counting an access (OBJECT, MEMORY).
func (s *Store) Peek(slot uint16, key []byte, fn func(Record)) (bool, error) {
	if !s.gate.enter() {
		return false, ErrClosed
	}
	defer s.gate.exit()
	return s.peek(slot, key, func(b block, _ *uint32) { fn(b.record()) }), nil
}

// peek calls fn with a live key's block without counting an access.
func (s *Store) peek(slot uint16, key []byte, fn func(b block, access *uint32)) bool {
	if slot >= SlotCount {
		return false
	}
	found := false
	now := s.Now()
	s.index.view(slot, key, func(b block, access *uint32) {
		if b.tombstone() || (b.expireAt() != 0 && b.expireAt() <= now) {
			return
		}
		found = true
		fn(b, access)
	})
	return found
}

func blockSizeOf(n int) int { return arena.BlockSize(n) }

// tableBytesPerKey is what a key costs its table on average (14-18 bytes,
// keytable.go).
const tableBytesPerKey = 16

// SetMemoryConfig replaces the memory limit and policy. A lower limit is
// enforced by the next eviction (at the latest within ExpiryInterval).
func (s *Store) SetMemoryConfig(m MemoryConfig) error {
	if err := m.Validate(); err != nil {
		return err
	}
	s.mem.cfg.Store(&m)
	s.mem.over.Store(false)
	return nil
}

// MemoryConfig returns the current memory configuration.
func (s *Store) MemoryConfig() MemoryConfig { return *s.mem.cfg.Load() }

// SetEvictionDemand asks the store to free n more bytes than its own limit
// calls for, from the slots it may evict (SetEvictable): what an
// overloaded replica of those slots reports. 0 withdraws the demand.
func (s *Store) SetEvictionDemand(n int64) { s.mem.demand.Store(max(n, 0)) }

// SetEvictable says whether keys of slot may be evicted here: in a
// cluster, only the slot's primary evicts, and replicates the evictions as
// deletions, so that every copy holds the same keys. Every slot is
// evictable until told otherwise.
func (s *Store) SetEvictable(slot uint16, ok bool) {
	if slot < SlotCount {
		s.notEvictable[slot].Store(!ok)
	}
}

// SetReplicated says whether slot has copies on other nodes. An eviction
// in a slot that has leaves a tombstone (its deletion is replicated, and a
// late older copy must not bring the key back); in one that has not, the
// key just goes. No slot is replicated until told otherwise.
func (s *Store) SetReplicated(slot uint16, ok bool) {
	if slot < SlotCount {
		s.replicated[slot].Store(ok)
	}
}

// SetEvictionHandler sets the function that receives every batch of
// evictions (tombstones with new versions, to replicate as deletions). It
// runs on the committer and must not block or call the store.
func (s *Store) SetEvictionHandler(fn func(muts []Mutation)) { s.onEvict.Store(&fn) }

// OverMemoryLimit reports whether a command that may grow memory should be
// refused with OOM: the node is over its limit and cannot evict (the
// noeviction policy, or nothing left that the policy may evict).
func (s *Store) OverMemoryLimit() bool {
	cfg := s.mem.cfg.Load()
	if cfg.MaxMemory == 0 {
		return false
	}
	if s.mem.over.Load() {
		return true
	}
	return cfg.Policy == NoEviction && s.countedMemory() > cfg.MaxMemory
}

// Evicted is the number of keys evicted since the store opened.
func (s *Store) Evicted() int64 { return s.mem.evicted.Load() }

// MemoryExcess is how far the store is over its memory limit, in bytes (0
// when under, or with no limit): what a replica reports to its primaries.
func (s *Store) MemoryExcess() int64 {
	cfg := s.mem.cfg.Load()
	if cfg.MaxMemory == 0 {
		return 0
	}
	return max(s.countedMemory()-cfg.MaxMemory, 0)
}

// MemoryExcess is Store.MemoryExcess, for write functions.
func (tx *Tx) MemoryExcess() int64 { return tx.c.s.MemoryExcess() }

// excess is how many bytes the committer should free now.
func (s *Store) excess() int64 {
	cfg := s.mem.cfg.Load()
	if cfg.MaxMemory == 0 {
		return 0
	}
	return max(s.countedMemory()-cfg.MaxMemory, 0) + s.mem.demand.Load()
}

// maxSamples caps maxmemory-samples: beyond it, sampling costs more than
// it brings.
const maxSamples = 64

// poolSize is the size of the eviction pool, as Redis's EVPOOL_SIZE.
const poolSize = 16

// poolEntry is an eviction candidate: a table slot and its score (the
// higher, the sooner it goes). It names the candidate by where it was
// sampled, not by its key, so that sampling reads no block: the candidate
// is still valid when that table slot still holds the same value (a block
// moved by a resize or a shift is simply skipped).
type poolEntry struct {
	score uint64
	slot  uint16
	index int
	value uint64
}

// evictionPool keeps the best candidates seen across evictions, so that
// each eviction's few samples add to what earlier ones found, as Redis's
// evictionPoolPopulate does.
type evictionPool struct {
	entries []poolEntry // ascending score, at most poolSize
}

// offer inserts a candidate if it beats the pool's worst.
func (p *evictionPool) offer(e poolEntry) {
	if len(p.entries) == poolSize && e.score <= p.entries[0].score {
		return
	}
	for _, o := range p.entries {
		if o.slot == e.slot && o.value == e.value {
			return
		}
	}
	i := 0
	for i < len(p.entries) && p.entries[i].score < e.score {
		i++
	}
	if len(p.entries) == poolSize {
		// Drop the worst (index 0).
		copy(p.entries, p.entries[1:i])
		i--
	} else {
		p.entries = append(p.entries, poolEntry{})
		copy(p.entries[i+1:], p.entries[i:])
	}
	p.entries[i] = e
}

// pop removes and returns the best candidate.
func (p *evictionPool) pop() (poolEntry, bool) {
	n := len(p.entries)
	if n == 0 {
		return poolEntry{}, false
	}
	e := p.entries[n-1]
	p.entries = p.entries[:n-1]
	return e, true
}

func (p *evictionPool) reset() { p.entries = p.entries[:0] }

// evictStep frees at least need bytes by evicting keys the policy picks,
// as tombstones written through tx, and reports what it freed (an
// estimate: the blocks go at the end of the batch) and how many keys.
func (tx *Tx) evictStep(need int64) (freed int64, keys int) {
	c := tx.c
	s := c.s
	cfg := s.mem.cfg.Load()
	if cfg.Policy == NoEviction {
		return 0, 0
	}
	// A tombstone costs room only while tombstones are under their
	// budget; beyond it, each new one displaces an old one.
	tombRoom := cfg.MaxMemory/tombstoneBudget - s.index.tombBytes.Load() - c.tombs.bytes()
	// Give up after a run of picks that free nothing: what is left to
	// evict was written in this batch or is not evictable here.
	for idle := 0; freed < need && tx.err == nil && idle < 64; {
		slot, b, ok := c.pickVictim(cfg)
		if !ok {
			idle += 8
			continue
		}
		key, _, n := b.parts()
		if c.inOverlay(slot, key) {
			idle++
			continue
		}
		idle = 0
		k := append([]byte(nil), key...)
		tomb := Record{Version: c.hlc.next(tx.now), Tombstone: true}
		tx.put(slot, k, tomb)
		freed += int64(blockSizeOf(n))
		if tc := int64(blockSizeOf(blockLen(len(k), &tomb))) + int64(unsafe.Sizeof(tombstoneRef{})); s.replicated[slot].Load() && tombRoom >= tc {
			freed -= tc
			tombRoom -= tc
		}
		if b.expireAt() != 0 {
			freed += expiryItemBytes + int64(len(k))
		}
		keys++
	}
	return freed, keys
}

// deletedInBatch reports whether the batch being built deleted (slot, key).
func (c *committer) deletedInBatch(slot uint16, key []byte) bool {
	if len(c.overlay) == 0 {
		return false
	}
	var buf [128]byte
	e, ok := c.overlay[string(appendDataKey(buf[:0], slot, key))]
	return ok && e.rec.Tombstone
}

// inOverlay reports whether the batch being built wrote (slot, key).
func (c *committer) inOverlay(slot uint16, key []byte) bool {
	if len(c.overlay) == 0 {
		return false
	}
	var buf [128]byte
	_, ok := c.overlay[string(appendDataKey(buf[:0], slot, key))]
	return ok
}

// pickVictim chooses the next key to evict under cfg's policy, from the
// evictable slots, or reports that it found none.
func (c *committer) pickVictim(cfg *MemoryConfig) (uint16, block, bool) {
	s := c.s
	if cfg.Policy == VolatileTTL {
		if slot, b, ok := c.nearestExpiry(); ok {
			return slot, b, true
		}
	}
	if cfg.Policy == AllKeysRandom || cfg.Policy == VolatileRandom {
		var slot uint16
		var victim block
		c.sample(cfg, 1, func(sl uint16, t *keyTable, i int) {
			slot, victim = sl, blockAt(s.index.a, t.slots[i])
		})
		return slot, victim, victim != nil
	}
	c.sample(cfg, min(cfg.Samples, maxSamples), func(sl uint16, t *keyTable, i int) {
		var score uint64
		switch {
		case cfg.Policy == VolatileTTL:
			score = math.MaxUint64 - uint64(blockAt(s.index.a, t.slots[i]).expireAt())
		case cfg.Policy.lfu():
			// The counter first; then the longest idle.
			a := atomic.LoadUint32(t.accessWord(i))
			score = (255-uint64(lfuDecayed(a, cfg.LFUDecayTime)))<<24 | uint64(lfuIdle(a))
		default:
			score = uint64(lruIdle(atomic.LoadUint32(t.accessWord(i))))
		}
		c.pool.offer(poolEntry{score: score, slot: sl, index: i, value: t.slots[i]})
	})
	for {
		e, ok := c.pool.pop()
		if !ok {
			return 0, nil, false
		}
		// The candidate may have gone or moved since it was sampled.
		t := &s.index.shard(e.slot).t
		if e.index >= len(t.slots) || t.slots[e.index] != e.value || s.notEvictable[e.slot].Load() {
			continue
		}
		b := blockAt(s.index.a, e.value)
		if !cfg.Policy.volatile() || b.expireAt() != 0 {
			return e.slot, b, true
		}
	}
}

// nearestExpiry is volatile-ttl's exact choice: the key the expiry queue
// says expires first, when it may be evicted here. Stale entries at the
// head (keys overwritten, deleted or evicted since) are dropped on the
// way, which the queue allows.
func (c *committer) nearestExpiry() (uint16, block, bool) {
	s := c.s
	q := &c.expiry
	for len(q.items) > 0 {
		it := q.items[0]
		b, ok := s.index.getBlock(it.slot, []byte(it.key))
		if !ok || b.tombstone() || b.expireAt() != it.at || c.deletedInBatch(it.slot, b.key()) {
			q.popMin()
			continue
		}
		if s.notEvictable[it.slot].Load() || c.inOverlay(it.slot, b.key()) {
			return 0, nil, false
		}
		return it.slot, b, true
	}
	return 0, nil, false
}

// sample calls fn with up to n random live keys that cfg's policy may
// evict, each as its slot's table and index there: from the expiry queue
// for the volatile policies (the keys with an expiry), otherwise from
// random positions of random evictable slots' tables, reading only the
// tables.
func (c *committer) sample(cfg *MemoryConfig, n int, fn func(slot uint16, t *keyTable, i int)) {
	s := c.s
	ix := s.index
	got := 0
	if cfg.Policy.volatile() {
		q := c.expiry.items
		if len(q) == 0 {
			return
		}
		// Up to 2/3 of the queue may be stale entries (compact's bound).
		for tries := 0; got < n && tries < 16*n; tries++ {
			var it expiryItem
			if cfg.Policy == VolatileTTL && tries < n {
				// The heap's first levels hold the nearest expiries.
				it = q[rand.IntN(min(len(q), 2*n))]
			} else {
				it = q[rand.IntN(len(q))]
			}
			if s.notEvictable[it.slot].Load() {
				continue
			}
			t := &ix.shard(it.slot).t
			b, i := t.get(ix.a, it.slot, []byte(it.key))
			if i < 0 || b.tombstone() || b.expireAt() != it.at {
				continue
			}
			fn(it.slot, t, i)
			got++
		}
		return
	}
	// Keys in a table are in hash order, so the keys next to a random
	// position are as random a sample as keys from random positions, and
	// they share cache lines: a run of sampleRun costs what one key does.
	// So a sample of n keys takes runs from n/sampleRun random places, and
	// is twice as large as asked (Redis's maxmemory-samples) for the same
	// memory reads.
	want := 2 * n
	for tries := 0; got < want && tries < 64; tries++ {
		slot := uint16(rand.IntN(SlotCount))
		t := &ix.shard(slot).t
		if t.n == t.tombs || s.notEvictable[slot].Load() {
			continue
		}
		size := len(t.slots)
		i := rand.IntN(size)
		found := 0
		for scanned := 0; scanned < size && scanned < 2*sampleRun && found < sampleRun && got < want; scanned++ {
			if ts := t.slots[i]; ts != 0 && ts&slotTomb == 0 {
				fn(slot, t, i)
				found++
				got++
			}
			if i++; i == size {
				i = 0
			}
		}
	}
}

// sampleRun is how many neighbouring keys one sample takes at most.
const sampleRun = 8
