package server_test

import (
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/ringcache/ringcache/cluster"
	"github.com/ringcache/ringcache/server"
	"github.com/ringcache/ringcache/server/servertest"
	"github.com/ringcache/ringcache/storage"
)

// plainClient is a client of one node that does not speak cluster (no
// CLIENT SETINFO either, as redis-cli): a single connection.
func plainClient(t *testing.T, n *servertest.Node) *redis.Client {
	return n.Client(func(o *redis.Options) { o.PoolSize = 1; o.DisableIdentity = true })
}

// forwardedCount is a node's forwarded_commands.
func forwardedCount(t *testing.T, n *servertest.Node) int {
	v, _ := strconv.Atoi(infoFields(t, n.Client(), "stats")["forwarded_commands"])
	return v
}

// TestPlainClientsWorkOnAnyNode sends every kind of key command through a
// client of one node that does not speak cluster, for keys all over a
// 3-node cluster: forwarded to their primaries (writes replicated as
// usual), multi-key commands split by node and gathered, MSETNX across
// nodes refused.
func TestPlainClientsWorkOnAnyNode(t *testing.T) {
	c := servertest.StartCluster(t, 3)
	ctx := servertest.Ctx(t)
	for ni, n := range c.Nodes {
		rdb := plainClient(t, n)
		before := forwardedCount(t, n)
		for i := range 60 {
			key := fmt.Sprintf("n%d:k%d", ni, i)
			if err := rdb.Set(ctx, key, i, 0).Err(); err != nil {
				t.Fatalf("node %d: SET %s: %v", ni, key, err)
			}
			if v, err := rdb.Incr(ctx, key).Result(); err != nil || v != int64(i+1) {
				t.Fatalf("node %d: INCR %s = %d, %v", ni, key, v, err)
			}
			// The write reached the slot's replica too.
			primary, replica := primaryAndReplica(t, c, key)
			if ro := readOnly(t, replica); ro.Get(ctx, key).Val() != strconv.Itoa(i+1) {
				t.Fatalf("node %d: %s not on its replica %s (primary %s)", ni, key, replica.Addr, primary.Addr)
			}
		}
		if forwardedCount(t, n) == before {
			t.Errorf("node %d forwarded nothing", ni)
		}
		keys := make([]string, 30)
		var pairs []any
		for i := range keys {
			keys[i] = fmt.Sprintf("multi%d:%d", ni, i)
			pairs = append(pairs, keys[i], "v"+keys[i])
		}
		if err := rdb.MSet(ctx, pairs...).Err(); err != nil {
			t.Fatalf("node %d: MSET across nodes: %v", ni, err)
		}
		vals, err := rdb.MGet(ctx, append(keys, "missing")...).Result()
		if err != nil || len(vals) != 31 || vals[30] != nil {
			t.Fatalf("node %d: MGET across nodes: %v, %v", ni, vals, err)
		}
		for i, k := range keys {
			if vals[i] != "v"+k {
				t.Fatalf("node %d: MGET [%d] = %v, want %q", ni, i, vals[i], "v"+k)
			}
		}
		if n, err := rdb.Exists(ctx, append(keys, "missing")...).Result(); err != nil || n != 30 {
			t.Fatalf("node %d: EXISTS across nodes = %d, %v", ni, n, err)
		}
		if n, err := rdb.Touch(ctx, keys[:10]...).Result(); err != nil || n != 10 {
			t.Fatalf("node %d: TOUCH across nodes = %d, %v", ni, n, err)
		}
		if n, err := rdb.Unlink(ctx, keys[:10]...).Result(); err != nil || n != 10 {
			t.Fatalf("node %d: UNLINK across nodes = %d, %v", ni, n, err)
		}
		if n, err := rdb.Del(ctx, keys...).Result(); err != nil || n != 20 {
			t.Fatalf("node %d: DEL across nodes = %d, %v", ni, n, err)
		}
		err = rdb.MSetNX(ctx, pairs...).Err()
		if err == nil || err.Error() != "CROSSSLOT Keys in request don't hash to the same slot" {
			t.Fatalf("node %d: MSETNX across nodes: %v, want CROSSSLOT", ni, err)
		}
	}
}

// readOnly is a single-connection client of n after READONLY.
func readOnly(t *testing.T, n *servertest.Node) *redis.Conn {
	conn := n.Client().Conn()
	t.Cleanup(func() { conn.Close() })
	if err := conn.ReadOnly(servertest.Ctx(t)).Err(); err != nil {
		t.Fatal(err)
	}
	return conn
}

// TestRedirectModes checks --redirects: moved answers MOVED to every
// connection, forward forwards for every connection, even one that asked
// for the topology.
func TestRedirectModes(t *testing.T) {
	for _, mode := range []string{server.RedirectsMoved, server.RedirectsForward} {
		t.Run(mode, func(t *testing.T) {
			c := servertest.StartCluster(t, 3, servertest.WithConfig(func(cfg *server.Config, _ *storage.Options) { cfg.Redirects = mode }))
			ctx := servertest.Ctx(t)
			n := c.Nodes[0]
			key := remoteKey(t, n)
			follower := n.Client().Conn()
			if err := follower.ClusterSlots(ctx).Err(); err != nil {
				t.Fatal(err)
			}
			for name, rdb := range map[string]redis.Cmdable{"plain": plainClient(t, n), "after CLUSTER SLOTS": follower} {
				err := rdb.Set(ctx, key, "v", 0).Err()
				switch mode {
				case server.RedirectsMoved:
					if err == nil || !strings.HasPrefix(err.Error(), "MOVED ") {
						t.Errorf("%s client: SET of a remote key: %v, want MOVED", name, err)
					}
				default:
					if err != nil {
						t.Errorf("%s client: SET of a remote key: %v, want it forwarded", name, err)
					}
				}
			}
		})
	}
}

// remoteKey returns a key whose slot n is not the primary of.
func remoteKey(t *testing.T, n *servertest.Node) string {
	for i := 0; ; i++ {
		key := "remote:" + strconv.Itoa(i)
		if n.Cluster.Ring().Owner(cluster.KeySlot([]byte(key))).ID != n.Cluster.Self().ID {
			return key
		}
	}
}

// localKey returns a key whose slot n is the primary of.
func localKey(t *testing.T, n *servertest.Node) string {
	for i := 0; ; i++ {
		key := "local:" + strconv.Itoa(i)
		if n.Cluster.Ring().Owner(cluster.KeySlot([]byte(key))).ID == n.Cluster.Self().ID {
			return key
		}
	}
}

// TestPlacementChangeNudgesFollowers changes the placement (a node joins)
// and checks that a connection that asked for the topology gets one MOVED
// on its next command (even for a key this node still serves), and then
// none; that another connection of the same client (same library name and
// version) gets one too; and that a plain connection gets none.
func TestPlacementChangeNudgesFollowers(t *testing.T) {
	c := servertest.StartCluster(t, 3)
	ctx := servertest.Ctx(t)
	n := c.Nodes[0]
	// Single-connection clients; go-redis names itself with CLIENT SETINFO
	// on every connection.
	follower := n.Client(func(o *redis.Options) { o.PoolSize = 1 })
	if err := follower.ClusterSlots(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	sibling := n.Client(func(o *redis.Options) { o.PoolSize = 1 })
	plain := plainClient(t, n)
	for _, rdb := range []redis.Cmdable{follower, sibling, plain} {
		if err := rdb.Ping(ctx).Err(); err != nil {
			t.Fatal(err)
		}
	}
	before := n.Cluster.Epoch()
	c.AddNode()
	c.WaitConverged(60 * time.Second)
	servertest.Eventually(t, 30*time.Second, "the placement to change", func() bool { return n.Cluster.Epoch() > before })
	key := localKey(t, n)
	for name, rdb := range map[string]redis.Cmdable{"follower": follower, "its sibling": sibling} {
		err := rdb.Set(ctx, key, "v", 0).Err()
		if err == nil || !strings.HasPrefix(err.Error(), "MOVED ") {
			t.Errorf("%s, first command after the change: %v, want MOVED", name, err)
		}
		if want := fmt.Sprintf("MOVED %d %s", cluster.KeySlot([]byte(key)), n.Addr); err != nil && err.Error() != want {
			t.Errorf("%s: %v, want %q (the slot's primary, this node)", name, err, want)
		}
		if err := rdb.Set(ctx, key, "v", 0).Err(); err != nil {
			t.Errorf("%s, second command: %v, want OK", name, err)
		}
	}
	if err := plain.Set(ctx, key, "v", 0).Err(); err != nil {
		t.Errorf("plain client after the change: %v, want OK", err)
	}
	if got := infoFields(t, n.Client(), "stats")["topology_nudges"]; got != "2" {
		t.Errorf("topology_nudges = %s, want 2", got)
	}
	// A cluster client reloads its slot map on the MOVED and goes on.
	rdb := c.Client()
	if err := rdb.Set(ctx, key, "w", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if v, err := rdb.Get(ctx, key).Result(); err != nil || !reflect.DeepEqual(v, "w") {
		t.Fatalf("GET through the cluster client: %q, %v", v, err)
	}
}
