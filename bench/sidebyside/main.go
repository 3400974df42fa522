// Command sidebyside benchmarks a single ringcache node against a
// redis-server on the same machine with redis-benchmark, and reports
// ringcache's throughput as a ratio of Redis's.
//
// Both servers run for the whole session. After one short warm-up run
// against each, the rounds alternate redis, ringcache, redis, ringcache,
// ... so that whatever else the (shared, noisy) machine is doing hits both
// about equally; each round's ratio compares two runs made back to back.
//
//	go run ./bench/sidebyside                      # full comparison
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
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
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
	benchArgs      string
	only           string
	keep           bool
	mdPath         string
	csvPath        string
	timeout        time.Duration
	readyTimeout   time.Duration
}

func parseFlags() *config {
	c := &config{}
	flag.StringVar(&c.tests, "t", "set,get", "redis-benchmark tests (-t), comma separated")
	flag.IntVar(&c.requests, "n", 1000000, "requests per test per run (-n)")
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
	flag.StringVar(&c.benchArgs, "benchmark-args", "", "extra redis-benchmark arguments, shell-quoted (e.g. \"--threads 2\")")
	flag.StringVar(&c.only, "only", "", "benchmark only one target: redis or ringcache")
	flag.BoolVar(&c.keep, "keep", false, "keep the temporary directory (server logs, data) and print its path")
	flag.StringVar(&c.mdPath, "md", "", "also write the report as Markdown to this file")
	flag.StringVar(&c.csvPath, "csv", "", "also write the report as CSV to this file")
	flag.DurationVar(&c.timeout, "timeout", 10*time.Minute, "limit for a single redis-benchmark run")
	flag.DurationVar(&c.readyTimeout, "ready-timeout", 30*time.Second, "how long a server may take to answer PING after starting")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: go run ./bench/sidebyside [flags]\n\n"+
			"Compares redis-benchmark throughput of a ringcache node and redis-server.\n\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	return c
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

// target is one server under test.
type target struct {
	name string
	srv  *harness.Server
	runs [][]harness.Result
	// warned dedupes redis-benchmark warnings, which repeat every run.
	warned map[string]bool
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
	ctx, stop := harness.SignalContext(context.Background())
	defer stop()

	start := time.Now()
	logf := func(format string, args ...any) {
		fmt.Fprintf(os.Stderr, "[%7.1fs] %s\n", time.Since(start).Seconds(), fmt.Sprintf(format, args...))
	}

	err := bench(ctx, cfg, logf)
	if interrupted, why := harness.Interrupted(ctx); interrupted {
		fmt.Fprintf(os.Stderr, "sidebyside: interrupted (%s); servers stopped\n", why)
		return 130
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "sidebyside: FAILED:", err)
		return 1
	}
	return 0
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
	var redisBin string
	if wantRedis {
		if redisBin, err = exec.LookPath(cfg.redisServer); err != nil {
			return fmt.Errorf("redis-server: %w (apt install redis-server)", err)
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
		dir, err := ws.Dir("redis")
		if err != nil {
			return err
		}
		srv, err := ws.StartReady(ctx, 3, cfg.readyTimeout, func(port int) harness.ServerSpec {
			return harness.ServerSpec{Name: "redis", Path: redisBin, Args: harness.RedisArgs(port), Dir: dir, Port: port}
		})
		if err != nil {
			return err
		}
		logf("redis-server ready on %s (pid %d)", srv.Addr(), srv.PID())
		targets = append(targets, &target{name: "redis", srv: srv})
		notes = append(notes, "redis: "+toolVersion(ctx, redisBin))
	}
	if wantRingcache {
		dir, err := ws.Dir("ringcache")
		if err != nil {
			return err
		}
		srv, err := ws.StartReady(ctx, 3, cfg.readyTimeout, func(port int) harness.ServerSpec {
			return harness.ServerSpec{Name: "ringcache", Path: rcBin, Args: harness.RingcacheArgs(port, dir, rcExtra), Dir: dir, Port: port}
		})
		if err != nil {
			return err
		}
		logf("ringcache ready on %s (pid %d)", srv.Addr(), srv.PID())
		targets = append(targets, &target{name: "ringcache", srv: srv})
		note := "ringcache: " + rcVersion
		if len(rcExtra) > 0 {
			note += fmt.Sprintf(", args %q", rcExtra)
		}
		notes = append(notes, note)
	}

	spec := harness.BenchSpec{
		Binary: benchBin, Tests: cfg.tests, Requests: cfg.requests, Keyspace: cfg.keyspace,
		Clients: cfg.clients, Pipeline: cfg.pipeline, DataSize: cfg.dataSize,
		Extra: benchExtra, Timeout: cfg.timeout,
	}
	once := func(t *target, n int, label string) ([]harness.Result, error) {
		s := spec
		s.Addr = t.srv.Addr()
		s.Requests = n
		logf("%s: %s (-n %d)", label, t.name, n)
		began := time.Now()
		res, warnings, err := harness.RunBenchmark(ctx, s)
		if err != nil && ctx.Err() == nil {
			// If the server crashed, the client can notice (connection
			// reset) before the server has been reaped; give the reaper a
			// moment so the crash, not its symptom, is reported.
			select {
			case <-t.srv.Done():
			case <-time.After(time.Second):
			}
		}
		if err != nil {
			err = fmt.Errorf("%s, %s: %w", label, t.name, err)
		}
		if aliveErr := t.srv.CheckAlive(); aliveErr != nil {
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
		m, merr := t.srv.Mem()
		mem = append(mem, harness.TargetMem{Name: t.name, Stat: m, Err: merr})
		series[i] = harness.Series{Name: t.name, Rounds: t.runs}
		names[i] = t.name
	}
	rows, err := harness.Summarize(series)
	if err != nil {
		return err
	}

	load := strings.Join(spec.LoadArgs(), " ")
	rep := &harness.Report{
		Title: fmt.Sprintf("ringcache vs redis: redis-benchmark %s", load),
		Notes: append([]string{
			fmt.Sprintf("%d rounds per target, alternating; %s; figures are medians over rounds", cfg.rounds, warmupNote(cfg.warmupRequests())),
			"ratio = ringcache ops/s / redis ops/s within each round (>1: ringcache faster); median and min..max over rounds",
			fmt.Sprintf("%s, %d CPUs, %s, %s", time.Now().UTC().Format("2006-01-02 15:04 MST"), runtime.NumCPU(), runtime.Version(), toolVersion(ctx, benchBin)),
		}, notes...),
		Targets: names,
		Rows:    rows,
		Mem:     mem,
	}
	if len(targets) < 2 {
		rep.Title = fmt.Sprintf("%s only: redis-benchmark %s", names[0], load)
		rep.Notes[1] = "single target (-only): no ratio"
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
