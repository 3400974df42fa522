package storage

import (
	"fmt"
	"sync"
	"testing"
)

// changeLog records what the change handler is told.
type changeLog struct {
	mu   sync.Mutex
	keys map[Cause]map[string]int64 // cause -> key -> origin
	// drops lists the slots dropped (-1 for FlushAll).
	drops []int
}

func recordChanges(s *Store) *changeLog {
	l := &changeLog{keys: map[Cause]map[string]int64{}}
	s.SetChangeHandler(func(ch Change) {
		l.mu.Lock()
		defer l.mu.Unlock()
		if ch.Cause == CauseFlushed {
			l.drops = append(l.drops, ch.Slot)
			return
		}
		m := l.keys[ch.Cause]
		if m == nil {
			m = map[string]int64{}
			l.keys[ch.Cause] = m
		}
		for _, mu := range ch.Muts {
			m[string(mu.Key)] = ch.Origin
		}
	})
	return l
}

func (l *changeLog) origin(cause Cause, key string) (int64, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	o, ok := l.keys[cause][key]
	return o, ok
}

func (l *changeLog) count(cause Cause) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.keys[cause])
}

// TestChangeHandlerSeesEveryChange checks that the handler hears of writes
// (with their origin) before they are acknowledged, and of expiry,
// eviction and drops, each with its cause.
func TestChangeHandlerSeesEveryChange(t *testing.T) {
	s := newStore(t, limited(1<<30, AllKeysLRU))
	log := recordChanges(s)

	p := s.SubmitFrom(42, func(tx *Tx) { tx.Set(7, []byte("written"), []byte("v"), 0) })
	if err := p.Wait(); err != nil {
		t.Fatal(err)
	}
	// Told before the acknowledgement: no waiting here.
	if o, ok := log.origin(CauseWrite, "written"); !ok || o != 42 {
		t.Fatalf("write of written: told %v with origin %d; want origin 42", ok, o)
	}
	if !del(t, s, 7, "written") {
		t.Fatal("delete found nothing")
	}
	if o, ok := log.origin(CauseWrite, "written"); !ok || o != 0 {
		t.Fatalf("delete of written: told %v with origin %d; want origin 0", ok, o)
	}

	set(t, s, 9, "short", "v", s.Now()+50)
	waitFor(t, "the expiry of short", func() bool {
		_, ok := log.origin(CauseExpired, "short")
		return ok
	})

	val := make([]byte, 100)
	for i := range 2000 {
		set(t, s, uint16(i%SlotCount), keyN(i), string(val), 0)
	}
	cfg := s.MemoryConfig()
	cfg.MaxMemory = s.UsedMemory() / 2
	if err := s.SetMemoryConfig(cfg); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "evictions", func() bool { return log.count(CauseEvicted) > 0 })
	waitFor(t, "eviction down to the limit", func() bool { return s.UsedMemory() <= cfg.MaxMemory })
	for i := range 2000 {
		if _, told := log.origin(CauseEvicted, keyN(i)); told {
			if _, ok := get(t, s, uint16(i%SlotCount), keyN(i)); ok {
				t.Fatalf("%s told evicted but still there", keyN(i))
			}
		}
	}

	if err := s.DropSlot(3); err != nil {
		t.Fatal(err)
	}
	if err := s.FlushAll(); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(log.drops) != "[3 -1]" {
		t.Fatalf("drops told: %v; want [3 -1]", log.drops)
	}

	// Off: nothing more is told.
	s.SetChangeHandler(nil)
	set(t, s, 1, "after", "v", 0)
	if _, ok := log.origin(CauseWrite, "after"); ok {
		t.Fatal("told of a write after the handler was removed")
	}
}
