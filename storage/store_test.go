package storage

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestSetGetDeleteOverwrite(t *testing.T) {
	s := newStore(t)
	type step struct {
		op        string // set, del, get
		key, val  string
		wantFound bool // get: key found; del: key was live
		wantVal   string
	}
	steps := []step{
		{op: "get", key: "a"},
		{op: "set", key: "a", val: "1"},
		{op: "get", key: "a", wantFound: true, wantVal: "1"},
		{op: "set", key: "a", val: "22"},
		{op: "get", key: "a", wantFound: true, wantVal: "22"},
		{op: "set", key: "", val: "empty key"},
		{op: "get", key: "", wantFound: true, wantVal: "empty key"},
		{op: "set", key: "e", val: ""},
		{op: "get", key: "e", wantFound: true, wantVal: ""},
		{op: "del", key: "a", wantFound: true},
		{op: "get", key: "a"},
		{op: "del", key: "a"},
		{op: "del", key: "never"},
		{op: "set", key: "a", val: "back"},
		{op: "get", key: "a", wantFound: true, wantVal: "back"},
	}
	for i, st := range steps {
		switch st.op {
		case "set":
			set(t, s, 7, st.key, st.val, 0)
		case "del":
			if got := del(t, s, 7, st.key); got != st.wantFound {
				t.Errorf("step %d: Delete(%q) = %v, want %v", i, st.key, got, st.wantFound)
			}
		case "get":
			val, found := get(t, s, 7, st.key)
			if found != st.wantFound || val != st.wantVal {
				t.Errorf("step %d: Get(%q) = %q, %v; want %q, %v", i, st.key, val, found, st.wantVal, st.wantFound)
			}
		}
	}
	// The same key in another slot is another key.
	if _, found := get(t, s, 8, "a"); found {
		t.Error("key found in the wrong slot")
	}
	checkCounts(t, s, 3, map[uint16]int64{7: 3, 8: 0})
}

func TestGetCopiesAndViewDoesNot(t *testing.T) {
	s := newStore(t)
	set(t, s, 1, "k", "value", 0)
	rec := mustGet(t, s, 1, "k")
	rec.Value[0] = 'X' // Must not affect the store.
	if v, _ := get(t, s, 1, "k"); v != "value" {
		t.Fatalf("stored value changed through Get's copy: %q", v)
	}
	var seen string
	found, err := s.View(1, []byte("k"), func(r Record) { seen = string(r.Value) })
	if err != nil || !found || seen != "value" {
		t.Fatalf("View = %v, %v, saw %q", found, err, seen)
	}
	found, err = s.View(1, []byte("missing"), func(Record) { t.Error("fn called for a missing key") })
	if err != nil || found {
		t.Fatalf("View(missing) = %v, %v", found, err)
	}
}

func TestBatchOverlayVisibility(t *testing.T) {
	s := newStore(t)
	set(t, s, 3, "committed", "c", 0)

	var inFn, inLaterFn, deletedSeen, committedSeen bool
	var value string
	p := s.Submit(
		func(tx *Tx) {
			tx.Set(3, []byte("k"), []byte("v1"), 0)
			r, ok := tx.Get(3, []byte("k"))
			inFn = ok && string(r.Value) == "v1"
			_, committedSeen = tx.Get(3, []byte("committed"))
			tx.Delete(3, []byte("committed"))
			_, deletedSeen = tx.Get(3, []byte("committed"))
		},
		func(tx *Tx) {
			r, ok := tx.Get(3, []byte("k"))
			inLaterFn = ok
			value = string(r.Value)
			tx.Set(3, []byte("k"), append(r.Value, "+v2"...), 0)
		},
	)
	if err := p.Wait(); err != nil {
		t.Fatal(err)
	}
	if !inFn || !inLaterFn || value != "v1" || !committedSeen || deletedSeen {
		t.Errorf("overlay: inFn=%v inLaterFn=%v value=%q committedSeen=%v deletedSeen=%v",
			inFn, inLaterFn, value, committedSeen, deletedSeen)
	}
	if v, _ := get(t, s, 3, "k"); v != "v1+v2" {
		t.Errorf("after batch: %q, want v1+v2", v)
	}

	// Across submissions of one batch: hold the committer so that both
	// queue up behind it and are taken together.
	release := make(chan struct{})
	blocker := s.Submit(func(*Tx) { <-release })
	p1 := s.Submit(func(tx *Tx) { tx.Set(3, []byte("x"), []byte("1"), 0) })
	var sawX bool
	p2 := s.Submit(func(tx *Tx) { _, sawX = tx.Get(3, []byte("x")) })
	close(release)
	for _, p := range []*Pending{blocker, p1, p2} {
		if err := p.Wait(); err != nil {
			t.Fatal(err)
		}
	}
	if !sawX {
		t.Error("a later submission did not see an earlier one's write")
	}
}

func TestMutationsAndVersions(t *testing.T) {
	s := newStore(t)
	set(t, s, 5, "gone", "x", 0)

	var inside []Mutation
	before := s.Now()
	p := s.Submit(
		func(tx *Tx) {
			tx.Set(5, []byte("a"), []byte("1"), 0)
			tx.Set(5, []byte("b"), []byte("2"), before+time.Hour.Milliseconds())
			inside = slices.Clone(tx.Mutations())
		},
		func(tx *Tx) {
			tx.Delete(5, []byte("gone"))
			tx.Delete(5, []byte("never existed")) // writes nothing
			tx.Set(5, []byte("a"), []byte("3"), 0)
		},
	)
	if err := p.Wait(); err != nil {
		t.Fatal(err)
	}
	muts := p.Mutations()
	want := []struct {
		key, val  string
		tombstone bool
	}{{"a", "1", false}, {"b", "2", false}, {"gone", "", true}, {"a", "3", false}}
	if len(muts) != len(want) {
		t.Fatalf("got %d mutations, want %d: %+v", len(muts), len(want), muts)
	}
	if len(inside) != 2 {
		t.Errorf("Tx.Mutations inside the first fn: %d, want 2", len(inside))
	}
	var last uint64
	for i, w := range want {
		m := muts[i]
		if m.Slot != 5 || string(m.Key) != w.key || string(m.Rec.Value) != w.val || m.Rec.Tombstone != w.tombstone {
			t.Errorf("mutation %d = {%d %q %q tomb=%v}, want {5 %q %q tomb=%v}",
				i, m.Slot, m.Key, m.Rec.Value, m.Rec.Tombstone, w.key, w.val, w.tombstone)
		}
		if m.Rec.Version <= last {
			t.Errorf("mutation %d: version %d not above %d", i, m.Rec.Version, last)
		}
		if m.Rec.Version < uint64(before)<<16 {
			t.Errorf("mutation %d: version %d below the physical clock", i, m.Rec.Version)
		}
		last = m.Rec.Version
	}
	if muts[1].Rec.ExpireAt != before+time.Hour.Milliseconds() {
		t.Errorf("expireAt not carried: %d", muts[1].Rec.ExpireAt)
	}
	// The stored record carries the mutation's version.
	if rec := mustGet(t, s, 5, "a"); rec.Version != muts[3].Rec.Version {
		t.Errorf("stored version %d, mutation version %d", rec.Version, muts[3].Rec.Version)
	}
}

func TestFailRollsBackOneFunction(t *testing.T) {
	s := newStore(t)
	set(t, s, 2, "keep", "old", 0)
	boom := errors.New("boom")
	var sawFailedWrite bool
	p := s.Submit(
		func(tx *Tx) { tx.Set(2, []byte("first"), []byte("1"), 0) },
		func(tx *Tx) {
			tx.Set(2, []byte("keep"), []byte("new"), 0)
			tx.Set(2, []byte("fresh"), []byte("x"), 0)
			tx.Delete(2, []byte("first"))
			tx.Fail(boom)
			tx.Set(2, []byte("after-fail"), []byte("x"), 0)
		},
		func(tx *Tx) {
			_, a := tx.Get(2, []byte("fresh"))
			r, _ := tx.Get(2, []byte("keep"))
			sawFailedWrite = a || string(r.Value) != "old"
			tx.Set(2, []byte("last"), []byte("3"), 0)
		},
		func(*Tx) { panic("bad function") },
	)
	if err := p.Wait(); !errors.Is(err, boom) {
		t.Fatalf("Wait = %v, want boom", err)
	}
	if sawFailedWrite {
		t.Error("a later function saw a failed function's writes")
	}
	for key, want := range map[string]string{"first": "1", "keep": "old", "last": "3"} {
		if v, ok := get(t, s, 2, key); !ok || v != want {
			t.Errorf("%s = %q, %v; want %q", key, v, ok, want)
		}
	}
	for _, key := range []string{"fresh", "after-fail"} {
		if _, ok := get(t, s, 2, key); ok {
			t.Errorf("%s written by a failed function", key)
		}
	}
	if n := len(p.Mutations()); n != 2 {
		t.Errorf("%d mutations, want 2 (first, last)", n)
	}
	checkCounts(t, s, 3, map[uint16]int64{2: 3})

	// The committer survived the panic.
	set(t, s, 2, "alive", "yes", 0)
}

func TestWriteValidation(t *testing.T) {
	// A cap, so that "too large" is 1 MiB rather than 2 GiB.
	s := newStore(t, func(o *Options) { o.InMemory, o.MaxValueLen = true, 1<<20 })
	errAny := errors.New("any error")
	tests := []struct {
		name string
		fn   func(tx *Tx)
		want error // nil: success; errAny: some error
	}{
		{"key too large", func(tx *Tx) { tx.Set(1, make([]byte, MaxKeyLen+1), nil, 0) }, ErrKeyTooLarge},
		{"negative expiry", func(tx *Tx) { tx.Set(1, []byte("k"), nil, -1) }, ErrBadExpiry},
		{"value too large", func(tx *Tx) { tx.Set(1, []byte("k"), make([]byte, s.MaxValueLen()+1), 0) }, ErrValueTooLarge},
		{"slot out of range", func(tx *Tx) { tx.Set(SlotCount, []byte("k"), nil, 0) }, errAny},
		{"longest key with expiry", func(tx *Tx) { tx.Set(1, make([]byte, MaxKeyLen), []byte("v"), s.Now()+60_000) }, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := s.Do(tc.fn)
			switch tc.want {
			case nil:
				if err != nil {
					t.Errorf("unexpected error %v", err)
				}
			case errAny:
				if err == nil {
					t.Error("no error")
				}
			default:
				if !errors.Is(err, tc.want) {
					t.Errorf("got %v, want %v", err, tc.want)
				}
			}
		})
	}
	if _, ok := get(t, s, 1, "k"); ok {
		t.Error("a rejected write was stored")
	}
	checkCounts(t, s, 1, nil)
}

func TestConcurrentSubmitsAreBatched(t *testing.T) {
	s := newStore(t)
	const goroutines, perG = 32, 100
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for i := range perG {
				key := fmt.Sprintf("g%d:%d", g, i)
				if err := s.Do(func(tx *Tx) { tx.Set(uint16(g), []byte(key), []byte(key), 0) }); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	st := s.Stats()
	t.Logf("stats: %+v", st)
	if st.Submissions != goroutines*perG || st.Ops != goroutines*perG {
		t.Errorf("submissions=%d ops=%d, want %d", st.Submissions, st.Ops, goroutines*perG)
	}
	if st.Batches >= st.Submissions {
		t.Errorf("no batching: %d batches for %d submissions", st.Batches, st.Submissions)
	}
	checkCounts(t, s, goroutines*perG, map[uint16]int64{0: perG, goroutines - 1: perG})
	for g := range goroutines {
		key := fmt.Sprintf("g%d:%d", g, perG-1)
		if v, ok := get(t, s, uint16(g), key); !ok || v != key {
			t.Errorf("%s = %q, %v", key, v, ok)
		}
	}

	// Deterministically: everything queued behind a busy committer is one
	// batch and one commit.
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	release := make(chan struct{})
	blocker := s.Submit(func(*Tx) { <-release })
	// Wait until the committer has taken the blocker, so the queue is ours.
	waitFor(t, "the committer to take the blocker", func() bool { return len(s.submitCh) == 0 })
	before := s.Stats()
	var pendings []*Pending
	for i := range 100 {
		pendings = append(pendings, s.Submit(func(tx *Tx) { tx.Set(9, []byte(keyN(i)), []byte("v"), 0) }))
	}
	close(release)
	if err := blocker.Wait(); err != nil {
		t.Fatal(err)
	}
	for _, p := range pendings {
		if err := p.Wait(); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	after := s.Stats()
	// The blocker's batch may or may not have caught the first few.
	if b := after.Batches - before.Batches; b > 2 {
		t.Errorf("100 queued submissions took %d batches, want at most 2", b)
	}
	if c := after.Commits - before.Commits; c > 2 {
		t.Errorf("100 queued submissions took %d commits, want at most 2", c)
	}
}

func TestReadsDoNotWaitForTheCommitter(t *testing.T) {
	s := newStore(t)
	set(t, s, 1, "k", "v", 0)
	release := make(chan struct{})
	p := s.Submit(func(tx *Tx) {
		tx.Set(1, []byte("k"), []byte("new"), 0)
		<-release
	})
	defer func() {
		close(release)
		if err := p.Wait(); err != nil {
			t.Error(err)
		}
		if v, _ := get(t, s, 1, "k"); v != "new" {
			t.Errorf("after commit: %q", v)
		}
	}()
	// The committer is stuck inside a batch; reads still answer, from the
	// last published state.
	if v, ok := get(t, s, 1, "k"); !ok || v != "v" {
		t.Errorf("read during a batch: %q, %v", v, ok)
	}
	n := 0
	if err := s.ScanSlot(1, nil, func([]byte, Record) bool { n++; return true }); err != nil || n != 1 {
		t.Errorf("scan during a batch: %d keys, %v", n, err)
	}
}

func TestApply(t *testing.T) {
	s := newStore(t)
	apply := func(m Mutation) bool {
		t.Helper()
		var ok bool
		if err := s.Do(func(tx *Tx) { ok = tx.Apply(m) }); err != nil {
			t.Fatal(err)
		}
		return ok
	}
	mut := func(key string, version uint64, val string, tomb bool) Mutation {
		m := Mutation{Slot: 4, Key: []byte(key), Rec: Record{Version: version, Tombstone: tomb}}
		if !tomb {
			m.Rec.Value = []byte(val)
		}
		return m
	}
	base := uint64(s.Now()) << 16
	steps := []struct {
		name      string
		m         Mutation
		wantApply bool
		wantVal   string // "" = not found
	}{
		{"first copy", mut("k", base+10, "v10", false), true, "v10"},
		{"resend", mut("k", base+10, "v10 again", false), false, "v10"},
		{"older", mut("k", base+5, "v5", false), false, "v10"},
		{"newer", mut("k", base+20, "v20", false), true, "v20"},
		{"tombstone", mut("k", base+30, "", true), true, ""},
		{"older after tombstone", mut("k", base+25, "v25", false), false, ""},
		{"newer after tombstone", mut("k", base+40, "v40", false), true, "v40"},
		{"tombstone for unknown key", mut("u", base+50, "", true), true, ""},
		{"older than unknown key's tombstone", mut("u", base+45, "v45", false), false, ""},
	}
	for _, st := range steps {
		if got := apply(st.m); got != st.wantApply {
			t.Errorf("%s: applied=%v, want %v", st.name, got, st.wantApply)
		}
		v, ok := get(t, s, 4, string(st.m.Key))
		if (st.wantVal != "") != ok || v != st.wantVal {
			t.Errorf("%s: value %q, %v; want %q", st.name, v, ok, st.wantVal)
		}
	}
	checkCounts(t, s, 1, map[uint16]int64{4: 1})

	// Apply moves the clock: a local write after a far-future version gets
	// a higher one.
	future := uint64(s.Now()+time.Hour.Milliseconds()) << 16
	apply(mut("f", future, "remote", false))
	var muts []Mutation
	p := s.Submit(func(tx *Tx) { tx.Set(4, []byte("f"), []byte("local"), 0) })
	if err := p.Wait(); err != nil {
		t.Fatal(err)
	}
	muts = p.Mutations()
	if muts[0].Rec.Version <= future {
		t.Errorf("local version %d not above applied %d", muts[0].Rec.Version, future)
	}
	// ObserveVersion moves it the same way, without writing.
	var observed uint64
	if err := s.Do(func(tx *Tx) {
		tx.ObserveVersion(future + 1000)
		tx.Set(4, []byte("o"), nil, 0)
		observed = tx.Mutations()[0].Rec.Version
	}); err != nil {
		t.Fatal(err)
	}
	if observed <= future+1000 {
		t.Errorf("version after ObserveVersion: %d, want above %d", observed, future+1000)
	}
	// A local delete also beats the remote version.
	if !del(t, s, 4, "f") {
		t.Error("delete after apply found nothing")
	}
	if apply(mut("f", future+1, "stale", false)) {
		t.Error("a version below the local tombstone was applied")
	}
}

func TestApplyKeepsExpiry(t *testing.T) {
	s := newStore(t)
	exp := s.Now() + time.Hour.Milliseconds()
	m := Mutation{Slot: 1, Key: []byte("k"), Rec: Record{Value: []byte("v"), ExpireAt: exp, Version: 42}}
	if err := s.Do(func(tx *Tx) { tx.Apply(m) }); err != nil {
		t.Fatal(err)
	}
	rec := mustGet(t, s, 1, "k")
	if rec.ExpireAt != exp || rec.Version != 42 || string(rec.Value) != "v" {
		t.Errorf("applied record = %+v", rec)
	}
}

func TestScanSlot(t *testing.T) {
	s := newStore(t)
	var keys []string
	for i := range 50 {
		keys = append(keys, fmt.Sprintf("k%02d", i))
	}
	shuffled := slices.Clone(keys)
	for i := range shuffled {
		j := (i * 7919) % len(shuffled)
		shuffled[i], shuffled[j] = shuffled[j], shuffled[i]
	}
	err := s.Do(func(tx *Tx) {
		for _, k := range shuffled {
			tx.Set(100, []byte(k), []byte("v"+k), 0)
		}
		tx.Set(99, []byte("other slot"), nil, 0)
		tx.Set(101, []byte("k00"), nil, 0)
		tx.Set(100, []byte("k05x-expired"), nil, 1)
		tx.Set(100, []byte("k06x-deleted"), nil, 0)
	})
	if err != nil {
		t.Fatal(err)
	}
	del(t, s, 100, "k06x-deleted")

	scan := func(after []byte, limit int) []string {
		t.Helper()
		var got []string
		err := s.ScanSlot(100, after, func(key []byte, rec Record) bool {
			if rec.Version == 0 || rec.Value != nil {
				t.Errorf("%s: record %+v, want a version and no value", key, rec)
			}
			got = append(got, string(key))
			return len(got) < limit
		})
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	if got := scan(nil, 1000); !slices.Equal(got, keys) {
		t.Errorf("full scan:\n got %v\nwant %v", got, keys)
	}
	// Page through with after.
	var paged []string
	var after []byte
	for {
		page := scan(after, 7)
		if len(page) == 0 {
			break
		}
		paged = append(paged, page...)
		after = []byte(page[len(page)-1])
	}
	if !slices.Equal(paged, keys) {
		t.Errorf("paged scan:\n got %v\nwant %v", paged, keys)
	}
	if got := scan([]byte("k10"), 3); !slices.Equal(got, []string{"k11", "k12", "k13"}) {
		t.Errorf("after k10: %v", got)
	}
	if got := scan([]byte("k10a"), 1); !slices.Equal(got, []string{"k11"}) {
		t.Errorf("after a missing key: %v", got)
	}
	if got := scan([]byte("zzz"), 10); len(got) != 0 {
		t.Errorf("after the last key: %v", got)
	}
	// The empty key sorts first; nil starts before it, empty after it.
	set(t, s, 100, "", "v", 0)
	if got := scan(nil, 1); !slices.Equal(got, []string{""}) {
		t.Errorf("nil after: %q", got)
	}
	if got := scan([]byte{}, 1); !slices.Equal(got, []string{"k00"}) {
		t.Errorf("empty after: %q", got)
	}
}

func TestFlushAllAndDropSlot(t *testing.T) {
	s := newStore(t)
	later := s.Now() + time.Hour.Milliseconds()
	err := s.Do(func(tx *Tx) {
		for i := range 100 {
			tx.Set(uint16(i%4), []byte(keyN(i)), []byte("v"), later)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	checkCounts(t, s, 100, map[uint16]int64{0: 25, 1: 25, 2: 25, 3: 25})

	if err := s.DropSlot(1); err != nil {
		t.Fatal(err)
	}
	checkCounts(t, s, 75, map[uint16]int64{0: 25, 1: 0, 2: 25})
	if _, ok := get(t, s, 1, keyN(1)); ok {
		t.Error("dropped slot still has keys")
	}
	if _, ok := get(t, s, 2, keyN(2)); !ok {
		t.Error("other slot lost keys")
	}
	n := 0
	if err := s.ScanSlot(1, nil, func([]byte, Record) bool { n++; return true }); err != nil || n != 0 {
		t.Errorf("scan of a dropped slot: %d keys, %v", n, err)
	}
	set(t, s, 1, "after drop", "v", 0)
	checkCounts(t, s, 76, map[uint16]int64{1: 1})

	if err := s.FlushAll(); err != nil {
		t.Fatal(err)
	}
	checkCounts(t, s, 0, map[uint16]int64{0: 0, 1: 0, 2: 0, 3: 0})
	for i := range 4 {
		if _, ok := get(t, s, uint16(i), keyN(i)); ok {
			t.Errorf("slot %d has keys after FlushAll", i)
		}
	}
	// Nothing is left to expire, not even a stale entry.
	var queued int
	if err := s.Do(func(tx *Tx) { queued = tx.c.expiry.len() }); err != nil {
		t.Fatal(err)
	}
	if queued != 0 {
		t.Errorf("expiry queue after FlushAll: %d entries", queued)
	}
	set(t, s, 0, "after flush", "v", 0)
	checkCounts(t, s, 1, map[uint16]int64{0: 1})
	if err := s.DropSlot(SlotCount); err == nil {
		t.Error("DropSlot accepted an out-of-range slot")
	}
}

func TestFlushAllPersists(t *testing.T) {
	opts := testOptions(t)
	s, err := Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		set(t, s, uint16(i), keyN(i), "v", 0)
	}
	if err := s.FlushAll(); err != nil {
		t.Fatal(err)
	}
	set(t, s, 3, "survivor", "v", 0)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openStore(t, opts)
	checkCounts(t, s, 1, map[uint16]int64{3: 1})
	if _, ok := get(t, s, 0, keyN(0)); ok {
		t.Error("flushed key came back after reopen")
	}
}

func TestBigBatchIsSplit(t *testing.T) {
	// A 4 MiB memtable limits a Badger transaction to about 600 KiB.
	s := newStore(t, func(o *Options) { o.MemTableSize = 4 << 20 })
	// Values below the value-log threshold, so they fill the transaction.
	val := bytes.Repeat([]byte("x"), diskValueThreshold/2)
	const n = 10000 // about 1.6 MB in one function
	before := s.Stats()
	p := s.Submit(func(tx *Tx) {
		for i := range n {
			tx.Set(uint16(i%10), []byte(keyN(i)), val, 0)
		}
	})
	if err := p.Wait(); err != nil {
		t.Fatal(err)
	}
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	after := s.Stats()
	if c := after.Commits - before.Commits; c < 2 {
		t.Errorf("%d commits; expected the batch to be split", c)
	}
	if b := after.Batches - before.Batches; b != 1 {
		t.Errorf("%d batches, want 1", b)
	}
	if len(p.Mutations()) != n {
		t.Errorf("%d mutations, want %d", len(p.Mutations()), n)
	}
	checkCounts(t, s, n, map[uint16]int64{0: n / 10})
	for i := 0; i < n; i += 97 {
		if v, ok := get(t, s, uint16(i%10), keyN(i)); !ok || v != string(val) {
			t.Fatalf("%s missing after a split batch", keyN(i))
		}
	}
}

func TestInMemory(t *testing.T) {
	s := newStore(t, func(o *Options) { o.InMemory = true; o.Dir = "" })
	set(t, s, 1, "k", "v", 0)
	set(t, s, 1, "ttl", "v", s.Now()+time.Hour.Milliseconds())
	if v, ok := get(t, s, 1, "k"); !ok || v != "v" {
		t.Fatalf("in memory: %q, %v", v, ok)
	}
	checkCounts(t, s, 2, map[uint16]int64{1: 2})
	// Without Badger there is no Badger limit on values (it was 1 MiB).
	if m := s.MaxValueLen(); m != math.MaxInt32 {
		t.Errorf("MaxValueLen in memory = %d, want %d", m, math.MaxInt32)
	}
	big := strings.Repeat("b", 8<<20)
	set(t, s, 1, "big", big, 0)
	if v, _ := get(t, s, 1, "big"); v != big {
		t.Error("an 8 MiB value was not stored")
	}
	if s.db != nil {
		t.Error("an in-memory store opened Badger")
	}
	if err := s.FlushAll(); err != nil {
		t.Fatal(err)
	}
	checkCounts(t, s, 0, nil)
}

func TestOptionsValidation(t *testing.T) {
	if _, err := Open(Options{}); err == nil {
		t.Error("Open without Dir or InMemory succeeded")
	}
	if _, err := Open(Options{InMemory: true, Fsync: "sometimes"}); err == nil {
		t.Error("Open with a bad fsync policy succeeded")
	}
	for _, policy := range []FsyncPolicy{FsyncNo, FsyncEverySec, FsyncAlways} {
		t.Run(string(policy), func(t *testing.T) {
			s := newStore(t, func(o *Options) { o.Fsync = policy })
			set(t, s, 1, "k", "v", 0)
			mustGet(t, s, 1, "k")
		})
	}
}

func TestClose(t *testing.T) {
	opts := testOptions(t)
	s, err := Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	// Submissions queued at Close complete, and are committed.
	var pendings []*Pending
	for i := range 200 {
		pendings = append(pendings, s.Submit(func(tx *Tx) { tx.Set(1, []byte(keyN(i)), []byte("v"), 0) }))
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	for i, p := range pendings {
		if err := p.Wait(); err != nil {
			t.Fatalf("pending %d: %v", i, err)
		}
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if err := s.Do(func(*Tx) {}); !errors.Is(err, ErrClosed) {
		t.Errorf("Do after Close: %v", err)
	}
	if _, _, err := s.Get(1, []byte("k")); !errors.Is(err, ErrClosed) {
		t.Errorf("Get after Close: %v", err)
	}
	if err := s.ScanSlot(1, nil, func([]byte, Record) bool { return true }); !errors.Is(err, ErrClosed) {
		t.Errorf("ScanSlot after Close: %v", err)
	}
	if err := s.FlushAll(); !errors.Is(err, ErrClosed) {
		t.Errorf("FlushAll after Close: %v", err)
	}

	s = openStore(t, opts)
	checkCounts(t, s, 200, map[uint16]int64{1: 200})
}

func TestCloseWithConcurrentTraffic(t *testing.T) {
	s, err := Open(testOptions(t))
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for g := range 8 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				key := []byte(fmt.Sprintf("%d:%d", g, i))
				err := s.Do(func(tx *Tx) { tx.Set(uint16(g), key, key, 0) })
				if _, _, gerr := s.Get(uint16(g), key); err == nil && gerr != nil && !errors.Is(gerr, ErrClosed) {
					t.Errorf("get: %v", gerr)
				}
				if errors.Is(err, ErrClosed) {
					return
				}
				if err != nil {
					t.Errorf("do: %v", err)
					return
				}
			}
		})
	}
	waitFor(t, "some writes", func() bool { return s.Len() > 100 })
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	close(stop)
	wg.Wait()
}

// TestConcurrentReadModifyWrite checks that every function sees the writes
// of all functions before it, whichever batch they landed in and whether or
// not that batch was still being committed: concurrent increments of a few
// counters must not lose any.
func TestConcurrentReadModifyWrite(t *testing.T) {
	s := newStore(t)
	const goroutines, perG, counters = 16, 300, 4
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for i := range perG {
				key := []byte(fmt.Sprintf("counter%d", (g+i)%counters))
				err := s.Do(func(tx *Tx) {
					n := 0
					if r, ok := tx.Get(0, key); ok {
						n, _ = strconv.Atoi(string(r.Value))
					}
					tx.Set(0, key, strconv.AppendInt(nil, int64(n+1), 10), 0)
				})
				if err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	total := 0
	for c := range counters {
		v, ok := get(t, s, 0, fmt.Sprintf("counter%d", c))
		if !ok {
			t.Fatalf("counter%d missing", c)
		}
		n, _ := strconv.Atoi(v)
		total += n
	}
	if total != goroutines*perG {
		t.Errorf("increments: %d, want %d", total, goroutines*perG)
	}
	t.Logf("stats: %+v", s.Stats())
}

// TestCountsUnderConcurrentChurn runs random sets, deletes and short TTLs
// on a small key space from many goroutines, then checks the O(1) counts
// against a scan.
func TestCountsUnderConcurrentChurn(t *testing.T) {
	s := newStore(t)
	const goroutines, perG, keys, slots = 8, 400, 50, 3
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for i := range perG {
				n := (g*7919 + i*31) % (keys * slots)
				slot, key := uint16(n%slots), []byte(keyN(n/slots))
				err := s.Do(func(tx *Tx) {
					switch (g + i) % 4 {
					case 0, 1:
						tx.Set(slot, key, key, 0)
					case 2:
						tx.Delete(slot, key)
					case 3:
						tx.Set(slot, key, key, tx.Now()+5)
					}
				})
				if err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	// Let every short TTL run out and be removed.
	waitFor(t, "expiry of the short TTLs", func() bool { return scheduled(t, s, s.Now()+10) == 0 })
	var scanned int64
	for slot := range uint16(slots) {
		var n int64
		if err := s.ScanSlot(slot, nil, func([]byte, Record) bool { n++; return true }); err != nil {
			t.Fatal(err)
		}
		if c := s.CountSlot(slot); c != n {
			t.Errorf("slot %d: CountSlot %d, scan %d", slot, c, n)
		}
		scanned += n
	}
	if s.Len() != scanned {
		t.Errorf("Len %d, scan %d", s.Len(), scanned)
	}
}
