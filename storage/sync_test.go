package storage

import (
	"testing"
)

// streamAll collects what StreamSlot ships for a slot, copied.
func streamAll(t testing.TB, s *Store, slot uint16) []Mutation {
	t.Helper()
	var out []Mutation
	err := s.StreamSlot(slot, func(m Mutation) bool {
		m.Key = append([]byte(nil), m.Key...)
		if m.Rec.Value != nil {
			m.Rec.Value = append([]byte(nil), m.Rec.Value...)
		}
		out = append(out, m)
		return true
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// applyAll applies mutations to s as a replica would.
func applyAll(t testing.TB, s *Store, muts []Mutation) {
	t.Helper()
	if err := s.Do(func(tx *Tx) {
		for _, m := range muts {
			tx.Apply(m)
		}
	}); err != nil {
		t.Fatal(err)
	}
}

// TestDigestFollowsState checks that two stores that reach the same state
// by different paths (direct writes on one, a stream applied on the other)
// have equal digests, that any difference shows, and that the digest
// survives a reopen.
func TestDigestFollowsState(t *testing.T) {
	primary := newStore(t)
	const slot = 7
	if primary.SlotDigest(slot) != 0 {
		t.Fatal("empty slot has a non-zero digest")
	}
	for i := range 100 {
		set(t, primary, slot, keyN(i), "v", 0)
	}
	set(t, primary, slot, keyN(1), "changed", 0)
	del(t, primary, slot, keyN(2))

	replica := newStore(t)
	applyAll(t, replica, streamAll(t, primary, slot))
	if got, want := replica.SlotDigest(slot), primary.SlotDigest(slot); got != want || got == 0 {
		t.Fatalf("replica digest %x, primary %x", got, want)
	}
	if replica.CountSlot(slot) != 99 {
		t.Fatalf("replica has %d keys, want 99", replica.CountSlot(slot))
	}

	// A newer write on one side shows; shipping it makes them equal again.
	set(t, primary, slot, keyN(3), "newer", 0)
	if replica.SlotDigest(slot) == primary.SlotDigest(slot) {
		t.Fatal("digests equal after a write on one side only")
	}
	applyAll(t, replica, streamAll(t, primary, slot))
	if replica.SlotDigest(slot) != primary.SlotDigest(slot) {
		t.Fatal("digests differ after the stream")
	}
	// Re-applying is a no-op: versions make it idempotent.
	before := replica.SlotDigest(slot)
	applyAll(t, replica, streamAll(t, primary, slot))
	if replica.SlotDigest(slot) != before {
		t.Fatal("re-applying a stream changed the digest")
	}
	// A delete shows too.
	del(t, primary, slot, keyN(4))
	if replica.SlotDigest(slot) == primary.SlotDigest(slot) {
		t.Fatal("digests equal after a delete on one side only")
	}
	if err := primary.DropSlot(slot); err != nil {
		t.Fatal(err)
	}
	if primary.SlotDigest(slot) != 0 {
		t.Fatal("dropped slot has a non-zero digest")
	}
}

func TestDigestSurvivesReopen(t *testing.T) {
	opts := testOptions(t)
	s := openStore(t, opts)
	for i := range 50 {
		set(t, s, uint16(i%3), keyN(i), "v", 0)
	}
	del(t, s, 1, keyN(1))
	want := [3]uint64{s.SlotDigest(0), s.SlotDigest(1), s.SlotDigest(2)}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openStore(t, opts)
	for slot := range 3 {
		if got := s.SlotDigest(uint16(slot)); got != want[slot] {
			t.Errorf("slot %d digest %x after reopen, want %x", slot, got, want[slot])
		}
	}
}

// TestStreamSlotShipsTombstonesAndExpiry checks that a stream carries
// what a replica needs so that deleted keys stay deleted and expiries
// match: tombstones with their versions, absolute expiry times.
func TestStreamSlotShipsTombstonesAndExpiry(t *testing.T) {
	s := newStore(t)
	const slot = 42
	// An older copy of c on a replica, written before the primary's.
	replica := newStore(t)
	set(t, replica, slot, "c", "stale", 0)
	exp := s.Now() + 3600_000
	set(t, s, slot, "a", "1", 0)
	set(t, s, slot, "b", "2", exp)
	set(t, s, slot, "c", "3", 0)
	del(t, s, slot, "c")
	set(t, s, slot+1, "other", "x", 0)

	got := streamAll(t, s, slot)
	if len(got) != 3 {
		t.Fatalf("streamed %d records, want 3: %+v", len(got), got)
	}
	byKey := map[string]Mutation{}
	for _, m := range got {
		if m.Slot != slot {
			t.Errorf("record of slot %d in the stream of %d", m.Slot, slot)
		}
		byKey[string(m.Key)] = m
	}
	if m := byKey["b"]; string(m.Rec.Value) != "2" || m.Rec.ExpireAt != exp {
		t.Errorf("b streamed as %+v", m.Rec)
	}
	if m := byKey["c"]; !m.Rec.Tombstone || m.Rec.Version == 0 || m.Rec.Value != nil {
		t.Errorf("c streamed as %+v, want a versioned tombstone", m.Rec)
	}

	// The tombstone wins over an older copy of c on a replica.
	applyAll(t, replica, got)
	if _, ok := get(t, replica, slot, "c"); ok {
		t.Error("a deleted key came back on the replica")
	}
	if rec := mustGet(t, replica, slot, "b"); rec.ExpireAt != exp {
		t.Errorf("replica expiry %d, want %d", rec.ExpireAt, exp)
	}
}
