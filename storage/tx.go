package storage

import (
	"fmt"
	"runtime/debug"
)

// undo restores one overlay entry when a function fails.
type undo struct {
	key  string
	prev overlayEntry
	had  bool
}

// Tx is the handle a write function gets. It is valid only inside that
// function, in the committer goroutine. Reads through it see the current
// state: the in-memory index plus every earlier write of the batch. Writes
// through it get versions from the store's hybrid logical clock.
type Tx struct {
	c   *committer
	now int64

	b     *batch
	p     *Pending
	start int // where this function's mutations begin in p.muts
	err   error

	// writes are the Badger keys the function wrote, staged for
	// persistence when it succeeds.
	writes [][]byte
	undos  []undo
	keyBuf []byte
}

func (tx *Tx) reset(b *batch, p *Pending) {
	tx.b = b
	tx.p = p
	tx.start = len(p.muts)
	tx.err = nil
	clear(tx.writes) // Drop references to the last function's buffers.
	tx.writes = tx.writes[:0]
	clear(tx.undos)
	tx.undos = tx.undos[:0]
	tx.now = tx.c.s.Now()
}

// call runs fn, turning a panic into a failure so that one bad function
// cannot take the committer (and every other writer) down.
func (tx *Tx) call(fn func(tx *Tx)) (err error) {
	defer func() {
		if r := recover(); r != nil {
			tx.c.s.log.Error("write function panicked", "panic", r, "stack", string(debug.Stack()))
			err = fmt.Errorf("storage: write function panicked: %v", r)
		}
	}()
	fn(tx)
	return tx.err
}

// rollback undoes a failed function's overlay changes and forgets its
// mutations.
func (tx *Tx) rollback() {
	for i := len(tx.undos) - 1; i >= 0; i-- {
		u := &tx.undos[i]
		if u.had {
			tx.c.overlay[u.key] = u.prev
		} else {
			delete(tx.c.overlay, u.key)
		}
	}
	clear(tx.p.muts[tx.start:])
	tx.p.muts = tx.p.muts[:tx.start]
}

// Now is the time (unix ms) of this function call: one value for the whole
// call, so that its expiry decisions agree with each other.
func (tx *Tx) Now() int64 { return tx.now }

// Fail marks the function as failed: none of its writes are applied (earlier
// and later functions are unaffected), and the Pending's Wait returns err
// (the first failure, if several). Writes after Fail are ignored. Fail(nil)
// does nothing.
func (tx *Tx) Fail(err error) {
	if err != nil && tx.err == nil {
		tx.err = err
	}
}

// Err returns the failure recorded so far in this function call, if any: the
// error given to Fail, or one a write failed with (ErrKeyTooLarge,
// ErrValueTooLarge, ErrBadExpiry, a read error).
func (tx *Tx) Err() error { return tx.err }

// Mutations returns what this function has written so far, in order. The
// slice and its contents must not be modified.
func (tx *Tx) Mutations() []Mutation {
	m := tx.p.muts[tx.start:]
	return m[:len(m):len(m)]
}

// ObserveVersion moves the store's clock past v, so that every later write
// gets a higher version (as when taking a slot over from another node).
func (tx *Tx) ObserveVersion(v uint64) { tx.c.hlc.observe(v) }

// dataKey builds the Badger key of (slot, key) in a scratch buffer that is
// valid until the next call.
func (tx *Tx) dataKey(slot uint16, key []byte) []byte {
	tx.keyBuf = appendDataKey(tx.keyBuf[:0], slot, key)
	return tx.keyBuf
}

// lookup returns the current stored state of a Badger key (tombstones and
// expired records included): the overlay's if the batch wrote it, otherwise
// the committed one, from the in-memory index. With withValue the value is
// shared (never modified); otherwise Record.Value is nil for committed
// records.
func (tx *Tx) lookup(bk []byte, withValue bool) (Record, bool, error) {
	if e, ok := tx.c.overlay[string(bk)]; ok {
		return e.rec, true, nil
	}
	slot, key, ok := parseDataKey(bk)
	if !ok {
		return Record{}, false, fmt.Errorf("storage: bad data key %q", bk)
	}
	rec, ok := tx.c.s.index.get(slot, key)
	if !withValue {
		rec.Value = nil
	}
	return rec, ok, nil
}

// stored is lookup for write functions: a read error fails the function and
// reports the key as absent.
func (tx *Tx) stored(bk []byte, withValue bool) (Record, bool) {
	rec, ok, err := tx.lookup(bk, withValue)
	if err != nil {
		tx.Fail(err)
		return Record{}, false
	}
	return rec, ok
}

// Get returns the live record of a key, seeing earlier writes of the batch.
// Its Value must not be modified.
func (tx *Tx) Get(slot uint16, key []byte) (Record, bool) {
	if slot >= SlotCount {
		return Record{}, false
	}
	rec, ok := tx.stored(tx.dataKey(slot, key), true)
	if !ok || !rec.liveAt(tx.now) {
		return Record{}, false
	}
	return rec, true
}

// Set stores value under key with a new version, expiring at expireAt (unix
// ms; 0 = never). The value is copied. A key or value beyond the store's
// limits, or a negative expireAt, fails the function instead.
func (tx *Tx) Set(slot uint16, key, value []byte, expireAt int64) {
	tx.SetRecord(slot, key, Record{Value: value, ExpireAt: expireAt})
}

// SetRecord is Set of rec's value, expiry and encoding (Record.Raw); its
// version and tombstone flag are ignored.
func (tx *Tx) SetRecord(slot uint16, key []byte, rec Record) {
	switch {
	case tx.err != nil || !tx.validKey(slot, key):
		return
	case rec.ExpireAt < 0:
		tx.Fail(ErrBadExpiry)
		return
	case len(rec.Value) > tx.c.s.maxValueLen:
		tx.Fail(ErrValueTooLarge)
		return
	}
	// What the key held does not matter: counts and digests follow from
	// the index's previous record when the write reaches it.
	tx.put(slot, key, Record{Value: rec.Value, ExpireAt: rec.ExpireAt, Raw: rec.Raw, Version: tx.c.hlc.next(tx.now)})
}

// Delete removes a live key by writing a tombstone with a new version, and
// reports whether there was a live key. An expired key is left to the
// expiry loop.
func (tx *Tx) Delete(slot uint16, key []byte) bool {
	if tx.err != nil || !tx.validKey(slot, key) {
		return false
	}
	cur, ok := tx.stored(tx.dataKey(slot, key), false)
	if !ok || !cur.liveAt(tx.now) {
		return false
	}
	tx.put(slot, key, Record{Version: tx.c.hlc.next(tx.now), Tombstone: true})
	return true
}

// Apply stores a replicated state if its version is above the stored one
// (tombstones and expired records included), and reports whether it did.
// The clock moves past m's version either way.
func (tx *Tx) Apply(m Mutation) bool {
	tx.c.hlc.observe(m.Rec.Version)
	switch {
	case tx.err != nil || !tx.validKey(m.Slot, m.Key):
		return false
	case m.Rec.ExpireAt < 0:
		tx.Fail(ErrBadExpiry)
		return false
	case len(m.Rec.Value) > tx.c.s.maxValueLen:
		tx.Fail(ErrValueTooLarge)
		return false
	}
	cur, ok := tx.stored(tx.dataKey(m.Slot, m.Key), false)
	if tx.err != nil || (ok && m.Rec.Version <= cur.Version) {
		return false
	}
	rec := m.Rec
	if rec.Tombstone {
		rec.Value, rec.ExpireAt, rec.Raw = nil, 0, false
	}
	tx.put(m.Slot, m.Key, rec)
	return true
}

// validKey fails the function for an out-of-range slot or an oversized key.
func (tx *Tx) validKey(slot uint16, key []byte) bool {
	switch {
	case slot >= SlotCount:
		tx.Fail(fmt.Errorf("storage: slot %d out of range", slot))
		return false
	case len(key) > MaxKeyLen:
		tx.Fail(ErrKeyTooLarge)
		return false
	}
	return true
}

// put writes rec (complete with its version) as the new state of a key: the
// Badger entry, the overlay and the mutation. The caller has validated the
// key.
func (tx *Tx) put(slot uint16, key []byte, rec Record) {

	// One allocation holds the Badger key and value; the mutation, the
	// overlay and the staged write share it (nobody modifies it after
	// this). The index copies it into its own memory when the batch ends.
	klen := slotPrefixLen + len(key)
	buf := make([]byte, klen+headerLen+len(rec.Value))
	appendDataKey(buf[:0], slot, key)
	putHeader(buf[klen:], TypeString, &rec)
	copy(buf[klen+headerLen:], rec.Value)
	k, v := buf[:klen:klen], buf[klen:]
	rec.Value = v[headerLen:]
	if rec.Tombstone {
		rec.Value = nil
	}
	tx.writes = append(tx.writes, k)

	ok := frozenString(k)
	pv, pok := tx.c.overlay[ok]
	tx.undos = append(tx.undos, undo{key: ok, prev: pv, had: pok})
	tx.c.overlay[ok] = overlayEntry{rec: rec}
	tx.b.keys = append(tx.b.keys, ok)

	tx.p.muts = append(tx.p.muts, Mutation{Slot: slot, Key: k[slotPrefixLen:], Rec: rec})
}
