package server_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/ringcache/ringcache/cluster"
	"github.com/ringcache/ringcache/server/servertest"
	"github.com/ringcache/ringcache/storage"
)

// primaryAndReplica returns the primary and the first replica of key's slot.
func primaryAndReplica(t *testing.T, c *servertest.Cluster, key string) (*servertest.Node, *servertest.Node) {
	t.Helper()
	nodes := c.Nodes[0].Cluster.Ring().Preference(cluster.KeySlot([]byte(key)))
	if len(nodes) < 2 {
		t.Fatalf("slot of %q has nodes %v", key, nodes)
	}
	byAddr := map[string]*servertest.Node{}
	for _, n := range c.Nodes {
		byAddr[n.Addr] = n
	}
	return byAddr[nodes[0].Addr], byAddr[nodes[1].Addr]
}

// TestWritesReachReplicas checks the synchronous path: once SET answers,
// the replica holds the key (read with READONLY, as cluster clients read
// from replicas), WAIT counts it, a replica redirects a plain client to the
// primary, and a DEL removes the key there too.
func TestWritesReachReplicas(t *testing.T) {
	c := servertest.StartCluster(t, 3)
	ctx := servertest.Ctx(t)
	for _, n := range c.Nodes {
		if info := n.Client().Info(ctx, "replication").Val(); !strings.Contains(info, "ringcache_in_sync_replicas:2") {
			t.Fatalf("converged, yet INFO replication says:\n%s", info)
		}
	}
	for i := range 50 {
		key := fmt.Sprintf("k%d", i)
		primary, replica := primaryAndReplica(t, c, key)
		p := primary.Client()
		if err := p.Set(ctx, key, "v", 0).Err(); err != nil {
			t.Fatal(err)
		}
		if n, err := p.Do(ctx, "WAIT", 1, 0).Int(); err != nil || n != 1 {
			t.Fatalf("WAIT after a write = %d, %v; want 1", n, err)
		}
		r := replica.Client()
		if v, err := r.Get(ctx, key).Result(); err != nil || v != "v" {
			t.Fatalf("replica without READONLY: GET %s = %q, %v; want it forwarded to the primary", key, v, err)
		}
		// One connection, so READONLY applies to the GET after it.
		conn := r.Conn()
		if err := conn.ReadOnly(ctx).Err(); err != nil {
			t.Fatal(err)
		}
		if v, err := conn.Get(ctx, key).Result(); err != nil || v != "v" {
			t.Fatalf("replica GET %s = %q, %v", key, v, err)
		}
		if err := p.Del(ctx, key).Err(); err != nil {
			t.Fatal(err)
		}
		if err := conn.Get(ctx, key).Err(); err != redis.Nil {
			t.Fatalf("replica GET %s after DEL: %v, want nil", key, err)
		}
		conn.Close()
	}
}

// TestInternalCommandsRefused checks that clients cannot use the
// node-to-node commands, and that the handshake needs the cluster key.
func TestInternalCommandsRefused(t *testing.T) {
	c := servertest.StartCluster(t, 2)
	ctx := servertest.Ctx(t)
	rdb := c.Nodes[0].Client()
	for _, cmd := range [][]any{
		{cluster.ApplyCommand, "x"},
		{cluster.DigestCommand, ""},
		{cluster.StreamCommand, "0"},
		{cluster.InSyncCommand, "x"},
		{cluster.StateCommand, "x"},
	} {
		err := rdb.Do(ctx, cmd...).Err()
		if err == nil || !strings.HasPrefix(err.Error(), "NOPERM ") {
			t.Errorf("%v from a client: %v, want NOPERM", cmd, err)
		}
	}
	conn := rdb.Conn()
	defer conn.Close()
	nonce, err := conn.Do(ctx, cluster.PeerCommand).Text()
	if err != nil || nonce == "" {
		t.Fatalf("handshake nonce: %q, %v", nonce, err)
	}
	id := cluster.NewNodeID()
	if err := conn.Do(ctx, cluster.PeerCommand, id, cluster.PeerProof("wrong key", nonce, id)).Err(); err == nil {
		t.Fatal("handshake with the wrong key accepted")
	}
	if err := conn.Do(ctx, cluster.ApplyCommand, "x").Err(); err == nil || !strings.HasPrefix(err.Error(), "NOPERM ") {
		t.Fatalf("apply after a failed handshake: %v", err)
	}
	nonce, _ = conn.Do(ctx, cluster.PeerCommand).Text()
	if err := conn.Do(ctx, cluster.PeerCommand, id, cluster.PeerProof(c.Key, nonce, id)).Err(); err != nil {
		t.Fatalf("handshake with the right key: %v", err)
	}
	// A peer gets the batch checked, not refused.
	if err := conn.Do(ctx, cluster.ApplyCommand, "x").Err(); err == nil || strings.HasPrefix(err.Error(), "NOPERM") {
		t.Fatalf("malformed batch from a peer: %v, want a decode error", err)
	}
}

// TestFlushAllInCluster checks that FLUSHALL on every node empties every
// copy: each node flushes the slots it is primary of, replicas included.
func TestFlushAllInCluster(t *testing.T) {
	c := servertest.StartCluster(t, 3)
	ctx := servertest.Ctx(t)
	rdb := c.Client()
	for i := range 500 {
		if err := rdb.Set(ctx, fmt.Sprintf("k%d", i), i, 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range c.Nodes {
		if err := n.Client().FlushAll(ctx).Err(); err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range c.Nodes {
		if got := n.Store.Len(); got != 0 {
			t.Errorf("node %s holds %d keys after FLUSHALL everywhere", n.Addr, got)
		}
	}
}

// TestGraceExpiryRebuildsCopies kills a node and checks that, once its
// grace period is over, every slot has RF copies again on the survivors:
// each key is on both nodes CLUSTER SLOTS lists for it.
func TestGraceExpiryRebuildsCopies(t *testing.T) {
	c := servertest.StartCluster(t, 3)
	ctx := servertest.Ctx(t)
	rdb := c.Client()
	const keys = 2000
	for i := range keys {
		if err := rdb.Set(ctx, fmt.Sprintf("k%d", i), i, 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
	start := time.Now()
	c.Kill(c.Nodes[2])
	c.WaitConverged(30 * time.Second) // The grace period (2 s in tests) is over.
	t.Logf("converged %v", time.Since(start))
	servertest.Eventually(t, 30*time.Second, "every key on both survivors", func() bool {
		for _, n := range c.Alive() {
			if n.Store.Len() != keys {
				t.Logf("%s %d", n.Addr, n.Store.Len())
				return false
			}
		}
		return true
	})
	for _, n := range c.Alive() {
		for i := range keys {
			k := fmt.Sprintf("k%d", i)
			if v, ok, _ := n.Store.Get(cluster.KeySlot([]byte(k)), []byte(k)); !ok || string(v.Value) != fmt.Sprint(i) {
				t.Fatalf("node %s: %s = %q, %v", n.Addr, k, v.Value, ok)
			}
		}
	}
}

// TestTakeoverMergesSurvivingReplicas checks the merge before a failover:
// with RF 3, a state that only the third node holds (as if the second had
// missed it) is what the new primary serves once the primary dies.
func TestTakeoverMergesSurvivingReplicas(t *testing.T) {
	c := servertest.StartClusterRF(t, 3, 3)
	ctx := servertest.Ctx(t)
	const key = "merge-me"
	slot := cluster.KeySlot([]byte(key))
	pref := c.Nodes[0].Cluster.Ring().Preference(slot)
	if len(pref) != 3 {
		t.Fatalf("slot %d has %d nodes, want 3", slot, len(pref))
	}
	byID := map[string]*servertest.Node{}
	for _, n := range c.Nodes {
		byID[n.Cluster.Self().ID] = n
	}
	primary := byID[pref[0].ID]
	if err := primary.Client().Set(ctx, key, "old", 0).Err(); err != nil {
		t.Fatal(err)
	}
	// A newer state, written on the primary's store directly so that it
	// is not replicated.
	var newest storage.Mutation
	err := primary.Store.Do(func(tx *storage.Tx) {
		tx.Set(slot, []byte(key), []byte("newest"), 0)
		newest = tx.Mutations()[0]
		newest.Key = append([]byte(nil), newest.Key...)
		newest.Rec.Value = append([]byte(nil), newest.Rec.Value...)
	})
	if err != nil {
		t.Fatal(err)
	}
	// The ring's order says who takes over: the second of the list. Only
	// the third gets the newest state.
	if err := byID[pref[2].ID].Store.Do(func(tx *storage.Tx) { tx.Apply(newest) }); err != nil {
		t.Fatal(err)
	}
	c.Kill(primary)
	// The first answer the new primary gives (not MOVED, not TRYAGAIN)
	// must already be the merged state.
	next := byID[pref[1].ID].Client()
	var v string
	servertest.Eventually(t, 30*time.Second, "the new primary to serve the slot", func() bool {
		var err error
		v, err = next.Get(ctx, key).Result()
		return err == nil
	})
	if v != "newest" {
		t.Fatalf("the new primary's first answer: %q, want the state merged from the other replica", v)
	}
}
