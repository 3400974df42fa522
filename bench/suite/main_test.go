package main

import (
	"bytes"
	"encoding/csv"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ringcache/ringcache/bench/harness"
)

func TestParseFlags(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		check   func(*config) bool
		wantErr string
	}{
		{"defaults", nil, func(c *config) bool {
			return slices.Equal(c.pipes, []int{1, 16}) && slices.Equal(c.sizes, []int{3, 1024}) && c.tests == "set,get,incr,mset" &&
				c.clients == 50 && c.keyspace == 100000 && c.keys == 1000000 && c.keyLen == 16 && c.valueLen == 100 &&
				c.trials == 5 && c.redisTimeoutMs == 15000 && slices.Equal(c.scaleNodes, []int{1, 3, 5}) &&
				slices.Equal(c.pairs, []string{"single", "cluster"}) && c.failover && strings.HasPrefix(c.name, "run-") &&
				c.settle == 30*time.Second && c.hitratio && slices.Equal(c.hitPolicies, []string{"allkeys-lru", "allkeys-lfu"}) &&
				c.hitRequests == 3000000 && c.hitKeys == 1000000 && c.hitValueLen == 100 && c.hitZipf == 1.01 && c.hitMaxmemory == "40mb"
		}, ""},
		{"quick", []string{"-quick"}, func(c *config) bool {
			return slices.Equal(c.pipes, []int{16}) && slices.Equal(c.sizes, []int{3}) && c.rounds == 2 && c.keys == 100000 &&
				c.trials == 1 && c.redisTimeoutMs == 2000 && strings.HasPrefix(c.name, "quick-") &&
				c.settle == 8*time.Second && c.hitRequests == 300000
		}, ""},
		{"hit-ratio flags", []string{"-hitratio=false", "-hit-policies", "allkeys-lfu, allkeys-random", "-hit-requests", "1000"}, func(c *config) bool {
			return !c.hitratio && slices.Equal(c.hitPolicies, []string{"allkeys-lfu", "allkeys-random"}) && c.hitRequests == 1000
		}, ""},
		{"bad policy", []string{"-hit-policies", "allkeys-lru,volatile-lru"}, nil, `"volatile-lru" is not one of`},
		{"short settle", []string{"-settle", "5s"}, nil, "-settle"},
		{"bad zipf", []string{"-hit-zipf", "0"}, nil, "-hit-zipf"},
		{"quick keeps explicit flags", []string{"-quick", "-P", "1,4", "-trials", "3", "-name", "x"}, func(c *config) bool {
			return slices.Equal(c.pipes, []int{1, 4}) && c.trials == 3 && c.name == "x" && slices.Equal(c.sizes, []int{3})
		}, ""},
		{"skip failover", []string{"-failover=false", "-pairs", "cluster"}, func(c *config) bool {
			return !c.failover && slices.Equal(c.pairs, []string{"cluster"})
		}, ""},
		{"bad pipeline", []string{"-P", "1,x"}, nil, `-P: "x" is not a positive integer`},
		{"bad pair", []string{"-pairs", "single,triple"}, nil, "triple"},
		{"too few nodes", []string{"-nodes", "2"}, nil, "at least 3"},
		{"short keys", []string{"-key-size", "4"}, nil, "-key-size"},
		{"path as name", []string{"-name", "a/b"}, nil, "plain file name"},
		{"stray argument", []string{"extra"}, nil, "unexpected arguments"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := parseFlags(tc.args)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !tc.check(c) {
				t.Errorf("unexpected config %+v", c)
			}
		})
	}
}

func TestRequestsFor(t *testing.T) {
	tests := []struct {
		secs, a, b float64
		want       int
	}{
		{2, 100000, 400000, 400000},   // geometric mean 200k for 2 s
		{2.5, 10000, 10000, 25000},    // equal rates
		{0.01, 100, 100, 1000},        // floor
		{1, math.NaN(), 50000, 50000}, // one side unknown: the other
		{1, math.NaN(), math.NaN(), 10000},
	}
	for _, tc := range tests {
		if got := requestsFor(tc.secs, tc.a, tc.b); got != tc.want {
			t.Errorf("requestsFor(%v, %v, %v) = %d, want %d", tc.secs, tc.a, tc.b, got, tc.want)
		}
	}
}

func TestCalibratedRate(t *testing.T) {
	tests := []struct {
		n        int
		rps      float64
		threaded bool
		want     float64
	}{
		{10000, 100000, false, 100000},
		{10000, 40000, true, 10000 / 0.125}, // 0.25 s measured, half a tick late
		{1000, 100000, true, 100000 * 5},    // never more than 5x the measurement
		{1000, 0, false, math.NaN()},
	}
	for _, tc := range tests {
		got := calibratedRate(tc.n, tc.rps, tc.threaded)
		if !(got == tc.want || math.IsNaN(got) && math.IsNaN(tc.want)) && math.Abs(got-tc.want) > 1e-6*tc.want {
			t.Errorf("calibratedRate(%d, %v, %v) = %v, want %v", tc.n, tc.rps, tc.threaded, got, tc.want)
		}
	}
}

func TestCalibrationGroupsAndNames(t *testing.T) {
	tests := []struct {
		tests   string
		cluster bool
		want    []string
	}{
		{"set,get,incr,mset", false, []string{"set,get,incr", "mset"}},
		{"set,get,incr,mset", true, []string{"set,get,incr,mset"}},
		{"mset", false, []string{"mset"}},
		{"set, get", false, []string{"set,get"}},
	}
	for _, tc := range tests {
		if got := calibrationGroups(tc.tests, tc.cluster); !slices.Equal(got, tc.want) {
			t.Errorf("calibrationGroups(%q, %v) = %q, want %q", tc.tests, tc.cluster, got, tc.want)
		}
	}
	for in, want := range map[string]string{"set": "SET", " get ": "GET", "mset": "MSET (10 keys)"} {
		if got := testName(in); got != want {
			t.Errorf("testName(%q) = %q, want %q", in, got, want)
		}
	}
	cmd := msetCommand(5)
	if len(cmd) != 21 || cmd[0] != "MSET" || cmd[1] != "{mset}key:__rand_int__" || cmd[2] != "xxxxx" {
		t.Errorf("msetCommand(5) = %q", cmd)
	}
}

func TestProgressLeft(t *testing.T) {
	now := time.Unix(1000, 0)
	tests := []struct {
		name          string
		planned, done float64
		elapsed       time.Duration
		want          time.Duration
	}{
		{"nothing done: the plan", 100, 0, 0, 100 * time.Second},
		{"on pace", 100, 40, 40 * time.Second, 60 * time.Second},
		{"twice as slow", 100, 40, 80 * time.Second, 120 * time.Second},
		{"pace capped at 3x", 100, 10, 100 * time.Second, 270 * time.Second},
		{"over the plan", 100, 120, 100 * time.Second, 0},
	}
	for _, tc := range tests {
		p := &progress{start: now.Add(-tc.elapsed), planned: tc.planned, done: tc.done, now: func() time.Time { return now }}
		if got := p.left(); got != tc.want {
			t.Errorf("%s: left = %v, want %v", tc.name, got, tc.want)
		}
	}
	var lines []string
	p := &progress{start: now.Add(-90 * time.Second), planned: 200, done: 90, now: func() time.Time { return now }, out: func(s string) { lines = append(lines, s) }}
	p.logf("pair %s round %d", "single", 2)
	if len(lines) != 1 || lines[0] != "[ 1m30s | ~1m50s left] pair single round 2" {
		t.Errorf("logf printed %q", lines)
	}
}

// sampleResults is a finished run with every section filled.
func sampleResults(t *testing.T) *results {
	cfg, err := parseFlags([]string{"-name", "sample", "-out", t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	row := func(test string, a, b float64) harness.Row {
		return harness.Row{Test: test, Rounds: 3, Ratio: b / a, RatioMin: 0.9 * b / a, RatioMax: 1.1 * b / a,
			Stats: []harness.Stats{{RPS: a, P50Ms: 0.5, P99Ms: 1}, {RPS: b, P50Ms: 0.7, P99Ms: math.NaN()}}}
	}
	start := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	return &results{
		cfg: cfg, started: start, finished: start.Add(20 * time.Minute), rcVersion: "ringcache built from abc", redisVersion: "Redis 7", benchVersion: "redis-benchmark 7",
		pairs: []*pairResult{
			{pair: "single", sides: [2]string{"redis", "ringcache"}, pipeline: 16, size: 3, requests: map[string]int{"SET": 1000, "GET": 2000},
				rows: []harness.Row{row("SET", 400000, 100000), row("GET", 400000, 300000)}},
			{pair: "cluster", sides: [2]string{"Redis Cluster 3 masters", "ringcache 3 nodes"}, pipeline: 1, size: 1024, requests: map[string]int{"SET": 1000},
				rows: []harness.Row{row("SET", 200000, 50000)}, tickBias: 0.05},
		},
		mem: []memResult{{name: "redis-server", nodes: 1, copies: 1, before: 10240, after: 10240 + 195312, keys: 1000000,
			settled: 10240 + 195312, settledAt: time.Second, settledOK: true, usedBefore: 1000000, usedAfter: 181000000, usedSettled: 181000000},
			{name: "ringcache, 3 nodes RF 2", nodes: 3, copies: 2, before: 60000, after: 60000 + 976562, keys: 1000000,
				settled: 60000 + 781250, settledAt: 21 * time.Second, settledOK: true, usedBefore: 0, usedAfter: 330000000, usedSettled: 320000000},
			{name: "ringcache, 1 node", nodes: 1, copies: 1, before: 16000, after: 16000 + 700000, keys: 1000000,
				settled: 16000 + 690000, settledAt: 30 * time.Second, settledOK: false, usedBefore: -1, usedAfter: 165000000, usedSettled: 165000000}},
		hit: []*hitResult{{policy: "allkeys-lru", sides: [2]hitSide{
			{name: "redis", warm: passResult{requests: 1000, hits: 800}, measure: passResult{requests: 1000, hits: 870, misses: 130, repeatMisses: 2, took: 2 * time.Second},
				keys: 230000, usedMemory: 41943040, evicted: 500000, rssKiB: 45056, bound: 0.9},
			{name: "ringcache", warm: passResult{requests: 1000, hits: 790}, measure: passResult{requests: 1000, hits: 860, misses: 140, setErrors: 3, lastError: "SET: OOM", took: 3 * time.Second},
				keys: 210000, usedMemory: -1, evicted: 510000, rssKiB: -1, bound: 0.89}}}},
		fail: []*failResult{{name: "ringcache, 3 nodes RF 2", detail: "defaults", times: []time.Duration{1500 * time.Millisecond, 1400 * time.Millisecond, 1600 * time.Millisecond},
			lastErr: []string{"MOVED 1 a", "MOVED 1 a", "TRYAGAIN"}}},
		scale: &scaleResult{sizes: []int{1, 3}, n: map[string]int{"SET": 5000}, rows: []harness.Row{row("SET", 100000, 80000)}},
	}
}

func TestReport(t *testing.T) {
	r := sampleResults(t)
	var md strings.Builder
	charts, err := r.charts()
	if err != nil {
		t.Fatal(err)
	}
	r.markdown(&md, charts)
	for _, want := range []string{
		"# ringcache beside Redis: 2026-11-25 12:00 UTC",
		"### ringcache vs redis",
		"| SET | 16 | 3 | 1000 | 400,000 | 100,000 | 0.25 | 0.23..0.28 | 0.500 | 0.700 | 1.000 | n/a |",
		"### ringcache 3 nodes vs Redis Cluster 3 masters",
		"up to 5% in the shortest run",
		"| redis-server | 1 | 1 | 10.0 | 200.7 | 200.7 | 1 s | 200 | 200 | 200 | 200 | 180 | 180 |",
		"| ringcache, 3 nodes RF 2 | 3 | 2 | 58.6 | 1012.3 | 821.5 | 21 s | 1000 | 800 | 500 | 400 | 165 | 160 |",
		"| ringcache, 1 node | 1 | 1 | 15.6 | 699.2 | 689.5 | not (30 s) | 717 | 707 | 717 | 707 | n/a | n/a |",
		"## Hit ratio",
		"| allkeys-lru | 0.8700 | 0.8600 | 230000 | 210000 | 0.9000 | 0.8900 | 0.9667 | 0.9663 |",
		"| allkeys-lru | redis | 0.8000 | 870 / 1000 | 2 | 40.0 | 44.0 | 500000 | 0 | 0 |  | 2.00 |",
		"| allkeys-lru | ringcache | 0.7900 | 860 / 1000 | 0 | n/a | n/a | 510000 | 3 | 0 | SET: OOM | 3.00 |",
		"(sample-hitratio.svg)",
		"**On 2 cores this shows overhead, not speed-up**",
		"| SET | 5000 | 100,000 | 80,000 | 0.80 |",
		"| ringcache, 3 nodes RF 2 | defaults | 3 | 1.50 | 1.40 | 1.60 | 1.50, 1.40, 1.60 | MOVED 1 a |",
		"![ratio ringcache / redis",
		"(sample-ratio-single.svg)",
		"(sample-failover.svg)",
	} {
		if !strings.Contains(md.String(), want) {
			t.Errorf("Markdown lacks %q:\n%s", want, md.String())
		}
	}
	var files []string
	for _, c := range charts {
		files = append(files, c.file)
	}
	wantFiles := []string{"ops-single.svg", "ratio-single.svg", "ops-cluster.svg", "ratio-cluster.svg", "memory.svg", "hitratio.svg", "failover.svg", "scale.svg"}
	if !slices.Equal(files, wantFiles) {
		t.Errorf("charts %q, want %q", files, wantFiles)
	}

	var buf bytes.Buffer
	if err := r.csv(&buf); err != nil {
		t.Fatal(err)
	}
	recs, err := csv.NewReader(&buf).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	has := func(want ...string) bool {
		return slices.ContainsFunc(recs, func(rec []string) bool { return slices.Equal(rec, want) })
	}
	for _, want := range [][]string{
		{"section", "setup", "pipeline", "value_bytes", "test", "target", "metric", "value"},
		{"throughput", "single", "16", "3", "SET", "ringcache", "ops_s", "100000"},
		{"throughput", "single", "16", "3", "SET", "ringcache", "p99_ms", ""},
		{"throughput", "cluster", "1", "1024", "SET", "ringcache/redis", "ratio", "0.25"},
		{"memory", "redis-server", "", "", "", "redis-server", "bytes_per_key", "199.999488"},
		{"memory", "ringcache, 3 nodes RF 2", "", "", "", "ringcache, 3 nodes RF 2", "bytes_per_key_per_copy_settled", "400"},
		{"memory", "ringcache, 3 nodes RF 2", "", "", "", "ringcache, 3 nodes RF 2", "used_memory_per_key_per_copy_settled", "160"},
		{"memory", "ringcache, 1 node", "", "", "", "ringcache, 1 node", "settled", "0"},
		{"memory", "ringcache, 1 node", "", "", "", "ringcache, 1 node", "used_memory_before", ""},
		{"hitratio", "allkeys-lru", "", "", "zipf 1.01, 1000000 keys", "redis", "hit_ratio", "0.87"},
		{"hitratio", "allkeys-lru", "", "", "zipf 1.01, 1000000 keys", "ringcache", "topk_mass", "0.89"},
		{"hitratio", "allkeys-lru", "", "", "zipf 1.01, 1000000 keys", "ringcache", "used_memory", ""},
		{"hitratio", "allkeys-lru", "", "", "zipf 1.01, 1000000 keys", "redis", "rss_kib", "45056"},
		{"hitratio", "allkeys-lru", "", "", "zipf 1.01, 1000000 keys", "ringcache", "errors", "3"},
		{"scale", "ringcache", "16", "3", "SET", "ringcache 3 node(s)", "ops_s", "80000"},
		{"failover", "defaults", "", "", "trial 2", "ringcache, 3 nodes RF 2", "seconds", "1.4"},
	} {
		if !has(want...) {
			t.Errorf("CSV lacks %q", want)
		}
	}

	// write puts every file in place.
	if err := r.write(func(string, ...any) {}); err != nil {
		t.Fatal(err)
	}
	for _, f := range append([]string{".md", ".csv"}, files...) {
		name := "sample" + f
		if !strings.HasPrefix(f, ".") {
			name = "sample-" + f
		}
		if st, err := os.Stat(filepath.Join(r.cfg.outDir, name)); err != nil || st.Size() == 0 {
			t.Errorf("%s: %v", name, err)
		}
	}
}
