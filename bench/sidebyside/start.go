package main

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"strconv"

	"github.com/ringcache/ringcache/bench/harness"
)

// startAttempts is how often a server is started on fresh ports when the
// ones picked were taken in the meantime (other test suites may be
// grabbing loopback ports on the same machine).
const startAttempts = 3

// startRedis starts the single redis-server of the default mode.
func startRedis(ctx context.Context, ws *harness.Workspace, cfg *config, bin string, logf func(string, ...any)) ([]*harness.Server, error) {
	dir, err := ws.Dir("redis")
	if err != nil {
		return nil, err
	}
	srv, err := ws.StartReady(ctx, startAttempts, cfg.readyTimeout, func(port int) harness.ServerSpec {
		return harness.ServerSpec{Name: "redis", Path: bin, Args: harness.RedisArgs(port), Dir: dir, Port: port}
	})
	if err != nil {
		return nil, err
	}
	logf("redis-server ready on %s (pid %d)", srv.Addr(), srv.PID())
	return []*harness.Server{srv}, nil
}

// startRingcache starts the single ringcache node of the default mode. It
// is a one-node cluster, so it gets a free gossip port as well.
func startRingcache(ctx context.Context, ws *harness.Workspace, cfg *config, bin string, extra []string, logf func(string, ...any)) ([]*harness.Server, error) {
	dir, err := ws.Dir("ringcache")
	if err != nil {
		return nil, err
	}
	srv, err := ws.StartReadyPorts(ctx, startAttempts, cfg.readyTimeout, 2, func(p []int) harness.ServerSpec {
		return harness.ServerSpec{Name: "ringcache", Path: bin, Args: harness.RingcacheArgs(p[0], p[1], dir, "", extra), Dir: dir, Port: p[0], BusPort: p[1]}
	})
	if err != nil {
		return nil, err
	}
	logf("ringcache ready on %s (pid %d)", srv.Addr(), srv.PID())
	return []*harness.Server{srv}, nil
}

// startRedisCluster starts cfg.nodes redis-server processes in cluster
// mode, each in <workspace>/redis/node-i, makes them one cluster of
// masters with redis-cli --cluster create, and waits until every node
// reports the complete cluster.
func startRedisCluster(ctx context.Context, ws *harness.Workspace, cfg *config, bin, cli string, logf func(string, ...any)) ([]*harness.Server, error) {
	var nodes []*harness.Server
	var addrs []string
	for i := range cfg.nodes {
		dir, err := ws.Dir(filepath.Join("redis", fmt.Sprintf("node-%d", i+1)))
		if err != nil {
			return nil, err
		}
		srv, err := ws.StartReadyPorts(ctx, startAttempts, cfg.readyTimeout, 2, func(p []int) harness.ServerSpec {
			return harness.ServerSpec{Name: "redis", Path: bin, Args: harness.RedisClusterArgs(p[0], p[1]), Dir: dir, Port: p[0], BusPort: p[1]}
		})
		if err != nil {
			return nil, err
		}
		logf("redis-server node %d ready on %s, bus %d (pid %d)", i+1, srv.Addr(), srv.Spec.BusPort, srv.PID())
		nodes = append(nodes, srv)
		addrs = append(addrs, srv.Addr())
	}
	logf("redis-cli --cluster create (%d masters, no replicas)", len(addrs))
	if err := harness.CreateRedisCluster(ctx, cli, addrs, 0, cfg.readyTimeout); err != nil {
		return nil, err
	}
	if err := harness.WaitCluster(ctx, nodes, cfg.readyTimeout); err != nil {
		return nil, err
	}
	logf("Redis Cluster formed: every node reports cluster_state:ok and %d masters covering all slots", len(nodes))
	return nodes, nil
}

// startRingcacheCluster starts cfg.nodes ringcache nodes, each in
// <workspace>/ringcache/node-i, the others joining the first one's gossip
// port, and waits until every node knows all of them and lists them in
// CLUSTER NODES with slots.
//
// The nodes start one after the other: each is ready (answers PING) only
// once its ports are bound, so later FreePorts calls cannot hand out a
// port an earlier node is about to take, and the seed node is up before
// anyone joins it.
func startRingcacheCluster(ctx context.Context, ws *harness.Workspace, cfg *config, bin string, extra []string, logf func(string, ...any)) ([]*harness.Server, error) {
	var nodes []*harness.Server
	join := ""
	for i := range cfg.nodes {
		dir, err := ws.Dir(filepath.Join("ringcache", fmt.Sprintf("node-%d", i+1)))
		if err != nil {
			return nil, err
		}
		srv, err := ws.StartReadyPorts(ctx, startAttempts, cfg.readyTimeout, 2, func(p []int) harness.ServerSpec {
			return harness.ServerSpec{Name: "ringcache", Path: bin, Args: harness.RingcacheArgs(p[0], p[1], dir, join, extra), Dir: dir, Port: p[0], BusPort: p[1]}
		})
		if err != nil {
			return nil, err
		}
		logf("ringcache node %d ready on %s, gossip %d (pid %d)", i+1, srv.Addr(), srv.Spec.BusPort, srv.PID())
		nodes = append(nodes, srv)
		if join == "" {
			join = net.JoinHostPort("127.0.0.1", strconv.Itoa(srv.Spec.BusPort))
		}
	}
	if err := harness.WaitCluster(ctx, nodes, cfg.readyTimeout); err != nil {
		return nil, err
	}
	logf("ringcache cluster formed: every node knows %d nodes and lists them with all slots", len(nodes))
	return nodes, nil
}
