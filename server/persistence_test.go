package server_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/ringcache/ringcache/server/servertest"
)

// TestExpiryPrecision checks millisecond expiry: a key is gone the moment
// its time passes, without waiting for a background sweep.
func TestExpiryPrecision(t *testing.T) {
	n := servertest.Start(t)
	rdb := n.Client()
	ctx := servertest.Ctx(t)
	if err := rdb.Set(ctx, "k", "v", 150*time.Millisecond).Err(); err != nil {
		t.Fatal(err)
	}
	pttl, err := rdb.PTTL(ctx, "k").Result()
	if err != nil || pttl <= 100*time.Millisecond || pttl > 150*time.Millisecond {
		t.Fatalf("PTTL = %v, %v; want within (100ms, 150ms]", pttl, err)
	}
	deadline := time.Now().Add(pttl)
	// Poll GET until the key disappears; it must not outlive its TTL by
	// more than the polling granularity, nor vanish before it.
	for {
		v, err := rdb.Get(ctx, "k").Result()
		now := time.Now()
		if err != nil {
			if now.Before(deadline.Add(-20 * time.Millisecond)) {
				t.Fatalf("key vanished %v early", deadline.Sub(now))
			}
			if late := now.Sub(deadline); late > 50*time.Millisecond {
				t.Fatalf("key outlived its TTL by %v", late)
			}
			break
		}
		if v != "v" {
			t.Fatalf("GET = %q", v)
		}
		if now.After(deadline.Add(50 * time.Millisecond)) {
			t.Fatalf("key still readable %v after its TTL", now.Sub(deadline))
		}
	}
	if ex, _ := rdb.Exists(ctx, "k").Result(); ex != 0 {
		t.Fatal("EXISTS sees an expired key")
	}
}

// TestActiveExpiry checks that expired keys leave DBSIZE without any client
// touching them.
func TestActiveExpiry(t *testing.T) {
	n := servertest.Start(t)
	rdb := n.Client()
	ctx := servertest.Ctx(t)
	pipe := rdb.Pipeline()
	for i := range 1000 {
		pipe.Set(ctx, fmt.Sprintf("tmp:%d", i), "v", time.Second)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		rdb.Set(ctx, fmt.Sprintf("keep:%d", i), "v", 0)
	}
	if got := rdb.DBSize(ctx).Val(); got != 1010 {
		t.Fatalf("DBSIZE = %d, want 1010", got)
	}
	servertest.Eventually(t, 10*time.Second, "DBSIZE to drop to 10 by active expiry", func() bool {
		return rdb.DBSize(ctx).Val() == 10
	})
}

// TestPersistenceAcrossRestart writes 10,000 keys, half with TTLs, restarts
// the node on the same directory, and finds them all with their TTLs.
func TestPersistenceAcrossRestart(t *testing.T) {
	n := servertest.Start(t)
	ctx := servertest.Ctx(t)
	rdb := n.Client()
	const keys = 10000
	pipe := rdb.Pipeline()
	for i := range keys {
		ttl := time.Duration(0)
		if i%2 == 0 {
			ttl = time.Hour
		}
		pipe.Set(ctx, fmt.Sprintf("key:%d", i), fmt.Sprintf("value-%d", i), ttl)
		if i%500 == 499 {
			if _, err := pipe.Exec(ctx); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := rdb.Set(ctx, "short", "v", 300*time.Millisecond).Err(); err != nil {
		t.Fatal(err)
	}
	rdb.Close()
	n.Restart()
	rdb = n.Client()
	if got := rdb.DBSize(ctx).Val(); got != keys+1 && got != keys {
		t.Fatalf("after restart DBSIZE = %d, want %d", got, keys)
	}
	for i := range keys {
		k := fmt.Sprintf("key:%d", i)
		v, err := rdb.Get(ctx, k).Result()
		if err != nil || v != fmt.Sprintf("value-%d", i) {
			t.Fatalf("after restart GET %s = %q, %v", k, v, err)
		}
		ttl := rdb.TTL(ctx, k).Val()
		if i%2 == 0 && (ttl < 59*time.Minute || ttl > time.Hour) {
			t.Fatalf("after restart TTL %s = %v, want about 1h", k, ttl)
		}
		if i%2 == 1 && ttl != -1 {
			t.Fatalf("after restart TTL %s = %v, want none", k, ttl)
		}
	}
	// Expiry keeps running on restored keys.
	servertest.Eventually(t, 5*time.Second, "the short key to expire after restart", func() bool {
		return rdb.Exists(ctx, "short").Val() == 0 && rdb.DBSize(ctx).Val() == keys
	})
}
