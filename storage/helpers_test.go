package storage

import (
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"
)

// testOptions returns options for a store in a fresh temporary directory,
// with fast expiry and a quiet logger, adjusted by mods.
func testOptions(t testing.TB, mods ...func(*Options)) Options {
	t.Helper()
	o := DefaultOptions()
	o.Dir = t.TempDir()
	o.ExpiryInterval = 10 * time.Millisecond
	o.MemTableSize = 16 << 20
	o.BlockCacheSize = 16 << 20
	o.IndexCacheSize = 8 << 20
	o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		o.Logger = slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	for _, m := range mods {
		m(&o)
	}
	return o
}

// testWriter sends log lines to the test log.
type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(string(p))
	return len(p), nil
}

// openStore opens a store with opts and closes it when the test ends.
func openStore(t testing.TB, opts Options) *Store {
	t.Helper()
	s, err := Open(opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

// newStore opens a store in a temporary directory.
func newStore(t testing.TB, mods ...func(*Options)) *Store {
	t.Helper()
	return openStore(t, testOptions(t, mods...))
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// set writes one key and fails the test on error.
func set(t testing.TB, s *Store, slot uint16, key, value string, expireAt int64) {
	t.Helper()
	if err := s.Do(func(tx *Tx) { tx.Set(slot, []byte(key), []byte(value), expireAt) }); err != nil {
		t.Fatalf("set %q: %v", key, err)
	}
}

// del deletes one key and returns whether it was live.
func del(t testing.TB, s *Store, slot uint16, key string) bool {
	t.Helper()
	var ok bool
	if err := s.Do(func(tx *Tx) { ok = tx.Delete(slot, []byte(key)) }); err != nil {
		t.Fatalf("delete %q: %v", key, err)
	}
	return ok
}

// get reads one key: its value, and whether it was found.
func get(t testing.TB, s *Store, slot uint16, key string) (string, bool) {
	t.Helper()
	rec, ok, err := s.Get(slot, []byte(key))
	if err != nil {
		t.Fatalf("get %q: %v", key, err)
	}
	return string(rec.Value), ok
}

// mustGet reads a key that must exist.
func mustGet(t testing.TB, s *Store, slot uint16, key string) Record {
	t.Helper()
	rec, ok, err := s.Get(slot, []byte(key))
	if err != nil || !ok {
		t.Fatalf("get %q: found=%v err=%v, want found", key, ok, err)
	}
	return rec
}

// checkCounts compares Len and the given slots' counts with want.
func checkCounts(t testing.TB, s *Store, wantLen int64, want map[uint16]int64) {
	t.Helper()
	if got := s.Len(); got != wantLen {
		t.Errorf("Len() = %d, want %d", got, wantLen)
	}
	for slot, n := range want {
		if got := s.CountSlot(slot); got != n {
			t.Errorf("CountSlot(%d) = %d, want %d", slot, got, n)
		}
	}
}

func keyN(i int) string { return fmt.Sprintf("key:%06d", i) }
