package storage

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// FsyncPolicy says when writes are forced to stable storage, with the same
// values as Redis's appendfsync.
type FsyncPolicy string

const (
	// FsyncNo leaves flushing to the operating system. Replication is what
	// makes writes durable, so this is the default.
	FsyncNo FsyncPolicy = "no"
	// FsyncEverySec syncs Badger's files once a second in the background.
	// Writes reach Badger behind their acknowledgement, so a crash of the
	// machine loses about PersistInterval plus one second of writes on
	// that node; its in-sync replicas hold them.
	FsyncEverySec FsyncPolicy = "everysec"
	// FsyncAlways completes a submission only once a persist cycle has
	// written its writes to Badger and synced them. While Badger fails,
	// submissions already applied wait for a cycle that succeeds, and new
	// ones are refused.
	FsyncAlways FsyncPolicy = "always"
)

// Options configures a Store. A zero field means its DefaultOptions value,
// except Dir, InMemory and IndexCacheSize.
type Options struct {
	// Dir is the data directory. It is required unless InMemory is set.
	Dir string
	// InMemory keeps everything in memory: nothing is written to disk and
	// everything is lost on Close. Values are then limited to
	// Store.MaxValueLen (about 1 MiB), a Badger restriction.
	InMemory bool

	// MaxValueLen caps the value length a write may carry below what the
	// store can hold (Store.MaxValueLen); 0: no cap.
	MaxValueLen int

	// Fsync is the fsync policy; default FsyncNo.
	Fsync FsyncPolicy

	// MemTableSize is the size of each Badger memtable; default 4 MiB (the
	// keyspace serves reads; persist cycles are written in bulk).
	// It also bounds one Badger transaction (15% of it), which is where a
	// large batch is split.
	MemTableSize int64
	// BlockCacheSize is the size of Badger's block cache; default 4 MiB
	// (Badger is read only to load the keyspace).
	BlockCacheSize int64
	// IndexCacheSize is the size of Badger's index cache (DefaultOptions:
	// 32 MiB). Zero means Badger's default: every table index is kept in
	// memory, unbounded.
	IndexCacheSize int64

	// TombstoneTTL is how long deletion markers are kept, so that a late,
	// older copy of a key cannot bring it back; default 10 minutes.
	TombstoneTTL time.Duration
	// ExpiryInterval is the period of the active-expiry cycle; default
	// 100ms.
	ExpiryInterval time.Duration

	// PersistInterval is the least time between the starts of two persist
	// cycles (writes reach Badger behind their acknowledgement, see
	// persist.go); default 1s, as Redis's appendfsync everysec. A longer
	// interval coalesces more writes to hot keys and costs less CPU (SET
	// at -P 16 on 100k keys: 245-265k ops/s back to back, 340-390k at 1s);
	// a killed node then has more to get back from its replicas.
	// Negative means back to back.
	PersistInterval time.Duration
	// MaxUnpersisted bounds the keys of acknowledged writes not yet in
	// Badger (their bytes, plus a map entry each): beyond it, writes wait
	// (Submit blocks); default 16 MiB, and at most 1/16 of maxmemory.
	MaxUnpersisted int64

	// Memory is the memory limit and eviction policy; the zero value is
	// DefaultMemoryConfig's.
	Memory MemoryConfig

	// Logger receives the store's logs and Badger's warnings and errors;
	// default slog.Default().
	Logger *slog.Logger

	// faults injects Badger failures; only tests set it.
	faults *faults
}

// faults are failures injected in front of Badger, for tests: Badger does
// not fail on demand, and the store's answer to its failures (retries,
// parked writes, recounts) must be tested all the same.
type faults struct {
	// commit runs before each commit of a persist cycle (chunk counts
	// them from 0 within the cycle); an error fails that commit, and so
	// the cycle, as Badger failing it would.
	commit func(chunk int) error
	// drop runs before DropPrefix; an error fails the drop.
	drop func() error
}

// DefaultOptions returns options with small-machine defaults and no data
// directory.
func DefaultOptions() Options {
	return Options{
		Fsync:           FsyncNo,
		MemTableSize:    4 << 20,
		BlockCacheSize:  4 << 20,
		IndexCacheSize:  4 << 20,
		TombstoneTTL:    10 * time.Minute,
		ExpiryInterval:  100 * time.Millisecond,
		PersistInterval: time.Second,
		MaxUnpersisted:  16 << 20,
		Memory:          DefaultMemoryConfig(),
		Logger:          slog.Default(),
	}
}

// withDefaults fills zero fields from DefaultOptions and validates the rest.
func (o Options) withDefaults() (Options, error) {
	d := DefaultOptions()
	if o.Fsync == "" {
		o.Fsync = d.Fsync
	}
	switch o.Fsync {
	case FsyncNo, FsyncEverySec, FsyncAlways:
	default:
		return o, fmt.Errorf("storage: unknown fsync policy %q (want no, everysec or always)", o.Fsync)
	}
	if o.MemTableSize <= 0 {
		o.MemTableSize = d.MemTableSize
	}
	if o.BlockCacheSize <= 0 {
		o.BlockCacheSize = d.BlockCacheSize
	}
	if o.IndexCacheSize < 0 {
		o.IndexCacheSize = 0
	}
	if o.TombstoneTTL <= 0 {
		o.TombstoneTTL = d.TombstoneTTL
	}
	if o.ExpiryInterval <= 0 {
		o.ExpiryInterval = d.ExpiryInterval
	}
	switch {
	case o.PersistInterval == 0:
		o.PersistInterval = d.PersistInterval
	case o.PersistInterval < 0:
		o.PersistInterval = 0
	}
	if o.MaxUnpersisted <= 0 {
		o.MaxUnpersisted = d.MaxUnpersisted
	}
	if o.Logger == nil {
		o.Logger = d.Logger
	}
	if o.Memory == (MemoryConfig{}) {
		o.Memory = d.Memory
	}
	if err := o.Memory.Validate(); err != nil {
		return o, err
	}
	if o.InMemory {
		o.Dir = "" // Badger refuses a directory in memory mode.
	} else if o.Dir == "" {
		return o, fmt.Errorf("storage: Options.Dir is required unless InMemory is set")
	}
	return o, nil
}

// badgerOptions translates Options into Badger's.
func (o Options) badgerOptions() badger.Options {
	return badger.DefaultOptions(o.Dir).
		WithValueThreshold(o.valueThreshold()).
		WithInMemory(o.InMemory).
		WithSyncWrites(o.Fsync == FsyncAlways).
		WithMemTableSize(o.MemTableSize).
		// Point reads come from the in-memory index, not Badger; two
		// memtables (one filling, one flushing) keep writes flowing while
		// holding a third of the memory Badger's default five would.
		WithNumMemtables(badgerMemtables).
		// Every table a compaction or flush builds holds a buffer of twice
		// its size in the Go heap (pooled a few seconds), and compactions
		// run on that many goroutines: small tables and two compactors
		// keep what persistence adds to a node's memory small.
		WithBaseTableSize(1 << 20).
		WithNumCompactors(2).
		WithBlockCacheSize(o.BlockCacheSize).
		WithIndexCacheSize(o.IndexCacheSize).
		// The committer is the only writer, so there is nothing to conflict
		// with; conflict tracking would only cost memory.
		WithDetectConflicts(false).
		WithNumVersionsToKeep(1).
		// Badger's metrics are process-global expvars updated on every read;
		// the store keeps its own counters instead (Store.Stats).
		WithMetricsEnabled(false).
		WithLogger(badgerLogger{o.Logger})
}

// badgerMemtables is how many memtables Badger keeps.
const badgerMemtables = 2

// valueThreshold is Badger's ValueThreshold: values up to it live in the LSM
// tree, larger ones in the value log (in memory mode, larger ones are
// refused, so there it stays high: Badger's default, 1 MiB, capped below its
// transaction limit, 15% of a memtable). On disk, values above a few hundred
// bytes go to the value log: in the LSM they fill the small memtables in a
// few thousand writes, and flushes and level-0 compactions then stall the
// writer (1 KB SETs: 55k ops/s, p99 59-75 ms, against 79k and 21 ms with
// the value log). Reads come from the in-memory index either way.
func (o Options) valueThreshold() int64 {
	if !o.InMemory {
		return diskValueThreshold
	}
	return min(int64(1<<20), o.MemTableSize*15/100/2)
}

// diskValueThreshold is the value size above which, on disk, values go to
// Badger's value log.
const diskValueThreshold = 32

// badgerLogger adapts Badger's printf-style logger to slog. Badger is chatty
// at INFO (every compaction, every flush), so only warnings and errors are
// passed on.
type badgerLogger struct{ l *slog.Logger }

func (b badgerLogger) Errorf(format string, args ...any) { b.log(slog.LevelError, format, args) }
func (b badgerLogger) Warningf(format string, args ...any) {
	b.log(slog.LevelWarn, format, args)
}
func (b badgerLogger) Infof(string, ...any)  {}
func (b badgerLogger) Debugf(string, ...any) {}

func (b badgerLogger) log(level slog.Level, format string, args []any) {
	ctx := context.Background()
	if !b.l.Enabled(ctx, level) {
		return
	}
	msg := strings.TrimSpace(fmt.Sprintf(format, args...))
	b.l.Log(ctx, level, msg, "component", "badger")
}
