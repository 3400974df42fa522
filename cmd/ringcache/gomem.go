package main

import (
	"log/slog"
	"runtime/debug"
	"time"

	"github.com/ringcache/ringcache/storage"
)

// governGoMemory keeps the Go heap (everything but the keyspace, which
// lives outside it) near what it needs. The keyspace's memory is counted
// and limited by maxmemory; the Go heap holds requests, replies, batches
// and Badger's buffers, and the collector would let it grow to twice its
// live size and keep it. So the runtime gets a soft limit (unless
// GOMEMLIMIT is set), and once writes stop after a burst, collections give
// the garbage of the burst back to the system.
func governGoMemory(log *slog.Logger, limit int64, store *storage.Store, stop <-chan struct{}) {
	if limit > 0 && debug.SetMemoryLimit(-1) == 1<<63-1 {
		debug.SetMemoryLimit(limit)
		log.Info("go memory limit", "bytes", limit)
	}
	go func() {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		last := store.Stats().Batches
		idle := -1 // seconds without writes since the last burst; -1: none pending
		for {
			select {
			case <-stop:
				return
			case <-t.C:
			}
			if b := store.Stats().Batches; b != last {
				last, idle = b, 0
				continue
			}
			if idle < 0 {
				continue
			}
			idle++
			// Collect 1, 4 and 20 seconds after the writes stopped: Badger
			// gives back its table builders' buffers a few seconds after its
			// last flush and compaction.
			switch idle {
			case 1, 4, 20:
				debug.FreeOSMemory()
			}
			if idle >= 20 {
				idle = -1
			}
		}
	}()
}
