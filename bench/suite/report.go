package main

import (
	"encoding/csv"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/ringcache/ringcache/bench/harness"
)

// results collects every phase's figures for the report.
type results struct {
	cfg                                   *config
	started, finished                     time.Time
	rcVersion, redisVersion, benchVersion string
	pairs                                 []*pairResult
	mem                                   []memResult
	fail                                  []*failResult
	clients                               []*clientResult
	scale                                 *scaleResult
	hit                                   []*hitResult
}

// estimate is the planned duration of the whole run, in seconds.
func estimate(c *config) float64 {
	var t float64
	for _, ph := range []struct {
		on  bool
		est float64
	}{{c.throughput, estThroughput(c)}, {c.memory, estMemory(c)}, {c.failover, estFailover(c)}, {c.clientFailover, estClients(c)}, {c.scale, estScale(c)},
		{c.hitratio, estHitRatio(c)}} {
		if ph.on {
			t += ph.est
		}
	}
	return t + 10
}

// write writes <name>.md, <name>.csv and the charts, and prints the
// Markdown to stdout.
func (r *results) write(logf func(string, ...any)) error {
	base := filepath.Join(r.cfg.outDir, r.cfg.name)
	charts, err := r.charts()
	if err != nil {
		return err
	}
	var files []string
	for _, c := range charts {
		svg, err := c.chart.SVG()
		if err != nil {
			return fmt.Errorf("chart %s: %w", c.file, err)
		}
		if err := os.WriteFile(base+"-"+c.file, svg, 0o644); err != nil {
			return err
		}
		files = append(files, base+"-"+c.file)
	}
	var md strings.Builder
	r.markdown(&md, charts)
	if err := os.WriteFile(base+".md", []byte(md.String()), 0o644); err != nil {
		return err
	}
	f, err := os.Create(base + ".csv")
	if err != nil {
		return err
	}
	if err := r.csv(f); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	fmt.Println(md.String())
	logf("wrote %s.md, %s.csv and %d charts (%s)", base, base, len(files), strings.Join(files, ", "))
	return nil
}

// namedChart is a chart and its file name suffix.
type namedChart struct {
	file, caption string
	chart         harness.BarChart
}

func (r *results) charts() ([]namedChart, error) {
	var out []namedChart
	for _, pair := range []string{"single", "cluster"} {
		var cats []string
		var a, b, ratio, lo, hi []float64
		var sides [2]string
		for _, pr := range r.pairs {
			if pr.pair != pair {
				continue
			}
			sides = pr.sides
			for _, row := range pr.rows {
				cats = append(cats, row.Test+"\n"+pr.label())
				a = append(a, row.Stats[0].RPS)
				b = append(b, row.Stats[1].RPS)
				ratio = append(ratio, row.Ratio)
				lo = append(lo, row.RatioMin)
				hi = append(hi, row.RatioMax)
			}
		}
		if len(cats) == 0 {
			continue
		}
		out = append(out,
			namedChart{file: "ops-" + pair + ".svg", caption: fmt.Sprintf("ops/s by test, %s vs %s (median over rounds)", sides[1], sides[0]),
				chart: harness.BarChart{Title: fmt.Sprintf("%s vs %s: ops/s (median)", sides[1], sides[0]), YLabel: "ops/s",
					Categories: cats, Series: []harness.BarSeries{{Name: sides[0], Values: a}, {Name: sides[1], Values: b}}}},
			namedChart{file: "ratio-" + pair + ".svg", caption: fmt.Sprintf("ratio %s / %s (median, bars min..max over rounds; dashed: parity)", sides[1], sides[0]),
				chart: harness.BarChart{Title: fmt.Sprintf("%s / %s ops/s (1 = parity)", sides[1], sides[0]), YLabel: "ratio",
					Categories: cats, RefLine: 1, Series: []harness.BarSeries{{Values: ratio, Lo: lo, Hi: hi}}}})
	}
	if len(r.mem) > 0 {
		var cats []string
		series := []harness.BarSeries{{Name: "RSS, 3 s after the load"}, {Name: "RSS, settled"}, {Name: "used_memory, settled"}}
		for _, m := range r.mem {
			cats = append(cats, wrap(m.name))
			cp := float64(m.copies)
			series[0].Values = append(series[0].Values, m.bytesPerKey()/cp)
			series[1].Values = append(series[1].Values, m.settledPerKey()/cp)
			series[2].Values = append(series[2].Values, m.usedSettledPerKey()/cp)
		}
		out = append(out, namedChart{file: "memory.svg", caption: "RSS and used_memory growth per loaded key and copy",
			chart: harness.BarChart{Title: fmt.Sprintf("bytes per key and copy (%d keys, %d-byte values)", r.cfg.keys, r.cfg.valueLen),
				YLabel: "bytes/key/copy", Categories: cats, Series: series, Headroom: 0.3}})
	}
	if len(r.hit) > 0 {
		var cats []string
		series := []harness.BarSeries{{Name: "hit ratio (measured pass)"}, {Name: "bound: top-K mass, K = the keys it held"}}
		for _, h := range r.hit {
			for _, sd := range h.sides {
				cats = append(cats, h.policy+"\n"+sd.name)
				series[0].Values = append(series[0].Values, sd.measure.ratio())
				series[1].Values = append(series[1].Values, sd.bound)
			}
		}
		out = append(out, namedChart{file: "hitratio.svg", caption: "hit ratio of the measured pass, and the top-K mass of the key count each held",
			chart: harness.BarChart{Title: fmt.Sprintf("cache-aside hit ratio, Zipf %g over %d keys, maxmemory %s", r.cfg.hitZipf, r.cfg.hitKeys, r.cfg.hitMaxmemory),
				YLabel: "hit ratio", Categories: cats, Series: series, Headroom: 0.3}})
	}
	if len(r.fail) > 0 && len(r.fail[0].times) > 0 {
		var cats []string
		var med, lo, hi []float64
		for _, f := range r.fail {
			s := seconds(f.times)
			cats = append(cats, wrap(f.name))
			med = append(med, harness.Median(s))
			l, h := harness.MinMax(s)
			lo, hi = append(lo, l), append(hi, h)
		}
		out = append(out, namedChart{file: "failover.svg", caption: "kill -9 of a primary to the first accepted write on its slots (median, bars min..max)",
			chart: harness.BarChart{Title: fmt.Sprintf("failover: seconds to the first accepted write (%d trials)", len(r.fail[0].times)),
				YLabel: "seconds", Categories: cats, Series: []harness.BarSeries{{Values: med, Lo: lo, Hi: hi}}}})
	}
	if r.scale != nil {
		var cats []string
		series := make([]harness.BarSeries, len(r.scale.sizes))
		for i, n := range r.scale.sizes {
			series[i].Name = fmt.Sprintf("%d node(s)", n)
		}
		for _, row := range r.scale.rows {
			cats = append(cats, row.Test)
			for i := range series {
				series[i].Values = append(series[i].Values, row.Stats[i].RPS)
			}
		}
		out = append(out, namedChart{file: "scale.svg", caption: "ringcache ops/s by cluster size (median over rounds)",
			chart: harness.BarChart{Title: "ringcache ops/s by cluster size (-P 16, 3-byte values)", YLabel: "ops/s", Categories: cats, Series: series}})
	}
	return out, nil
}

// wrap puts the part after the first comma of a name on a second line.
func wrap(s string) string { return strings.Replace(s, ", ", "\n", 1) }

func seconds(ds []time.Duration) []float64 {
	out := make([]float64, len(ds))
	for i, d := range ds {
		out[i] = d.Seconds()
	}
	return out
}

// mdTable renders a Markdown table; columns after the first
// are right-aligned.
func mdTable(w *strings.Builder, head []string, rows [][]string) {
	w.WriteString("| " + strings.Join(head, " | ") + " |\n|---|")
	w.WriteString(strings.Repeat("---:|", len(head)-1) + "\n")
	for _, r := range rows {
		for i := range r {
			r[i] = strings.ReplaceAll(r[i], "|", `\|`)
		}
		w.WriteString("| " + strings.Join(r, " | ") + " |\n")
	}
	w.WriteString("\n")
}

func f2(v float64) string {
	if math.IsNaN(v) {
		return "n/a"
	}
	return strconv.FormatFloat(v, 'f', 2, 64)
}

func f0(v float64) string {
	if math.IsNaN(v) {
		return "n/a"
	}
	return strconv.FormatFloat(v, 'f', 0, 64)
}

func f4(v float64) string {
	if math.IsNaN(v) {
		return "n/a"
	}
	return strconv.FormatFloat(v, 'f', 4, 64)
}

func f3(v float64) string {
	if math.IsNaN(v) {
		return "n/a"
	}
	return strconv.FormatFloat(v, 'f', 3, 64)
}

func (r *results) markdown(w *strings.Builder, charts []namedChart) {
	c := r.cfg
	fmt.Fprintf(w, "# ringcache beside Redis: %s\n\n", r.started.UTC().Format("2006-01-02 15:04 MST"))
	fmt.Fprintf(w, "- %s; %s; %s\n", r.rcVersion, r.redisVersion, r.benchVersion)
	fmt.Fprintf(w, "- %d CPUs, %s, %s; took %s", runtime.NumCPU(), runtime.GOOS+"/"+runtime.GOARCH, runtime.Version(), r.finished.Sub(r.started).Round(time.Second))
	if c.quick {
		w.WriteString(" (**-quick**: a smoke run, not figures to quote)")
	}
	w.WriteString("\n- everything on loopback, every process on the same 2-core machine as redis-benchmark: ratios from one run mean more than absolute ops/s\n\n")

	chartLinks := func(prefix string) {
		for _, ch := range charts {
			if strings.HasPrefix(ch.file, prefix) {
				fmt.Fprintf(w, "![%s](%s-%s)\n\n", ch.caption, c.name, ch.file)
			}
		}
	}
	if len(r.pairs) > 0 {
		w.WriteString("## Throughput\n\n")
		fmt.Fprintf(w, "redis-benchmark -c %d -r %d, one test per run with -n chosen per test from a calibration run for about %gs (single) / %gs (--cluster) per run, "+
			"%d rounds alternating Redis and ringcache back to back per test. ops/s, p50 and p99 are medians over rounds; "+
			"ratio = ringcache / Redis ops/s within a round, median and min..max over rounds (>1: ringcache faster).\n\n",
			c.clients, c.keyspace, c.seconds, c.cseconds, c.rounds)
		for _, pair := range []string{"single", "cluster"} {
			var rows [][]string
			var title string
			var worstTick float64
			for _, pr := range r.pairs {
				if pr.pair != pair {
					continue
				}
				title = fmt.Sprintf("### %s vs %s", pr.sides[1], pr.sides[0])
				worstTick = max(worstTick, pr.tickBias)
				for _, row := range pr.rows {
					a, b := row.Stats[0], row.Stats[1]
					rows = append(rows, []string{row.Test, strconv.Itoa(pr.pipeline), strconv.Itoa(pr.size), strconv.Itoa(pr.requests[row.Test]),
						harness.FormatOps(a.RPS), harness.FormatOps(b.RPS), f2(row.Ratio), f2(row.RatioMin) + ".." + f2(row.RatioMax),
						f3(a.P50Ms), f3(b.P50Ms), f3(a.P99Ms), f3(b.P99Ms)})
				}
			}
			if rows == nil {
				continue
			}
			w.WriteString(title + "\n\n")
			if pair == "cluster" {
				fmt.Fprintf(w, "redis-benchmark --cluster (one thread per master; keys hash-tagged per master, so -r keys per master). "+
					"ringcache: %d nodes, replication factor 2 (every write is acknowledged after its replica has it); Redis Cluster: %d masters, no replicas. "+
					"Threaded runs end on a 250 ms tick: ops/s may be understated by up to %.0f%% in the shortest run here.\n\n", c.nodes, c.nodes, 100*worstTick)
			}
			mdTable(w, []string{"test", "-P", "-d", "-n", "Redis ops/s", "ringcache ops/s", "ratio", "min..max", "Redis p50 ms", "ringcache p50 ms", "Redis p99 ms", "ringcache p99 ms"}, rows)
			chartLinks("ops-" + pair)
			chartLinks("ratio-" + pair)
		}
	}
	if len(r.mem) > 0 {
		w.WriteString("## Memory\n\n")
		fmt.Fprintf(w, "VmRSS summed over each deployment's processes, on a fresh deployment before and after loading %d keys (%d-byte keys, %d-byte values) with a pipelined client, "+
			"sampled every second for %v after the load: *+3 s* is the sample 3 s after it, *settled* the first sample that at least %d later ones follow "+
			"and that no later sample undercuts by more than %.0f%% (a node on disk gives memory back some 20 s after its last write). "+
			"bytes/key = growth / keys, so with replication factor 2 it counts both copies; /copy divides by the copies. "+
			"used_memory is INFO memory's, summed over the processes, at the same moments (what maxmemory limits, plus for ringcache the writes not yet persisted). "+
			"Raw data: %.1f MB (%d bytes per key and value).\n\n",
			c.keys, c.keyLen, c.valueLen, c.settle, memSettleHold, 100*memSettleTol, float64(c.keys*(c.keyLen+c.valueLen))/1e6, c.keyLen+c.valueLen)
		var rows [][]string
		for _, m := range r.mem {
			cp := float64(m.copies)
			at := fmt.Sprintf("%.0f s", m.settledAt.Seconds())
			if !m.settledOK {
				at = "not (" + at + ")"
			}
			rows = append(rows, []string{m.name, strconv.Itoa(m.nodes), strconv.Itoa(m.copies), fmt.Sprintf("%.1f", float64(m.before)/1024),
				fmt.Sprintf("%.1f", float64(m.after)/1024), fmt.Sprintf("%.1f", float64(m.settled)/1024), at,
				f0(m.bytesPerKey()), f0(m.settledPerKey()), f0(m.bytesPerKey() / cp), f0(m.settledPerKey() / cp),
				f0(m.usedPerKey() / cp), f0(m.usedSettledPerKey() / cp)})
		}
		mdTable(w, []string{"deployment", "processes", "copies", "RSS before MB", "RSS +3 s MB", "RSS settled MB", "settled at",
			"bytes/key +3 s", "bytes/key settled", "bytes/key/copy +3 s", "bytes/key/copy settled",
			"used_memory bytes/key/copy +3 s", "used_memory bytes/key/copy settled"}, rows)
		chartLinks("memory")
	}
	if len(r.hit) > 0 {
		r.hitMarkdown(w)
		chartLinks("hitratio")
	}
	if len(r.scale.rowsOrNil()) > 0 {
		w.WriteString("## Scale\n\n")
		fmt.Fprintf(w, "ringcache clusters of %v nodes (RF 2 where there are 2 or more), all running at once, rounds alternating between them; "+
			"redis-benchmark -P 16 -d 3, -n the same for every size; 1 node without --cluster, the others with it. "+
			"**On %d cores this shows overhead, not speed-up**: every node and redis-benchmark share the same cores, and more nodes add replication and gossip work, not CPU.\n\n",
			r.scale.sizes, runtime.NumCPU())
		head := []string{"test", "-n"}
		for _, n := range r.scale.sizes {
			head = append(head, fmt.Sprintf("%d node(s) ops/s", n))
		}
		for _, n := range r.scale.sizes[1:] {
			head = append(head, fmt.Sprintf("%d / 1", n))
		}
		var rows [][]string
		for _, row := range r.scale.rows {
			line := []string{row.Test, strconv.Itoa(r.scale.n[row.Test])}
			for _, s := range row.Stats {
				line = append(line, harness.FormatOps(s.RPS))
			}
			for _, s := range row.Stats[1:] {
				line = append(line, f2(harness.Ratio(s.RPS, row.Stats[0].RPS)))
			}
			rows = append(rows, line)
		}
		mdTable(w, head, rows)
		chartLinks("scale")
	}
	if len(r.fail) > 0 && len(r.fail[0].times) > 0 {
		w.WriteString("## Failover\n\n")
		fmt.Fprintf(w, "A fresh cluster per trial, %d background connections writing; kill -9 of a primary (rotating), then SET of a key in one of its slots to every surviving node every %v, "+
			"without following redirects: the time is from the kill to the first OK (MOVED, TRYAGAIN, CLUSTERDOWN and connection errors do not count).\n\n", c.loadWorkers, c.probeInterval)
		var rows [][]string
		for _, f := range r.fail {
			s := seconds(f.times)
			lo, hi := harness.MinMax(s)
			var each []string
			for _, x := range s {
				each = append(each, f2(x))
			}
			rows = append(rows, []string{f.name, f.detail, strconv.Itoa(len(s)), f2(harness.Median(s)), f2(lo), f2(hi), strings.Join(each, ", "), mostCommon(f.lastErr)})
		}
		mdTable(w, []string{"cluster", "settings", "trials", "median s", "min s", "max s", "each trial s", "last refusal before the OK"}, rows)
		chartLinks("failover")
	}
	if len(r.clients) > 0 {
		w.WriteString("## Failover as clients see it\n\n")
		fmt.Fprintf(w, "A fresh %d-node ringcache cluster per trial; each client library, with its default options, writes 120 keys from 8 concurrent writers; kill -9 of a primary; "+
			"the time is how long the client saw its writes to the killed primary's slots fail: from the kill to the later of its last refused write there and its first acknowledged one begun after the kill. Every key is then read back: a lost write is a key older than its last acknowledged value.\n\n", c.nodes)
		var rows [][]string
		for _, cr := range r.clients {
			if cr.skipped != "" {
				rows = append(rows, []string{cr.lib, "", cr.options, "0", "", "", "", "", "skipped: " + cr.skipped})
				continue
			}
			s := seconds(cr.times)
			lo, hi := harness.MinMax(s)
			var each []string
			for _, x := range s {
				each = append(each, f2(x))
			}
			rows = append(rows, []string{cr.lib, cr.version, cr.options, strconv.Itoa(len(s)), f2(harness.Median(s)), f2(lo), f2(hi), strings.Join(each, ", "), strconv.Itoa(cr.lost)})
		}
		mdTable(w, []string{"client", "version", "options", "trials", "median s", "min s", "max s", "each trial s", "acknowledged writes lost"}, rows)
	}
}

func (s *scaleResult) rowsOrNil() []harness.Row {
	if s == nil {
		return nil
	}
	return s.rows
}

// mostCommon returns the most frequent string (the first on a tie).
func mostCommon(ss []string) string {
	best, n := "", 0
	for _, s := range ss {
		if c := countOf(ss, s); c > n {
			best, n = s, c
		}
	}
	return best
}

func countOf(ss []string, s string) int {
	n := 0
	for _, x := range ss {
		if x == s {
			n++
		}
	}
	return n
}

// csv writes every figure as one row: section, setup, -P, -d, test,
// target, metric, value (a long format that spreadsheets pivot).
func (r *results) csv(w io.Writer) error {
	cw := csv.NewWriter(w)
	cw.Write([]string{"section", "setup", "pipeline", "value_bytes", "test", "target", "metric", "value"})
	row := func(section, setup string, pipe, size int, test, target, metric string, v float64) {
		p, d := "", ""
		if pipe > 0 {
			p, d = strconv.Itoa(pipe), strconv.Itoa(size)
		}
		val := ""
		if !math.IsNaN(v) {
			val = strconv.FormatFloat(v, 'f', -1, 64)
		}
		cw.Write([]string{section, setup, p, d, test, target, metric, val})
	}
	for _, pr := range r.pairs {
		for _, x := range pr.rows {
			for i, s := range x.Stats {
				row("throughput", pr.pair, pr.pipeline, pr.size, x.Test, pr.sides[i], "ops_s", s.RPS)
				row("throughput", pr.pair, pr.pipeline, pr.size, x.Test, pr.sides[i], "ops_s_min", s.RPSMin)
				row("throughput", pr.pair, pr.pipeline, pr.size, x.Test, pr.sides[i], "ops_s_max", s.RPSMax)
				row("throughput", pr.pair, pr.pipeline, pr.size, x.Test, pr.sides[i], "p50_ms", s.P50Ms)
				row("throughput", pr.pair, pr.pipeline, pr.size, x.Test, pr.sides[i], "p99_ms", s.P99Ms)
			}
			row("throughput", pr.pair, pr.pipeline, pr.size, x.Test, "ringcache/redis", "ratio", x.Ratio)
			row("throughput", pr.pair, pr.pipeline, pr.size, x.Test, "ringcache/redis", "ratio_min", x.RatioMin)
			row("throughput", pr.pair, pr.pipeline, pr.size, x.Test, "ringcache/redis", "ratio_max", x.RatioMax)
			row("throughput", pr.pair, pr.pipeline, pr.size, x.Test, "both", "requests", float64(pr.requests[x.Test]))
		}
	}
	for _, m := range r.mem {
		cp := float64(m.copies)
		row("memory", m.name, 0, 0, "", m.name, "rss_before_kib", float64(m.before))
		row("memory", m.name, 0, 0, "", m.name, "rss_after_kib", float64(m.after))
		row("memory", m.name, 0, 0, "", m.name, "bytes_per_key", m.bytesPerKey())
		row("memory", m.name, 0, 0, "", m.name, "copies", cp)
		row("memory", m.name, 0, 0, "", m.name, "rss_settled_kib", float64(m.settled))
		row("memory", m.name, 0, 0, "", m.name, "settled_after_s", m.settledAt.Seconds())
		row("memory", m.name, 0, 0, "", m.name, "settled", boolFloat(m.settledOK))
		row("memory", m.name, 0, 0, "", m.name, "bytes_per_key_settled", m.settledPerKey())
		row("memory", m.name, 0, 0, "", m.name, "bytes_per_key_per_copy", m.bytesPerKey()/cp)
		row("memory", m.name, 0, 0, "", m.name, "bytes_per_key_per_copy_settled", m.settledPerKey()/cp)
		row("memory", m.name, 0, 0, "", m.name, "used_memory_before", known(m.usedBefore))
		row("memory", m.name, 0, 0, "", m.name, "used_memory_after", known(m.usedAfter))
		row("memory", m.name, 0, 0, "", m.name, "used_memory_settled", known(m.usedSettled))
		row("memory", m.name, 0, 0, "", m.name, "used_memory_per_key_per_copy", m.usedPerKey()/cp)
		row("memory", m.name, 0, 0, "", m.name, "used_memory_per_key_per_copy_settled", m.usedSettledPerKey()/cp)
	}
	for _, h := range r.hit {
		test := fmt.Sprintf("zipf %g, %d keys", r.cfg.hitZipf, r.cfg.hitKeys)
		for _, sd := range h.sides {
			m := sd.measure
			row("hitratio", h.policy, 0, 0, test, sd.name, "hit_ratio", m.ratio())
			row("hitratio", h.policy, 0, 0, test, sd.name, "warmup_hit_ratio", sd.warm.ratio())
			row("hitratio", h.policy, 0, 0, test, sd.name, "requests", float64(m.requests))
			row("hitratio", h.policy, 0, 0, test, sd.name, "hits", float64(m.hits))
			row("hitratio", h.policy, 0, 0, test, sd.name, "repeat_misses", float64(m.repeatMisses))
			row("hitratio", h.policy, 0, 0, test, sd.name, "errors", float64(m.getErrors+m.setErrors+sd.warm.getErrors+sd.warm.setErrors))
			row("hitratio", h.policy, 0, 0, test, sd.name, "wrong_replies", float64(m.wrong+sd.warm.wrong))
			row("hitratio", h.policy, 0, 0, test, sd.name, "keys", known(sd.keys))
			row("hitratio", h.policy, 0, 0, test, sd.name, "used_memory", known(sd.usedMemory))
			row("hitratio", h.policy, 0, 0, test, sd.name, "evicted_keys", known(sd.evicted))
			row("hitratio", h.policy, 0, 0, test, sd.name, "rss_kib", known(sd.rssKiB))
			row("hitratio", h.policy, 0, 0, test, sd.name, "topk_mass", sd.bound)
			row("hitratio", h.policy, 0, 0, test, sd.name, "pass_seconds", m.took.Seconds())
		}
	}
	if r.scale != nil {
		for _, x := range r.scale.rows {
			for i, s := range x.Stats {
				name := fmt.Sprintf("ringcache %d node(s)", r.scale.sizes[i])
				row("scale", "ringcache", 16, 3, x.Test, name, "ops_s", s.RPS)
				row("scale", "ringcache", 16, 3, x.Test, name, "ops_s_min", s.RPSMin)
				row("scale", "ringcache", 16, 3, x.Test, name, "ops_s_max", s.RPSMax)
			}
		}
	}
	for _, f := range r.fail {
		for i, t := range f.times {
			row("failover", f.detail, 0, 0, "trial "+strconv.Itoa(i+1), f.name, "seconds", t.Seconds())
		}
	}
	for _, cr := range r.clients {
		for i, t := range cr.times {
			row("client-failover", cr.options, 0, 0, "trial "+strconv.Itoa(i+1), cr.lib, "seconds", t.Seconds())
			row("client-failover", cr.options, 0, 0, "trial "+strconv.Itoa(i+1), cr.lib, "every_key_seconds", cr.allKeys[i].Seconds())
		}
		if len(cr.times) > 0 {
			row("client-failover", cr.options, 0, 0, "all trials", cr.lib, "lost_writes", float64(cr.lost))
		}
	}
	cw.Flush()
	return cw.Error()
}

// known is v as a float, NaN (an empty CSV cell) for -1, unknown.
func known(v int64) float64 {
	if v < 0 {
		return math.NaN()
	}
	return float64(v)
}

func boolFloat(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// hitMarkdown writes the hit-ratio section.
func (r *results) hitMarkdown(w *strings.Builder) {
	c := r.cfg
	w.WriteString("## Hit ratio\n\n")
	fmt.Fprintf(w, "A cache-aside client (GET key; on a miss SET key to a %d-byte value) over one connection against a fresh redis-server "+
		"(`--maxmemory %s --maxmemory-policy <p> --save '' --appendonly no`) and a fresh ringcache node on disk (`--maxmemory %s --maxmemory-policy <p>`), "+
		"one after the other for each policy. Keys key:0 .. key:%d, requested with Zipf probabilities P(rank k) ∝ 1/k^%g (key:0 the most popular). "+
		"A warm-up pass of %d requests (seed %d), then the measured pass of %d requests (seed %d): the same streams for every system and policy. "+
		"GETs go in pipelined batches of %d; the SETs for a batch's misses go out with the next batch's GETs, so within a batch a key that misses twice "+
		"misses both times (*repeat misses*: at most that much hit ratio lost to pipelining). "+
		"*keys* is DBSIZE after the measured pass; used_memory (INFO), RSS (VmRSS) and evicted_keys are read then too. The *bound* is the probability mass of the K most popular keys: the hit ratio of a cache that always "+
		"holds exactly those K keys, which no online policy holding K keys beats on a stream of independent requests.\n\n",
		c.hitValueLen, c.hitMaxmemory, c.hitMaxmemory, c.hitKeys-1, c.hitZipf, c.hitRequests, hitWarmSeed, c.hitRequests, hitMeasureSeed, c.hitBatch)
	var rows [][]string
	for _, h := range r.hit {
		rd, rc := h.sides[0], h.sides[1]
		rows = append(rows, []string{h.policy, f4(rd.measure.ratio()), f4(rc.measure.ratio()), i64(rd.keys), i64(rc.keys),
			f4(rd.bound), f4(rc.bound), f4(harness.Ratio(rd.measure.ratio(), rd.bound)), f4(harness.Ratio(rc.measure.ratio(), rc.bound))})
	}
	mdTable(w, []string{"policy", "Redis hit ratio", "ringcache hit ratio", "Redis keys", "ringcache keys",
		"bound, K = Redis keys", "bound, K = ringcache keys", "Redis / its bound", "ringcache / its bound"}, rows)
	rows = nil
	for _, h := range r.hit {
		for _, sd := range h.sides {
			m := sd.measure
			errs := m.getErrors + m.setErrors + sd.warm.getErrors + sd.warm.setErrors
			last := m.lastError
			if last == "" {
				last = sd.warm.lastError
			}
			rows = append(rows, []string{h.policy, sd.name, f4(sd.warm.ratio()), strconv.FormatInt(m.hits, 10) + " / " + strconv.FormatInt(m.requests, 10),
				strconv.FormatInt(m.repeatMisses, 10), mb(sd.usedMemory), mb(sd.rssKiB << 10), i64(sd.evicted),
				strconv.FormatInt(errs, 10), strconv.FormatInt(m.wrong+sd.warm.wrong, 10), last, f2(m.took.Seconds())})
		}
	}
	mdTable(w, []string{"policy", "system", "warm-up hit ratio", "hits / requests", "repeat misses", "used_memory MB", "RSS MB", "evicted keys",
		"error replies", "wrong replies", "last error", "measured pass s"}, rows)
}

func i64(v int64) string {
	if v < 0 {
		return "n/a"
	}
	return strconv.FormatInt(v, 10)
}

func mb(v int64) string {
	if v < 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.1f", float64(v)/(1<<20))
}
