package storage

import (
	"bytes"
	"strconv"
	"sync/atomic"
	"testing"
)

const benchKeys = 100_000

// benchStore opens a store holding benchKeys keys with 100-byte values.
func benchStore(b *testing.B) *Store {
	b.Helper()
	s := newStore(b, func(o *Options) { o.MemTableSize = 64 << 20; o.BlockCacheSize = 64 << 20 })
	val := bytes.Repeat([]byte("v"), 100)
	for start := 0; start < benchKeys; start += 1000 {
		err := s.Do(func(tx *Tx) {
			for i := start; i < start+1000; i++ {
				tx.Set(uint16(i%SlotCount), []byte(keyN(i)), val, 0)
			}
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	return s
}

func benchKeyList() [][]byte {
	keys := make([][]byte, benchKeys)
	for i := range keys {
		keys[i] = []byte(keyN(i))
	}
	return keys
}

func BenchmarkGet(b *testing.B) {
	s := benchStore(b)
	keys := benchKeyList()
	b.ReportAllocs()
	b.ResetTimer()
	i := 0
	for b.Loop() {
		n := (i * 7919) % benchKeys
		if _, ok, err := s.Get(uint16(n%SlotCount), keys[n]); !ok || err != nil {
			b.Fatalf("get %s: %v %v", keys[n], ok, err)
		}
		i++
	}
}

func BenchmarkView(b *testing.B) {
	s := benchStore(b)
	keys := benchKeyList()
	var sink int
	b.ReportAllocs()
	b.ResetTimer()
	i := 0
	for b.Loop() {
		n := (i * 7919) % benchKeys
		if ok, err := s.View(uint16(n%SlotCount), keys[n], func(r Record) { sink += len(r.Value) }); !ok || err != nil {
			b.Fatalf("view %s: %v %v", keys[n], ok, err)
		}
		i++
	}
}

// BenchmarkGetParallel reads from every P while nothing writes.
func BenchmarkGetParallel(b *testing.B) {
	s := benchStore(b)
	keys := benchKeyList()
	var seed atomic.Int64
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := int(seed.Add(1)) * 1_000_003
		for pb.Next() {
			n := (i * 7919) % benchKeys
			if _, ok, err := s.Get(uint16(n%SlotCount), keys[n]); !ok || err != nil {
				b.Errorf("get: %v %v", ok, err)
				return
			}
			i++
		}
	})
}

// BenchmarkGetUnderWrites measures reads while a writer commits as fast as
// it can: in managed mode reads must not slow down to commit speed.
func BenchmarkGetUnderWrites(b *testing.B) {
	s := benchStore(b)
	keys := benchKeyList()
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		val := bytes.Repeat([]byte("w"), 100)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			n := i % benchKeys
			if err := s.Do(func(tx *Tx) { tx.Set(uint16(n%SlotCount), keys[n], val, 0) }); err != nil {
				b.Error(err)
				return
			}
		}
	}()
	b.ReportAllocs()
	b.ResetTimer()
	i := 0
	for b.Loop() {
		n := (i * 7919) % benchKeys
		if _, ok, err := s.Get(uint16(n%SlotCount), keys[n]); !ok || err != nil {
			b.Fatalf("get: %v %v", ok, err)
		}
		i++
	}
	b.StopTimer()
	close(stop)
	<-done
}

// BenchmarkSetParallel is many clients each waiting for its own SET.
func BenchmarkSetParallel(b *testing.B) { benchSetParallel(b) }

// BenchmarkSetParallelInMemory is BenchmarkSetParallel without a disk.
func BenchmarkSetParallelInMemory(b *testing.B) {
	benchSetParallel(b, func(o *Options) { o.InMemory = true })
}

// BenchmarkSetParallelEvicting is BenchmarkSetParallelInMemory with a
// 16 MiB maxmemory under allkeys-lru: past the first 100k or so of its
// 1M keys, every write evicts about one. The difference from
// BenchmarkSetParallelInMemory is what eviction costs a write.
func BenchmarkSetParallelEvicting(b *testing.B) {
	benchSetParallel(b, limited(16<<20, AllKeysLRU))
}

// benchSetParallel runs many clients each waiting for its own SET on a
// store opened with mods, and reports how many writes a batch carried.
func benchSetParallel(b *testing.B, mods ...func(*Options)) {
	s := newStore(b, mods...)
	val := bytes.Repeat([]byte("v"), 100)
	var seq atomic.Int64
	b.SetParallelism(16) // many connections per CPU, as a server has
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		var key []byte
		for pb.Next() {
			n := seq.Add(1)
			key = strconv.AppendInt(key[:0], n%1_000_000, 10)
			if err := s.Do(func(tx *Tx) { tx.Set(uint16(n%SlotCount), key, val, 0) }); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	st := s.Stats()
	b.ReportMetric(float64(st.Ops)/float64(st.Batches), "ops/batch")
	if ev := s.Evicted(); ev > 0 {
		b.ReportMetric(float64(ev)/float64(b.N), "evictions/op")
	}
}

// BenchmarkSetSerial is one client waiting for each SET: the commit
// latency with no batching.
func BenchmarkSetSerial(b *testing.B) {
	s := newStore(b)
	val := bytes.Repeat([]byte("v"), 100)
	var key []byte
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		key = strconv.AppendInt(key[:0], int64(i%1_000_000), 10)
		if err := s.Do(func(tx *Tx) { tx.Set(uint16(i%SlotCount), key, val, 0) }); err != nil {
			b.Fatal(err)
		}
		i++
	}
}
