package storage

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// TestExpiryQueuePopsInDueOrder checks the heap: entries come out by due
// time, only once due.
func TestExpiryQueuePopsInDueOrder(t *testing.T) {
	var q expiryQueue
	rng := rand.New(rand.NewPCG(7, 7))
	var ats []int64
	for range 1000 {
		at := rng.Int64N(500)
		ats = append(ats, at)
		q.push(expiryItem{at: at})
	}
	slices.Sort(ats)
	if _, ok := q.popDue(-1); ok {
		t.Fatal("popped an entry before it was due")
	}
	for i, want := range ats {
		it, ok := q.popDue(want)
		if !ok || it.at != want {
			t.Fatalf("pop %d: %d (%v), want %d", i, it.at, ok, want)
		}
	}
	if q.len() != 0 || q.next() != 1<<63-1 {
		t.Fatalf("after popping everything: len %d, next %d", q.len(), q.next())
	}
}

// TestExpiryQueueStaysBounded refreshes the TTL of a few keys many times
// (each refresh leaves a stale entry) and checks that the queue is rebuilt
// instead of growing with the writes, and that expiry still works after.
func TestExpiryQueueStaysBounded(t *testing.T) {
	s := newStore(t)
	const keys, rounds = 10, 2000
	far := s.Now() + time.Hour.Milliseconds()
	for r := range rounds {
		err := s.Do(func(tx *Tx) {
			for k := range keys {
				tx.Set(1, []byte(keyN(k)), []byte("v"), far+int64(r))
			}
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	var n int
	if err := s.Do(func(tx *Tx) { n = tx.c.expiry.len() }); err != nil {
		t.Fatal(err)
	}
	if limit := 2*keys + expiryQueueSlack; n > limit {
		t.Fatalf("queue holds %d entries for %d keys after %d refreshes, want at most %d", n, keys, keys*rounds, limit)
	}
	if got := scheduled(t, s, far+rounds); got != keys {
		t.Fatalf("%d keys scheduled, want %d", got, keys)
	}
	checkSchedule(t, s)
	// The rebuilt queue still expires: make the keys due soon.
	soon := s.Now() + 50
	for k := range keys {
		set(t, s, 1, keyN(k), "v", soon)
	}
	waitFor(t, "the refreshed keys to expire", func() bool { return s.Len() == 0 })
	checkCounts(t, s, 0, map[uint16]int64{1: 0})
}
