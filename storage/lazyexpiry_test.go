package storage

import "testing"

// TestRemoveExpired checks the lazy expiry a write function may do: an
// expired record becomes a tombstone with the record's own version (so a
// copy elsewhere is not overruled), live, missing and already removed
// keys are left alone, and Expired says which keys it would remove.
func TestRemoveExpired(t *testing.T) {
	s := newStore(t, noActiveExpiry)
	set(t, s, 1, "gone", "v", s.Now()-10)
	set(t, s, 1, "live", "v", s.Now()+3_600_000)
	set(t, s, 1, "plain", "v", 0)
	for key, want := range map[string]bool{"gone": true, "live": false, "plain": false, "missing": false} {
		if got := s.Expired(1, []byte(key)); got != want {
			t.Errorf("Expired(%q) = %v, want %v", key, got, want)
		}
	}
	var version uint64
	if err := s.Do(func(tx *Tx) {
		rec, _, _ := tx.lookup(tx.dataKey(1, []byte("gone")), false)
		version = rec.Version
	}); err != nil {
		t.Fatal(err)
	}

	removed := map[string]bool{}
	p := s.Submit(func(tx *Tx) {
		for _, k := range []string{"gone", "live", "plain", "missing", "gone"} {
			if tx.RemoveExpired(1, []byte(k)) {
				removed[k] = true
			}
		}
	})
	if err := p.Wait(); err != nil {
		t.Fatal(err)
	}
	if len(removed) != 1 || !removed["gone"] {
		t.Fatalf("removed %v, want only gone", removed)
	}
	muts := p.Mutations()
	if len(muts) != 1 || string(muts[0].Key) != "gone" || !muts[0].Rec.Tombstone || muts[0].Rec.Version != version {
		t.Fatalf("mutations %+v, want one tombstone of gone at version %d", muts, version)
	}
	if s.Expired(1, []byte("gone")) {
		t.Error("Expired still reports the removed key")
	}
	checkCounts(t, s, 2, map[uint16]int64{1: 2})
	for _, k := range []string{"live", "plain"} {
		if _, ok := get(t, s, 1, k); !ok {
			t.Errorf("%s was removed", k)
		}
	}
}
