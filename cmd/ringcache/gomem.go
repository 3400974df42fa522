package main

import (
	"log/slog"
	"runtime/debug"
	"runtime/metrics"
	"time"

	"github.com/ringcache/ringcache/storage"
)

// governGoMemory keeps the Go heap (everything but the keyspace, which
// lives outside it) near what it needs. The keyspace's memory is counted
// and limited by maxmemory; the Go heap holds requests, replies, batches
// and Badger's buffers, and the collector would let it grow to twice its
// live size and keep it. So the runtime gets a soft limit (unless
// GOMEMLIMIT is set), and once writes stop for a second after a burst, a
// collection gives the garbage of the burst back to the system.
func governGoMemory(log *slog.Logger, limit int64, store *storage.Store, stop <-chan struct{}) {
	if limit > 0 && debug.SetMemoryLimit(-1) == 1<<63-1 {
		debug.SetMemoryLimit(limit)
		log.Info("go memory limit", "bytes", limit)
	}
	go func() {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		samples := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}, {Name: "/gc/heap/live:bytes"}}
		last := store.Stats().Batches
		busy := false
		for {
			select {
			case <-stop:
				return
			case <-t.C:
			}
			b := store.Stats().Batches
			if b != last {
				last, busy = b, true
				continue
			}
			if !busy {
				continue
			}
			busy = false
			metrics.Read(samples)
			heap, live := samples[0].Value.Uint64(), samples[1].Value.Uint64()
			if heap > live+live/2+8<<20 {
				debug.FreeOSMemory()
			}
		}
	}()
}
