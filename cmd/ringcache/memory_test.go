package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// rss is a process's resident set size (VmRSS), in bytes.
func rss(t *testing.T, n *node) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", n.cmd.Process.Pid))
	if err != nil {
		t.Skip("no /proc: RSS cannot be measured here")
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10
		}
	}
	t.Fatal("no VmRSS in /proc status")
	return 0
}

// rssSampler records a process's highest RSS until stopped.
func rssSampler(t *testing.T, n *node) (stop func() int64) {
	var mu sync.Mutex
	var peak int64
	done := make(chan struct{})
	go func() {
		tk := time.NewTicker(20 * time.Millisecond)
		defer tk.Stop()
		for {
			select {
			case <-done:
				return
			case <-tk.C:
			}
			if !n.running() {
				return
			}
			r := rss(t, n)
			mu.Lock()
			peak = max(peak, r)
			mu.Unlock()
		}
	}()
	return func() int64 {
		close(done)
		mu.Lock()
		defer mu.Unlock()
		return peak
	}
}

// memInfo reads INFO memory: used_memory, what maxmemory limits
// (used_memory less mem_not_counted_for_evict), and evicted_keys.
func memInfo(t *testing.T, rdb *redis.Client) (used, counted, evicted int64) {
	t.Helper()
	ctx := context.Background()
	get := func(section, field string) int64 {
		v, err := infoField(ctx, rdb, section, field)
		if err != nil {
			t.Fatal(err)
		}
		n, _ := strconv.ParseInt(v, 10, 64)
		return n
	}
	used = get("memory", "used_memory")
	return used, used - get("memory", "mem_not_counted_for_evict"), get("stats", "evicted_keys")
}

// goHeapBase is the fixed base a node may take beyond 1.1 x maxmemory:
// the Go heap's soft limit (cmd/ringcache's default for a node on disk,
// with Badger's buffers) and the empty node's RSS.
const goHeapBase = 128<<20 + 2*4<<20 + 4<<20 + 4<<20 + 2<<20

// TestMaxMemoryFloodPerPolicy writes ten times maxmemory (32 MB) of 1 KB
// values into a node through go-redis, under each of Redis's eight
// policies, and checks that the node stays up within 1.1 x maxmemory plus
// the fixed base, that it evicts (or, with noeviction, answers OOM with
// Redis's text while GET and DEL keep working), and each policy's promise:
// volatile-* never evicts a key without a TTL, volatile-ttl evicts the
// keys that expire soonest first.
func TestMaxMemoryFloodPerPolicy(t *testing.T) {
	bin := buildBinary(t)
	const maxmem = 32 << 20
	val := strings.Repeat("v", 1000)
	for _, policy := range []string{"noeviction", "allkeys-lru", "allkeys-lfu", "allkeys-random", "volatile-lru", "volatile-lfu", "volatile-random", "volatile-ttl"} {
		t.Run(policy, func(t *testing.T) {
			n := startNode(t, bin, freePort(t), "--dir", t.TempDir(), "--maxmemory", strconv.Itoa(maxmem), "--maxmemory-policy", policy)
			rdb := n.client(t)
			ctx := context.Background()
			empty := rss(t, n)
			peak := rssSampler(t, n)
			// 2 MB of keys without a TTL first; the volatile policies must
			// keep every one of them.
			const plain = 2000
			pipe := rdb.Pipeline()
			for i := range plain {
				pipe.Set(ctx, "plain:"+strconv.Itoa(i), val, 0)
			}
			if _, err := pipe.Exec(ctx); err != nil {
				t.Fatal(err)
			}
			// Then the flood, each key with a TTL: for volatile-ttl, "far"
			// keys expire in a day and "near" keys in 10 minutes, interleaved.
			var oom error
			const total = 10 * maxmem / 1000
			for i := 0; i < total && oom == nil; i += 500 {
				pipe := rdb.Pipeline()
				for j := i; j < i+500; j++ {
					ttl := 24 * time.Hour
					if j%2 == 1 {
						ttl = 10 * time.Minute
					}
					pipe.Set(ctx, "flood:"+strconv.Itoa(j), val, ttl)
				}
				cmds, err := pipe.Exec(ctx)
				for _, c := range cmds {
					if c.Err() != nil && oom == nil {
						oom = c.Err()
					}
				}
				if err != nil && oom == nil {
					t.Fatal(err)
				}
			}
			top := peak()
			if !n.running() {
				t.Fatalf("node died; log:\n%s", n.log.tail(30))
			}
			if limit := empty + maxmem*11/10 + goHeapBase; top > limit {
				t.Errorf("peak RSS %d MB, above %d MB (empty %d MB + 1.1 x maxmemory + the Go heap's limit)", top>>20, limit>>20, empty>>20)
			}
			t.Logf("%s: empty RSS %d MB, peak %d MB", policy, empty>>20, top>>20)
			// Evicting policies are within the limit between batches (once
			// the eviction after the last batch is done); noeviction may
			// have taken the last pipeline whole.
			var counted, evicted int64
			within := waitFor(2*time.Second, func() bool {
				_, counted, evicted = memInfo(t, rdb)
				return counted <= maxmem || (policy == "noeviction" && counted <= maxmem+1<<20)
			})
			if !within {
				t.Errorf("memory counted against maxmemory %d, above %d", counted, maxmem)
			}
			if policy == "noeviction" {
				if oom == nil || oom.Error() != "OOM command not allowed when used memory > 'maxmemory'." {
					t.Fatalf("flood past maxmemory ended with %v, want Redis's OOM error", oom)
				}
				if evicted != 0 {
					t.Errorf("noeviction evicted %d keys", evicted)
				}
				if v, err := rdb.Get(ctx, "plain:1").Result(); err != nil || v != val {
					t.Errorf("GET over the limit: %v", err)
				}
				if err := rdb.Del(ctx, "plain:2").Err(); err != nil {
					t.Errorf("DEL over the limit: %v", err)
				}
				return
			}
			if oom != nil {
				t.Fatalf("%s answered %v", policy, oom)
			}
			if evicted == 0 {
				t.Fatal("evicted_keys is 0 after a flood of ten times maxmemory")
			}
			if strings.HasPrefix(policy, "volatile-") {
				pipe := rdb.Pipeline()
				for i := range plain {
					pipe.Exists(ctx, "plain:"+strconv.Itoa(i))
				}
				cmds, _ := pipe.Exec(ctx)
				for i, c := range cmds {
					if c.(*redis.IntCmd).Val() != 1 {
						t.Fatalf("%s evicted plain:%d, which has no TTL", policy, i)
					}
				}
			}
			if policy == "volatile-ttl" {
				var far, near int64
				pipe := rdb.Pipeline()
				for j := range total {
					pipe.Exists(ctx, "flood:"+strconv.Itoa(j))
				}
				cmds, _ := pipe.Exec(ctx)
				for j, c := range cmds {
					if c.(*redis.IntCmd).Val() == 1 {
						if j%2 == 0 {
							far++
						} else {
							near++
						}
					}
				}
				// The last batch's near keys were written after the last
				// eviction; beyond them, no near key should be left while
				// far keys were evicted.
				if near > 1000 || far < 10*near {
					t.Errorf("volatile-ttl kept %d keys expiring in a day and %d expiring in 10 minutes", far, near)
				}
			}
		})
	}
}

// TestHotKeysSurviveAColdFlood reads a small set of keys continuously while
// another client floods the node with cold keys far past maxmemory: with
// allkeys-lru and allkeys-lfu the hot set stays.
func TestHotKeysSurviveAColdFlood(t *testing.T) {
	bin := buildBinary(t)
	for _, policy := range []string{"allkeys-lru", "allkeys-lfu"} {
		t.Run(policy, func(t *testing.T) {
			n := startNode(t, bin, freePort(t), "--in-memory", "--maxmemory", "16mb", "--maxmemory-policy", policy)
			rdb := n.client(t)
			ctx := context.Background()
			val := strings.Repeat("h", 1000)
			const hot = 1000
			for i := range hot {
				rdb.Set(ctx, "hot:"+strconv.Itoa(i), val, 0)
			}
			stop := make(chan struct{})
			var wg sync.WaitGroup
			wg.Add(1)
			go func() {
				defer wg.Done()
				r := n.client(t)
				for {
					select {
					case <-stop:
						return
					default:
					}
					pipe := r.Pipeline()
					for i := range hot {
						pipe.Get(ctx, "hot:"+strconv.Itoa(i))
					}
					pipe.Exec(ctx)
				}
			}()
			cold := strings.Repeat("c", 1000)
			for i := 0; i < 160000; i += 500 {
				pipe := rdb.Pipeline()
				for j := i; j < i+500; j++ {
					pipe.Set(ctx, "cold:"+strconv.Itoa(j), cold, 0)
				}
				if _, err := pipe.Exec(ctx); err != nil {
					t.Fatal(err)
				}
			}
			close(stop)
			wg.Wait()
			lost := 0
			for i := range hot {
				if rdb.Exists(ctx, "hot:"+strconv.Itoa(i)).Val() == 0 {
					lost++
				}
			}
			_, _, evicted := memInfo(t, rdb)
			t.Logf("%s: evicted %d keys, lost %d of %d hot keys", policy, evicted, lost, hot)
			if evicted < 100000 {
				t.Fatalf("only %d keys evicted", evicted)
			}
			if lost > hot/20 {
				t.Errorf("%s lost %d of %d hot keys", policy, lost, hot)
			}
		})
	}
}

// TestUsedMemoryMatchesRSS loads 500k keys of 16/100 bytes into a node on
// disk and one in memory, and checks that used_memory comes within 15% of
// what the load added to the process's RSS, once the node is at rest.
func TestUsedMemoryMatchesRSS(t *testing.T) {
	bin := buildBinary(t)
	for _, mode := range []string{"disk", "in-memory"} {
		t.Run(mode, func(t *testing.T) {
			args := []string{"--dir", t.TempDir()}
			if mode == "in-memory" {
				args = []string{"--in-memory"}
			}
			n := startNode(t, bin, freePort(t), args...)
			rdb := n.client(t)
			ctx := context.Background()
			time.Sleep(time.Second) // let the empty node's RSS settle
			empty := rss(t, n)
			val := strings.Repeat("x", 100)
			const keys = 500000
			for i := 0; i < keys; i += 5000 {
				pipe := rdb.Pipeline()
				for j := i; j < i+5000; j++ {
					pipe.Set(ctx, fmt.Sprintf("key:%012d", j), val, 0)
				}
				if _, err := pipe.Exec(ctx); err != nil {
					t.Fatal(err)
				}
			}
			var used, grown int64
			// At rest: persisted, and Badger done with its compactions.
			ok := waitFor(40*time.Second, func() bool {
				used, _, _ = memInfo(t, rdb)
				grown = rss(t, n) - empty
				time.Sleep(500 * time.Millisecond)
				return used >= grown*85/100 && used <= grown*115/100
			})
			t.Logf("%s: used_memory %d MB, RSS grew %d MB (%d and %d bytes per key)", mode, used>>20, grown>>20, used/keys, grown/keys)
			if !ok {
				t.Errorf("used_memory %d is not within 15%% of the RSS growth %d", used, grown)
			}
		})
	}
}

// TestClusterEvictionKeepsCopiesEqual floods a 3-node RF 2 cluster past
// maxmemory (one node with half the others' limit, so it holds more
// replica data than it can) and checks that every slot's two copies hold
// the same keys, read from each with READONLY, and that no node is over
// its limit.
func TestClusterEvictionKeepsCopiesEqual(t *testing.T) {
	bin := buildBinary(t)
	c := startCluster(t, bin, 3, "--maxmemory", "16mb", "--maxmemory-policy", "allkeys-lru")
	small := c.nodes[2]
	ctx := context.Background()
	if err := small.client(t).ConfigSet(ctx, "maxmemory", "8mb").Err(); err != nil {
		t.Fatal(err)
	}
	rdb := c.client()
	val := strings.Repeat("v", 500)
	const total = 200000 // 100 MB: three times what the cluster holds
	for i := 0; i < total; i += 500 {
		pipe := rdb.Pipeline()
		for j := i; j < i+500; j++ {
			pipe.Set(ctx, "k:"+strconv.Itoa(j), val, 0)
		}
		if _, err := pipe.Exec(ctx); err != nil {
			t.Fatal(err)
		}
	}
	limits := map[*node]int64{c.nodes[0]: 16 << 20, c.nodes[1]: 16 << 20, small: 8 << 20}
	var evicted int64
	for _, n := range c.nodes {
		_, counted, ev := memInfo(t, n.client(t))
		evicted += ev
		t.Logf("%s: %d bytes counted against maxmemory %d, %d evicted", n.name, counted, limits[n], ev)
		if counted > limits[n]*11/10 {
			t.Errorf("%s holds %d bytes, over its maxmemory %d by more than 10%%", n.name, counted, limits[n])
		}
	}
	if evicted == 0 {
		t.Fatal("nothing evicted")
	}
	// Evictions travel as replicated deletions: wait until every slot's
	// copies agree (or fail after the deadline), comparing their keys.
	table := c.slotNodes()
	clients := map[string]*redis.Client{}
	for _, n := range c.nodes {
		clients[n.addr()] = readOnlyClient(t, n.addr())
	}
	var diff string
	ok := waitFor(30*time.Second, func() bool {
		diff = ""
		for slot, holders := range table {
			if len(holders) != 2 {
				diff = fmt.Sprintf("slot %d has %d holders", slot, len(holders))
				return false
			}
			var keys [2][]string
			for i, h := range holders {
				ks, err := clients[h].ClusterGetKeysInSlot(ctx, slot, 100000).Result()
				if err != nil {
					diff = err.Error()
					return false
				}
				slices.Sort(ks)
				keys[i] = ks
			}
			if !slices.Equal(keys[0], keys[1]) {
				diff = fmt.Sprintf("slot %d: %s holds %d keys, %s %d", slot, holders[0], len(keys[0]), holders[1], len(keys[1]))
				return false
			}
		}
		return true
	})
	if !ok {
		t.Fatalf("copies differ: %s", diff)
	}
	if err := rdb.Set(ctx, "after", "v", 0).Err(); errors.Is(err, redis.Nil) || err != nil {
		t.Fatalf("write after the flood: %v", err)
	}
}

// TestMemoryFlagsAndConfigFile checks the default maxmemory (3/4 of the
// machine's memory), the memory flags, a redis.conf-style --config file
// and that the command line wins over it.
func TestMemoryFlagsAndConfigFile(t *testing.T) {
	bin := buildBinary(t)
	ctx := context.Background()
	config := func(n *node, name string) string {
		v, err := n.client(t).ConfigGet(ctx, name).Result()
		if err != nil {
			t.Fatal(err)
		}
		return v[name]
	}
	n := startNode(t, bin, freePort(t), "--in-memory")
	if mm, _ := strconv.ParseInt(config(n, "maxmemory"), 10, 64); mm <= 0 {
		t.Errorf("default maxmemory %d, want 3/4 of the machine's memory", mm)
	}
	if p := config(n, "maxmemory-policy"); p != "noeviction" {
		t.Errorf("default maxmemory-policy %q, want noeviction as Redis", p)
	}

	file := t.TempDir() + "/ringcache.conf"
	conf := "# a cache\nmaxmemory 10mb\nmaxmemory-policy allkeys-lfu\n\nmaxmemory-samples 7\nlfu-log-factor 3\n"
	if err := os.WriteFile(file, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	n = startNode(t, bin, freePort(t), "--in-memory", "--config", file, "--maxmemory-samples", "9")
	for name, want := range map[string]string{"maxmemory": strconv.Itoa(10 << 20), "maxmemory-policy": "allkeys-lfu", "maxmemory-samples": "9", "lfu-log-factor": "3"} {
		if got := config(n, name); got != want {
			t.Errorf("with the config file, %s = %q, want %q", name, got, want)
		}
	}
	if err := os.WriteFile(file, []byte("maxmemory 10mb\nno-such-setting 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin, "--in-memory", "--config", file).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "no-such-setting") {
		t.Errorf("an unknown setting in the config file: %v, %s", err, out)
	}
	if out, err := exec.Command(bin, "--maxmemory-policy", "lru").CombinedOutput(); err == nil {
		t.Errorf("--maxmemory-policy lru accepted: %s", out)
	}
}
