package main

import (
	"bufio"
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/ringcache/ringcache/storage"
)

// applyConfigFile sets the flags named in a config file of "name value"
// lines, as redis.conf writes them ("maxmemory 2gb", "# comments"),
// except those given on the command line.
func applyConfigFile(fs *flag.FlagSet, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("--config: %w", err)
	}
	defer f.Close()
	given := map[string]bool{}
	fs.Visit(func(fl *flag.Flag) { given[fl.Name] = true })
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name, value, _ := strings.Cut(line, " ")
		name = strings.TrimPrefix(strings.ToLower(name), "--")
		value = strings.Trim(strings.TrimSpace(value), `"`)
		if fs.Lookup(name) == nil || name == "config" {
			return fmt.Errorf("%s:%d: unknown setting %q", path, n, name)
		}
		if given[name] {
			continue
		}
		if err := fs.Set(name, value); err != nil {
			return fmt.Errorf("%s:%d: %s: %w", path, n, name, err)
		}
	}
	return sc.Err()
}

// defaultGoMemoryLimit is the Go heap's soft limit: 128 MiB for requests,
// replies and batches, plus what Badger may hold (its memtables, caches
// and the keys staged for it). At 64 MiB a bulk load (redis-cli --pipe of
// a million SETs) took twice as long, the collector running all along.
func defaultGoMemoryLimit(o storage.Options) int64 {
	limit := int64(128 << 20)
	if !o.InMemory {
		limit += 2*o.MemTableSize + o.BlockCacheSize + o.IndexCacheSize + o.MaxUnpersisted
	}
	return limit
}
