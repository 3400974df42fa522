// Package storage is ringcache's local key-value store: a thin, opinionated
// layer over Badger (in managed mode) that owns the on-disk key layout, the
// value header (version, tombstone, millisecond expiry), the single committer
// goroutine that batches every write into few Badger commits, O(1) per-slot
// key counts, per-slot iteration and dropping, active expiry, and the
// hybrid-logical-clock versions that replication compares.
//
// # Reads and writes
//
// Badger runs in managed mode: the store assigns commit timestamps itself.
// Reads ([Store.Get], [Store.View], [Store.ScanSlot]) run on any goroutine
// against the last published commit timestamp, so they never wait for a
// commit in flight. Writes are functions submitted with [Store.Submit] or
// [Store.Do]; the committer runs every submission that is waiting, in arrival
// order, as one batch, commits the batch to Badger, publishes its commit
// timestamp and only then completes the submissions, so an acknowledged
// write is visible to every later read. Every function sees the writes of
// all functions before it.
//
// The committer pipelines: while Badger writes one batch, it already runs
// the functions of the next, which see the unpublished writes through an
// overlay. At most one batch is in flight, so batches commit and become
// visible in order, each at once.
//
// # Layout
//
// A user key is stored under the Badger key
//
//	0x80|slot>>8, slot&0xff, key...
//
// so a slot is one contiguous range of Badger keys. Badger keys whose first
// byte is 0x00-0x7f are the node's own metadata; 0x01 is the expiry index.
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
// the record's own version; Badger's own (seconds) expiry is set a few
// minutes later, as a backstop for records the loop did not get to (say,
// while the node was down). Counts ([Store.Len], [Store.CountSlot]) count
// stored non-tombstone records: an expired record stays counted for the short
// while until the active-expiry loop replaces it with a tombstone, as Redis's
// DBSIZE counts expired keys that have not been evicted yet.
package storage
