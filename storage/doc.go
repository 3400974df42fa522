// Package storage is ringcache's local key-value store: an in-memory index
// of every key over Badger (in managed mode), which holds it on disk. It owns
// the on-disk key layout, the value header (version, tombstone, millisecond
// expiry), the single committer goroutine that runs every write, the
// write-behind persistence that batches them into few Badger commits, O(1)
// per-slot key counts, per-slot iteration and dropping, active expiry, and
// the hybrid-logical-clock versions that replication compares.
//
// # Reads and writes
//
// Reads ([Store.Get], [Store.View], [Store.ScanSlot], [Store.StreamSlot])
// run on any goroutine against the in-memory index, so they never wait for
// a write. Writes are functions submitted with [Store.Submit] or [Store.Do];
// the committer runs every submission that is waiting, in arrival order, as
// one batch (every function sees the writes of all functions before it),
// applies the batch to the index and only then completes the submissions,
// so an acknowledged write is visible to every later read.
//
// Badger is written behind (persist.go): a persist cycle takes every write
// staged since the last one, keeping only the last of each key, and commits
// it on its own goroutine, about every [Options.PersistInterval]; Badger
// runs in managed mode, the store assigning commit timestamps itself.
// [Store.Flush] waits for the writes acknowledged so far to be in Badger,
// and [Store.Close] persists everything. What a killed process loses is
// the writes of the last cycle or two, which its in-sync replicas hold
// (they acknowledged every write too). With [FsyncEverySec], what a crash
// of the machine loses on that node is about PersistInterval plus the
// second between two fsyncs, which the replicas cover likewise. With
// [FsyncAlways] a submission completes only once a cycle holding its writes
// is written and synced.
//
// # Layout
//
// A user key is stored under the Badger key
//
//	0x80|slot>>8, slot&0xff, key...
//
// so a slot is one contiguous range of Badger keys. Badger keys whose first
// byte is 0x00-0x7f are the node's own metadata (0x01 was an expiry index
// before expiry was scheduled in memory; Open drops what is left of it).
// A value is a 17-byte header followed by the payload:
//
//	byte 0      flags (bit 0 = tombstone) | type<<4 (0 = string)
//	bytes 1-8   version, uint64 big-endian
//	bytes 9-16  expireAt, unix milliseconds, int64 big-endian, 0 = none
//
// # Liveness and counting
//
// A record is live when it is not a tombstone and has not expired. Reads treat
// anything else as missing, to the millisecond. Expired records are removed
// by the active-expiry loop, which replaces each with a tombstone carrying
// the record's own version. Its schedule, the expiry queue, is in memory:
// the committer adds a record to it whenever the record's expiry changes,
// and Open rebuilds it from the records' headers, so a write with a TTL
// costs Badger no second entry and expiry never waits for a persist cycle.
// Badger's own (seconds) expiry is set a few
// minutes later, as a backstop for records the loop did not get to (say,
// while the node was down). Counts ([Store.Len], [Store.CountSlot]) count
// stored non-tombstone records: an expired record stays counted for the short
// while until the active-expiry loop replaces it with a tombstone, as Redis's
// DBSIZE counts expired keys that have not been evicted yet.
package storage
