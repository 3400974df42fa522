// Package servertest starts real ringcache nodes for tests: a Badger
// directory in t.TempDir(), a server on a free loopback port, and a go-redis
// client, all closed when the test ends.
package servertest

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/ringcache/ringcache/cluster"
	"github.com/ringcache/ringcache/server"
	"github.com/ringcache/ringcache/storage"
)

// Node is a running ringcache node.
type Node struct {
	t       testing.TB
	Addr    string
	Server  *server.Server
	Store   *storage.Store
	Config  server.Config
	Storage storage.Options
	// Cluster is the node's gossip membership, for nodes of a test cluster.
	Cluster *cluster.Cluster
	// ClusterConfig is the membership configuration it started with.
	ClusterConfig cluster.Config
	// Replicator replicates the node's writes, for nodes of a test cluster.
	Replicator *cluster.Replicator
	// ReplConfig is the replication configuration it starts with.
	ReplConfig cluster.ReplConfig
	closed     bool
}

// Option adjusts a node's configuration before it starts.
type Option func(*server.Config, *storage.Options)

// WithPassword sets requirepass.
func WithPassword(p string) Option {
	return func(c *server.Config, _ *storage.Options) { c.RequirePass = p }
}

// WithDir uses dir for the data instead of a fresh temporary directory.
func WithDir(dir string) Option {
	return func(_ *server.Config, o *storage.Options) { o.Dir = dir }
}

// WithConfig lets a test change anything else.
func WithConfig(fn func(*server.Config, *storage.Options)) Option { return fn }

// Start starts a node on a free loopback port and stops it at the test's end.
func Start(t testing.TB, opts ...Option) *Node {
	t.Helper()
	n := newNode(t, opts...)
	n.start()
	t.Cleanup(n.Close)
	return n
}

// newNode prepares a node's configuration: a free loopback port, a fresh
// data directory, a quiet logger.
func newNode(t testing.TB, opts ...Option) *Node {
	t.Helper()
	cfg := server.DefaultConfig()
	cfg.Port = 0
	cfg.Logger = TestLogger()
	so := storage.DefaultOptions()
	so.Dir = t.TempDir()
	so.Logger = cfg.Logger
	for _, o := range opts {
		o(&cfg, &so)
	}
	cfg.Dir = so.Dir
	return &Node{t: t, Config: cfg, Storage: so}
}

func (n *Node) start() {
	n.t.Helper()
	if err := n.startErr(); err != nil {
		n.t.Fatal(err)
	}
}

// startErr starts the node, joining a cluster when ClusterConfig names a
// node ID, and reports what failed instead of failing the test.
func (n *Node) startErr() error {
	st, err := storage.Open(n.Storage)
	if err != nil {
		return fmt.Errorf("open storage: %w", err)
	}
	srv, err := server.New(n.Config, st)
	if err != nil {
		st.Close()
		return fmt.Errorf("new server: %w", err)
	}
	if err := srv.Listen(); err != nil {
		st.Close()
		return fmt.Errorf("listen: %w", err)
	}
	if n.ClusterConfig.NodeID != "" {
		cc := n.ClusterConfig
		cc.RESPPort = srv.Addr().Port
		clu, err := cluster.Start(cc)
		if err != nil {
			srv.Close()
			st.Close()
			return err
		}
		n.Cluster = clu
		srv.SetTopology(clu)
		n.Replicator = cluster.NewReplicator(clu, st, n.ReplConfig)
		srv.SetReplicator(n.Replicator)
		go n.Replicator.Join(context.Background())
	}
	if err := srv.Start(); err != nil {
		st.Close()
		return fmt.Errorf("start server: %w", err)
	}
	n.Server, n.Store, n.closed = srv, st, false
	n.Addr = srv.Addr().String()
	// Keep the port for restarts, so clients can reconnect.
	n.Config.Port = srv.Addr().Port
	return nil
}

// Close stops the node: server first, then storage. Safe to call twice.
func (n *Node) Close() {
	if n.closed {
		return
	}
	n.closed = true
	if n.Cluster != nil {
		n.Replicator.Close()
		n.Cluster.Shutdown()
	}
	if err := n.Server.Close(); err != nil {
		n.t.Errorf("close server: %v", err)
	}
	if err := n.Store.Close(); err != nil {
		n.t.Errorf("close storage: %v", err)
	}
}

// Restart stops the node and starts it again on the same directory and port.
func (n *Node) Restart() {
	n.t.Helper()
	n.Close()
	n.start()
}

// Client returns a go-redis client for the node, closed at the test's end.
func (n *Node) Client(opts ...func(*redis.Options)) *redis.Client {
	o := &redis.Options{Addr: n.Addr, Password: n.Config.RequirePass, MaxRetries: -1, DialTimeout: 5 * time.Second}
	for _, fn := range opts {
		fn(o)
	}
	c := redis.NewClient(o)
	n.t.Cleanup(func() { c.Close() })
	return c
}

// Eventually polls cond every few milliseconds until it holds or the
// timeout passes, and fails the test then.
func Eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Ctx is a context for test calls, bounded so a hung server fails the test.
func Ctx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// TestLogger is the logger of test nodes: silent, unless the environment
// sets RINGCACHE_TEST_LOGS (then info and above go to stderr; "debug":
// everything).
func TestLogger() *slog.Logger {
	switch os.Getenv("RINGCACHE_TEST_LOGS") {
	case "":
	case "debug":
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	default:
		return slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}
