// Package storage is ringcache's keyspace: every key's state in memory,
// outside the Go heap, bounded by maxmemory and evicted by Redis's
// policies, and written behind to Badger (in managed mode) so that a
// restart finds it. It owns the value layout (typed, versioned records
// with millisecond expiry), the single committer goroutine that runs every
// write, write-behind persistence, O(1) per-slot key counts and digests,
// per-slot iteration and dropping, active expiry, eviction, memory
// accounting, and the hybrid-logical-clock versions that replication
// compares.
//
// # Reads and writes
//
// Reads ([Store.Lookup], [Store.View], [Store.Get], [Store.ScanSlot],
// [Store.StreamSlot]) run on any goroutine against the keyspace, under a
// read lock of the key's shard, and copy what they return (or hand it to a
// callback for the length of the lock), so they never wait for a write.
// Writes are functions submitted with [Store.Submit] or [Store.Do]; the
// committer runs every submission that is waiting, in arrival order, as
// one batch (every function sees the writes of all functions before it),
// applies the batch to the keyspace and only then completes the
// submissions, so an acknowledged write is visible to every later read.
//
// # Memory layout
//
// A key's state is one block in an arena of memory mapped outside the Go
// heap (internal/arena: 64 KiB spans cut into size classes 8 bytes apart
// up to 128 bytes and 1/8 apart above), so the collector neither scans
// the keyspace nor lets it double between collections:
//
//	bytes 0-7    version, uint64
//	byte 8       flags: tombstone, has expiry, raw encoding; type (high nibble)
//	[8 bytes]    expireAt, unix ms, when the flag says so
//	uvarint      key length, key, uvarint value length, value
//
// Blocks are found through one open-addressing table per slot (16384
// shards), held in the same arena, 8 bytes a table slot: a 23-bit tag of
// the key's hash, a tombstone bit and the block's packed reference, with
// the key's access word (LRU clock or LFU counter) beside it. At 16-byte
// keys and 100-byte values a block is 127 bytes, 128 with its class, and
// the table 14-18 more: about 145 bytes a key (153 of RSS measured), where
// Redis takes 208. What a key costs is [Store.MemoryUsage]; Go memory is
// only the transient batches, the expiry queue (a heap of 40 bytes and the
// key per key with a TTL) and the tombstone queue (24 bytes per tombstone).
//
// # Accounting and eviction
//
// [Store.UsedMemory] is the arena's allocated bytes (blocks and tables at
// their class size), the expiry and tombstone queues, and the keys staged
// for Badger; MaxMemory limits all of it but the staged keys, which have
// their own bound (MaxUnpersisted, at most 1/16 of maxmemory), as Redis
// leaves its AOF buffer out (every eviction stages a key). Before every
// batch, and right after one that went over, the committer evicts down to
// the limit under the policy ([Policy], Redis's eight): from a pool of 16
// candidates refilled with maxmemory-samples keys sampled from random table
// positions (volatile policies sample the expiry queue; volatile-ttl takes
// the queue's head, the key that expires first, exactly); LRU is a clock
// in 10 ms units, LFU Redis's logarithmic 8-bit counter with decay. An
// eviction is a tombstone with a new version, handed to the eviction
// handler ([Store.SetEvictionHandler]) so that replication ships it as a
// deletion: only a slot's primary evicts ([Store.SetEvictable]), and every
// copy of a slot holds the same keys. A replica over its limit reports its
// excess; its primaries free it ([Store.SetEvictionDemand]). Tombstones
// (deletes, expiries, evictions) live TombstoneTTL, and no longer than it
// takes them to exceed 1/16 of maxmemory (oldest first). With noeviction,
// or a volatile policy with nothing to evict, [Store.OverMemoryLimit]
// tells the server to refuse commands that may grow memory (OOM).
//
// # Collections (not yet built)
//
// The type nibble and the value bytes leave room for hashes, lists, sets
// and sorted sets without another redesign. A small collection (a hash of
// 3 fields) is held as Redis holds it, a listpack: the fields and values
// packed in the block's value, so one key is one block, accounted at its
// size and evicted as one key; an HSET rewrites the block (tens of
// bytes). A large one (a hash of a million fields) gets a block whose
// value is the root of a B-tree of arena blocks (pages of a few KiB of
// packed fields, linked by Refs), so one HSET rewrites one page and the
// path above it: O(log n) bytes. The key's block carries the collection's
// total size, which UsedMemory counts and eviction weighs as one key (the
// whole tree goes with it). Replication ships a change to a large
// collection as the change plus the version it applies on top of; a
// replica holding another version asks for the whole key.
//
// # Persistence
//
// Badger is written behind (persist.go): the committer stages the Badger
// key of every write; a persist cycle, about every PersistInterval,
// commits each staged key's current state as the keyspace holds it then
// (so a hot key costs one entry a cycle, and no value is held twice), in
// transactions of about a MiB, on its own goroutine. [Store.Flush] waits
// for the writes acknowledged so far to be in Badger, and [Store.Close]
// persists everything. What a killed process loses is the writes of the
// last cycle or two, which its in-sync replicas hold. With FsyncAlways a
// submission completes only once a cycle holding its writes is synced.
// Badger maps its files; after each cycle the node drops those pages from
// its resident memory (they stay in the OS page cache). With InMemory
// there is no Badger at all.
//
// A user key is stored in Badger under
//
//	0x80|slot>>8, slot&0xff, key...
//
// so a slot is one contiguous range of Badger keys; 0x00-0x7f are the
// node's own metadata (0x01 was an expiry index; Open drops what is left
// of it). A Badger value is a 17-byte header and the payload:
//
//	byte 0      flags (bit 0 tombstone, bit 1 raw) | type<<4 (0 = string)
//	bytes 1-8   version, uint64 big-endian
//	bytes 9-16  expireAt, unix milliseconds, int64 big-endian, 0 = none
//
// Values of 32 bytes and more go to Badger's value log, which keeps its
// LSM tables (and their compactions) small.
//
// # Liveness and counting
//
// A record is live when it is not a tombstone and has not expired; reads
// treat anything else as missing, to the millisecond. The active-expiry
// loop replaces expired records with tombstones carrying the record's own
// version; its schedule is a heap in memory, rebuilt from the records at
// Open. Badger's own (seconds) expiry is set a few minutes later, as a
// backstop. Counts ([Store.Len], [Store.CountSlot]) count stored
// non-tombstone records: an expired record stays counted until the loop
// removes it, as Redis's DBSIZE counts expired keys not yet evicted.
package storage
