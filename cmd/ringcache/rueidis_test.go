package main

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/rueidis"

	"github.com/ringcache/ringcache/cluster"
)

// cacheTTL is how long rueidis may keep a value it cached; far longer than
// any step below, so only an invalidation (or the key's own TTL, which
// rueidis reads with PTTL) can make it read the server again.
const cacheTTL = time.Minute

// invalidationAllowance is how long after a write is acknowledged a
// caching client may still read the value before it: the time an
// invalidation takes to arrive, with room for a loaded 2-core machine.
const invalidationAllowance = time.Second

// TestRueidisClientSideCaching drives rueidis with its default options
// (client-side caching on: HELLO 3, CLIENT TRACKING ON OPTIN, CLIENT
// CACHING YES in a MULTI before each cached read) against a 3-node
// cluster, and checks that what it caches is dropped whenever the value
// can change on the node that served it: another client's write, a write
// a replica applied, expiry, eviction, a failover and a join. Across the
// failover and the join, a writer and a caching reader check the promise
// itself: no read returns a value older than the last write acknowledged
// before it, give or take the time an invalidation takes to arrive.
func TestRueidisClientSideCaching(t *testing.T) {
	bin := buildBinary(t)
	c := startCluster(t, bin, 3, "--maxmemory", "24mb", "--maxmemory-policy", "allkeys-lru")
	ctx := context.Background()
	rdb := c.client()

	newRueidis := func(opt rueidis.ClientOption) rueidis.Client {
		t.Helper()
		if opt.InitAddress == nil {
			opt.InitAddress = c.addrs()
		}
		client, err := rueidis.NewClient(opt)
		if err != nil {
			t.Fatalf("rueidis.NewClient with default options: %v", err)
		}
		t.Cleanup(client.Close)
		return client
	}
	rc := newRueidis(rueidis.ClientOption{})

	// cachedGet is rueidis's cached GET: the value ("" and false for
	// nil) and whether it came from the local cache.
	cachedGet := func(client rueidis.Client, key string) (val string, found, hit bool, err error) {
		res := client.DoCache(ctx, client.B().Get().Key(key).Cache(), cacheTTL)
		val, err = res.ToString()
		if rueidis.IsRedisNil(err) {
			return "", false, res.IsCacheHit(), nil
		}
		return val, err == nil, res.IsCacheHit(), err
	}
	// waitRead waits until a cached GET of key gives want (nil when
	// want is ""), and says how long that took.
	waitRead := func(client rueidis.Client, key, want string) time.Duration {
		t.Helper()
		start := time.Now()
		var last string
		if !waitFor(10*time.Second, func() bool {
			val, found, hit, err := cachedGet(client, key)
			last = fmt.Sprintf("%q found=%v hit=%v err=%v", val, found, hit, err)
			return err == nil && val == want && found == (want != "")
		}) {
			t.Fatalf("GET %s through rueidis: %s, want %q", key, last, want)
		}
		return time.Since(start)
	}
	mustCache := func(client rueidis.Client, key, want string) {
		t.Helper()
		waitRead(client, key, want)
		if val, _, hit, err := cachedGet(client, key); err != nil || val != want || !hit {
			t.Fatalf("second GET %s: %q hit=%v err=%v, want %q from rueidis's cache", key, val, hit, err, want)
		}
	}

	t.Run("another client's write", func(t *testing.T) {
		key := "csc:write"
		rdb.Set(ctx, key, "v1", 0)
		mustCache(rc, key, "v1")
		if err := rdb.Set(ctx, key, "v2", 0).Err(); err != nil {
			t.Fatal(err)
		}
		t.Logf("invalidation seen %v after the write was acknowledged", waitRead(rc, key, "v2").Round(time.Millisecond))
		if err := rdb.Del(ctx, key).Err(); err != nil {
			t.Fatal(err)
		}
		waitRead(rc, key, "")
	})

	t.Run("write applied by a replica", func(t *testing.T) {
		key := "csc:replica"
		rdb.Set(ctx, key, "v1", 0)
		replica := c.slotNodes()[cluster.KeySlot([]byte(key))][1]
		// rueidis's own replica reads (SendToReplicas) assume one set of
		// replicas per primary, as a Redis Cluster shard has; ringcache's
		// differ by slot range, so those reads mostly end up redirected
		// to the primary. A client of the one replica node that sent
		// READONLY (on its only connection) reads the replica's copy.
		rr := newRueidis(rueidis.ClientOption{InitAddress: []string{replica}, ForceSingleClient: true, PipelineMultiplex: -1})
		if err := rr.Do(ctx, rr.B().Readonly().Build()).Error(); err != nil {
			t.Fatalf("READONLY: %v", err)
		}
		mustCache(rr, key, "v1")
		if n := trackedKeys(t, replica); n != 1 {
			t.Fatalf("the replica %s tracks %d keys, want the one rueidis read from it", replica, n)
		}
		if err := rdb.Set(ctx, key, "v2", 0).Err(); err != nil {
			t.Fatal(err)
		}
		waitRead(rr, key, "v2")
	})

	t.Run("expiry", func(t *testing.T) {
		key := "csc:expiry"
		rdb.Set(ctx, key, "v1", 300*time.Millisecond)
		mustCache(rc, key, "v1")
		waitRead(rc, key, "")
		if n, _ := rdb.Exists(ctx, key).Result(); n != 0 {
			t.Errorf("EXISTS %s after its TTL: %d", key, n)
		}
	})

	t.Run("eviction", func(t *testing.T) {
		key := "csc:evicted"
		rdb.Set(ctx, key, "cold", 0)
		mustCache(rc, key, "cold")
		// The flood never touches key, so LRU evicts it; only the
		// invalidation the eviction sends makes rueidis ask again.
		filler := strings.Repeat("x", 4096)
		evicted := waitFor(60*time.Second, func() bool {
			pipe := rdb.Pipeline()
			for i := range 500 {
				pipe.Set(ctx, fmt.Sprintf("flood:%d:%d", time.Now().UnixNano(), i), filler, 0)
			}
			pipe.Exec(ctx)
			_, found, _, err := cachedGet(rc, key)
			return err == nil && !found
		})
		if !evicted {
			n, _ := rdb.Exists(ctx, key).Result()
			t.Fatalf("rueidis still reads %s after a 60 s flood of a 24 MB cluster (EXISTS on the server: %d)", key, n)
		}
	})

	w := startFreshnessWatch(t, rdb, newRueidis(rueidis.ClientOption{}), 64)

	t.Run("failover", func(t *testing.T) {
		key := "csc:failover"
		rdb.Set(ctx, key, "v1", 0)
		mustCache(rc, key, "v1")
		primary := c.slotNodes()[cluster.KeySlot([]byte(key))][0]
		var victim *node
		for _, n := range c.live() {
			if n.addr() == primary {
				victim = n
			}
		}
		killed := time.Now()
		victim.kill(t)
		if !waitFor(30*time.Second, func() bool { return rdb.Set(ctx, key, "v2", 0).Err() == nil }) {
			t.Fatalf("no write to %s accepted within 30 s of killing its primary", key)
		}
		t.Logf("write to the killed primary's slot accepted %v after the kill", time.Since(killed).Round(time.Millisecond))
		waitRead(rc, key, "v2")
		t.Logf("rueidis read the new value %v after the kill", time.Since(killed).Round(time.Millisecond))
		c.waitConvergedAfterLeave(2)
	})

	t.Run("join", func(t *testing.T) {
		c.addNode()
		c.waitConvergedAfterLeave(3) // the killed node is listed, failed, for its grace period
		// Writes and reads go on a while on the new placement.
		w.waitRounds(3)
	})

	reads, stale := w.stop()
	t.Logf("freshness watch: %d cached reads across the failover and the join, %d stale", reads, stale)
}

// trackedKeys is tracking_total_keys in INFO stats on addr.
func trackedKeys(t *testing.T, addr string) int {
	t.Helper()
	rdb := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1})
	defer rdb.Close()
	v, err := infoField(context.Background(), rdb, "stats", "tracking_total_keys")
	if err != nil {
		t.Fatalf("INFO stats on %s: %v", addr, err)
	}
	n, _ := strconv.Atoi(v)
	return n
}

// freshnessWatch writes increasing numbers to a set of keys through
// go-redis and reads them back through a caching client, checking each
// read against the writes acknowledged before it began.
type freshnessWatch struct {
	t      *testing.T
	keys   []string
	mu     sync.Mutex
	acked  [][]ack      // per key, in the order acknowledged (sequence numbers rise)
	rounds atomic.Int64 // reader passes over every key
	reads  atomic.Int64
	stale  atomic.Int64
	done   chan struct{}
	wg     sync.WaitGroup
}

func startFreshnessWatch(t *testing.T, rdb *redis.ClusterClient, reader rueidis.Client, keys int) *freshnessWatch {
	w := &freshnessWatch{t: t, done: make(chan struct{})}
	for i := range keys {
		w.keys = append(w.keys, fmt.Sprintf("fresh:%d", i))
		w.acked = append(w.acked, nil)
	}
	ctx := context.Background()
	w.wg.Add(2)
	go func() {
		defer w.wg.Done()
		for seq := int64(1); ; seq++ {
			for i, key := range w.keys {
				select {
				case <-w.done:
					return
				default:
				}
				if rdb.Set(ctx, key, seq, 0).Err() == nil {
					now := time.Now()
					w.mu.Lock()
					w.acked[i] = append(w.acked[i], ack{seq, now})
					w.mu.Unlock()
				}
			}
		}
	}()
	go func() {
		defer w.wg.Done()
		for {
			for i, key := range w.keys {
				select {
				case <-w.done:
					return
				default:
				}
				began := time.Now()
				res := reader.DoCache(ctx, reader.B().Get().Key(key).Cache(), cacheTTL)
				v, err := res.AsInt64()
				if err != nil {
					continue // nil before the first write, or an error during the failover
				}
				w.reads.Add(1)
				if newer := w.newerAcked(i, v, began.Add(-invalidationAllowance)); newer > 0 {
					if w.stale.Add(1) <= 5 {
						t.Errorf("%s: read %d (cache hit %v) at %v, but %d was acknowledged more than %v before the read",
							key, v, res.IsCacheHit(), began.Format("15:04:05.000"), newer, invalidationAllowance)
					}
				}
			}
			w.rounds.Add(1)
			time.Sleep(time.Millisecond)
		}
	}()
	return w
}

// newerAcked returns the highest sequence number above v acknowledged for
// key i before when, or 0.
func (w *freshnessWatch) newerAcked(i int, v int64, when time.Time) int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	acks := w.acked[i]
	for j := len(acks) - 1; j >= 0 && acks[j].seq > v; j-- {
		if acks[j].at.Before(when) {
			return acks[j].seq
		}
	}
	return 0
}

type ack struct {
	seq int64
	at  time.Time
}

// waitRounds waits until the reader has gone over every key n more times.
func (w *freshnessWatch) waitRounds(n int64) {
	target := w.rounds.Load() + n
	if !waitFor(30*time.Second, func() bool { return w.rounds.Load() >= target }) {
		w.t.Fatalf("the caching reader made no progress")
	}
}

func (w *freshnessWatch) stop() (reads, stale int64) {
	close(w.done)
	w.wg.Wait()
	if w.reads.Load() == 0 {
		w.t.Errorf("the freshness watch read nothing")
	}
	return w.reads.Load(), w.stale.Load()
}
