package server_test

import (
	"fmt"
	"sync"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/ringcache/ringcache/server/servertest"
)

// TestConcurrentIncr has 50 clients increment shared counters, some
// pipelined; the totals must be exact.
func TestConcurrentIncr(t *testing.T) {
	n := servertest.Start(t)
	ctx := servertest.Ctx(t)
	const clients, perClient, counters = 50, 200, 5
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rdb := redis.NewClient(&redis.Options{Addr: n.Addr, PoolSize: 1})
			defer rdb.Close()
			for i := 0; i < perClient; i += 10 {
				if c%2 == 0 {
					pipe := rdb.Pipeline()
					for j := range 10 {
						pipe.IncrBy(ctx, fmt.Sprintf("counter:%d", (i+j)%counters), 1)
					}
					if _, err := pipe.Exec(ctx); err != nil {
						errs <- err
						return
					}
					continue
				}
				for j := range 10 {
					if err := rdb.Incr(ctx, fmt.Sprintf("counter:%d", (i+j)%counters)).Err(); err != nil {
						errs <- err
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	rdb := n.Client()
	var total int64
	for i := range counters {
		v, err := rdb.Get(ctx, fmt.Sprintf("counter:%d", i)).Int64()
		if err != nil {
			t.Fatal(err)
		}
		if v != clients*perClient/counters {
			t.Errorf("counter:%d = %d, want %d", i, v, clients*perClient/counters)
		}
		total += v
	}
	if total != clients*perClient {
		t.Fatalf("total = %d, want %d", total, clients*perClient)
	}
}

// TestPipelineOrdering checks that a read pipelined after writes on the
// same connection sees them, and replies come back in order.
func TestPipelineOrdering(t *testing.T) {
	n := servertest.Start(t)
	ctx := servertest.Ctx(t)
	rdb := n.Client()
	pipe := rdb.Pipeline()
	var gets []*redis.StringCmd
	for i := range 100 {
		pipe.Set(ctx, "k", i, 0)
		gets = append(gets, pipe.Get(ctx, "k"))
		pipe.Do(ctx, "NOSUCH")
	}
	cmds, _ := pipe.Exec(ctx)
	if len(cmds) != 300 {
		t.Fatalf("%d replies, want 300", len(cmds))
	}
	for i, g := range gets {
		if v := g.Val(); v != fmt.Sprint(i) {
			t.Fatalf("GET after SET %d = %q", i, v)
		}
	}
	for i := 2; i < 300; i += 3 {
		if cmds[i].Err() == nil {
			t.Fatalf("reply %d: want unknown command error", i)
		}
	}
}
