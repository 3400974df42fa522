// Command suite is `make bench`: in one run on loopback it compares
// ringcache with Redis and writes a report a user can look at.
//
//   - throughput: redis-server vs one ringcache node, and a 3-master Redis
//     Cluster vs a 3-node ringcache cluster (RF 2), with redis-benchmark
//     (-t set,get,incr,mset at -P 1 and 16, 3-byte and 1 KB values),
//     alternating the two sides of each pair round by round;
//   - memory: RSS and used_memory after loading 1M keys (16-byte keys,
//     100-byte values), 3 s after the load and once RSS has settled;
//   - hit ratio: a cache-aside Zipf workload against redis-server and one
//     ringcache node, both at maxmemory 40mb, per eviction policy;
//   - failover: kill -9 of a primary under load until a write to its
//     slots is accepted again, against a 6-node Redis Cluster with
//     replicas at its default node timeout;
//   - clients: the same kill -9 under the writers of go-redis, redis-cli
//     -c, ioredis and redis-py with their default options, until every
//     key of the dead primary's slots takes that client's writes again;
//   - scale: ringcache throughput with 1, 3 and 5 nodes.
//
// Results go to bench/results/<date>/<name>.{md,csv} and SVG charts.
// See bench/README.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ringcache/ringcache/bench/harness"
)

// config holds the parsed flags.
type config struct {
	quick bool

	throughput, memory, failover, scale, hitratio, clientFailover bool

	pairs    []string
	tests    string
	pipes    []int
	sizes    []int
	clients  int
	keyspace int
	rounds   int
	seconds  float64 // target seconds per test, single-node pair
	cseconds float64 // target seconds per test, cluster pairs
	calibN   int
	nodes    int

	keys, keyLen, valueLen int
	settle                 time.Duration // memory: how long RSS is sampled after a load

	hitPolicies          []string
	hitRequests, hitKeys int
	hitValueLen          int
	hitBatch             int
	hitZipf              float64
	hitMaxmemory         string

	trials          int
	clientTrials    int
	nodeModules     string
	redisTimeoutMs  int
	probeInterval   time.Duration
	loadWorkers     int
	rcFailoverLimit time.Duration

	scaleNodes []int
	scaleTests string

	outDir, name string

	ringcacheBin, ringcacheArgs           string
	redisServer, redisBenchmark, redisCLI string
	keep                                  bool
	timeout, readyTimeout                 time.Duration
}

func parseFlags(args []string) (*config, error) {
	fs := flag.NewFlagSet("suite", flag.ContinueOnError)
	c := &config{}
	var pairs, pipes, sizes, scaleNodes, hitPols string
	fs.BoolVar(&c.quick, "quick", false, "smoke run of a minute or two: fewer and shorter runs (explicit flags still win)")
	fs.BoolVar(&c.throughput, "throughput", true, "run the throughput pairs")
	fs.BoolVar(&c.memory, "memory", true, "measure RSS and used_memory after a bulk load")
	fs.BoolVar(&c.failover, "failover", true, "measure failover (takes minutes: a Redis Cluster trial waits out its node timeout)")
	fs.BoolVar(&c.scale, "scale", true, "measure ringcache with 1, 3 and 5 nodes")
	fs.BoolVar(&c.hitratio, "hitratio", true, "measure the hit ratio of a cache-aside Zipf workload at a memory limit")
	fs.StringVar(&pairs, "pairs", "single,cluster", "throughput pairs: single (redis-server vs one node), cluster (Redis Cluster vs ringcache cluster)")
	fs.StringVar(&c.tests, "t", "set,get,incr,mset", "redis-benchmark tests")
	fs.StringVar(&pipes, "P", "1,16", "pipeline depths, comma separated")
	fs.StringVar(&sizes, "d", "3,1024", "value sizes in bytes, comma separated")
	fs.IntVar(&c.clients, "c", 50, "redis-benchmark connections (-c)")
	fs.IntVar(&c.keyspace, "r", 100000, "redis-benchmark random keyspace (-r; per master with --cluster)")
	fs.IntVar(&c.rounds, "rounds", 3, "measured rounds, alternating the two sides of a pair (also for scale)")
	fs.Float64Var(&c.seconds, "seconds", 2.5, "target duration of one test run, single-node pair and 1-node scale runs (sets -n per test from a calibration run)")
	fs.Float64Var(&c.cseconds, "cluster-seconds", 4, "target duration of one test run with --cluster (longer: redis-benchmark's 250ms thread tick biases short runs)")
	fs.IntVar(&c.calibN, "calibrate-n", 20000, "requests per test of the calibration (and warm-up) run")
	fs.IntVar(&c.nodes, "nodes", 3, "nodes per cluster in the cluster pair and the memory phase")
	fs.IntVar(&c.keys, "keys", 1000000, "keys loaded for the memory phase")
	fs.IntVar(&c.keyLen, "key-size", 16, "key size in bytes for the memory phase")
	fs.IntVar(&c.valueLen, "value-size", 100, "value size in bytes for the memory phase")
	fs.DurationVar(&c.settle, "settle", 30*time.Second, "memory phase: sample RSS every second for this long after a load, for the settled figure (at least 8s)")
	fs.StringVar(&hitPols, "hit-policies", "allkeys-lru,allkeys-lfu", "hit-ratio phase: maxmemory policies, comma separated ("+strings.Join(hitPolicies, ", ")+")")
	fs.IntVar(&c.hitRequests, "hit-requests", 3000000, "hit-ratio phase: requests per pass (one warm-up pass, one measured)")
	fs.IntVar(&c.hitKeys, "hit-keys", 1000000, "hit-ratio phase: distinct keys (key:0 .. key:N-1, ranked by popularity)")
	fs.IntVar(&c.hitValueLen, "hit-value-size", 100, "hit-ratio phase: value size in bytes")
	fs.IntVar(&c.hitBatch, "hit-batch", 256, "hit-ratio phase: GETs per pipelined round trip (1: one request at a time, no reordering, much slower)")
	fs.Float64Var(&c.hitZipf, "hit-zipf", 1.01, "hit-ratio phase: Zipf exponent s, P(rank k) proportional to 1/k^s")
	fs.StringVar(&c.hitMaxmemory, "hit-maxmemory", "40mb", "hit-ratio phase: maxmemory of both servers")
	fs.IntVar(&c.trials, "trials", 5, "failover trials per side")
	fs.BoolVar(&c.clientFailover, "client-failover", true, "measure failover as client libraries with default options see it (go-redis, redis-cli -c, ioredis, redis-py)")
	fs.IntVar(&c.clientTrials, "client-trials", 3, "failover trials per client library")
	fs.StringVar(&c.nodeModules, "node-modules", "cmd/ringcache/testdata/node/node_modules", "node_modules folder with ioredis (make node-deps)")
	fs.IntVar(&c.redisTimeoutMs, "redis-node-timeout", 15000, "cluster-node-timeout (ms) of the failover Redis Cluster; 15000 is Redis's default")
	fs.DurationVar(&c.probeInterval, "probe-interval", 10*time.Millisecond, "pause between failover write probes")
	fs.IntVar(&c.loadWorkers, "load-workers", 4, "connections writing in the background during failover")
	fs.DurationVar(&c.rcFailoverLimit, "failover-limit", 60*time.Second, "give up a ringcache failover trial after this long")
	fs.StringVar(&scaleNodes, "scale-nodes", "1,3,5", "ringcache cluster sizes for the scale phase")
	fs.StringVar(&c.scaleTests, "scale-t", "set,get", "redis-benchmark tests of the scale phase (at -P 16, 3-byte values)")
	fs.StringVar(&c.outDir, "out", filepath.Join("bench", "results", time.Now().Format("2006-01-02")), "directory for the report files")
	fs.StringVar(&c.name, "name", "run-"+time.Now().Format("150405"), "base name of the report files (<name>.md, <name>.csv, <name>-*.svg)")
	fs.StringVar(&c.ringcacheBin, "ringcache-bin", "", "ringcache binary (default: build ./cmd/ringcache)")
	fs.StringVar(&c.ringcacheArgs, "ringcache-args", "", "extra ringcache arguments, shell-quoted")
	fs.StringVar(&c.redisServer, "redis-server", "redis-server", "redis-server executable")
	fs.StringVar(&c.redisBenchmark, "redis-benchmark", "redis-benchmark", "redis-benchmark executable")
	fs.StringVar(&c.redisCLI, "redis-cli", "redis-cli", "redis-cli executable")
	fs.BoolVar(&c.keep, "keep", false, "keep the temporary directory with server logs")
	fs.DurationVar(&c.timeout, "timeout", 5*time.Minute, "limit for one redis-benchmark run")
	fs.DurationVar(&c.readyTimeout, "ready-timeout", 60*time.Second, "how long a server or cluster may take to be ready")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: go run ./bench/suite [flags]   (make bench ARGS=\"...\")\n\n"+
			"Throughput, memory, failover, scale and hit ratio of ringcache beside Redis, on loopback.\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if c.quick {
		// Only what the user did not set explicitly.
		quick := map[string]string{
			"P": "16", "d": "3", "rounds": "2", "seconds": "0.5", "cluster-seconds": "1",
			"calibrate-n": "10000", "keys": "100000", "trials": "1", "redis-node-timeout": "2000",
			"scale-nodes": "1,3", "t": "set,get,incr,mset", "settle": "8s", "hit-requests": "300000",
		}
		for name, v := range quick {
			if !set[name] {
				if err := fs.Set(name, v); err != nil {
					return nil, err
				}
			}
		}
		pipes, sizes, scaleNodes = fs.Lookup("P").Value.String(), fs.Lookup("d").Value.String(), fs.Lookup("scale-nodes").Value.String()
		if !set["name"] {
			c.name = "quick-" + time.Now().Format("150405")
		}
	}
	var err error
	if c.pipes, err = intList("P", pipes); err != nil {
		return nil, err
	}
	if c.sizes, err = intList("d", sizes); err != nil {
		return nil, err
	}
	if c.scaleNodes, err = intList("scale-nodes", scaleNodes); err != nil {
		return nil, err
	}
	for _, p := range strings.Split(hitPols, ",") {
		p = strings.TrimSpace(p)
		if !slices.Contains(hitPolicies, p) {
			return nil, fmt.Errorf("-hit-policies: %q is not one of %s", p, strings.Join(hitPolicies, ", "))
		}
		c.hitPolicies = append(c.hitPolicies, p)
	}
	for _, p := range strings.Split(pairs, ",") {
		p = strings.TrimSpace(p)
		if p != "single" && p != "cluster" {
			return nil, fmt.Errorf("-pairs: %q is neither single nor cluster", p)
		}
		c.pairs = append(c.pairs, p)
	}
	return c, c.validate()
}

func (c *config) validate() error {
	for _, f := range []struct {
		name string
		v    int
	}{{"c", c.clients}, {"r", c.keyspace}, {"rounds", c.rounds}, {"calibrate-n", c.calibN},
		{"keys", c.keys}, {"value-size", c.valueLen}, {"trials", c.trials}, {"redis-node-timeout", c.redisTimeoutMs}, {"load-workers", c.loadWorkers},
		{"hit-requests", c.hitRequests}, {"hit-keys", c.hitKeys}, {"hit-value-size", c.hitValueLen}, {"hit-batch", c.hitBatch}} {
		if f.v < 1 {
			return fmt.Errorf("-%s must be at least 1", f.name)
		}
	}
	if c.keyLen < 8 {
		return errors.New("-key-size must be at least 8")
	}
	if c.nodes < 3 {
		return errors.New("-nodes must be at least 3 (a Redis Cluster needs 3 masters)")
	}
	if c.seconds <= 0 || c.cseconds <= 0 {
		return errors.New("-seconds and -cluster-seconds must be positive")
	}
	if strings.TrimSpace(c.tests) == "" || strings.TrimSpace(c.scaleTests) == "" {
		return errors.New("-t and -scale-t must name tests")
	}
	if c.settle < 8*time.Second {
		return errors.New("-settle must be at least 8s (the 3 s sample and 5 s of hold)")
	}
	if !(c.hitZipf > 0) || math.IsInf(c.hitZipf, 0) {
		return errors.New("-hit-zipf must be a positive number")
	}
	if strings.TrimSpace(c.hitMaxmemory) == "" || c.hitMaxmemory == "0" {
		return errors.New("-hit-maxmemory must be a memory limit, e.g. 40mb")
	}
	if c.name == "" || strings.ContainsRune(c.name, '/') {
		return errors.New("-name must be a plain file name")
	}
	return nil
}

// intList parses "1,16" into positive integers.
func intList(flagName, s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("-%s: %q is not a positive integer", flagName, f)
		}
		out = append(out, n)
	}
	return out, nil
}

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	cfg, err := parseFlags(args)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "suite:", err)
		return 2
	}
	return harness.RunInterruptible("suite", func(ctx context.Context) error { return suite(ctx, cfg) })
}

// env is what every phase needs: binaries, the workspace, progress.
type env struct {
	cfg                     *config
	ws                      *harness.Workspace
	p                       *progress
	rcBin, redisBin, cliBin string
	benchBin                string
	rcExtra                 []string
	rcVersion               string
}

func suite(ctx context.Context, cfg *config) (err error) {
	e := &env{cfg: cfg}
	if e.rcExtra, err = harness.SplitArgs(cfg.ringcacheArgs); err != nil {
		return fmt.Errorf("-ringcache-args: %w", err)
	}
	for _, t := range []struct {
		dst  *string
		name string
	}{{&e.redisBin, cfg.redisServer}, {&e.cliBin, cfg.redisCLI}, {&e.benchBin, cfg.redisBenchmark}} {
		if *t.dst, err = exec.LookPath(t.name); err != nil {
			return fmt.Errorf("%w (apt install redis-server redis-tools)", err)
		}
	}
	if e.ws, err = harness.NewWorkspace("ringcache-suite-", cfg.keep); err != nil {
		return err
	}
	e.p = newProgress(estimate(cfg))
	defer func() {
		e.p.logf("stopping servers")
		err = errors.Join(err, e.ws.Close())
		if cfg.keep {
			e.p.logf("kept %s", e.ws.Root)
		}
	}()
	if err := os.MkdirAll(cfg.outDir, 0o755); err != nil {
		return err
	}
	if err := e.build(ctx); err != nil {
		return err
	}
	res := &results{cfg: cfg, started: time.Now(), rcVersion: e.rcVersion,
		redisVersion: toolVersion(ctx, e.redisBin), benchVersion: toolVersion(ctx, e.benchBin)}
	phases := []struct {
		on  bool
		est float64
		run func(context.Context, *results) error
	}{
		{cfg.throughput, estThroughput(cfg), e.throughputPhase},
		{cfg.memory, estMemory(cfg), e.memoryPhase},
		{cfg.hitratio, estHitRatio(cfg), e.hitRatioPhase},
		{cfg.scale, estScale(cfg), e.scalePhase},
		{cfg.failover, estFailover(cfg), e.failoverPhase},
		{cfg.clientFailover, estClients(cfg), e.clientsPhase},
	}
	for _, ph := range phases {
		if !ph.on {
			continue
		}
		if err := ph.run(ctx, res); err != nil {
			return err
		}
	}
	res.finished = time.Now()
	return res.write(e.p.logf)
}

// build builds ./cmd/ringcache unless -ringcache-bin names a binary.
func (e *env) build(ctx context.Context) error {
	if e.cfg.ringcacheBin != "" {
		bin, err := exec.LookPath(e.cfg.ringcacheBin)
		if err != nil {
			return err
		}
		e.rcBin, _ = filepath.Abs(bin)
		e.rcVersion = "binary " + e.rcBin
		return nil
	}
	root, err := harness.ModuleRoot(ctx)
	if err != nil {
		return err
	}
	dir, err := e.ws.Dir("bin")
	if err != nil {
		return err
	}
	e.rcBin = filepath.Join(dir, "ringcache")
	e.p.logf("building ./cmd/ringcache")
	if err := harness.BuildRingcache(ctx, root, e.rcBin); err != nil {
		return err
	}
	e.rcVersion = "ringcache built from " + harness.GitDescribe(ctx, root)
	return nil
}

// toolVersion returns the first line of `bin --version`.
func toolVersion(ctx context.Context, bin string) string {
	out, err := exec.CommandContext(ctx, bin, "--version").Output()
	if err != nil {
		return bin
	}
	line, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
	return line
}
