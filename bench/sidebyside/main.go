// Command sidebyside benchmarks a single ringcache node against a
// redis-server on the same machine with redis-benchmark, and reports
// ringcache's throughput as a ratio of Redis's. With -cluster it compares
// an N-node ringcache cluster with an N-master Redis Cluster instead,
// driven by redis-benchmark --cluster.
//
// Both targets run for the whole session. After one short warm-up run
// against each, the rounds alternate redis, ringcache, redis, ringcache,
// ... so that whatever else the (shared, noisy) machine is doing hits both
// about equally; each round's ratio compares two runs made back to back.
//
//	go run ./bench/sidebyside                      # full comparison
//	go run ./bench/sidebyside -cluster             # 3 nodes vs 3 masters
//	go run ./bench/sidebyside -only redis -n 20000 # harness self-test
//
// See bench/README.md for how to read the output.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/ringcache/ringcache/bench/harness"
)

// config holds the parsed command-line flags.
type config struct {
	tests          string
	requests       int
	keyspace       int
	clients        int
	pipeline       int
	dataSize       int
	rounds         int
	warmupN        int
	ringcacheArgs  string
	ringcacheBin   string
	redisServer    string
	redisBenchmark string
	redisCLI       string
	benchArgs      string
	only           string
	keep           bool
	mdPath         string
	csvPath        string
	timeout        time.Duration
	readyTimeout   time.Duration
	cluster        bool
	nodes          int
}

func parseFlags() *config {
	c := &config{}
	flag.StringVar(&c.tests, "t", "set,get", "redis-benchmark tests (-t), comma separated")
	flag.IntVar(&c.requests, "n", 1000000, fmt.Sprintf("requests per test per run (-n); %d with -cluster unless given", clusterRequests))
	flag.IntVar(&c.keyspace, "r", 100000, "random keyspace size (-r)")
	flag.IntVar(&c.clients, "c", 50, "parallel connections (-c)")
	flag.IntVar(&c.pipeline, "P", 16, "pipeline depth (-P)")
	flag.IntVar(&c.dataSize, "d", 3, "value size in bytes (-d)")
	flag.IntVar(&c.rounds, "rounds", 3, "measured rounds per target, alternating between targets")
	flag.IntVar(&c.warmupN, "warmup-n", 0, "requests per test in the warm-up run (0 = n/10, at least 1000; negative = no warm-up)")
	flag.StringVar(&c.ringcacheArgs, "ringcache-args", "", "extra ringcache arguments, shell-quoted (e.g. \"--maxmemory 1gb\")")
	flag.StringVar(&c.ringcacheBin, "ringcache-bin", "", "use this ringcache binary instead of building ./cmd/ringcache")
	flag.StringVar(&c.redisServer, "redis-server", "redis-server", "redis-server executable")
	flag.StringVar(&c.redisBenchmark, "redis-benchmark", "redis-benchmark", "redis-benchmark executable")
	flag.StringVar(&c.redisCLI, "redis-cli", "redis-cli", "redis-cli executable (-cluster: creates the Redis Cluster)")
	flag.StringVar(&c.benchArgs, "benchmark-args", "", "extra redis-benchmark arguments, shell-quoted (e.g. \"--threads 2\")")
	flag.StringVar(&c.only, "only", "", "benchmark only one target: redis or ringcache")
	flag.BoolVar(&c.keep, "keep", false, "keep the temporary directory (server logs, data) and print its path")
	flag.StringVar(&c.mdPath, "md", "", "also write the report as Markdown to this file")
	flag.StringVar(&c.csvPath, "csv", "", "also write the report as CSV to this file")
	flag.DurationVar(&c.timeout, "timeout", 10*time.Minute, "limit for a single redis-benchmark run")
	flag.DurationVar(&c.readyTimeout, "ready-timeout", 30*time.Second, "how long a server may take to answer PING after starting, and a cluster to form")
	flag.BoolVar(&c.cluster, "cluster", false, "compare a ringcache cluster with a Redis Cluster, using redis-benchmark --cluster")
	flag.IntVar(&c.nodes, "nodes", 3, "nodes per cluster with -cluster (Redis Cluster needs at least 3 masters)")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: go run ./bench/sidebyside [flags]\n\n"+
			"Compares redis-benchmark throughput of a ringcache node and redis-server,\n"+
			"or with -cluster of a ringcache cluster and a Redis Cluster.\n\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	if c.cluster && !flagSet("n") {
		c.requests = clusterRequests
	}
	return c
}

// clusterRequests is the default -n with -cluster: redis-benchmark then
// runs threaded, and a test must last at least ten seconds for its 250ms
// thread tick to distort ops/s by no more than 2.5% (see tickWarning). A
// 3-master Redis Cluster on the 2-core benchmark machine does some 800,000
// SET or GET per second, so this gives it about 12 seconds per test.
const clusterRequests = 10000000

// flagSet reports whether the named flag was given on the command line.
func flagSet(name string) bool {
	set := false
	flag.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

func (c *config) validate() error {
	if flag.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", flag.Args())
	}
	switch c.only {
	case "", "redis", "ringcache":
	default:
		return fmt.Errorf("-only must be redis or ringcache, not %q", c.only)
	}
	for _, f := range []struct {
		name string
		v    int
	}{{"n", c.requests}, {"r", c.keyspace}, {"c", c.clients}, {"P", c.pipeline}, {"d", c.dataSize}, {"rounds", c.rounds}} {
		if f.v < 1 {
			return fmt.Errorf("-%s must be at least 1", f.name)
		}
	}
	if strings.TrimSpace(c.tests) == "" {
		return errors.New("-t must name at least one test")
	}
	if c.cluster && c.nodes < 3 {
		// redis-cli --cluster create refuses fewer, and the comparison
		// needs both clusters the same size.
		return errors.New("-nodes must be at least 3 (a Redis Cluster needs 3 masters)")
	}
	if flagSet("nodes") && !c.cluster {
		return errors.New("-nodes needs -cluster")
	}
	return nil
}

// warmupRequests is the -n of the warm-up run: enough to fault in the
// keyspace, allocate buffers and let a Go server's GC find its pace, yet
// short next to a measured run.
func (c *config) warmupRequests() int {
	if c.warmupN < 0 {
		return 0
	}
	if c.warmupN > 0 {
		return c.warmupN
	}
	return min(max(c.requests/10, 1000), c.requests)
}

// target is one server, or one cluster, under test.
type target struct {
	name string
	// nodes are the target's processes; redis-benchmark connects to the
	// first, and with --cluster learns the others from it.
	nodes []*harness.Server
	runs  [][]harness.Result
	// warned dedupes redis-benchmark warnings, which repeat every run.
	warned map[string]bool
}

// addr is where redis-benchmark connects.
func (t *target) addr() string { return t.nodes[0].Addr() }

// checkAlive returns the errors of all nodes that have died.
func (t *target) checkAlive() error {
	var errs []error
	for _, n := range t.nodes {
		errs = append(errs, n.CheckAlive())
	}
	return errors.Join(errs...)
}

// waitForExit returns as soon as any node has exited, or after d.
func (t *target) waitForExit(d time.Duration) {
	stop := make(chan struct{})
	defer close(stop)
	exited := make(chan struct{}, len(t.nodes))
	for _, n := range t.nodes {
		go func() {
			select {
			case <-n.Done():
				exited <- struct{}{}
			case <-stop:
			}
		}()
	}
	select {
	case <-exited:
	case <-time.After(d):
	}
}

func main() {
	os.Exit(run())
}

// run does the work and returns the exit status, so that deferred cleanup
// runs before os.Exit.
func run() int {
	cfg := parseFlags()
	if err := cfg.validate(); err != nil {
		fmt.Fprintln(os.Stderr, "sidebyside:", err)
		flag.Usage()
		return 2
	}
	start := time.Now()
	logf := func(format string, args ...any) {
		fmt.Fprintf(os.Stderr, "[%7.1fs] %s\n", time.Since(start).Seconds(), fmt.Sprintf(format, args...))
	}
	return harness.RunInterruptible("sidebyside", func(ctx context.Context) error { return bench(ctx, cfg, logf) })
}

func bench(ctx context.Context, cfg *config, logf func(string, ...any)) (err error) {
	rcExtra, err := harness.SplitArgs(cfg.ringcacheArgs)
	if err != nil {
		return fmt.Errorf("-ringcache-args: %w", err)
	}
	benchExtra, err := harness.SplitArgs(cfg.benchArgs)
	if err != nil {
		return fmt.Errorf("-benchmark-args: %w", err)
	}
	benchBin, err := exec.LookPath(cfg.redisBenchmark)
	if err != nil {
		return fmt.Errorf("redis-benchmark: %w (apt install redis-tools)", err)
	}
	wantRedis := cfg.only != "ringcache"
	wantRingcache := cfg.only != "redis"
	var redisBin, cliBin string
	if wantRedis {
		if redisBin, err = exec.LookPath(cfg.redisServer); err != nil {
			return fmt.Errorf("redis-server: %w (apt install redis-server)", err)
		}
		if cfg.cluster {
			if cliBin, err = exec.LookPath(cfg.redisCLI); err != nil {
				return fmt.Errorf("redis-cli: %w (apt install redis-tools)", err)
			}
		}
	}

	ws, err := harness.NewWorkspace("ringcache-bench-", cfg.keep)
	if err != nil {
		return err
	}
	defer func() {
		logf("stopping servers")
		if cerr := ws.Close(); cerr != nil {
			err = errors.Join(err, cerr)
		}
		if cfg.keep {
			logf("kept %s", ws.Root)
		}
	}()

	var notes []string
	var targets []*target

	// Build before starting anything: compiling uses both cores, and a
	// build failure should not leave a redis-server to clean up.
	var rcBin, rcVersion string
	if wantRingcache {
		if cfg.ringcacheBin != "" {
			if rcBin, err = exec.LookPath(cfg.ringcacheBin); err != nil {
				return fmt.Errorf("-ringcache-bin: %w", err)
			}
			if rcBin, err = filepath.Abs(rcBin); err != nil {
				return err
			}
			rcVersion = "binary " + rcBin
		} else {
			root, err := harness.ModuleRoot(ctx)
			if err != nil {
				return err
			}
			binDir, err := ws.Dir("bin")
			if err != nil {
				return err
			}
			rcBin = filepath.Join(binDir, "ringcache")
			logf("building ./cmd/ringcache in %s", root)
			if err := harness.BuildRingcache(ctx, root, rcBin); err != nil {
				return fmt.Errorf("%w\n(use -only redis to test the harness alone, or -ringcache-bin)", err)
			}
			rcVersion = "built from " + root
			if d := harness.GitDescribe(ctx, root); d != "" {
				rcVersion += " at " + d
			}
		}
	}

	if wantRedis {
		var nodes []*harness.Server
		if cfg.cluster {
			nodes, err = startRedisCluster(ctx, ws, cfg, redisBin, cliBin, logf)
		} else {
			nodes, err = startRedis(ctx, ws, cfg, redisBin, logf)
		}
		if err != nil {
			return err
		}
		targets = append(targets, &target{name: "redis", nodes: nodes})
		notes = append(notes, "redis: "+toolVersion(ctx, redisBin)+clusterNote(cfg, nodes, "master Redis Cluster (redis-cli --cluster create, no replicas)"))
	}
	if wantRingcache {
		var nodes []*harness.Server
		if cfg.cluster {
			nodes, err = startRingcacheCluster(ctx, ws, cfg, rcBin, rcExtra, logf)
		} else {
			nodes, err = startRingcache(ctx, ws, cfg, rcBin, rcExtra, logf)
		}
		if err != nil {
			return err
		}
		targets = append(targets, &target{name: "ringcache", nodes: nodes})
		note := "ringcache: " + rcVersion + clusterNote(cfg, nodes, "node cluster (--join to the first node)")
		if len(rcExtra) > 0 {
			note += fmt.Sprintf(", args %q", rcExtra)
		}
		notes = append(notes, note)
	}

	spec := harness.BenchSpec{
		Binary: benchBin, Tests: cfg.tests, Requests: cfg.requests, Keyspace: cfg.keyspace,
		Clients: cfg.clients, Pipeline: cfg.pipeline, DataSize: cfg.dataSize,
		Extra: benchExtra, Timeout: cfg.timeout,
		Cluster: cfg.cluster,
	}
	if cfg.cluster {
		spec.Masters = cfg.nodes
	}
	once := func(t *target, n int, label string) ([]harness.Result, error) {
		s := spec
		s.Addr = t.addr()
		s.Requests = n
		logf("%s: %s (-n %d)", label, t.name, n)
		began := time.Now()
		res, warnings, err := harness.RunBenchmark(ctx, s)
		if err != nil && ctx.Err() == nil {
			// If a server crashed, the client can notice (connection
			// reset) before the server has been reaped; give the reaper a
			// moment so the crash, not its symptom, is reported.
			t.waitForExit(time.Second)
		}
		if err != nil {
			err = fmt.Errorf("%s, %s: %w", label, t.name, err)
		}
		if aliveErr := t.checkAlive(); aliveErr != nil {
			// A dead server explains the benchmark error; report it first.
			return nil, errors.Join(aliveErr, err)
		}
		if err != nil {
			return nil, err
		}
		for _, w := range warnings {
			if t.warned == nil {
				t.warned = map[string]bool{}
			}
			if !t.warned[w] {
				t.warned[w] = true
				logf("  %s: redis-benchmark says: %s", t.name, w)
			}
		}
		parts := make([]string, len(res))
		for i, r := range res {
			parts[i] = fmt.Sprintf("%s %s ops/s p99 %.3fms", r.Test, harness.FormatOps(r.RPS), r.P99Ms)
		}
		logf("  %s done in %.1fs: %s", t.name, time.Since(began).Seconds(), strings.Join(parts, ", "))
		return res, nil
	}

	if n := cfg.warmupRequests(); n > 0 {
		for _, t := range targets {
			if _, err := once(t, n, "warm-up"); err != nil {
				return err
			}
		}
	}
	for r := range cfg.rounds {
		for _, t := range targets {
			res, err := once(t, cfg.requests, fmt.Sprintf("round %d/%d", r+1, cfg.rounds))
			if err != nil {
				return err
			}
			t.runs = append(t.runs, res)
		}
	}

	// Memory is read while the servers still hold the benchmark's keyspace.
	var mem []harness.TargetMem
	series := make([]harness.Series, len(targets))
	names := make([]string, len(targets))
	for i, t := range targets {
		m, merr := harness.SumMem(t.nodes)
		mem = append(mem, harness.TargetMem{Name: t.name, Stat: m, Err: merr})
		series[i] = harness.Series{Name: t.name, Rounds: t.runs}
		names[i] = t.name
	}
	rows, err := harness.Summarize(series)
	if err != nil {
		return err
	}

	var runs [][]harness.Result
	for _, t := range targets {
		runs = append(runs, t.runs...)
	}
	threaded := cfg.cluster || slices.Contains(benchExtra, "--threads")
	tickNote := tickWarning(threaded, cfg.requests, runs)
	if tickNote != "" {
		logf("%s", tickNote)
	}

	load := strings.Join(spec.LoadArgs(), " ")
	ratioNote := "ratio = ringcache ops/s / redis ops/s within each round (>1: ringcache faster); median and min..max over rounds"
	if len(targets) < 2 {
		ratioNote = "single target (-only): no ratio"
	}
	notes = append([]string{
		fmt.Sprintf("%d rounds per target, alternating; %s; figures are medians over rounds", cfg.rounds, warmupNote(cfg.warmupRequests())),
		ratioNote,
		fmt.Sprintf("%s, %d CPUs, %s, %s", time.Now().UTC().Format("2006-01-02 15:04 MST"), runtime.NumCPU(), runtime.Version(), toolVersion(ctx, benchBin)),
	}, notes...)
	if cfg.cluster {
		notes = append(notes, fmt.Sprintf("memory: summed over the %d nodes of each side (peak: sum of per-node peaks)", cfg.nodes))
	}
	if tickNote != "" {
		notes = append(notes, tickNote)
	}
	rep := &harness.Report{
		Title:   reportTitle(cfg.cluster, cfg.nodes, names, load),
		Notes:   notes,
		Targets: names,
		Rows:    rows,
		Mem:     mem,
	}
	fmt.Println()
	if err := rep.WriteText(os.Stdout); err != nil {
		return err
	}
	if cfg.mdPath != "" {
		if err := writeFile(cfg.mdPath, rep.WriteMarkdown); err != nil {
			return err
		}
		logf("wrote %s", cfg.mdPath)
	}
	if cfg.csvPath != "" {
		if err := writeFile(cfg.csvPath, rep.WriteCSV); err != nil {
			return err
		}
		logf("wrote %s", cfg.csvPath)
	}
	return nil
}

// warmupNote describes the warm-up for the report header.
func warmupNote(n int) string {
	if n == 0 {
		return "no warm-up"
	}
	return fmt.Sprintf("warm-up -n %d", n)
}

// maxTickBias is the ops/s understatement from redis-benchmark's thread
// tick (see harness.ThreadTick) above which the report warns, i.e. a test
// shorter than ten seconds: less than the spread an A/A run shows on the
// benchmark machine, so it cannot decide a comparison on its own.
const maxTickBias = 0.025

// suggestSeconds is how long the -n suggested by tickWarning makes the
// shortest test last: above the ten seconds of maxTickBias, so that a
// slightly faster run does not warn again.
const suggestSeconds = 12

// tickWarning returns a warning for the report if redis-benchmark ran
// threaded and its shortest measured test was short enough for the thread
// tick to understate ops/s by more than maxTickBias, or "" otherwise.
func tickWarning(threaded bool, requests int, runs [][]harness.Result) string {
	if !threaded {
		return ""
	}
	shortest, bias := harness.TickBias(requests, runs)
	if bias <= maxTickBias {
		return ""
	}
	suggest := int(math.Ceil(float64(requests)*suggestSeconds/shortest.Seconds()/100000)) * 100000
	return fmt.Sprintf("WARNING: redis-benchmark ran threaded (--cluster or --threads), which ends each test on a %v tick; "+
		"the shortest test took %.2fs, so its ops/s may be understated by up to %.0f%%, and ratios by as much: use -n %d or more",
		harness.ThreadTick, shortest.Seconds(), 100*bias, suggest)
}

// describeTarget names a target for the report title: the bare name for
// a single node, the cluster's shape with -cluster.
func describeTarget(name string, cluster bool, nodes int) string {
	switch {
	case !cluster:
		return name
	case name == "redis":
		return fmt.Sprintf("%d-master Redis Cluster", nodes)
	default:
		return fmt.Sprintf("%d-node %s cluster", nodes, name)
	}
}

// reportTitle is the report's first line, e.g. "ringcache vs redis:
// redis-benchmark -t set,get ..." or "3-node ringcache cluster vs
// 3-master Redis Cluster (--cluster): redis-benchmark ...". targets holds
// redis first, as the ratio does.
func reportTitle(cluster bool, nodes int, targets []string, load string) string {
	mode := ""
	if cluster {
		mode = " (--cluster)"
	}
	if len(targets) < 2 {
		return fmt.Sprintf("%s only%s: redis-benchmark %s", describeTarget(targets[0], cluster, nodes), mode, load)
	}
	return fmt.Sprintf("%s vs %s%s: redis-benchmark %s",
		describeTarget(targets[1], cluster, nodes), describeTarget(targets[0], cluster, nodes), mode, load)
}

// clusterNote describes a cluster's layout for the report notes, or ""
// for a single node.
func clusterNote(cfg *config, nodes []*harness.Server, what string) string {
	if !cfg.cluster {
		return ""
	}
	addrs := make([]string, len(nodes))
	for i, n := range nodes {
		addrs[i] = n.Addr()
	}
	return fmt.Sprintf("; %d-%s on %s", len(nodes), what, strings.Join(addrs, ","))
}

// toolVersion returns the first line of `bin --version`, or the path if
// that fails, for recording what was measured.
func toolVersion(ctx context.Context, bin string) string {
	out, err := exec.CommandContext(ctx, bin, "--version").Output()
	if err != nil {
		return bin
	}
	line, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
	return line
}

// writeFile writes a report through render, removing a partial file on
// error.
func writeFile(path string, render func(w io.Writer) error) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := render(f); err != nil {
		f.Close()
		os.Remove(path)
		return err
	}
	return f.Close()
}
