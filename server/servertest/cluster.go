package servertest

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/ringcache/ringcache/cluster"
)

// Cluster is a test cluster of in-process nodes on loopback.
type Cluster struct {
	t     testing.TB
	Nodes []*Node
	// Key is the shared --cluster-key of the nodes.
	Key string
	// Replicas is the replication factor of the nodes (0: the default).
	Replicas int
	// Configure, if set, adjusts every node's membership configuration.
	Configure func(*cluster.Config)
}

// FastGossip returns membership settings with failure detection within a
// second or so, so topology tests converge quickly, yet slack enough that a
// loaded 2-core machine does not make healthy nodes look dead.
func FastGossip() cluster.Config {
	cc := cluster.DefaultConfig()
	cc.BindIP = "127.0.0.1"
	cc.ProbeInterval = 400 * time.Millisecond
	cc.ProbeTimeout = 300 * time.Millisecond
	cc.GossipInterval = 30 * time.Millisecond
	cc.SuspicionMult = 4
	cc.JoinTimeout = 10 * time.Second
	// Short, so that tests of a dead node see the ring without it soon.
	cc.GracePeriod = 2 * time.Second
	cc.Logger = TestLogger()
	return cc
}

// StartCluster starts n nodes that form one cluster and waits until every
// node agrees on a ring of all n.
func StartCluster(t testing.TB, n int, opts ...Option) *Cluster {
	t.Helper()
	return StartClusterRF(t, n, 0, opts...)
}

// StartClusterRF is StartCluster with replication factor rf.
func StartClusterRF(t testing.TB, n, rf int, opts ...Option) *Cluster {
	t.Helper()
	return StartClusterWith(t, n, func(cc *cluster.Config) {
		if rf > 0 {
			cc.Replicas = rf
		}
	}, opts...)
}

// StartClusterWith is StartCluster with every node's membership
// configuration adjusted by configure.
func StartClusterWith(t testing.TB, n int, configure func(*cluster.Config), opts ...Option) *Cluster {
	t.Helper()
	c := &Cluster{t: t, Key: "test-cluster-key", Configure: configure}
	for range n {
		c.AddNode(opts...)
	}
	c.WaitConverged(60 * time.Second)
	return c
}

// NodeConfig returns the membership configuration the next node of c would
// start with: joining the first node, with the cluster's key.
func (c *Cluster) NodeConfig() cluster.Config {
	cc := FastGossip()
	cc.NodeID = cluster.NewNodeID()
	cc.SecretKey = c.Key
	if c.Replicas > 0 {
		cc.Replicas = c.Replicas
	}
	if c.Configure != nil {
		c.Configure(&cc)
	}
	for _, n := range c.Nodes {
		if !n.closed {
			cc.Join = []string{"127.0.0.1:" + strconv.Itoa(n.Cluster.GossipPort())}
			break
		}
	}
	return cc
}

// AddNode starts one more node that joins the cluster; it does not wait for
// the cluster to converge.
func (c *Cluster) AddNode(opts ...Option) *Node {
	c.t.Helper()
	n, err := c.TryAddNode(c.NodeConfig(), opts...)
	if err != nil {
		c.t.Fatal(err)
	}
	return n
}

// TryAddNode starts a node with membership configuration cc and reports
// an error (such as a refused join) instead of failing the test.
func (c *Cluster) TryAddNode(cc cluster.Config, opts ...Option) (*Node, error) {
	c.t.Helper()
	n := newNode(c.t, opts...)
	n.ClusterConfig = cc
	if err := n.startErr(); err != nil {
		return nil, err
	}
	c.t.Cleanup(n.Close)
	c.Nodes = append(c.Nodes, n)
	return n, nil
}

// Alive returns the nodes not stopped.
func (c *Cluster) Alive() []*Node {
	var out []*Node
	for _, n := range c.Nodes {
		if !n.closed {
			out = append(out, n)
		}
	}
	return out
}

// Kill stops a node without a goodbye, as a crash looks to the others.
func (c *Cluster) Kill(n *Node) { n.Close() }

// Leave stops a node as SIGTERM does: it hands its slots over, then
// announces that it leaves.
func (c *Cluster) Leave(n *Node) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := n.Replicator.Leave(ctx); err != nil {
		c.t.Errorf("handoff: %v", err)
	}
	if err := n.Cluster.Leave(2 * time.Second); err != nil {
		c.t.Logf("leave: %v", err)
	}
	n.Close()
}

// Converged reports whether every alive node is active, its ring has
// exactly the alive nodes as members, and its replicas are in sync.
func (c *Cluster) Converged() bool {
	var want []string
	alive := c.Alive()
	for _, n := range alive {
		want = append(want, n.Cluster.Self().ID)
	}
	slices.Sort(want)
	for _, n := range alive {
		p := n.Cluster.Placement()
		if !n.Replicator.AllInSync() {
			return false
		}
		for _, m := range alive {
			id := m.Cluster.Self().ID
			if !p.Alive(id) || p.State(id) != cluster.StateActive {
				return false
			}
		}
		var got []string
		for _, m := range n.Cluster.Ring().Members() {
			got = append(got, m.ID)
		}
		if !slices.Equal(got, want) {
			return false
		}
	}
	return true
}

// WaitConverged waits until Converged, failing the test after timeout.
func (c *Cluster) WaitConverged(timeout time.Duration) {
	c.t.Helper()
	Eventually(c.t, timeout, fmt.Sprintf("%d nodes to agree on the ring", len(c.Alive())), c.Converged)
}

// Addrs are the RESP addresses of the alive nodes.
func (c *Cluster) Addrs() []string {
	var out []string
	for _, n := range c.Alive() {
		out = append(out, n.Addr)
	}
	return out
}

// Client returns a go-redis cluster client seeded with every alive node,
// closed at the test's end.
func (c *Cluster) Client(opts ...func(*redis.ClusterOptions)) *redis.ClusterClient {
	o := &redis.ClusterOptions{Addrs: c.Addrs(), MaxRedirects: 16}
	for _, fn := range opts {
		fn(o)
	}
	cc := redis.NewClusterClient(o)
	c.t.Cleanup(func() { cc.Close() })
	return cc
}
