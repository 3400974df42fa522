// Command ringcache runs one ringcache node: a Redis-protocol cache server
// whose data lives in Badger.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	_ "net/http/pprof" // served only with --pprof
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/ringcache/ringcache/cluster"
	"github.com/ringcache/ringcache/server"
	"github.com/ringcache/ringcache/storage"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "ringcache:", err)
		os.Exit(1)
	}
}

// memFlag is a flag holding a byte size written as Redis writes memory
// values (512mb, 64kb, 1gb, or plain bytes).
type memFlag struct{ n *int64 }

func (m memFlag) String() string {
	switch {
	case m.n == nil:
		return ""
	case *m.n < 0:
		return "auto"
	}
	return fmt.Sprint(*m.n)
}

func (m memFlag) Set(s string) error {
	if s == "auto" {
		*m.n = -1
		return nil
	}
	n, err := server.ParseMemory(s)
	if err != nil {
		return err
	}
	*m.n = n
	return nil
}

func run(args []string) error {
	cfg := server.DefaultConfig()
	sto := storage.DefaultOptions()
	fs := flag.NewFlagSet("ringcache", flag.ContinueOnError)
	fs.StringVar(&cfg.Bind, "bind", cfg.Bind, "address to listen on for clients")
	fs.IntVar(&cfg.Port, "port", cfg.Port, "RESP port for clients")
	fs.StringVar(&cfg.Dir, "dir", cfg.Dir, "data directory (Badger files)")
	fs.BoolVar(&cfg.InMemory, "in-memory", false, "keep data in memory only: a pure cache, nothing on disk")
	fs.StringVar(&cfg.RequirePass, "requirepass", "", "password clients must AUTH with (empty: none)")
	fs.IntVar(&cfg.MaxClients, "maxclients", cfg.MaxClients, "maximum simultaneous client connections")
	fs.Var(memFlag{&cfg.ProtoMaxBulkLen}, "proto-max-bulk-len", "largest bulk string a client may send (e.g. 512mb)")
	fs.StringVar(&cfg.Redirects, "redirects", cfg.Redirects, "a command for a slot held elsewhere: auto (MOVED to cluster clients, forwarded for the others), moved (always MOVED, as Redis Cluster), forward (always forwarded)")
	fs.StringVar(&cfg.NotifyKeyspaceEvents, "notify-keyspace-events", cfg.NotifyKeyspaceEvents, "keyspace notifications to publish, as Redis's letters: K and/or E (the channel families) with the classes g$lshzxetdmn, A for g$lshzxetd (e.g. KEA, Ex); empty: none")
	fs.StringVar(&cfg.AppendFsync, "appendfsync", cfg.AppendFsync, "when to fsync writes: no (leave it to the OS), everysec, always")
	fs.Var(memFlag{&sto.MemTableSize}, "memtable-size", "Badger memtable size (e.g. 64mb)")
	fs.Var(memFlag{&sto.BlockCacheSize}, "block-cache-size", "Badger block cache size (e.g. 64mb)")
	fs.Var(memFlag{&sto.IndexCacheSize}, "index-cache-size", "Badger index cache size (0: keep indexes in memory)")
	fs.DurationVar(&sto.PersistInterval, "persist-interval", sto.PersistInterval, "least time between two writes of acknowledged writes to Badger (negative: back to back); longer coalesces more writes to hot keys")
	fs.Var(memFlag{&sto.MaxUnpersisted}, "max-unpersisted", "acknowledged writes not yet in Badger beyond which writes wait (e.g. 64mb)")
	sto.Memory.MaxMemory = storage.SystemMemory() / 4 * 3
	fs.Var(memFlag{&sto.Memory.MaxMemory}, "maxmemory", "memory limit for the keyspace and write buffers (e.g. 2gb; 0: none); default 3/4 of the machine's or cgroup's memory")
	policy := fs.String("maxmemory-policy", sto.Memory.Policy.String(), "what to evict at maxmemory: noeviction, allkeys-lru, allkeys-lfu, allkeys-random, volatile-lru, volatile-lfu, volatile-random, volatile-ttl (caches: allkeys-lru or allkeys-lfu)")
	fs.IntVar(&sto.Memory.Samples, "maxmemory-samples", sto.Memory.Samples, "keys each eviction compares (more: closer to exact LRU/LFU, more CPU)")
	fs.IntVar(&sto.Memory.LFULogFactor, "lfu-log-factor", sto.Memory.LFULogFactor, "LFU counter growth: higher needs more hits to count up")
	fs.IntVar(&sto.Memory.LFUDecayTime, "lfu-decay-time", sto.Memory.LFUDecayTime, "minutes after which an idle key's LFU counter is decremented (0: never)")
	goMemLimit := int64(-1)
	fs.Var(memFlag{&goMemLimit}, "go-memory-limit", "soft limit of the Go heap, which holds everything but the keyspace (auto: 128mb plus Badger's buffers; GOMEMLIMIT overrides)")
	configFile := fs.String("config", "", "a config file of 'name value' lines (as redis.conf: maxmemory 2gb); flags on the command line win")
	cc := cluster.DefaultConfig()
	clusterPort := fs.Int("cluster-port", 0, "gossip port (TCP and UDP); default: port+10000, as Redis's cluster bus")
	join := fs.String("join", "", "comma-separated gossip addresses (host:port) of nodes to join; retried until one answers")
	fs.DurationVar(&cc.JoinTimeout, "join-timeout", cc.JoinTimeout, "give up joining after this long")
	fs.StringVar(&cc.AnnounceIP, "announce-ip", "", "IP announced to other nodes and clients (default: --bind, or the first private address when bound to all)")
	fs.StringVar(&cc.SecretKey, "cluster-key", "", "shared secret: gossip is encrypted and authenticated; nodes with another key cannot join")
	fs.IntVar(&cc.VNodes, "vnodes", cc.VNodes, "ring tokens per node (see README: balance vs. ring size)")
	fs.DurationVar(&cc.ProbeInterval, "probe-interval", cc.ProbeInterval, "failure detection: interval between probes of a random node")
	fs.DurationVar(&cc.ProbeTimeout, "probe-timeout", cc.ProbeTimeout, "failure detection: how long to wait for a probe's ack")
	fs.DurationVar(&cc.GossipInterval, "gossip-interval", cc.GossipInterval, "interval between gossip rounds")
	fs.IntVar(&cc.SuspicionMult, "suspicion-mult", cc.SuspicionMult, "failure detection: suspicion timeout multiplier")
	fs.IntVar(&cc.Replicas, "replication-factor", cc.Replicas, "copies of every key (the primary and RF-1 replicas)")
	fs.DurationVar(&cc.GracePeriod, "grace-period", cc.GracePeriod, "how long a failed node keeps its place on the ring (a restart within it is a catch-up)")
	rc := cluster.DefaultReplConfig()
	fs.IntVar(&rc.MinReplicas, "min-replicas", 0, "refuse writes (NOREPLICAS) to slots with fewer in-sync replicas than this, as Redis's min-replicas-to-write")
	fs.DurationVar(&rc.Timeout, "repl-timeout", rc.Timeout, "a replica that does not acknowledge a write within this leaves the in-sync set")
	fs.Var(memFlag{&rc.SyncRate}, "sync-rate", "bytes per second for catch-up and handoff streams (0: unlimited)")
	fs.DurationVar(&rc.AntiEntropyInterval, "anti-entropy-interval", rc.AntiEntropyInterval, "how often primaries compare slot digests with their in-sync replicas")
	leaveTimeout := fs.Duration("leave-timeout", 2*time.Minute, "on SIGTERM, how long to wait for the new owners to take this node's slots before exiting anyway")
	logLevel := fs.String("log-level", "info", "log level: debug, info, warn, error")
	pprofAddr := fs.String("pprof", "", "serve net/http/pprof on this address (e.g. 127.0.0.1:6060); empty: off")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: ringcache [flags]\n\nA Redis-compatible cache node. Flags:\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if *configFile != "" {
		if err := applyConfigFile(fs, *configFile); err != nil {
			return err
		}
	}
	cfg.ConfigFile = *configFile
	p, err := storage.ParsePolicy(strings.ToLower(*policy))
	if err != nil {
		return fmt.Errorf("--maxmemory-policy: %w", err)
	}
	sto.Memory.Policy = p
	if err := sto.Memory.Validate(); err != nil {
		return err
	}

	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		return fmt.Errorf("--log-level: %w", err)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	slog.SetDefault(log)
	cfg.Logger = log

	sto.Dir = cfg.Dir
	sto.InMemory = cfg.InMemory
	sto.Fsync = storage.FsyncPolicy(strings.ToLower(cfg.AppendFsync))
	sto.Logger = log
	if err := cfg.Validate(); err != nil {
		return err
	}
	if cc.Replicas < 1 || cc.Replicas > 16 {
		return fmt.Errorf("--replication-factor %d: must be 1..16", cc.Replicas)
	}
	if rc.MinReplicas < 0 || rc.MinReplicas >= cc.Replicas && rc.MinReplicas > 0 {
		return fmt.Errorf("--min-replicas %d: must be below --replication-factor %d", rc.MinReplicas, cc.Replicas)
	}

	store, err := storage.Open(sto)
	if err != nil {
		return fmt.Errorf("open storage: %w", err)
	}
	if goMemLimit < 0 {
		goMemLimit = defaultGoMemoryLimit(sto)
	}
	stopGov := make(chan struct{})
	defer close(stopGov)
	governGoMemory(log, goMemLimit, store, stopGov)
	srv, err := server.New(cfg, store)
	if err != nil {
		store.Close()
		return err
	}
	if err := srv.Listen(); err != nil {
		store.Close()
		return err
	}
	cc.Logger = log
	cc.BindIP = cfg.Bind
	cc.RESPPort = srv.Addr().Port
	cc.GossipPort = *clusterPort
	if cc.GossipPort == 0 {
		cc.GossipPort = cc.RESPPort + 10000
		if cc.GossipPort > 65535 {
			srv.Close()
			store.Close()
			return fmt.Errorf("--port %d: the default gossip port (port+10000) exceeds 65535; set --cluster-port", cc.RESPPort)
		}
	}
	if *join != "" {
		cc.Join = strings.Split(*join, ",")
	}
	if cfg.InMemory {
		cc.NodeID = cluster.NewNodeID()
	} else if cc.NodeID, err = cluster.LoadNodeID(cfg.Dir); err != nil {
		store.Close()
		return err
	}
	clu, err := cluster.Start(cc)
	if err != nil {
		srv.Close()
		store.Close()
		return err
	}
	srv.SetTopology(clu)
	repl := cluster.NewReplicator(clu, store, rc)
	srv.SetReplicator(repl)
	if *pprofAddr != "" {
		go func() {
			log.Info("pprof listening", "addr", *pprofAddr)
			if err := http.ListenAndServe(*pprofAddr, nil); err != nil {
				log.Error("pprof", "err", err)
			}
		}()
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve() }()
	log.Info("ringcache ready", "addr", srv.Addr().String(), "maxmemory", sto.Memory.MaxMemory, "maxmemory_policy", sto.Memory.Policy.String(), "gossip_port", clu.GossipPort(), "node_id", cc.NodeID, "dir", cfg.Dir, "in_memory", cfg.InMemory, "keys", store.Len(), "replication_factor", cc.Replicas)
	go func() {
		if err := repl.Join(ctx); err != nil && !errors.Is(err, context.Canceled) {
			log.Error("join", "err", err)
		}
	}()

	select {
	case <-ctx.Done():
		log.Info("shutting down")
	case err := <-serveErr:
		log.Error("server stopped", "err", err)
	}
	// Hand the slots over while still serving (writes keep replicating to
	// the new owners), then say goodbye, so the others drop this node from
	// the ring at once instead of after failure detection.
	leaveCtx, cancel := context.WithTimeout(context.Background(), *leaveTimeout)
	if err := repl.Leave(leaveCtx); err != nil {
		log.Warn("handoff incomplete; leaving anyway", "err", err)
	}
	cancel()
	if err := clu.Leave(2 * time.Second); err != nil {
		log.Warn("leave", "err", err)
	}
	srvErr := srv.Close()
	repl.Close()
	clu.Shutdown()
	if err := store.Close(); err != nil {
		return fmt.Errorf("close storage: %w", err)
	}
	log.Info("bye")
	if srvErr != nil && !errors.Is(srvErr, server.ErrClosed) {
		return srvErr
	}
	return nil
}
