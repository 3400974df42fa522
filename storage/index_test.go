package storage

import (
	"testing"
	"time"
)

// TestIndexForgetsOldTombstones checks that a deleted key's tombstone
// leaves the in-memory index once TombstoneTTL has passed, so deleted keys
// do not hold memory for good, while a recent one still blocks an older
// replicated copy.
func TestIndexForgetsOldTombstones(t *testing.T) {
	s := newStore(t, func(o *Options) { o.TombstoneTTL = 50 * time.Millisecond })
	var v uint64
	do(t, s, func(tx *Tx) { tx.Set(1, []byte("k"), []byte("v"), 0) })
	do(t, s, func(tx *Tx) {
		old, _ := tx.Get(1, []byte("k"))
		v = old.Version
		tx.Delete(1, []byte("k"))
	})
	var applied bool
	do(t, s, func(tx *Tx) {
		applied = tx.Apply(Mutation{Slot: 1, Key: []byte("k"), Rec: Record{Value: []byte("old"), Version: v}})
	})
	if applied {
		t.Fatal("an older copy was applied over a fresh tombstone")
	}
	if rec, ok := s.index.get(1, []byte("k")); !ok || !rec.Tombstone {
		t.Fatalf("index entry = %+v, %v; want the tombstone", rec, ok)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		// Any committed batch sweeps the queue.
		do(t, s, func(tx *Tx) { tx.Set(2, []byte("other"), []byte("x"), 0) })
		if _, ok := s.index.get(1, []byte("k")); !ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("tombstone still in the index long after TombstoneTTL")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestIndexRebuiltOnOpen checks that reopening a store serves reads from
// the index rebuilt out of Badger, tombstones included.
func TestIndexRebuiltOnOpen(t *testing.T) {
	opts := testOptions(t)
	s, err := Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	do(t, s, func(tx *Tx) {
		tx.Set(7, []byte("a"), []byte("1"), 0)
		tx.Set(7, []byte("b"), []byte("2"), 0)
	})
	do(t, s, func(tx *Tx) { tx.Delete(7, []byte("b")) })
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openStore(t, opts)
	if rec, ok, _ := s.Get(7, []byte("a")); !ok || string(rec.Value) != "1" {
		t.Fatalf("a = %q, %v", rec.Value, ok)
	}
	if _, ok, _ := s.Get(7, []byte("b")); ok {
		t.Fatal("deleted key b is back after reopen")
	}
	if rec, ok := s.index.get(7, []byte("b")); !ok || !rec.Tombstone {
		t.Fatalf("b's tombstone not in the index after reopen: %+v, %v", rec, ok)
	}
}

func do(t *testing.T, s *Store, fn func(tx *Tx)) {
	t.Helper()
	if err := s.Do(fn); err != nil {
		t.Fatal(err)
	}
}

// TestExpiresLen follows the count of keys with an expiry through writes
// that add, change and remove expiries, a reopen and a flush.
func TestExpiresLen(t *testing.T) {
	opts := testOptions(t)
	s, err := Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	far := s.Now() + 3600_000
	steps := []struct {
		name string
		fn   func(tx *Tx)
		want int64
	}{
		{"two volatile, one not", func(tx *Tx) {
			tx.Set(1, []byte("a"), []byte("1"), far)
			tx.Set(2, []byte("b"), []byte("1"), far)
			tx.Set(3, []byte("c"), []byte("1"), 0)
		}, 2},
		{"persist one", func(tx *Tx) { tx.Set(1, []byte("a"), []byte("1"), 0) }, 1},
		{"give c an expiry", func(tx *Tx) { tx.Set(3, []byte("c"), []byte("1"), far) }, 2},
		{"delete b", func(tx *Tx) { tx.Delete(2, []byte("b")) }, 1},
		{"expire soon", func(tx *Tx) { tx.Set(4, []byte("d"), []byte("1"), tx.Now()+20) }, 2},
	}
	for _, st := range steps {
		do(t, s, st.fn)
		if got := s.ExpiresLen(); got != st.want {
			t.Fatalf("%s: ExpiresLen = %d, want %d", st.name, got, st.want)
		}
	}
	waitFor(t, "d to expire", func() bool { return s.ExpiresLen() == 1 })
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openStore(t, opts)
	if got := s.ExpiresLen(); got != 1 {
		t.Fatalf("after reopen ExpiresLen = %d, want 1", got)
	}
	if err := s.FlushAll(); err != nil {
		t.Fatal(err)
	}
	if got := s.ExpiresLen(); got != 0 {
		t.Fatalf("after FlushAll ExpiresLen = %d, want 0", got)
	}
}
