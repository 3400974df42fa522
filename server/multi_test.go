package server_test

import (
	"context"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/ringcache/ringcache/server/servertest"
)

// TestMultiMatchesRedis compares MULTI/EXEC/DISCARD with redis-server's.
func TestMultiMatchesRedis(t *testing.T) {
	rdb := servertest.StartRedis(t)
	node := servertest.Start(t)
	for _, proto := range []string{"2", "3"} {
		t.Run("RESP"+proto, func(t *testing.T) {
			rdb.FlushAll(context.Background())
			node.Client().FlushAll(context.Background())
			compareConversations(t, rdb.Options().Addr, node.Addr, map[string]string{"a": proto, "b": proto}, []convStep{
				on("a", "EXEC"),
				on("a", "DISCARD"),
				on("a", "MULTI"),
				on("a", "MULTI"),
				on("a", "SET", "k", "1"),
				on("a", "INCR", "k"),
				on("a", "GET", "k"),
				on("a", "NOSUCHCMD", "k"), // unknown: aborts
				on("a", "EXEC"),
				on("a", "GET", "k"),
				on("a", "MULTI"),
				on("a", "SET", "k", "1"),
				on("a", "INCR", "k"),
				on("a", "INCRBY", "k", "notanumber"), // fails at EXEC, inside the array
				on("a", "MGET", "k", "none"),
				on("a", "DEL", "k"),
				on("a", "EXISTS", "k"),
				on("a", "EXEC"),
				on("a", "MULTI"),
				on("a", "SET", "k", "2"),
				on("a", "GET"), // arity: aborts
				on("a", "EXEC"),
				on("a", "MULTI"),
				on("a", "SET", "k", "3"),
				on("a", "DISCARD"),
				on("a", "GET", "k"),
				on("a", "MULTI"),
				on("a", "EXEC"), // empty
			})
		})
	}
}

// TestMultiThroughClients runs go-redis's transactions against a cluster:
// TxPipelined on one slot through a cluster client, and through a plain
// client on a node that holds none of the keys (forwarded).
func TestMultiThroughClients(t *testing.T) {
	c := servertest.StartClusterRF(t, 3, 2)
	ctx := context.Background()
	cc := c.Client()
	cmds, err := cc.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Set(ctx, "{u1}:name", "ann", 0)
		p.Incr(ctx, "{u1}:visits")
		p.Get(ctx, "{u1}:name")
		return nil
	})
	if err != nil || len(cmds) != 3 || cmds[2].(*redis.StringCmd).Val() != "ann" {
		t.Fatalf("cluster TxPipelined: %v %v", cmds, err)
	}
	for _, n := range c.Alive() {
		plain := n.Client()
		cmds, err := plain.TxPipelined(ctx, func(p redis.Pipeliner) error {
			p.Incr(ctx, "{u1}:visits")
			p.Get(ctx, "{u1}:name")
			return nil
		})
		if err != nil || len(cmds) != 2 || cmds[1].(*redis.StringCmd).Val() != "ann" {
			t.Fatalf("plain TxPipelined on %s: %v %v", n.Addr, cmds, err)
		}
	}
	if v, err := cc.Get(ctx, "{u1}:visits").Int(); err != nil || v != 4 {
		t.Fatalf("visits %d %v; want 4", v, err)
	}
	// Across slots, a cluster client's transaction is refused.
	_, err = cc.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Set(ctx, "a{1}", "1", 0)
		p.Set(ctx, "b{2}", "1", 0)
		return nil
	})
	if err == nil {
		t.Fatal("a transaction across slots through a cluster client succeeded")
	}
}
