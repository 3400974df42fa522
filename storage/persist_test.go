package storage

import (
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// inBadger reads a key's record straight from Badger (at the last persisted
// timestamp), bypassing the index: what a restart would find.
func inBadger(t *testing.T, s *Store, slot uint16, key string) (Record, bool) {
	t.Helper()
	txn := s.db.NewTransactionAt(s.readTs.Load(), false)
	defer txn.Discard()
	item, err := txn.Get(appendDataKey(nil, slot, []byte(key)))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return Record{}, false
	}
	if err != nil {
		t.Fatalf("badger get %s: %v", key, err)
	}
	var rec Record
	err = item.Value(func(v []byte) error {
		h, payload, err := decodeHeader(v)
		rec = Record{Value: append([]byte(nil), payload...), Version: h.version, ExpireAt: h.expireAt, Tombstone: h.tombstone()}
		return err
	})
	if err != nil {
		t.Fatalf("badger value %s: %v", key, err)
	}
	return rec, true
}

// within returns what ch yields, failing the test if it yields nothing in
// 10 seconds (waiting for what).
func within[T any](t testing.TB, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(10 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
		var zero T
		return zero
	}
}

// lazyPersist makes cycles start only when someone waits for them (Flush,
// the backlog bound), so tests decide when Badger is written.
func lazyPersist(o *Options) { o.PersistInterval = time.Hour }

func TestWritesAreAcknowledgedBeforeBadger(t *testing.T) {
	s := newStore(t, lazyPersist)
	set(t, s, 1, "k", "v1", 0)
	if v, ok := get(t, s, 1, "k"); !ok || v != "v1" {
		t.Fatalf("k = %q, %v after its write completed", v, ok)
	}
	if _, ok := inBadger(t, s, 1, "k"); ok {
		t.Fatal("k is in Badger before any persist cycle: the write waited for Badger")
	}
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	if rec, ok := inBadger(t, s, 1, "k"); !ok || string(rec.Value) != "v1" {
		t.Fatalf("after Flush, Badger has k = %q, %v", rec.Value, ok)
	}
}

func TestHotKeyIsPersistedOnce(t *testing.T) {
	s := newStore(t, lazyPersist)
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	before := s.Stats()
	for i := range 100 {
		set(t, s, 7, "hot", fmt.Sprint(i), 0)
	}
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	after := s.Stats()
	if n := after.Persisted - before.Persisted; n != 1 {
		t.Errorf("100 writes of one key wrote %d Badger entries, want 1", n)
	}
	if n := after.Cycles - before.Cycles; n != 1 {
		t.Errorf("%d persist cycles, want 1", n)
	}
	if rec, ok := inBadger(t, s, 7, "hot"); !ok || string(rec.Value) != "99" {
		t.Errorf("Badger has hot = %q, %v, want the last write", rec.Value, ok)
	}
}

func TestCloseAndReopenKeepUnpersistedWrites(t *testing.T) {
	opts := testOptions(t, lazyPersist)
	s, err := Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 1000 {
		set(t, s, uint16(i%50), keyN(i), keyN(i), 0)
	}
	del := s.Submit(func(tx *Tx) { tx.Delete(3, []byte(keyN(3))) })
	if err := del.Wait(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openStore(t, opts)
	checkCounts(t, s, 999, map[uint16]int64{3: 19, 4: 20})
	if _, ok := get(t, s, 3, keyN(3)); ok {
		t.Error("a deleted key came back after Close and reopen")
	}
	if v, ok := get(t, s, 4, keyN(4)); !ok || v != keyN(4) {
		t.Errorf("%s = %q, %v after reopen", keyN(4), v, ok)
	}
}

func TestBacklogBoundAppliesBackpressure(t *testing.T) {
	// A bound of a few writes: the committer must keep stopping for Badger,
	// and still lose nothing.
	opts := testOptions(t, func(o *Options) { o.MaxUnpersisted = 2048 })
	s, err := Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 500 {
				k := fmt.Sprintf("g%d:%d", g, i)
				if err := s.Do(func(tx *Tx) { tx.Set(uint16(g), []byte(k), []byte(k), 0) }); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	st := s.Stats()
	if st.Cycles < 10 {
		t.Errorf("%d persist cycles for 4000 writes with a 2 KiB bound", st.Cycles)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openStore(t, opts)
	checkCounts(t, s, 4000, map[uint16]int64{0: 500, 7: 500})
}

func TestFsyncAlwaysAcknowledgesAfterBadger(t *testing.T) {
	s := newStore(t, lazyPersist, func(o *Options) { o.Fsync = FsyncAlways })
	for i := range 20 {
		set(t, s, 2, keyN(i), "v", 0)
		if _, ok := inBadger(t, s, 2, keyN(i)); !ok {
			t.Fatalf("with appendfsync always, %s was acknowledged before it was in Badger", keyN(i))
		}
	}
}

func TestDropForgetsStagedWrites(t *testing.T) {
	opts := testOptions(t, lazyPersist)
	s, err := Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	set(t, s, 5, "persisted", "v", 0)
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	set(t, s, 5, "staged", "v", 0)
	set(t, s, 6, "other", "v", 0)
	if err := s.DropSlot(5); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openStore(t, opts)
	checkCounts(t, s, 1, map[uint16]int64{5: 0, 6: 1})
	for _, k := range []string{"persisted", "staged"} {
		if _, ok := get(t, s, 5, k); ok {
			t.Errorf("%s came back after DropSlot and reopen", k)
		}
	}
}

func TestWaitsEndWhenNothingIsStaged(t *testing.T) {
	// With appendfsync always, a write that changes nothing has nothing to
	// wait for; and a drop that empties what a Flush waits for ends it.
	s := newStore(t, lazyPersist, func(o *Options) { o.Fsync = FsyncAlways })
	done := make(chan error, 1)
	go func() { done <- s.Do(func(tx *Tx) { tx.Delete(1, []byte("missing")) }) }()
	if err := within(t, done, "a write that staged nothing to complete"); err != nil {
		t.Fatal(err)
	}

	s2 := newStore(t, lazyPersist)
	set(t, s2, 4, "k", "v", 0)
	go func() { done <- s2.Flush() }()
	if err := s2.FlushAll(); err != nil {
		t.Fatal(err)
	}
	if err := within(t, done, "Flush to return after FLUSHALL"); err != nil {
		t.Fatal(err)
	}
}

// errInjected is the failure badgerFaults inject.
var errInjected = errors.New("injected Badger failure")

// badgerFaults fails every persist commit while commits is set, and every
// drop while drops is set.
type badgerFaults struct {
	commits, drops atomic.Bool
	// failed counts the commits failed.
	failed atomic.Int64
}

func (f *badgerFaults) install(o *Options) {
	o.faults = &faults{
		commit: func(int) error {
			if f.commits.Load() {
				f.failed.Add(1)
				return errInjected
			}
			return nil
		},
		drop: func() error {
			if f.drops.Load() {
				return errInjected
			}
			return nil
		},
	}
}

func fsyncAlways(o *Options) { o.Fsync = FsyncAlways }

func TestFsyncAlwaysKeepsWritesParkedThroughFailedCycles(t *testing.T) {
	var f badgerFaults
	s := newStore(t, lazyPersist, fsyncAlways, f.install)
	f.commits.Store(true)
	p := s.Submit(func(tx *Tx) { tx.Set(1, []byte("k"), []byte("v"), 0) })
	// Two failures: the committer has taken the first, and retried.
	waitFor(t, "two failed persist cycles", func() bool { return f.failed.Load() >= 2 })
	select {
	case <-p.Done():
		t.Fatalf("a write no cycle has written completed, with %v", p.Wait())
	default:
	}
	if v, ok := get(t, s, 1, "k"); !ok || v != "v" {
		t.Errorf("k = %q, %v while its write is parked, want it visible", v, ok)
	}
	// Meanwhile new writes are refused, and leave nothing behind.
	if err := s.Do(func(tx *Tx) { tx.Set(1, []byte("refused"), []byte("v"), 0) }); !errors.Is(err, errInjected) {
		t.Errorf("a write while Badger fails: %v, want it refused with the failure", err)
	}
	if _, ok := get(t, s, 1, "refused"); ok {
		t.Error("a refused write is in the index")
	}

	f.commits.Store(false)
	within(t, p.Done(), "the parked write to complete once Badger works")
	if err := p.Wait(); err != nil {
		t.Fatalf("the parked write failed: %v", err)
	}
	if rec, ok := inBadger(t, s, 1, "k"); !ok || string(rec.Value) != "v" {
		t.Errorf("Badger has k = %q, %v after its write completed", rec.Value, ok)
	}
	set(t, s, 1, "after", "v", 0)
}

func TestCloseFailsParkedWritesWhenTheLastPersistFails(t *testing.T) {
	var f badgerFaults
	s, err := Open(testOptions(t, lazyPersist, fsyncAlways, f.install))
	if err != nil {
		t.Fatal(err)
	}
	f.commits.Store(true)
	p := s.Submit(func(tx *Tx) { tx.Set(1, []byte("k"), []byte("v"), 0) })
	waitFor(t, "a failed persist cycle", func() bool { return f.failed.Load() >= 1 })
	closed := make(chan error, 1)
	go func() { closed <- s.Close() }()
	if err := within(t, closed, "Close"); !errors.Is(err, errInjected) {
		t.Errorf("Close: %v, want the persist failure", err)
	}
	within(t, p.Done(), "the parked write to complete at Close")
	if err := p.Wait(); !errors.Is(err, errInjected) {
		t.Errorf("the parked write: %v, want the persist failure", err)
	}
}

func TestFailedDropKeepsUnpersistedWritesOfOtherSlots(t *testing.T) {
	var f badgerFaults
	opts := testOptions(t, lazyPersist, f.install)
	s := openStore(t, opts)
	set(t, s, 5, "persisted", "v", 0)
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	f.commits.Store(true)
	set(t, s, 5, "staged", "v", 0)
	set(t, s, 6, "other", "v", 0)
	if err := s.Flush(); !errors.Is(err, errInjected) {
		t.Fatalf("Flush: %v, want the persist failure", err)
	}
	digest6 := s.SlotDigest(6)
	f.drops.Store(true)
	if err := s.DropSlot(5); !errors.Is(err, errInjected) {
		t.Fatalf("DropSlot: %v, want the drop failure", err)
	}
	// Slot 6 keeps its acknowledged write that Badger does not have; slot
	// 5 holds what Badger has of it (the failed drop removed nothing there,
	// and forgot the staged write).
	check := func(when string) {
		t.Helper()
		if v, ok := get(t, s, 6, "other"); !ok || v != "v" {
			t.Errorf("%s: other = %q, %v, want it kept", when, v, ok)
		}
		if _, ok := get(t, s, 5, "persisted"); !ok {
			t.Errorf("%s: persisted is gone, though Badger holds it", when)
		}
		if _, ok := get(t, s, 5, "staged"); ok {
			t.Errorf("%s: staged is there, though the drop forgot it", when)
		}
		checkCounts(t, s, 2, map[uint16]int64{5: 1, 6: 1})
		if d := s.SlotDigest(6); d != digest6 {
			t.Errorf("%s: slot 6's digest changed", when)
		}
	}
	check("after the failed drop")

	f.commits.Store(false)
	f.drops.Store(false)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openStore(t, opts)
	check("after reopening")
}

func TestKillBetweenChunksLeavesNothingThatNeverExpires(t *testing.T) {
	// A cycle commits a Badger transaction every MiB of records
	// (persistTxnBytes), so the cycle below takes several; the "kill" lets
	// the first one land and nothing after it. Whatever landed must still expire after a restart:
	// the schedule is rebuilt from the records themselves.
	var landed atomic.Int64
	opts := testOptions(t, lazyPersist, func(o *Options) {
		o.MemTableSize = 4 << 20
		o.faults = &faults{commit: func(chunk int) error {
			if chunk > 0 {
				return errInjected
			}
			landed.Add(1)
			return nil
		}}
	})
	s, err := Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	const n = 20000
	expireAt := time.Now().Add(time.Second).UnixMilli()
	val := strings.Repeat("x", 100)
	err = s.Do(func(tx *Tx) {
		for i := range n {
			tx.Set(uint16(i%16), []byte(keyN(i)), []byte(val), expireAt)
		}
		tx.Set(16, []byte("perm"), []byte(val), 0)
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); !errors.Is(err, errInjected) {
		t.Fatalf("Close: %v, want the cycle to fail after its first commit", err)
	}
	if landed.Load() != 1 {
		t.Fatalf("%d commits landed, want 1", landed.Load())
	}

	opts.faults = nil
	s = openStore(t, opts)
	if l := s.Len(); (l == 0 || l >= n) && time.Now().UnixMilli() < expireAt {
		t.Fatalf("%d of %d records landed; the test needs the kill to fall inside the records", l, n+1)
	}
	checkSchedule(t, s)
	// No reads: active expiry alone must remove every TTL record that
	// landed.
	waitFor(t, "the landed records to expire", func() bool { return s.Len() <= 1 })
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if rec, ok := inBadger(t, s, uint16(i%16), keyN(i)); ok && !rec.Tombstone {
			t.Fatalf("%s is still live in Badger after its expiry", keyN(i))
		}
	}
}

func TestFailedOpenLeavesNoPersister(t *testing.T) {
	opts := testOptions(t)
	s, err := Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	set(t, s, 3, "good", "v", 0)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// A record too short for its header: Open's recount fails on it.
	writeBadgerDirectly(t, opts, func(txn *badger.Txn) error {
		return txn.Set(appendDataKey(nil, 3, []byte("bad")), []byte{0})
	})

	before := persisters()
	if s, err := Open(opts); err == nil {
		_ = s.Close()
		t.Fatal("Open succeeded over a corrupt record")
	}
	waitFor(t, "no persister left by the failed Open", func() bool { return persisters() <= before })
}

// writeBadgerDirectly commits fn's writes straight into the Badger
// directory of a closed store, as a crash or a corruption would leave them.
func writeBadgerDirectly(t *testing.T, opts Options, fn func(txn *badger.Txn) error) {
	t.Helper()
	db, err := badger.OpenManaged(opts.badgerOptions())
	if err != nil {
		t.Fatal(err)
	}
	txn := db.NewTransactionAt(db.MaxVersion(), true)
	if err := fn(txn); err != nil {
		t.Fatal(err)
	}
	if err := txn.CommitAt(db.MaxVersion()+1, nil); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
}

// persisters counts the persister goroutines running.
func persisters() int {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			return strings.Count(string(buf[:n]), "(*persistState).persister(")
		}
		buf = make([]byte, 2*len(buf))
	}
}
