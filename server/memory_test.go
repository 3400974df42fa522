package server_test

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/ringcache/ringcache/server"
	"github.com/ringcache/ringcache/server/servertest"
	"github.com/ringcache/ringcache/storage"
)

// withMemory sets maxmemory and a policy.
func withMemory(max int64, p storage.Policy) servertest.Option {
	return servertest.WithConfig(func(_ *server.Config, o *storage.Options) {
		o.Memory = storage.DefaultMemoryConfig()
		o.Memory.MaxMemory, o.Memory.Policy = max, p
	})
}

// sameAsRedis sends each command to redis-server and to ringcache, in
// order, and checks the replies (or errors) are the same.
func sameAsRedis(t *testing.T, rc, rd *redis.Client, cmds [][]any) {
	t.Helper()
	ctx := servertest.Ctx(t)
	for _, c := range cmds {
		want, werr := rd.Do(ctx, c...).Result()
		got, gerr := rc.Do(ctx, c...).Result()
		if fmt.Sprint(want) != fmt.Sprint(got) || fmt.Sprint(werr) != fmt.Sprint(gerr) {
			t.Errorf("%v: ringcache %v (err %v), redis %v (err %v)", c, got, gerr, want, werr)
		}
	}
}

func words(lines ...string) [][]any {
	var out [][]any
	for _, l := range lines {
		var c []any
		for _, w := range strings.Fields(l) {
			c = append(c, w)
		}
		out = append(out, c)
	}
	return out
}

// TestObjectEncodingAsRedis checks that OBJECT ENCODING says what Redis
// says of the same strings, built the same ways, and OBJECT's other
// answers and errors.
func TestObjectEncodingAsRedis(t *testing.T) {
	rd := servertest.StartRedis(t)
	rc := servertest.Start(t).Client()
	long := strings.Repeat("x", 45)
	cmds := words(
		"SET i 12345", "OBJECT ENCODING i",
		"SET neg -17", "OBJECT ENCODING neg",
		"SET lead 0123", "OBJECT ENCODING lead",
		"SET big 123456789012345678901", "OBJECT ENCODING big",
		"SET s hello", "OBJECT ENCODING s",
		"SET l "+long, "OBJECT ENCODING l",
		"SET l44 "+long[:44], "OBJECT ENCODING l44",
		"APPEND i 6", "OBJECT ENCODING i",
		"APPEND fresh 123", "OBJECT ENCODING fresh",
		"APPEND fresh2 abc", "OBJECT ENCODING fresh2",
		"SETRANGE r 0 12", "OBJECT ENCODING r",
		"INCR n", "OBJECT ENCODING n",
		"INCRBYFLOAT f 1.5", "OBJECT ENCODING f",
		"EXPIRE i 100", "OBJECT ENCODING i",
		"APPEND {t}i 1", "RENAME {t}i {t}i2", "OBJECT ENCODING {t}i2",
		"COPY {t}i2 {t}i3", "OBJECT ENCODING {t}i3",
		"GETEX {t}i3 PERSIST", "OBJECT ENCODING {t}i3",
		"SET i 12", "GETEX i EX 100", "OBJECT ENCODING i",
		"OBJECT ENCODING missing", "OBJECT REFCOUNT s", "OBJECT REFCOUNT missing",
		"OBJECT FREQ s", "OBJECT NOPE s", "OBJECT ENCODING", "MEMORY USAGE missing",
		"MEMORY USAGE s SAMPLES", "MEMORY USAGE s SAMPLES x", "MEMORY USAGE s FOO 1", "MEMORY NOPE",
		"CONFIG SET maxmemory-policy allkeys-lfu", "OBJECT IDLETIME s", "OBJECT FREQ missing",
		"CONFIG SET maxmemory-policy allkeys-lru", "OBJECT IDLETIME missing",
	)
	sameAsRedis(t, rc, rd, cmds)
}

// TestMemoryConfigAsRedis checks CONFIG GET and SET of the memory
// parameters, and their errors, against Redis.
func TestMemoryConfigAsRedis(t *testing.T) {
	rd := servertest.StartRedis(t)
	rc := servertest.Start(t, withMemory(0, storage.NoEviction)).Client()
	cmds := words(
		"CONFIG GET maxmemory", "CONFIG GET maxmemory-policy", "CONFIG GET maxmemory-samples",
		"CONFIG GET lfu-log-factor", "CONFIG GET lfu-decay-time",
		"CONFIG SET maxmemory 100mb", "CONFIG GET maxmemory",
		"CONFIG SET maxmemory 2GB", "CONFIG GET maxmemory",
		"CONFIG SET maxmemory abc",
		"CONFIG SET maxmemory-policy allkeys-lfu", "CONFIG GET maxmemory-policy",
		"CONFIG SET maxmemory-policy VOLATILE-TTL", "CONFIG GET maxmemory-policy",
		"CONFIG SET maxmemory-policy lru",
		"CONFIG SET maxmemory-samples 10", "CONFIG GET maxmemory-samples",
		"CONFIG SET maxmemory-samples 0",
		"CONFIG SET lfu-log-factor 20", "CONFIG GET lfu-log-factor",
		"CONFIG SET lfu-decay-time 0", "CONFIG GET lfu-decay-time",
		"CONFIG SET lfu-decay-time -1",
		"CONFIG SET maxmemory 0", "CONFIG GET maxmemory",
	)
	sameAsRedis(t, rc, rd, cmds)
}

// TestNoEvictionAnswersOOM fills a node with noeviction past its limit and
// checks Redis's OOM text for commands that may grow memory (compared with
// a real redis-server at the same point), while reads, deletes and other
// shrinking commands keep working.
func TestNoEvictionAnswersOOM(t *testing.T) {
	n := servertest.Start(t, withMemory(2<<20, storage.NoEviction))
	rc := n.Client()
	ctx := servertest.Ctx(t)
	val := strings.Repeat("v", 1000)
	var oom error
	for i := 0; i < 10000 && oom == nil; i++ {
		oom = rc.Set(ctx, "k"+strconv.Itoa(i), val, 0).Err()
	}
	if oom == nil {
		t.Fatal("10 MB written into a 2 MB node without an OOM")
	}
	rd := servertest.StartRedis(t, "--maxmemory", "1")
	if err := rd.Set(ctx, "x", "y", 0).Err(); err == nil || oom.Error() != err.Error() {
		t.Fatalf("ringcache: %v; redis-server: %v", oom, err)
	}
	for _, c := range [][]any{{"incr", "n"}, {"append", "k0", "x"}, {"mset", "a", "1"}, {"setnx", "b", "1"}} {
		if err := rc.Do(ctx, c...).Err(); err == nil || err.Error() != oom.Error() {
			t.Errorf("%v over the limit: %v", c, err)
		}
	}
	if v, err := rc.Get(ctx, "k1").Result(); err != nil || v != val {
		t.Fatalf("GET over the limit: %q, %v", v, err)
	}
	for _, c := range [][]any{{"expire", "k2", "100"}, {"getdel", "k3"}, {"getex", "k4", "persist"}, {"ttl", "k2"}} {
		if err := rc.Do(ctx, c...).Err(); err != nil {
			t.Errorf("%v over the limit: %v", c, err)
		}
	}
	var deleted int64
	for i := 0; i < 10000; i++ {
		deleted += rc.Del(ctx, "k"+strconv.Itoa(i)).Val()
	}
	if deleted == 0 {
		t.Fatal("DEL deleted nothing")
	}
	servertest.Eventually(t, 10*time.Second, "writes to work again after DEL", func() bool {
		return rc.Set(ctx, "after", "v", 0).Err() == nil
	})
}

// TestMemoryReports checks INFO's memory and stats fields, MEMORY USAGE
// and MEMORY STATS.
func TestMemoryReports(t *testing.T) {
	n := servertest.Start(t, withMemory(4<<20, storage.AllKeysLRU))
	rc := n.Client()
	ctx := servertest.Ctx(t)
	val := strings.Repeat("v", 100)
	for i := range 60000 {
		rc.Set(ctx, fmt.Sprintf("key:%012d", i), val, 0)
	}
	rc.Get(ctx, "key:000000059999")
	rc.Get(ctx, "missing")
	info := infoFields(t, rc, "memory", "stats")
	used, _ := strconv.ParseInt(info["used_memory"], 10, 64)
	counted := countedMemory(t, rc)
	if counted > 4<<20 || counted < 4<<20*9/10 {
		t.Errorf("used_memory less mem_not_counted_for_evict is %d with maxmemory %d", counted, 4<<20)
	}
	// Not counted: the keys staged for Badger and its memtables.
	if used < counted || used > counted+16<<20 {
		t.Errorf("used_memory %d, of which %d counted against maxmemory", used, counted)
	}
	for k, want := range map[string]string{"maxmemory": strconv.Itoa(4 << 20), "maxmemory_policy": "allkeys-lru"} {
		if info[k] != want {
			t.Errorf("%s = %q, want %q", k, info[k], want)
		}
	}
	for _, k := range []string{"used_memory_rss", "mem_fragmentation_ratio", "used_memory_peak", "evicted_keys", "expired_keys", "keyspace_hits", "keyspace_misses"} {
		if info[k] == "" {
			t.Errorf("INFO has no %s", k)
		}
	}
	if ev, _ := strconv.Atoi(info["evicted_keys"]); ev == 0 {
		t.Error("evicted_keys is 0 after writing twice the limit")
	}
	if hits, _ := strconv.Atoi(info["keyspace_hits"]); hits == 0 {
		t.Error("keyspace_hits is 0")
	}
	// A 16-byte key and a 100-byte value: Redis says 184.
	u, err := rc.MemoryUsage(ctx, "key:000000059999").Result()
	if err != nil || u < 116 || u > 184 {
		t.Errorf("MEMORY USAGE of a 16/100 key: %d, %v", u, err)
	}
	stats, err := rc.Do(ctx, "memory", "stats").Result()
	if err != nil {
		t.Fatal(err)
	}
	m := fmt.Sprint(stats)
	for _, k := range []string{"keys.count", "dataset.bytes", "total.allocated", "peak.allocated"} {
		if !strings.Contains(m, k) {
			t.Errorf("MEMORY STATS has no %s: %s", k, m)
		}
	}
}

// TestLoweringMaxMemoryEvictsDown sets a lower maxmemory at run time and
// checks the node evicts down to it with no write to prompt it.
func TestLoweringMaxMemoryEvictsDown(t *testing.T) {
	n := servertest.Start(t, withMemory(64<<20, storage.AllKeysLFU))
	rc := n.Client()
	ctx := servertest.Ctx(t)
	val := strings.Repeat("v", 100)
	pipe := rc.Pipeline()
	for i := range 100000 {
		pipe.Set(ctx, "key:"+strconv.Itoa(i), val, 0)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatal(err)
	}
	used := func() int64 { return countedMemory(t, rc) }
	before := used()
	if err := rc.ConfigSet(ctx, "maxmemory", strconv.FormatInt(before/2, 10)).Err(); err != nil {
		t.Fatal(err)
	}
	servertest.Eventually(t, 10*time.Second, "eviction down to the new maxmemory", func() bool { return used() <= before/2 })
	if keys := rc.DBSize(ctx).Val(); keys < 30000 || keys > 60000 {
		t.Errorf("%d keys left of 100000 at half the memory", keys)
	}
}

// countedMemory is what maxmemory limits, as INFO tells it: used_memory
// less mem_not_counted_for_evict.
func countedMemory(t *testing.T, rc *redis.Client) int64 {
	info := infoFields(t, rc, "memory")
	used, _ := strconv.ParseInt(info["used_memory"], 10, 64)
	not, _ := strconv.ParseInt(info["mem_not_counted_for_evict"], 10, 64)
	return used - not
}

// infoFields parses INFO sections into a map.
func infoFields(t *testing.T, rc *redis.Client, sections ...string) map[string]string {
	t.Helper()
	s, err := rc.Info(servertest.Ctx(t), sections...).Result()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, line := range strings.Split(s, "\r\n") {
		if k, v, ok := strings.Cut(line, ":"); ok {
			out[k] = v
		}
	}
	return out
}

// TestObjectFreqAndIdleTimeTrackAccess checks that reads count: under LFU
// OBJECT FREQ grows with reads; under LRU OBJECT IDLETIME grows while a
// key is left alone and drops to 0 when it is read.
func TestObjectFreqAndIdleTimeTrackAccess(t *testing.T) {
	n := servertest.Start(t, withMemory(0, storage.AllKeysLFU))
	rc := n.Client()
	ctx := servertest.Ctx(t)
	rc.Set(ctx, "hot", "v", 0)
	rc.Set(ctx, "cold", "v", 0)
	for range 2000 {
		rc.Get(ctx, "hot")
	}
	hot, _ := rc.ObjectFreq(ctx, "hot").Result()
	cold, _ := rc.ObjectFreq(ctx, "cold").Result()
	if hot <= cold || cold != 5 {
		t.Errorf("OBJECT FREQ: hot %d after 2000 reads, cold %d (Redis starts keys at 5)", hot, cold)
	}
	if err := rc.ConfigSet(ctx, "maxmemory-policy", "allkeys-lru").Err(); err != nil {
		t.Fatal(err)
	}
	rc.Get(ctx, "hot")
	servertest.Eventually(t, 10*time.Second, "OBJECT IDLETIME of an unread key to reach 1 s", func() bool {
		return rc.ObjectIdleTime(ctx, "hot").Val() >= time.Second
	})
	rc.Get(ctx, "hot")
	if d := rc.ObjectIdleTime(ctx, "hot").Val(); d != 0 {
		t.Errorf("OBJECT IDLETIME right after a read: %v", d)
	}
}
