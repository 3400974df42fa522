package main

import (
	"context"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/ringcache/ringcache/bench/harness"
)

// memResult is the memory of one deployment before and after the load.
type memResult struct {
	name          string
	nodes, copies int
	keys          int
	before, after int64 // summed VmRSS, KiB: before the load and 3 s after it
	// settled is the summed VmRSS once it stopped dropping (see settle),
	// settledAt how long after the load that was; settledOK is false when
	// it was still dropping at the end of the window (settled is then the
	// last sample).
	settled   int64
	settledAt time.Duration
	settledOK bool
	// usedBefore, usedAfter and usedSettled are INFO memory's used_memory
	// summed over the processes, in bytes, at the same moments; -1 where
	// a node did not answer.
	usedBefore, usedAfter, usedSettled int64
}

// bytesPerKey is the RSS growth per loaded key 3 s after the load (all
// copies included).
func (m memResult) bytesPerKey() float64 { return perKey(m.after-m.before, 1024, m.keys) }

// settledPerKey is the RSS growth per loaded key once settled.
func (m memResult) settledPerKey() float64 { return perKey(m.settled-m.before, 1024, m.keys) }

// usedPerKey and usedSettledPerKey are the used_memory growth per key.
func (m memResult) usedPerKey() float64 {
	return perKeyKnown(m.usedBefore, m.usedAfter, m.keys)
}

func (m memResult) usedSettledPerKey() float64 {
	return perKeyKnown(m.usedBefore, m.usedSettled, m.keys)
}

func perKey(growth int64, unit float64, keys int) float64 {
	return float64(growth) * unit / float64(keys)
}

func perKeyKnown(before, after int64, keys int) float64 {
	if before < 0 || after < 0 {
		return math.NaN()
	}
	return perKey(after-before, 1, keys)
}

// The settled RSS: samples every second for memSettleWindow (-settle)
// after the load; settled is the first sample that at least
// memSettleHold later samples follow and that no later sample undercuts
// by more than memSettleTol.
const (
	memSettleHold = 5
	memSettleTol  = 0.01
)

// settle returns the index of the settled sample of rss (one sample a
// second), and whether there is one: the first sample i with at least hold
// samples after it such that none of rss[i:] is more than tol (a fraction)
// below rss[i]. Without one it returns the last sample and false.
//
// Only looking back (no drop over the last hold samples) would stop too
// early: a ringcache node on disk holds its RSS flat for some 15 s after a
// load while Badger catches up, then gives memory back about 20 s after
// its last write.
func settle(rss []int64, hold int, tol float64) (int, bool) {
	if len(rss) == 0 {
		return -1, false
	}
	low := make([]int64, len(rss)) // low[i] = min(rss[i:])
	low[len(rss)-1] = rss[len(rss)-1]
	for i := len(rss) - 2; i >= 0; i-- {
		low[i] = min(rss[i], low[i+1])
	}
	for i := 0; i+hold < len(rss); i++ {
		if float64(low[i]) >= (1-tol)*float64(rss[i]) {
			return i, true
		}
	}
	return len(rss) - 1, false
}

func estMemory(c *config) float64 {
	return 5 * (8 + c.settle.Seconds() + 6*float64(c.keys)/1000000)
}

// memStep is one deployment of the memory phase.
type memStep struct {
	name   string
	start  func() (*deployment, error)
	copies int
}

// memoryPhase loads the same keys into a fresh redis-server, a ringcache
// node on disk, one in memory, a Redis Cluster and a ringcache cluster,
// one at a time, and reads their RSS and used_memory.
func (e *env) memoryPhase(ctx context.Context, res *results) error {
	steps := []memStep{
		{"redis-server", func() (*deployment, error) { return e.startRedis(ctx, "memory/redis") }, 1},
		{"ringcache, 1 node", func() (*deployment, error) { return e.startRingcache(ctx, "memory/ringcache", 1) }, 1},
		{"ringcache, 1 node --in-memory", func() (*deployment, error) {
			return e.startRingcache(ctx, "memory/ringcache-in-memory", 1, "--in-memory")
		}, 1},
		{fmt.Sprintf("Redis Cluster, %d masters", e.cfg.nodes), func() (*deployment, error) {
			return e.startRedisCluster(ctx, "memory/redis-cluster", e.cfg.nodes, 0)
		}, 1},
		{fmt.Sprintf("ringcache, %d nodes RF 2", e.cfg.nodes), func() (*deployment, error) {
			return e.startRingcache(ctx, "memory/ringcache-cluster", e.cfg.nodes)
		}, 2},
	}
	for _, s := range steps {
		m, err := e.memoryStep(ctx, s)
		if err != nil {
			return err
		}
		res.mem = append(res.mem, m)
		e.p.step(estMemory(e.cfg) / float64(len(steps)))
	}
	return nil
}

// memoryStep starts one deployment, loads the keys and samples its memory
// every second for -settle.
func (e *env) memoryStep(ctx context.Context, s memStep) (memResult, error) {
	spec := harness.LoadSpec{Keys: e.cfg.keys, KeyLen: e.cfg.keyLen, ValueLen: e.cfg.valueLen, ConnsEach: 4, Batch: 256}
	e.p.logf("memory: %s: starting", s.name)
	d, err := s.start()
	if err != nil {
		if d != nil {
			d.stop()
		}
		return memResult{}, err
	}
	defer d.stop()
	before, err := harness.SumMem(d.nodes)
	if err != nil {
		return memResult{}, err
	}
	m := memResult{name: s.name, nodes: len(d.nodes), copies: s.copies, keys: spec.Keys, before: before.RSSKiB,
		usedBefore: usedMemory(ctx, d)}
	var slots *harness.SlotMap
	if len(d.nodes) > 1 {
		if slots, err = harness.FetchSlots(ctx, d.nodes[0].Addr()); err != nil {
			return m, err
		}
	}
	e.p.logf("memory: %s: loading %d keys (%d-byte keys, %d-byte values)", s.name, spec.Keys, spec.KeyLen, spec.ValueLen)
	began := time.Now()
	if err := harness.Load(ctx, d.addrs(), slots, spec); err != nil {
		return m, fmt.Errorf("memory: %s: %w", s.name, err)
	}
	loaded := time.Now()
	took := loaded.Sub(began)
	// Sample every second: RSS 3 s after the load (background work that
	// follows a load, memtable flushes and replication queues, has had
	// a moment) and until it has settled.
	n := max(int(e.cfg.settle/time.Second), 3+memSettleHold)
	rss := make([]int64, n)
	used := make([]int64, n)
	for i := range n {
		if err := sleepUntil(ctx, loaded.Add(time.Duration(i+1)*time.Second)); err != nil {
			return m, err
		}
		mem, err := harness.SumMem(d.nodes)
		if err != nil {
			return m, fmt.Errorf("memory: %s: %w", s.name, err)
		}
		rss[i], used[i] = mem.RSSKiB, usedMemory(ctx, d)
	}
	if err := d.checkAlive(); err != nil {
		return m, err
	}
	i, ok := settle(rss, memSettleHold, memSettleTol)
	m.after, m.usedAfter = rss[2], used[2]
	m.settled, m.usedSettled, m.settledAt, m.settledOK = rss[i], used[i], time.Duration(i+1)*time.Second, ok
	note := ""
	if !ok {
		note = " (still dropping)"
	}
	e.p.logf("memory: %s: loaded in %.1fs; RSS %.1f MB -> %.1f MB after 3 s (%.0f bytes/key), %.1f MB settled after %v%s (%.0f bytes/key); "+
		"used_memory %.0f bytes/key after 3 s, %.0f settled", s.name, took.Seconds(),
		float64(m.before)/1024, float64(m.after)/1024, m.bytesPerKey(), float64(m.settled)/1024, m.settledAt, note, m.settledPerKey(),
		m.usedPerKey(), m.usedSettledPerKey())
	return m, nil
}

// usedMemory sums INFO memory's used_memory over d's nodes; -1 if a node
// does not answer or lacks the field.
func usedMemory(ctx context.Context, d *deployment) int64 {
	var total int64
	for _, n := range d.nodes {
		f, err := info(ctx, n.Addr(), "memory")
		if err != nil {
			return -1
		}
		v, err := strconv.ParseInt(f["used_memory"], 10, 64)
		if err != nil {
			return -1
		}
		total += v
	}
	return total
}

// info reads one INFO section of addr as fields.
func info(ctx context.Context, addr, section string) (map[string]string, error) {
	s, err := harness.Command(ctx, addr, "INFO", section)
	if err != nil {
		return nil, fmt.Errorf("%s: INFO %s: %w", addr, section, err)
	}
	return harness.InfoFields(s), nil
}

// sleepUntil waits until t or ctx's end.
func sleepUntil(ctx context.Context, t time.Time) error {
	tm := time.NewTimer(time.Until(t))
	defer tm.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-tm.C:
		return nil
	}
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
