package server_test

import (
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/ringcache/ringcache/cluster"
	"github.com/ringcache/ringcache/server/servertest"
)

// TestClusterTopologyReplies checks that CLUSTER SLOTS, SHARDS and NODES
// are the same on every node, cover every slot exactly once, and agree with
// CLUSTER KEYSLOT and with where keys are served.
func TestClusterTopologyReplies(t *testing.T) {
	c := servertest.StartCluster(t, 3)
	ctx := servertest.Ctx(t)
	var firstSlots []redis.ClusterSlot
	var firstShards []redis.ClusterShard
	var firstNodes string
	for i, n := range c.Nodes {
		rdb := n.Client()
		slots, err := rdb.ClusterSlots(ctx).Result()
		if err != nil {
			t.Fatal(err)
		}
		shards, err := rdb.ClusterShards(ctx).Result()
		if err != nil {
			t.Fatal(err)
		}
		nodes, err := rdb.ClusterNodes(ctx).Result()
		if err != nil {
			t.Fatal(err)
		}
		if strings.Count(nodes, "myself,master") != 1 || !strings.Contains(nodes, n.Cluster.Self().ID+" "+n.Addr) {
			t.Fatalf("node %d: CLUSTER NODES does not mark itself:\n%s", i, nodes)
		}
		nodes = strings.ReplaceAll(nodes, "myself,", "")
		if i == 0 {
			firstSlots, firstShards, firstNodes = slots, shards, nodes
			continue
		}
		if !reflect.DeepEqual(slots, firstSlots) {
			t.Errorf("node %d: CLUSTER SLOTS differs from node 0", i)
		}
		if !reflect.DeepEqual(shards, firstShards) {
			t.Errorf("node %d: CLUSTER SHARDS differs from node 0", i)
		}
		if nodes != firstNodes {
			t.Errorf("node %d: CLUSTER NODES differs from node 0:\n%s\nvs\n%s", i, nodes, firstNodes)
		}
	}

	// SLOTS: ascending, contiguous, complete; every node owns some.
	owner := make([]string, cluster.SlotCount)
	next := 0
	for _, s := range firstSlots {
		if s.Start != next || s.End < s.Start {
			t.Fatalf("CLUSTER SLOTS range %d-%d after slot %d", s.Start, s.End, next-1)
		}
		// The primary, then RF-1 replicas, all distinct.
		rf := c.Nodes[0].ClusterConfig.Replicas
		if len(s.Nodes) != rf || len(s.Nodes[0].ID) != 40 || s.Nodes[0].ID == s.Nodes[rf-1].ID {
			t.Fatalf("range %d-%d nodes %+v, want %d", s.Start, s.End, s.Nodes, rf)
		}
		for slot := s.Start; slot <= s.End; slot++ {
			owner[slot] = s.Nodes[0].Addr
		}
		next = s.End + 1
	}
	if next != cluster.SlotCount {
		t.Fatalf("CLUSTER SLOTS covers up to %d", next)
	}
	// SHARDS and NODES give the same owners.
	shardOwner := make([]string, cluster.SlotCount)
	for _, sh := range firstShards {
		for _, r := range sh.Slots {
			for slot := r.Start; slot <= r.End; slot++ {
				shardOwner[slot] = fmt.Sprintf("%s:%d", sh.Nodes[0].IP, sh.Nodes[0].Port)
			}
		}
	}
	if !reflect.DeepEqual(shardOwner, owner) {
		t.Error("CLUSTER SHARDS disagrees with CLUSTER SLOTS")
	}
	nodeOwner := make([]string, cluster.SlotCount)
	masters := 0
	for _, line := range strings.Split(strings.TrimSpace(firstNodes), "\n") {
		f := strings.Fields(line)
		if f[2] != "master" || f[7] != "connected" {
			t.Fatalf("CLUSTER NODES line %q", line)
		}
		masters++
		addr := strings.Split(f[1], "@")[0]
		for _, r := range f[8:] {
			lo, hi, _ := strings.Cut(r, "-")
			if hi == "" {
				hi = lo
			}
			a, _ := strconv.Atoi(lo)
			b, _ := strconv.Atoi(hi)
			for slot := a; slot <= b; slot++ {
				nodeOwner[slot] = addr
			}
		}
	}
	if masters != 3 || !reflect.DeepEqual(nodeOwner, owner) {
		t.Errorf("CLUSTER NODES: %d masters, owners agree with SLOTS: %v", masters, reflect.DeepEqual(nodeOwner, owner))
	}

	// KEYSLOT matches the client-side hash, and each key is served only by
	// the owner of its slot: the others redirect a connection that follows
	// redirects (it asked for the topology) there, and forward for one
	// that does not.
	for _, key := range []string{"somekey", "foo{hash_tag}", "foo", "user:42"} {
		if err := c.Nodes[0].Client().Set(ctx, key, "v", 0).Err(); err != nil {
			t.Fatalf("SET %s through node 0: %v", key, err)
		}
		slot, err := c.Nodes[1].Client().ClusterKeySlot(ctx, key).Result()
		if err != nil || slot != int64(cluster.KeySlot([]byte(key))) {
			t.Fatalf("CLUSTER KEYSLOT %s = %d, %v", key, slot, err)
		}
		for _, n := range c.Nodes {
			follower := n.Client().Conn()
			if err := follower.ClusterSlots(ctx).Err(); err != nil {
				t.Fatal(err)
			}
			err := follower.Set(ctx, key, "v", 0).Err()
			if n.Addr == owner[slot] {
				if err != nil {
					t.Fatalf("owner %s refused %s: %v", n.Addr, key, err)
				}
				continue
			}
			want := fmt.Sprintf("MOVED %d %s", slot, owner[slot])
			if err == nil || err.Error() != want {
				t.Fatalf("non-owner %s for %s: err %v, want %q", n.Addr, key, err, want)
			}
			if v, err := n.Client().Get(ctx, key).Result(); err != nil || v != "v" {
				t.Fatalf("non-owner %s, for a plain client, GET %s = %q, %v; want it forwarded", n.Addr, key, v, err)
			}
		}
	}
	info, err := c.Nodes[2].Client().ClusterInfo(ctx).Result()
	if err != nil || !strings.Contains(info, "cluster_state:ok") || !strings.Contains(info, "cluster_known_nodes:3") {
		t.Fatalf("CLUSTER INFO = %q, %v", info, err)
	}
}

// TestClusterClient drives 3- and 5-node clusters with go-redis's cluster
// client: 10,000 keys spread over every node, multi-key commands with hash
// tags, and CROSSSLOT without them.
func TestClusterClient(t *testing.T) {
	for _, size := range []int{3, 5} {
		t.Run(strconv.Itoa(size), func(t *testing.T) {
			c := servertest.StartCluster(t, size)
			ctx := servertest.Ctx(t)
			rdb := c.Client()
			const keys = 10000
			pipe := rdb.Pipeline()
			for i := range keys {
				pipe.Set(ctx, "key:"+strconv.Itoa(i), i, 0)
			}
			if _, err := pipe.Exec(ctx); err != nil {
				t.Fatal(err)
			}
			pipe = rdb.Pipeline()
			gets := make([]*redis.StringCmd, keys)
			for i := range keys {
				gets[i] = pipe.Get(ctx, "key:"+strconv.Itoa(i))
			}
			if _, err := pipe.Exec(ctx); err != nil {
				t.Fatal(err)
			}
			for i, g := range gets {
				if g.Val() != strconv.Itoa(i) {
					t.Fatalf("key:%d = %q", i, g.Val())
				}
			}
			// Every node holds a share of the keys, and each key is on
			// exactly RF nodes.
			var total int64
			for _, n := range c.Nodes {
				size := n.Store.Len()
				if size == 0 {
					t.Errorf("node %s holds no keys", n.Addr)
				}
				total += size
			}
			if rf := int64(c.Nodes[0].ClusterConfig.Replicas); total != keys*rf {
				t.Errorf("nodes hold %d keys in all, want %d (RF %d)", total, keys*rf, rf)
			}
			// DBSIZE, KEYS and SCAN show a node's primary slots, as on a
			// Redis Cluster master: summed over the nodes, each key once.
			var dbsize, listed int64
			for _, n := range c.Nodes {
				dbsize += n.Client().DBSize(ctx).Val()
				listed += int64(len(n.Client().Keys(ctx, "key:*").Val()))
			}
			if dbsize != keys || listed != keys {
				t.Errorf("DBSIZE sums to %d and KEYS lists %d over the nodes, want %d", dbsize, listed, keys)
			}
			if err := rdb.MSet(ctx, "{user:1}:name", "ann", "{user:1}:age", "33").Err(); err != nil {
				t.Fatal(err)
			}
			vals, err := rdb.MGet(ctx, "{user:1}:name", "{user:1}:age").Result()
			if err != nil || !reflect.DeepEqual(vals, []any{"ann", "33"}) {
				t.Fatalf("MGET with hash tag = %v, %v", vals, err)
			}
			// The connection that asked for the topology gets CROSSSLOT, as
			// from Redis Cluster; the cluster client's others (it asks on
			// one) are served, split by node.
			follower := c.Nodes[0].Client().Conn()
			if err := follower.ClusterSlots(ctx).Err(); err != nil {
				t.Fatal(err)
			}
			err = follower.Do(ctx, "MSET", "a", "1", "b", "2").Err()
			if err == nil || err.Error() != "CROSSSLOT Keys in request don't hash to the same slot" {
				t.Fatalf("MSET across slots after CLUSTER SLOTS: %v", err)
			}
		})
	}
}

// TestClusterRedisCLI uses redis-cli -c and plain redis-cli against every
// node, and redis-cli after CLUSTER SLOTS for the exact MOVED text.
func TestClusterRedisCLI(t *testing.T) {
	c := servertest.StartCluster(t, 3)
	for i, n := range c.Nodes {
		port := strconv.Itoa(n.Config.Port)
		for j := range 20 {
			key := fmt.Sprintf("cli:%d:%d", i, j)
			if out := strings.TrimSpace(runTool(t, nil, "redis-cli", "-c", "-p", port, "set", key, key)); out != "OK" {
				t.Fatalf("redis-cli -c -p %s set %s: %q", port, key, out)
			}
			if out := strings.TrimSpace(runTool(t, nil, "redis-cli", "-c", "-p", port, "get", key)); out != key {
				t.Fatalf("redis-cli -c -p %s get %s: %q", port, key, out)
			}
		}
	}
	// Without -c, any node answers for any key.
	for _, n := range c.Nodes {
		for i := range 3 {
			for j := range 20 {
				key := fmt.Sprintf("cli:%d:%d", i, j)
				if out := strings.TrimSpace(runTool(t, nil, "redis-cli", "-p", strconv.Itoa(n.Config.Port), "get", key)); out != key {
					t.Fatalf("redis-cli -p %d get %s: %q", n.Config.Port, key, out)
				}
			}
		}
	}
	// Find a key node 0 does not own: after CLUSTER SLOTS, on the same
	// connection, redis-cli gets the redirect.
	ring := c.Nodes[0].Cluster.Ring()
	for i := 0; ; i++ {
		key := "user:" + strconv.Itoa(i)
		slot := cluster.KeySlot([]byte(key))
		owner := ring.Owner(slot)
		if owner.ID == c.Nodes[0].Cluster.Self().ID {
			continue
		}
		out := runTool(t, []byte("cluster myid\nget "+key+"\n"), "redis-cli", "-p", strconv.Itoa(c.Nodes[0].Config.Port))
		if want := fmt.Sprintf("MOVED %d %s", slot, owner.Addr); !strings.Contains(out, want) {
			t.Logf("(CLUSTER MYID does not count as asking for the topology: %q)", out)
		}
		out = strings.TrimSpace(runTool(t, []byte("cluster slots\nget "+key+"\n"), "redis-cli", "-p", strconv.Itoa(c.Nodes[0].Config.Port)))
		lines := strings.Split(out, "\n")
		if want := fmt.Sprintf("MOVED %d %s", slot, owner.Addr); lines[len(lines)-1] != want {
			t.Fatalf("redis-cli cluster slots, get %s: last line %q, want %q", key, lines[len(lines)-1], want)
		}
		break
	}
}

// TestClusterRedisBenchmark runs redis-benchmark --cluster against 3 nodes.
func TestClusterRedisBenchmark(t *testing.T) {
	c := servertest.StartCluster(t, 3)
	out := runTool(t, nil, "redis-benchmark", "-p", strconv.Itoa(c.Nodes[1].Config.Port), "--cluster", "-t", "set,get", "-n", "20000", "--csv")
	if strings.Contains(strings.ToLower(out), "error") {
		t.Fatalf("redis-benchmark --cluster reported errors:\n%s", out)
	}
	if !strings.Contains(out, "Cluster has 3 master nodes") || !strings.Contains(out, `"SET"`) || !strings.Contains(out, `"GET"`) {
		t.Fatalf("redis-benchmark --cluster output:\n%s", out)
	}
}

// TestClusterMembershipChanges adds a fourth node, then has it leave, then
// kills one: each time every node converges on the same ring and the
// cluster client keeps working.
func TestClusterMembershipChanges(t *testing.T) {
	c := servertest.StartCluster(t, 3)
	ctx := servertest.Ctx(t)
	rdb := c.Client()
	exercise := func(stage string) {
		t.Helper()
		if stage != "joined" {
			// A client that starts after the change finds the new
			// topology at once; the long-lived one (kept across the join,
			// where MOVED updates it) may hold on to a departed node's
			// address until it refreshes.
			rdb = c.Client()
		}
		// Ownership moved: the client learns it through MOVED, or, for a
		// node that is gone, by reloading the topology after the error (as
		// it does by itself every few seconds).
		for i := range 300 {
			key := fmt.Sprintf("%s:%d", stage, i)
			deadline := time.Now().Add(15 * time.Second)
			for {
				err := rdb.Set(ctx, key, i, 0).Err()
				var v int
				if err == nil {
					v, err = rdb.Get(ctx, key).Int()
				}
				if err == nil && v == i {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("%s: SET/GET %s: %d, %v", stage, key, v, err)
				}
				rdb.ReloadState(ctx)
				time.Sleep(20 * time.Millisecond)
			}
		}
	}
	exercise("before")
	fourth := c.AddNode()
	c.WaitConverged(60 * time.Second)
	if c.Nodes[0].Cluster.Ring().Len() != 4 {
		t.Fatal("ring does not have 4 members")
	}
	exercise("joined")
	c.Leave(fourth)
	c.WaitConverged(60 * time.Second)
	exercise("left")
	c.Kill(c.Nodes[2])
	c.WaitConverged(60 * time.Second)
	if n := c.Nodes[0].Cluster.Ring().Len(); n != 2 {
		t.Fatalf("ring has %d members after a kill, want 2", n)
	}
	exercise("killed")
}

// TestClusterKeyRequired starts a node with the wrong --cluster-key and
// without one: neither is admitted.
func TestClusterKeyRequired(t *testing.T) {
	c := servertest.StartCluster(t, 3)
	for _, key := range []string{"wrong-key", ""} {
		cc := c.NodeConfig()
		cc.SecretKey = key
		cc.JoinTimeout = 2 * time.Second
		_, err := c.TryAddNode(cc)
		if !errors.Is(err, cluster.ErrJoin) {
			t.Fatalf("key %q: join err = %v, want ErrJoin", key, err)
		}
		for _, n := range c.Nodes {
			for _, m := range n.Cluster.Members() {
				if m.ID == cc.NodeID {
					t.Fatalf("node %s admitted the node with key %q", n.Addr, key)
				}
			}
		}
	}
	c.WaitConverged(10 * time.Second)
	if got := c.Nodes[0].Cluster.Ring().Len(); got != 3 {
		t.Fatalf("ring has %d members", got)
	}
}

// TestClusterNodesShowsAFailedNode kills a node and checks what CLUSTER
// NODES says during its grace period: its line flagged fail with its bus
// port, and every node's ranges merged where they touch (the dead node's
// ranges next to the new primary's own).
func TestClusterNodesShowsAFailedNode(t *testing.T) {
	c := servertest.StartClusterWith(t, 3, func(cc *cluster.Config) { cc.GracePeriod = time.Minute })
	ctx := servertest.Ctx(t)
	dead := c.Nodes[2]
	deadID, deadBus := dead.Cluster.Self().ID, dead.Cluster.GossipPort()
	c.Kill(dead)
	rdb := c.Nodes[0].Client()
	var nodes string
	// The failed flag and the hand-over of its slots are two steps, a
	// moment apart: wait for both.
	servertest.Eventually(t, 30*time.Second, "the dead node flagged fail with no slots", func() bool {
		nodes, _ = rdb.ClusterNodes(ctx).Result()
		for _, line := range strings.Split(strings.TrimSpace(nodes), "\n") {
			if f := strings.Fields(line); len(f) >= 8 && f[0] == deadID {
				return strings.Contains(f[2], "fail") && len(f) == 8
			}
		}
		return false
	})
	for _, line := range strings.Split(strings.TrimSpace(nodes), "\n") {
		f := strings.Fields(line)
		if f[0] == deadID {
			if want := fmt.Sprintf("@%d", deadBus); !strings.HasSuffix(f[1], want) {
				t.Errorf("failed node's address %s, want its bus port %s", f[1], want)
			}
			continue
		}
		prevEnd := -2
		for _, rg := range f[8:] {
			lo, hi, _ := strings.Cut(rg, "-")
			start, _ := strconv.Atoi(lo)
			end := start
			if hi != "" {
				end, _ = strconv.Atoi(hi)
			}
			if start == prevEnd+1 {
				t.Fatalf("ranges ending at %d and starting at %d are not merged: %s", prevEnd, start, line)
			}
			prevEnd = end
		}
	}
}

// TestInternalCommandsNeedAuth checks that an unauthenticated client gets
// NOAUTH for ringcache's internal commands too, as for any other.
func TestInternalCommandsNeedAuth(t *testing.T) {
	n := servertest.Start(t, servertest.WithPassword("secret"))
	rdb := n.Client(func(o *redis.Options) { o.Password = "" })
	ctx := servertest.Ctx(t)
	for _, c := range []string{cluster.ApplyCommand, cluster.DigestCommand, cluster.StreamCommand, cluster.InSyncCommand} {
		if err := rdb.Do(ctx, c, "x").Err(); err == nil || !strings.HasPrefix(err.Error(), "NOAUTH") {
			t.Errorf("%s before AUTH: %v, want NOAUTH", c, err)
		}
	}
}

// TestJoinWhileANodeIsDead joins a node while another is dead within its
// grace period: memberlist does not tell the newcomer about the dead node,
// yet it must compute the same ring (the dead node keeps its place), or
// its slot table differs from everyone else's for the whole grace period.
func TestJoinWhileANodeIsDead(t *testing.T) {
	c := servertest.StartClusterWith(t, 3, func(cc *cluster.Config) { cc.GracePeriod = time.Minute })
	ctx := servertest.Ctx(t)
	dead := c.Nodes[2]
	deadID := dead.Cluster.Self().ID
	c.Kill(dead)
	servertest.Eventually(t, 30*time.Second, "the others to declare the node dead", func() bool {
		for _, n := range c.Alive() {
			if n.Cluster.Placement().Alive(deadID) {
				return false
			}
		}
		return true
	})
	joined := c.AddNode()
	servertest.Eventually(t, 30*time.Second, "the new node active, and every node giving the same CLUSTER SLOTS", func() bool {
		if joined.Cluster.Placement().State(joined.Cluster.Self().ID) != cluster.StateActive {
			return false
		}
		var first []redis.ClusterSlot
		for i, n := range c.Alive() {
			slots, err := n.Client().ClusterSlots(ctx).Result()
			if err != nil || (i > 0 && !reflect.DeepEqual(slots, first)) {
				return false
			}
			first = slots
		}
		return true
	})
}
