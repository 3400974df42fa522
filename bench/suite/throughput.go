package main

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/ringcache/ringcache/bench/harness"
)

// pairResult is one throughput configuration of one pair.
type pairResult struct {
	pair     string // "single" or "cluster"
	sides    [2]string
	pipeline int
	size     int
	requests map[string]int // -n per test
	rows     []harness.Row  // Stats[0] Redis, Stats[1] ringcache
	tickBias float64        // largest possible understatement by the thread tick
}

// label is the short name of the configuration, as in chart categories.
func (r *pairResult) label() string { return fmt.Sprintf("P%d %s", r.pipeline, fmtSize(r.size)) }

func fmtSize(n int) string {
	if n >= 1024 && n%1024 == 0 {
		return fmt.Sprintf("%dKB", n/1024)
	}
	return fmt.Sprintf("%dB", n)
}

func estThroughput(c *config) float64 {
	tests := float64(len(strings.Split(c.tests, ",")))
	var total float64
	for _, p := range c.pairs {
		secs := c.seconds
		if p == "cluster" {
			secs = c.cseconds
		}
		configs := float64(len(c.pipes) * len(c.sizes))
		total += 15 + configs*(2*4+float64(c.rounds)*2*tests*(1.3*secs+0.5))
	}
	return total
}

func (e *env) throughputPhase(ctx context.Context, res *results) error {
	for _, pair := range e.cfg.pairs {
		if err := e.runPair(ctx, pair, res); err != nil {
			return err
		}
	}
	return nil
}

// runPair starts both sides of a pair, runs every configuration, and
// stops them.
func (e *env) runPair(ctx context.Context, pair string, res *results) error {
	e.p.logf("pair %s: starting servers", pair)
	var sides [2]*deployment
	var err error
	if pair == "single" {
		if sides[0], err = e.startRedis(ctx, "single/redis"); err == nil {
			sides[1], err = e.startRingcache(ctx, "single/ringcache", 1)
		}
	} else {
		if sides[0], err = e.startRedisCluster(ctx, "cluster/redis", e.cfg.nodes, 0); err == nil {
			sides[1], err = e.startRingcache(ctx, "cluster/ringcache", e.cfg.nodes)
		}
	}
	for _, s := range sides {
		if s != nil {
			defer s.stop()
		}
	}
	if err != nil {
		return err
	}
	e.p.step(15)
	secs := e.cfg.seconds
	if pair == "cluster" {
		secs = e.cfg.cseconds
	}
	tests := strings.Split(e.cfg.tests, ",")
	for _, pipe := range e.cfg.pipes {
		for _, size := range e.cfg.sizes {
			pr := &pairResult{pair: pair, sides: [2]string{sides[0].name, sides[1].name}, pipeline: pipe, size: size, requests: map[string]int{}}
			where := fmt.Sprintf("%s %s", pair, pr.label())
			// Calibration, which is also the warm-up: one short run of
			// every test against each side gives its rate.
			var rates [2]map[string]float64
			for i, s := range sides {
				e.p.logf("%s: calibrating %s (-n %d)", where, s.name, e.cfg.calibN)
				rates[i] = map[string]float64{}
				for _, t := range calibrationGroups(e.cfg.tests, s.cluster) {
					out, err := e.bench(ctx, s, t, e.cfg.calibN, pipe, size)
					if err != nil {
						return err
					}
					for _, r := range out {
						rates[i][r.Test] = calibratedRate(e.cfg.calibN, r.RPS, s.cluster)
					}
				}
				e.p.step(4)
			}
			var series [2]harness.Series
			for i, s := range sides {
				series[i].Name = s.name
			}
			for round := range e.cfg.rounds {
				var runs [2][]harness.Result
				for _, t := range tests {
					key := testName(t)
					n := requestsFor(secs, rates[0][key], rates[1][key])
					pr.requests[key] = n
					for i, s := range sides {
						out, err := e.bench(ctx, s, t, n, pipe, size)
						if err != nil {
							return err
						}
						runs[i] = append(runs[i], out...)
						e.p.step(1.3*secs + 0.5)
						e.p.logf("%s round %d/%d %-5s %-22s %10s ops/s  p50 %.3f ms  p99 %.3f ms (-n %d)",
							where, round+1, e.cfg.rounds, key, s.name, harness.FormatOps(out[0].RPS), out[0].P50Ms, out[0].P99Ms, n)
					}
				}
				for i := range sides {
					series[i].Rounds = append(series[i].Rounds, runs[i])
				}
			}
			rows, err := harness.Summarize(series[:])
			if err != nil {
				return err
			}
			pr.rows = rows
			if sides[0].cluster {
				var all [][]harness.Result
				for _, s := range series {
					all = append(all, s.Rounds...)
				}
				pr.tickBias = tickBias(pr.requests, all)
			}
			for _, r := range rows {
				e.p.logf("%s %-5s ratio %.2f (%.2f..%.2f)", where, r.Test, r.Ratio, r.RatioMin, r.RatioMax)
			}
			res.pairs = append(res.pairs, pr)
		}
	}
	return nil
}

// testName is the name redis-benchmark reports for a -t test.
func testName(t string) string {
	t = strings.ToUpper(strings.TrimSpace(t))
	if t == "MSET" {
		return msetTest
	}
	return t
}

// calibrationGroups splits -t into the redis-benchmark runs of a
// calibration: one run for all tests, except that MSET runs on its own
// without --cluster (see msetCommand).
func calibrationGroups(tests string, cluster bool) []string {
	var rest []string
	var groups []string
	for _, t := range strings.Split(tests, ",") {
		if !cluster && strings.EqualFold(strings.TrimSpace(t), "mset") {
			groups = append(groups, "mset")
			continue
		}
		rest = append(rest, strings.TrimSpace(t))
	}
	if len(rest) > 0 {
		groups = append([]string{strings.Join(rest, ",")}, groups...)
	}
	return groups
}

// tickBias is the largest fraction by which redis-benchmark's thread tick
// may have understated any run's ops/s, with per-test -n.
func tickBias(requests map[string]int, runs [][]harness.Result) float64 {
	var worst float64
	for _, run := range runs {
		for _, r := range run {
			if _, b := harness.TickBias(requests[r.Test], [][]harness.Result{{r}}); b > worst {
				worst = b
			}
		}
	}
	return worst
}

// calibratedRate turns a calibration run's ops/s into an estimate of the
// real rate. In threaded (--cluster) mode a run ends on a 250ms tick, on
// average half a tick late, which dominates a short calibration run.
func calibratedRate(n int, rps float64, threaded bool) float64 {
	if !(rps > 0) {
		return math.NaN()
	}
	d := float64(n) / rps
	if threaded {
		d = max(d-harness.ThreadTick.Seconds()/2, d/5)
	}
	return float64(n) / d
}

// requestsFor picks -n so that a test runs about secs seconds at the
// geometric mean of the two sides' rates: identical for both sides, the
// faster one running shorter. At least 1000, rounded to 1000.
func requestsFor(secs, rateA, rateB float64) int {
	rate := math.Sqrt(rateA * rateB)
	if !(rate > 0) {
		// One side unknown (a failed calibration): the other, or a guess.
		rate = 10000
		for _, r := range []float64{rateA, rateB} {
			if r > 0 {
				rate = r
			}
		}
	}
	return max(int(math.Round(secs*rate/1000))*1000, 1000)
}

// bench runs redis-benchmark once against d and checks d survived it.
func (e *env) bench(ctx context.Context, d *deployment, tests string, n, pipe, size int) ([]harness.Result, error) {
	spec := harness.BenchSpec{
		Binary: e.benchBin, Addr: d.nodes[0].Addr(), Tests: tests, Requests: n,
		Keyspace: e.cfg.keyspace, Clients: e.cfg.clients, Pipeline: pipe, DataSize: size,
		Timeout: e.cfg.timeout, Cluster: d.cluster, Masters: d.masters,
	}
	if !d.cluster && strings.EqualFold(strings.TrimSpace(tests), "mset") {
		spec.Command = msetCommand(size)
	}
	out, _, err := harness.RunBenchmark(ctx, spec)
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	if err != nil {
		time.Sleep(500 * time.Millisecond) // let a crashed server be reaped
	}
	if aerr := d.checkAlive(); aerr != nil {
		return nil, errors.Join(aerr, err)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", d.name, err)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: redis-benchmark returned no results", d.name)
	}
	if spec.Command != nil {
		out[0].Test = msetTest
	}
	return out, nil
}

// msetTest is the name redis-benchmark gives its built-in MSET test.
const msetTest = "MSET (10 keys)"

// msetCommand is redis-benchmark's built-in MSET test (10 random keys,
// -d byte values) with every key in one hash slot: a ringcache node, as
// a Redis Cluster node, refuses a multi-key command across slots with
// CROSSSLOT even when it owns them all, and redis-benchmark only tags
// keys itself with --cluster, which needs two masters or more. Both
// sides of the single-node pair get this same command.
func msetCommand(size int) []string {
	cmd := []string{"MSET"}
	v := strings.Repeat("x", size)
	for range 10 {
		cmd = append(cmd, "{mset}key:__rand_int__", v)
	}
	return cmd
}
