package main

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"strconv"
	"time"

	"github.com/ringcache/ringcache/bench/harness"
)

// startAttempts is how often a server is started on fresh ports when the
// ones picked were taken meanwhile.
const startAttempts = 3

// deployment is one thing under test: a server or a cluster.
type deployment struct {
	name    string // "redis", "ringcache", "ringcache x3", ...
	nodes   []*harness.Server
	cluster bool // benchmark with --cluster
	masters int  // masters redis-benchmark --cluster must find
}

func (d *deployment) addrs() []string {
	a := make([]string, len(d.nodes))
	for i, n := range d.nodes {
		a[i] = n.Addr()
	}
	return a
}

// stop stops the deployment's processes (the workspace would at the end;
// phases stop theirs early so idle servers do not share the CPU).
func (d *deployment) stop() {
	for _, n := range d.nodes {
		n.Stop(10 * time.Second)
	}
}

// checkAlive returns an error for each node that has died.
func (d *deployment) checkAlive() error {
	for _, n := range d.nodes {
		if err := n.CheckAlive(); err != nil {
			return err
		}
	}
	return nil
}

// startRedis starts one redis-server (RedisArgs, then extra).
func (e *env) startRedis(ctx context.Context, dirName string, extra ...string) (*deployment, error) {
	dir, err := e.ws.Dir(dirName)
	if err != nil {
		return nil, err
	}
	srv, err := e.ws.StartReady(ctx, startAttempts, e.cfg.readyTimeout, func(port int) harness.ServerSpec {
		return harness.ServerSpec{Name: "redis", Path: e.redisBin, Args: append(harness.RedisArgs(port), extra...), Dir: dir, Port: port}
	})
	if err != nil {
		return nil, err
	}
	return &deployment{name: "redis", nodes: []*harness.Server{srv}}, nil
}

// startRedisCluster starts n redis-server nodes in cluster mode, with
// replicas replicas per master, and waits until the cluster is ready.
func (e *env) startRedisCluster(ctx context.Context, dirName string, n, replicas int, extra ...string) (*deployment, error) {
	var nodes []*harness.Server
	var addrs []string
	for i := range n {
		dir, err := e.ws.Dir(filepath.Join(dirName, fmt.Sprintf("node-%d", i+1)))
		if err != nil {
			return nil, err
		}
		srv, err := e.ws.StartReadyPorts(ctx, startAttempts, e.cfg.readyTimeout, 2, func(p []int) harness.ServerSpec {
			return harness.ServerSpec{Name: "redis", Path: e.redisBin, Args: append(harness.RedisClusterArgs(p[0], p[1]), extra...), Dir: dir, Port: p[0], BusPort: p[1]}
		})
		if err != nil {
			return nil, err
		}
		nodes = append(nodes, srv)
		addrs = append(addrs, srv.Addr())
	}
	masters := n / (replicas + 1)
	d := &deployment{name: fmt.Sprintf("Redis Cluster %d masters", masters), nodes: nodes, cluster: true, masters: masters}
	if err := harness.CreateRedisCluster(ctx, e.cliBin, addrs, replicas, e.cfg.readyTimeout); err != nil {
		return nil, err
	}
	var err error
	if replicas == 0 {
		err = harness.WaitCluster(ctx, nodes, e.cfg.readyTimeout)
	} else {
		err = harness.WaitReplicated(ctx, nodes, masters, e.cfg.readyTimeout)
	}
	return d, err
}

// startRingcache starts an n-node ringcache cluster (n may be 1), nodes
// 2..n joining the first, with RF 2 (or -ringcache-args), then flags
// (a phase's own, which win over -ringcache-args), and waits until every
// node lists all of them with slots and, with n > 1, until every node is
// active with its slots in sync on their replicas.
func (e *env) startRingcache(ctx context.Context, dirName string, n int, flags ...string) (*deployment, error) {
	var nodes []*harness.Server
	join := ""
	extra := append(append([]string{"--replication-factor", "2"}, e.rcExtra...), flags...)
	for i := range n {
		dir, err := e.ws.Dir(filepath.Join(dirName, fmt.Sprintf("node-%d", i+1)))
		if err != nil {
			return nil, err
		}
		srv, err := e.ws.StartReadyPorts(ctx, startAttempts, e.cfg.readyTimeout, 2, func(p []int) harness.ServerSpec {
			return harness.ServerSpec{Name: "ringcache", Path: e.rcBin, Args: harness.RingcacheArgs(p[0], p[1], dir, join, extra), Dir: dir, Port: p[0], BusPort: p[1]}
		})
		if err != nil {
			return nil, err
		}
		nodes = append(nodes, srv)
		if join == "" {
			join = net.JoinHostPort("127.0.0.1", strconv.Itoa(srv.Spec.BusPort))
		}
	}
	d := &deployment{name: "ringcache", nodes: nodes}
	if n > 1 {
		d.name = fmt.Sprintf("ringcache %d nodes", n)
		d.cluster, d.masters = true, n
		return d, harness.WaitReplicated(ctx, nodes, 0, e.cfg.readyTimeout)
	}
	return d, harness.WaitCluster(ctx, nodes, e.cfg.readyTimeout)
}
