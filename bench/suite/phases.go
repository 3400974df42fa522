package main

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/ringcache/ringcache/bench/harness"
)

// memResult is the memory of one deployment before and after the load.
type memResult struct {
	name          string
	nodes, copies int
	before, after int64 // summed VmRSS, KiB
	keys          int
}

// bytesPerKey is the RSS growth per loaded key (all copies included).
func (m memResult) bytesPerKey() float64 {
	return float64(m.after-m.before) * 1024 / float64(m.keys)
}

func estMemory(c *config) float64 { return 40 + 4*float64(c.keys)/100000 }

// memoryPhase loads the same keys into a fresh redis-server, one
// ringcache node, a Redis Cluster and a ringcache cluster, one at a time,
// and reads their RSS.
func (e *env) memoryPhase(ctx context.Context, res *results) error {
	steps := []struct {
		name   string
		start  func() (*deployment, error)
		copies int
	}{
		{"redis-server", func() (*deployment, error) { return e.startRedis(ctx, "memory/redis") }, 1},
		{"ringcache, 1 node", func() (*deployment, error) { return e.startRingcache(ctx, "memory/ringcache", 1) }, 1},
		{fmt.Sprintf("Redis Cluster, %d masters", e.cfg.nodes), func() (*deployment, error) {
			return e.startRedisCluster(ctx, "memory/redis-cluster", e.cfg.nodes, 0)
		}, 1},
		{fmt.Sprintf("ringcache, %d nodes RF 2", e.cfg.nodes), func() (*deployment, error) {
			return e.startRingcache(ctx, "memory/ringcache-cluster", e.cfg.nodes)
		}, 2},
	}
	spec := harness.LoadSpec{Keys: e.cfg.keys, KeyLen: e.cfg.keyLen, ValueLen: e.cfg.valueLen, ConnsEach: 4, Batch: 256}
	for _, s := range steps {
		e.p.logf("memory: %s: starting", s.name)
		d, err := s.start()
		if err != nil {
			return err
		}
		before, err := harness.SumMem(d.nodes)
		if err != nil {
			d.stop()
			return err
		}
		var slots *harness.SlotMap
		if len(d.nodes) > 1 {
			if slots, err = harness.FetchSlots(ctx, d.nodes[0].Addr()); err != nil {
				d.stop()
				return err
			}
		}
		e.p.logf("memory: %s: loading %d keys (%d-byte keys, %d-byte values)", s.name, spec.Keys, spec.KeyLen, spec.ValueLen)
		began := time.Now()
		if err := harness.Load(ctx, d.addrs(), slots, spec); err != nil {
			d.stop()
			return fmt.Errorf("memory: %s: %w", s.name, err)
		}
		took := time.Since(began)
		// Let background work that follows a load (memtable flushes,
		// replication queues) settle before reading RSS.
		time.Sleep(3 * time.Second)
		after, err := harness.SumMem(d.nodes)
		d.stop()
		if err != nil {
			return err
		}
		m := memResult{name: s.name, nodes: len(d.nodes), copies: s.copies, before: before.RSSKiB, after: after.RSSKiB, keys: spec.Keys}
		e.p.logf("memory: %s: loaded in %.1fs; RSS %.1f MB -> %.1f MB, %.0f bytes/key", s.name, took.Seconds(),
			float64(m.before)/1024, float64(m.after)/1024, m.bytesPerKey())
		res.mem = append(res.mem, m)
		e.p.step(estMemory(e.cfg) / float64(len(steps)))
	}
	return nil
}

// failResult is one side's failover trials.
type failResult struct {
	name     string
	detail   string
	times    []time.Duration
	refusals []int
	lastErr  []string
}

func estFailover(c *config) float64 {
	return float64(c.trials) * (12 + float64(c.redisTimeoutMs)/1000 + 12)
}

// failoverPhase runs -trials trials against ringcache and against a
// Redis Cluster with replicas, each on a fresh cluster.
func (e *env) failoverPhase(ctx context.Context, res *results) error {
	rc := &failResult{name: fmt.Sprintf("ringcache, %d nodes RF 2", e.cfg.nodes),
		detail: "default failure detection (" + rcArgsNote(e.rcExtra) + ")"}
	rd := &failResult{name: fmt.Sprintf("Redis Cluster, %d masters + %d replicas", e.cfg.nodes, e.cfg.nodes),
		detail: fmt.Sprintf("cluster-node-timeout %d ms", e.cfg.redisTimeoutMs)}
	res.fail = []*failResult{rc, rd}
	for trial := range e.cfg.trials {
		for _, side := range []*failResult{rc, rd} {
			label := fmt.Sprintf("failover trial %d/%d, %s", trial+1, e.cfg.trials, side.name)
			e.p.logf("%s: starting a fresh cluster", label)
			var d *deployment
			var err error
			limit := e.cfg.rcFailoverLimit
			dir := fmt.Sprintf("failover/trial-%d", trial+1)
			if side == rc {
				d, err = e.startRingcache(ctx, dir+"/ringcache", e.cfg.nodes)
			} else {
				d, err = e.startRedisCluster(ctx, dir+"/redis", 2*e.cfg.nodes, 1,
					"--cluster-node-timeout", strconv.Itoa(e.cfg.redisTimeoutMs))
				limit = time.Duration(e.cfg.redisTimeoutMs)*time.Millisecond*4 + 30*time.Second
			}
			if err != nil {
				if d != nil {
					d.stop()
				}
				return fmt.Errorf("%s: %w", label, err)
			}
			took, probe, err := e.failoverTrial(ctx, d, trial, limit, label)
			d.stop()
			if err != nil {
				return fmt.Errorf("%s: %w", label, err)
			}
			side.times = append(side.times, took)
			side.refusals = append(side.refusals, probe.Refusals)
			side.lastErr = append(side.lastErr, probe.LastRefusal)
			e.p.step(estFailover(e.cfg) / float64(2*e.cfg.trials))
			e.p.logf("%s: first write accepted %v after kill -9 (by %s; %d refusals before, last %q)",
				label, took.Round(time.Millisecond), probe.By, probe.Refusals, probe.LastRefusal)
		}
	}
	return nil
}

// failoverTrial kills a primary of d under load and probes a key of one
// of its slots on every surviving node.
func (e *env) failoverTrial(ctx context.Context, d *deployment, trial int, limit time.Duration, label string) (time.Duration, harness.ProbeResult, error) {
	slots, err := harness.FetchSlots(ctx, d.nodes[0].Addr())
	if err != nil {
		return 0, harness.ProbeResult{}, err
	}
	// The victims rotate over the primaries.
	primaries := map[string]bool{}
	for _, a := range slots {
		primaries[a] = true
	}
	var victim *harness.Server
	var candidates []*harness.Server
	for _, n := range d.nodes {
		if primaries[n.Addr()] {
			candidates = append(candidates, n)
		}
	}
	victim = candidates[trial%len(candidates)]
	key := ""
	for i := 0; key == ""; i++ {
		if k := "failover:probe:" + strconv.Itoa(i); slots[harness.KeySlot(k)] == victim.Addr() {
			key = k
		}
	}
	var survivors []string
	for _, n := range d.nodes {
		if n != victim {
			survivors = append(survivors, n.Addr())
		}
	}
	load := harness.StartLoad(ctx, slots, e.cfg.loadWorkers, 10000)
	time.Sleep(time.Second)
	e.p.logf("%s: kill -9 %s (pid %d), probing SET %s on the %d others every %v", label, victim.Addr(), victim.PID(), key, len(survivors), e.cfg.probeInterval)
	killed := time.Now()
	if err := victim.Kill(); err != nil {
		load.Stop()
		return 0, harness.ProbeResult{}, err
	}
	probe, err := harness.ProbeWrite(ctx, survivors, key, killed, e.cfg.probeInterval, limit)
	ok, failed := load.Stop()
	e.p.logf("%s: background load: %d writes OK, %d refused or failed", label, ok, failed)
	return probe.After, probe, err
}

func rcArgsNote(extra []string) string {
	if len(extra) == 0 {
		return "no extra flags"
	}
	return "flags " + strings.Join(extra, " ")
}

// scaleResult is the throughput of ringcache clusters of several sizes.
type scaleResult struct {
	sizes []int
	rows  []harness.Row // Stats parallel to sizes
	n     map[string]int
}

func estScale(c *config) float64 {
	tests := float64(len(strings.Split(c.scaleTests, ",")))
	return 30 + float64(len(c.scaleNodes))*(4+float64(c.rounds)*tests*(1.3*c.cseconds+0.5))
}

// scalePhase runs the same load against ringcache clusters of each size
// in -scale-nodes, all running at once, round-robin over rounds.
func (e *env) scalePhase(ctx context.Context, res *results) error {
	var deps []*deployment
	defer func() {
		for _, d := range deps {
			d.stop()
		}
	}()
	for _, n := range e.cfg.scaleNodes {
		e.p.logf("scale: starting %d ringcache node(s)", n)
		d, err := e.startRingcache(ctx, fmt.Sprintf("scale/ringcache-%d", n), n)
		if err != nil {
			return err
		}
		d.name = fmt.Sprintf("%d node(s)", n)
		deps = append(deps, d)
	}
	e.p.step(30)
	const pipe, size = 16, 3
	tests := strings.Split(e.cfg.scaleTests, ",")
	sr := &scaleResult{sizes: e.cfg.scaleNodes, n: map[string]int{}}
	rates := map[string]float64{}
	for _, d := range deps {
		e.p.logf("scale: calibrating %s", d.name)
		out, err := e.bench(ctx, d, e.cfg.scaleTests, e.cfg.calibN, pipe, size)
		if err != nil {
			return err
		}
		for _, r := range out {
			rates[r.Test] = max(rates[r.Test], calibratedRate(e.cfg.calibN, r.RPS, d.cluster))
		}
		e.p.step(4)
	}
	series := make([]harness.Series, len(deps))
	for round := range e.cfg.rounds {
		runs := make([][]harness.Result, len(deps))
		for _, t := range tests {
			key := testName(t)
			// The same -n for every size, from the fastest one's rate.
			n := requestsFor(e.cfg.cseconds, rates[key], rates[key])
			sr.n[key] = n
			for i, d := range deps {
				out, err := e.bench(ctx, d, t, n, pipe, size)
				if err != nil {
					return err
				}
				runs[i] = append(runs[i], out...)
				e.p.step(1.3*e.cfg.cseconds + 0.5)
				e.p.logf("scale round %d/%d %-4s %-10s %10s ops/s (-n %d)", round+1, e.cfg.rounds, key, d.name, harness.FormatOps(out[0].RPS), n)
			}
		}
		for i := range deps {
			series[i].Name = deps[i].name
			series[i].Rounds = append(series[i].Rounds, runs[i])
		}
	}
	rows, err := harness.Summarize(series)
	if err != nil {
		return err
	}
	sr.rows = rows
	res.scale = sr
	return nil
}
