package storage

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// noActiveExpiry keeps the expiry loop out of a test's way.
func noActiveExpiry(o *Options) { o.ExpiryInterval = time.Hour }

func TestLiveAt(t *testing.T) {
	const now = 1_000_000
	tests := []struct {
		rec  Record
		live bool
	}{
		{Record{}, true},
		{Record{ExpireAt: now + 1}, true},
		{Record{ExpireAt: now}, false}, // due exactly now: gone, as in Redis
		{Record{ExpireAt: now - 1}, false},
		{Record{Tombstone: true}, false},
		{Record{Tombstone: true, ExpireAt: now + 1}, false},
	}
	for _, tc := range tests {
		if got := tc.rec.liveAt(now); got != tc.live {
			t.Errorf("%+v.liveAt(now) = %v, want %v", tc.rec, got, tc.live)
		}
	}
}

func TestExpiryMillisecondPrecision(t *testing.T) {
	s := newStore(t, noActiveExpiry)

	// Expired a millisecond ago: Badger's own expiry (whole seconds, plus
	// grace) has not passed, but reads must not see it.
	set(t, s, 1, "past", "v", s.Now()-1)
	if _, ok := get(t, s, 1, "past"); ok {
		t.Error("Get found a key that expired 1ms ago")
	}
	var txSaw, deleted bool
	if err := s.Do(func(tx *Tx) {
		_, txSaw = tx.Get(1, []byte("past"))
		deleted = tx.Delete(1, []byte("past"))
	}); err != nil {
		t.Fatal(err)
	}
	if txSaw || deleted {
		t.Errorf("expired key: Tx.Get found=%v, Delete=%v", txSaw, deleted)
	}
	if err := s.ScanSlot(1, nil, func(k []byte, _ Record) bool {
		t.Errorf("scan returned expired key %q", k)
		return true
	}); err != nil {
		t.Fatal(err)
	}

	// Expiring shortly: visible before, invisible from its millisecond on.
	exp := s.Now() + 150
	set(t, s, 1, "soon", "v", exp)
	if v, ok := get(t, s, 1, "soon"); !ok && s.Now() < exp {
		t.Errorf("key gone before its expiry: %q, %v", v, ok)
	}
	waitFor(t, "the key to expire", func() bool {
		_, ok := get(t, s, 1, "soon")
		return !ok
	})
	if now := s.Now(); now < exp {
		t.Errorf("key disappeared at %d, before its expiry %d", now, exp)
	}
	// Not removed yet (no active expiry here), so still counted.
	checkCounts(t, s, 2, map[uint16]int64{1: 2})
}

func TestActiveExpiry(t *testing.T) {
	s := newStore(t)
	exp := s.Now() + 100
	const n = 2500 // more than one expiry step
	err := s.Do(func(tx *Tx) {
		for i := range n {
			tx.Set(uint16(i%5), []byte(keyN(i)), []byte("v"), exp)
		}
		for i := range 10 {
			tx.Set(20, []byte(keyN(i)), []byte("v"), 0)
			tx.Set(21, []byte(keyN(i)), []byte("v"), exp+time.Hour.Milliseconds())
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	// Read the count first: if the clock is still before the expiry
	// afterwards, nothing can have been removed when it was read.
	if l, c := s.Len(), s.CountSlot(0); s.Now() < exp && (l != n+20 || c != n/5) {
		t.Errorf("before expiry: Len %d, CountSlot(0) %d; want %d, %d", l, c, n+20, n/5)
	}
	// No reads: the expiry loop alone brings the count down.
	// Expired is added once the step's Do returns, just after the counts
	// change: wait for both.
	waitFor(t, "active expiry", func() bool { return s.Len() == 20 && s.Stats().Expired == n })
	checkCounts(t, s, 20, map[uint16]int64{0: 0, 4: 0, 20: 10, 21: 10})
	// The due entries are gone from the schedule; the future ones remain.
	if got := scheduled(t, s, exp+time.Hour.Milliseconds()+1); got != 10 {
		t.Errorf("schedule after expiry: %d keys, want 10", got)
	}
	if _, ok := get(t, s, 21, keyN(3)); !ok {
		t.Error("a key with a later expiry was removed")
	}
}

func TestOpenDropsTheLegacyExpiryIndex(t *testing.T) {
	// Earlier versions kept an expiry index in Badger (0x01, expireAt,
	// slot, key). Open drops what is left of it and schedules expiry from
	// the records themselves.
	opts := testOptions(t)
	s, err := Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	soon := s.Now() + 200
	set(t, s, 1, "plain", "v", 0)
	set(t, s, 1, "soon", "v", soon)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	legacyKey := func(k string) []byte {
		return append([]byte{legacyExpiryIndexPrefix, 0, 0, 0, 0, 0, 0, 0, 1, 0, 1}, k...)
	}
	writeBadgerDirectly(t, opts, func(txn *badger.Txn) error {
		for _, k := range []string{"missing", "plain", "soon"} {
			if err := txn.Set(legacyKey(k), nil); err != nil {
				return err
			}
		}
		return nil
	})

	s = openStore(t, opts)
	txn := s.db.NewTransactionAt(s.readTs.Load(), false)
	defer txn.Discard()
	it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{legacyExpiryIndexPrefix}})
	it.Rewind()
	left := it.Valid()
	it.Close()
	if left {
		t.Error("legacy expiry-index entries survived Open")
	}
	waitFor(t, "soon to expire", func() bool { return s.Len() == 1 })
	checkCounts(t, s, 1, map[uint16]int64{1: 1})
	if _, ok := get(t, s, 1, "plain"); !ok {
		t.Error("plain is gone")
	}
}

// checkSchedule checks the expiry queue's invariant: every live record with
// a TTL in the index has an entry at exactly its expiry.
func checkSchedule(t *testing.T, s *Store) {
	t.Helper()
	var missing []string
	var entries int
	err := s.Do(func(tx *Tx) {
		queued := map[string]bool{}
		for _, it := range tx.c.expiry.items {
			queued[fmt.Sprint(it.slot, it.key, it.at)] = true
		}
		entries = len(tx.c.expiry.items)
		for slot := range uint16(SlotCount) {
			for _, r := range tx.c.s.index.slotRecords(slot, false) {
				if !r.rec.Tombstone && r.rec.ExpireAt != 0 && !queued[fmt.Sprint(slot, string(r.key), r.rec.ExpireAt)] {
					missing = append(missing, string(r.key))
				}
			}
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(missing) > 0 {
		t.Fatalf("%d records with a TTL are not scheduled (queue: %d entries), e.g. %q", len(missing), entries, missing[0])
	}
}

// scheduled counts the keys the expiry queue holds due at or before at
// whose record is still live and due then: what active expiry has yet to
// remove.
func scheduled(t *testing.T, s *Store, at int64) int {
	t.Helper()
	var n int
	err := s.Do(func(tx *Tx) {
		for _, it := range tx.c.expiry.items {
			if it.at > at {
				continue
			}
			cur, ok := tx.stored(tx.dataKey(it.slot, []byte(it.key)), false)
			if ok && !cur.Tombstone && cur.ExpireAt == it.at {
				n++
			}
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestExpiryIgnoresOverwrites(t *testing.T) {
	s := newStore(t)
	exp := s.Now() + 100
	set(t, s, 1, "persisted", "v", exp)
	set(t, s, 1, "persisted", "v2", 0) // PERSIST-like overwrite
	set(t, s, 1, "extended", "v", exp)
	set(t, s, 1, "extended", "v2", exp+time.Hour.Milliseconds())
	set(t, s, 1, "deleted", "v", exp)
	del(t, s, 1, "deleted")
	set(t, s, 1, "expires", "v", exp)
	checkSchedule(t, s)
	waitFor(t, "the due keys to be processed", func() bool { return scheduled(t, s, exp) == 0 })
	checkSchedule(t, s)
	checkCounts(t, s, 2, map[uint16]int64{1: 2})
	for key, want := range map[string]bool{"persisted": true, "extended": true, "deleted": false, "expires": false} {
		if _, ok := get(t, s, 1, key); ok != want {
			t.Errorf("%s found=%v, want %v", key, ok, want)
		}
	}
	if got := s.Stats().Expired; got != 1 {
		t.Errorf("Stats().Expired = %d, want 1", got)
	}
}

func TestExpiryTombstoneBlocksOlderCopies(t *testing.T) {
	s := newStore(t)
	exp := s.Now() + 50
	p := s.Submit(func(tx *Tx) { tx.Set(1, []byte("k"), []byte("v"), exp) })
	if err := p.Wait(); err != nil {
		t.Fatal(err)
	}
	orig := p.Mutations()[0]
	waitFor(t, "expiry", func() bool { return s.Len() == 0 })

	apply := func(m Mutation) bool {
		var ok bool
		if err := s.Do(func(tx *Tx) { ok = tx.Apply(m) }); err != nil {
			t.Fatal(err)
		}
		return ok
	}
	// A late copy of the expired record (say, a resend) must not return,
	// even with its expiry moved (it is the same version).
	late := orig
	late.Rec.ExpireAt = 0
	if apply(late) {
		t.Error("a late copy of an expired record was applied")
	}
	newer := orig
	newer.Rec.Version++
	newer.Rec.ExpireAt = 0
	if !apply(newer) {
		t.Error("a newer write after expiry was refused")
	}
	if _, ok := get(t, s, 1, "k"); !ok {
		t.Error("newer write not visible")
	}
	checkCounts(t, s, 1, nil)
}

func TestExpiredButNotRemovedIsCountedOnce(t *testing.T) {
	s := newStore(t, noActiveExpiry)
	set(t, s, 1, "k", "v", s.Now()-10)
	checkCounts(t, s, 1, map[uint16]int64{1: 1})
	set(t, s, 1, "k", "fresh", 0) // overwrites the expired record
	checkCounts(t, s, 1, map[uint16]int64{1: 1})
	set(t, s, 1, "j", "v", s.Now()-10)
	if del(t, s, 1, "j") {
		t.Error("Delete reported an expired key as live")
	}
	checkCounts(t, s, 2, map[uint16]int64{1: 2})
}

func TestExpirySurvivesReopen(t *testing.T) {
	opts := testOptions(t)
	s, err := Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	long := s.Now() + time.Hour.Milliseconds()
	short := s.Now() + 300
	gone := s.Now() + 30
	set(t, s, 1, "long", "v", long)
	set(t, s, 1, "short", "v", short)
	set(t, s, 1, "perm", "v", 0)
	// Close before the loop can take it, then let it expire while closed.
	set(t, s, 1, "gone", "v", gone)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the clock to pass the expiry", func() bool { return time.Now().UnixMilli() > gone })

	s = openStore(t, opts)
	if rec := mustGet(t, s, 1, "long"); rec.ExpireAt != long {
		t.Errorf("long: ExpireAt %d after reopen, want %d", rec.ExpireAt, long)
	}
	if _, ok := get(t, s, 1, "gone"); ok {
		t.Error("a key that expired while closed is visible")
	}
	if rec, ok, _ := s.Get(1, []byte("short")); ok && rec.ExpireAt != short {
		t.Errorf("short: ExpireAt %d after reopen, want %d", rec.ExpireAt, short)
	}
	waitFor(t, "expiry after reopen", func() bool { return s.Len() == 2 })
	if _, ok := get(t, s, 1, "short"); ok {
		t.Error("short still visible")
	}
	checkCounts(t, s, 2, map[uint16]int64{1: 2})
}

func TestPersistence(t *testing.T) {
	opts := testOptions(t, noActiveExpiry)
	s, err := Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	const n = 10000
	base := s.Now() + time.Hour.Milliseconds()
	expireAt := func(i int) int64 { return base + int64(i) }
	slotOf := func(i int) uint16 { return uint16(i % 97) }
	// Written by concurrent clients, as the server would.
	var wg sync.WaitGroup
	for g := range 10 {
		wg.Go(func() {
			for i := g; i < n; i += 10 {
				key, val := keyN(i), fmt.Sprintf("value-%d", i)
				if err := s.Do(func(tx *Tx) { tx.Set(slotOf(i), []byte(key), []byte(val), expireAt(i)) }); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if s.Len() != n {
		t.Fatalf("Len() = %d before close", s.Len())
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = openStore(t, opts)
	if s.Len() != n {
		t.Errorf("Len() = %d after reopen, want %d", s.Len(), n)
	}
	for i := range n {
		rec, ok, err := s.Get(slotOf(i), []byte(keyN(i)))
		if err != nil || !ok {
			t.Fatalf("%s: found=%v err=%v", keyN(i), ok, err)
		}
		if string(rec.Value) != fmt.Sprintf("value-%d", i) || rec.ExpireAt != expireAt(i) {
			t.Fatalf("%s: %q expiring %d", keyN(i), rec.Value, rec.ExpireAt)
		}
	}
	var scanned int64
	for slot := range uint16(97) {
		var inSlot int64
		if err := s.ScanSlot(slot, nil, func([]byte, Record) bool { inSlot++; return true }); err != nil {
			t.Fatal(err)
		}
		if c := s.CountSlot(slot); c != inSlot {
			t.Errorf("slot %d: CountSlot %d, scan %d", slot, c, inSlot)
		}
		scanned += inSlot
	}
	if scanned != n {
		t.Errorf("scanned %d keys, want %d", scanned, n)
	}
	// Versions keep increasing across the restart.
	var maxBefore uint64
	for i := range n {
		maxBefore = max(maxBefore, mustGet(t, s, slotOf(i), keyN(i)).Version)
	}
	p := s.Submit(func(tx *Tx) { tx.Set(0, []byte("new"), nil, 0) })
	if err := p.Wait(); err != nil {
		t.Fatal(err)
	}
	if v := p.Mutations()[0].Rec.Version; v <= maxBefore {
		t.Errorf("version after reopen %d not above %d", v, maxBefore)
	}
}

func TestCounts(t *testing.T) {
	opts := testOptions(t)
	s, err := Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { s.Close() }()
	type step struct {
		name string
		do   func()
		len  int64
		want map[uint16]int64
	}
	apply := func(m Mutation) func() {
		return func() {
			if err := s.Do(func(tx *Tx) { tx.Apply(m) }); err != nil {
				t.Fatal(err)
			}
		}
	}
	steps := []step{
		{"set two slots", func() {
			set(t, s, 1, "a", "v", 0)
			set(t, s, 1, "b", "v", 0)
			set(t, s, 2, "a", "v", 0)
		}, 3, map[uint16]int64{1: 2, 2: 1}},
		{"overwrite", func() { set(t, s, 1, "a", "v2", 0) }, 3, map[uint16]int64{1: 2}},
		{"set and overwrite in one batch", func() {
			if err := s.Do(func(tx *Tx) {
				tx.Set(3, []byte("x"), nil, 0)
				tx.Set(3, []byte("x"), nil, 0)
				tx.Delete(3, []byte("x"))
				tx.Set(3, []byte("x"), nil, 0)
			}); err != nil {
				t.Fatal(err)
			}
		}, 4, map[uint16]int64{3: 1}},
		{"delete", func() { del(t, s, 1, "b") }, 3, map[uint16]int64{1: 1}},
		{"delete missing", func() { del(t, s, 1, "b"); del(t, s, 1, "zz") }, 3, map[uint16]int64{1: 1}},
		{"recreate deleted", func() { set(t, s, 1, "b", "v", 0) }, 4, map[uint16]int64{1: 2}},
		{"apply new key", apply(Mutation{Slot: 5, Key: []byte("r"), Rec: Record{Version: 10, Value: []byte("v")}}), 5, map[uint16]int64{5: 1}},
		{"apply tombstone", apply(Mutation{Slot: 5, Key: []byte("r"), Rec: Record{Version: 11, Tombstone: true}}), 4, map[uint16]int64{5: 0}},
		{"apply stale", apply(Mutation{Slot: 5, Key: []byte("r"), Rec: Record{Version: 9, Value: []byte("v")}}), 4, map[uint16]int64{5: 0}},
		{"expire", func() {
			set(t, s, 6, "t", "v", s.Now()+20)
			waitFor(t, "expiry", func() bool { return s.CountSlot(6) == 0 })
		}, 4, map[uint16]int64{6: 0}},
		{"reopen", func() {
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			if s, err = Open(opts); err != nil {
				t.Fatal(err)
			}
		}, 4, map[uint16]int64{1: 2, 2: 1, 3: 1, 5: 0, 6: 0}},
		{"drop slot", func() {
			if err := s.DropSlot(1); err != nil {
				t.Fatal(err)
			}
		}, 2, map[uint16]int64{1: 0, 2: 1}},
		{"flush", func() {
			if err := s.FlushAll(); err != nil {
				t.Fatal(err)
			}
		}, 0, map[uint16]int64{2: 0, 3: 0}},
		{"write after flush", func() { set(t, s, 2, "a", "v", 0) }, 1, map[uint16]int64{2: 1}},
		{"reopen after flush", func() {
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			if s, err = Open(opts); err != nil {
				t.Fatal(err)
			}
		}, 1, map[uint16]int64{1: 0, 2: 1}},
	}
	for _, st := range steps {
		st.do()
		t.Run(st.name, func(t *testing.T) { checkCounts(t, s, st.len, st.want) })
	}
}

func TestTombstonesExpireAfterTTL(t *testing.T) {
	s := newStore(t, func(o *Options) { o.TombstoneTTL = time.Millisecond })
	p := s.Submit(func(tx *Tx) { tx.Set(1, []byte("k"), []byte("v"), 0) })
	if err := p.Wait(); err != nil {
		t.Fatal(err)
	}
	old := p.Mutations()[0]
	// The tombstone's Badger expiry, in whole seconds, is at least this.
	minExpiry := (s.Now() + 1 + 999) / 1000
	if !del(t, s, 1, "k") {
		t.Fatal("delete found nothing")
	}
	apply := func() bool {
		var ok bool
		if err := s.Do(func(tx *Tx) { ok = tx.Apply(old) }); err != nil {
			t.Fatal(err)
		}
		return ok
	}
	// Badger expires in whole seconds, so the tombstone lives on for up to
	// a second; meanwhile the old copy is refused, afterwards accepted.
	if apply() && time.Now().Unix() < minExpiry {
		t.Error("an older copy was applied over a live tombstone")
	}
	waitFor(t, "the tombstone to expire", apply)
	if v, ok := get(t, s, 1, "k"); !ok || v != "v" {
		t.Errorf("after the tombstone expired: %q, %v", v, ok)
	}
	checkCounts(t, s, 1, nil)
}
