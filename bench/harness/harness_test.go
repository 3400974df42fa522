package harness

import (
	"context"
	"math"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// redis7CSV is real redis-benchmark 7.0.15 output for -t set,get --csv.
const redis7CSV = `"test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms","p95_latency_ms","p99_latency_ms","max_latency_ms"
"SET","253164.55","0.099","0.024","0.087","0.223","0.319","0.655"
"GET","277777.78","0.086","0.024","0.079","0.119","0.239","1.127"
`

// clusterPreamble is what redis-benchmark 7.0.15 --cluster --csv prints
// to stdout before the CSV.
const clusterPreamble = `Cluster has 3 master nodes:

Master 0: 9651ee40798af4feb3aa4c44d2628cae852bb944 127.0.0.1:37002
Master 1: 48f19e5a2ac88a62b5aaa430760c1b1e0e099f79 127.0.0.1:37001
Master 2: 015dbad7a8ef9a1438a26a657134ce6de5787795 127.0.0.1:37003

`

func TestParseOutput(t *testing.T) {
	nan := math.NaN()
	redis7 := []Result{
		{"SET", 253164.55, 0.099, 0.024, 0.087, 0.223, 0.319, 0.655},
		{"GET", 277777.78, 0.086, 0.024, 0.079, 0.119, 0.239, 1.127},
	}
	tests := []struct {
		name        string
		in          string
		want        []Result
		wantMasters int
		wantNotes   []string
		wantErr     string // substring; "" means success
	}{
		{
			name: "redis 7 output",
			in:   redis7CSV,
			want: []Result{
				{"SET", 253164.55, 0.099, 0.024, 0.087, 0.223, 0.319, 0.655},
				{"GET", 277777.78, 0.086, 0.024, 0.079, 0.119, 0.239, 1.127},
			},
		},
		{
			name: "columns located by name, unknown and missing optional ones tolerated",
			in: `"p99_latency_ms","extra","test","p50_latency_ms","rps"
"1.5","x","MSET (10 keys)","0.5","1000"
`,
			want: []Result{{"MSET (10 keys)", 1000, nan, nan, 0.5, nan, 1.5, nan}},
		},
		{
			name: "CRLF, blank lines and a progress line overwritten by carriage return",
			in:   "\r\n" + `SET: rps=1234.0 (overall: 1000.0) avg_msec=0.1 (overall: 0.1)` + "\r" + strings.ReplaceAll(redis7CSV, "\n", "\r\n") + "\n\n",
			want: []Result{
				{"SET", 253164.55, 0.099, 0.024, 0.087, 0.223, 0.319, 0.655},
				{"GET", 277777.78, 0.086, 0.024, 0.079, 0.119, 0.239, 1.127},
			},
		},
		{name: "cluster preamble", in: clusterPreamble + redis7CSV, want: redis7, wantMasters: 3},
		{
			name:        "informational lines are not searched for error words",
			in:          "Cluster has 2 master nodes:\nMaster 0: errorerror 10.0.0.1:7000\nMaster 1: e1 error-host:7001\n" + redis7CSV,
			want:        redis7,
			wantMasters: 2,
		},
		{
			name:        "a master without slots is relayed",
			in:          "WARNING: Master node 127.0.0.1:7003 has no slots, skipping...\nCluster has 2 master nodes:\n" + redis7CSV,
			want:        redis7,
			wantMasters: 2,
			wantNotes:   []string{"WARNING: Master node 127.0.0.1:7003 has no slots, skipping..."},
		},
		{
			name:      "other non-CSV lines are relayed",
			in:        "WARNING: Keepalive disabled. You probably need ...\n" + redis7CSV,
			want:      redis7,
			wantNotes: []string{"WARNING: Keepalive disabled. You probably need ..."},
		},
		{name: "cluster error on stdout", in: clusterPreamble + "Error from server 127.0.0.1:37001: CLUSTERDOWN The cluster is down\n" + redis7CSV, wantErr: "CLUSTERDOWN"},
		{name: "redirect on stdout", in: clusterPreamble + "Cluster slots configuration changed, fetching new one...\n" + redis7CSV, wantErr: "MOVED/ASK"},
		{name: "empty", in: "", wantErr: "no CSV"},
		{name: "preamble only", in: clusterPreamble, wantErr: "no CSV"},
		{name: "header only", in: strings.SplitAfter(redis7CSV, "\n")[0], wantErr: "no results"},
		{name: "error line on stdout", in: redis7CSV + "Error: Connection reset by peer\n", wantErr: "Error: Connection reset"},
		{name: "redis 6 style header", in: "\"test\",\"rps\"\n\"SET\",\"1000.00\"\n", wantErr: `lacks column "p50_latency_ms"`},
		{name: "bad number", in: strings.Replace(redis7CSV, "253164.55", "fast", 1), wantErr: "column rps"},
		{name: "short row", in: redis7CSV + "\"PING\",\"1\"\n", wantErr: "wrong number of fields"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseOutput(strings.NewReader(tc.in))
			if !wantErr(t, err, tc.wantErr) {
				return
			}
			if !slices.EqualFunc(got.Results, tc.want, sameResult) {
				t.Errorf("got  %+v\nwant %+v", got.Results, tc.want)
			}
			if got.Masters != tc.wantMasters {
				t.Errorf("Masters = %d, want %d", got.Masters, tc.wantMasters)
			}
			if !slices.Equal(got.Notes, tc.wantNotes) {
				t.Errorf("Notes = %q, want %q", got.Notes, tc.wantNotes)
			}
		})
	}
}

// sameResult compares Results treating NaN as equal to NaN.
func sameResult(a, b Result) bool {
	eq := func(x, y float64) bool { return x == y || (math.IsNaN(x) && math.IsNaN(y)) }
	return a.Test == b.Test && eq(a.RPS, b.RPS) && eq(a.AvgMs, b.AvgMs) && eq(a.MinMs, b.MinMs) &&
		eq(a.P50Ms, b.P50Ms) && eq(a.P95Ms, b.P95Ms) && eq(a.P99Ms, b.P99Ms) && eq(a.MaxMs, b.MaxMs)
}

func TestMedianMinMaxRatio(t *testing.T) {
	tests := []struct {
		in             []float64
		median, lo, hi float64
	}{
		{nil, math.NaN(), math.NaN(), math.NaN()},
		{[]float64{7}, 7, 7, 7},
		{[]float64{3, 1, 2}, 2, 1, 3},
		{[]float64{4, 1, 3, 2}, 2.5, 1, 4},
		{[]float64{10, 10, 1000}, 10, 10, 1000}, // one bad round does not move it
	}
	for _, tc := range tests {
		orig := slices.Clone(tc.in)
		if got := Median(tc.in); !sameFloat(got, tc.median) {
			t.Errorf("Median(%v) = %v, want %v", tc.in, got, tc.median)
		}
		if !slices.Equal(tc.in, orig) {
			t.Errorf("Median modified its input: %v", tc.in)
		}
		if lo, hi := MinMax(tc.in); !sameFloat(lo, tc.lo) || !sameFloat(hi, tc.hi) {
			t.Errorf("MinMax(%v) = %v, %v, want %v, %v", tc.in, lo, hi, tc.lo, tc.hi)
		}
	}
	ratios := []struct{ num, den, want float64 }{
		{150, 100, 1.5},
		{100, 0, math.NaN()},
		{math.NaN(), 100, math.NaN()},
	}
	for _, tc := range ratios {
		if got := Ratio(tc.num, tc.den); !sameFloat(got, tc.want) {
			t.Errorf("Ratio(%v, %v) = %v, want %v", tc.num, tc.den, got, tc.want)
		}
	}
}

func sameFloat(a, b float64) bool {
	return math.Abs(a-b) < 1e-9 || (math.IsNaN(a) && math.IsNaN(b))
}

// rounds builds Series rounds from per-round (SET rps, GET rps) pairs,
// with p50 = rps/1000 and p99 = rps/100 so latencies are checkable too.
func rounds(pairs ...[2]float64) [][]Result {
	var out [][]Result
	for _, p := range pairs {
		out = append(out, []Result{
			{Test: "SET", RPS: p[0], P50Ms: p[0] / 1000, P99Ms: p[0] / 100},
			{Test: "GET", RPS: p[1], P50Ms: p[1] / 1000, P99Ms: p[1] / 100},
		})
	}
	return out
}

func TestSummarize(t *testing.T) {
	redis := Series{Name: "redis", Rounds: rounds([2]float64{100, 200}, [2]float64{110, 180}, [2]float64{90, 220})}
	ring := Series{Name: "ringcache", Rounds: rounds([2]float64{50, 240}, [2]float64{66, 90}, [2]float64{72, 198})}

	rows, err := Summarize([]Series{redis, ring})
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 2 || rows[0].Test != "SET" || rows[1].Test != "GET" {
		t.Fatalf("rows = %+v, want SET then GET", rows)
	}
	tests := []struct {
		row                       Row
		rps0, rps1, p50_0, p99_1  float64
		ratio, ratioMin, ratioMax float64
		ratios                    []float64
	}{
		// SET per-round ratios 0.5, 0.6, 0.8.
		{rows[0], 100, 66, 0.1, 0.66, 0.6, 0.5, 0.8, []float64{0.5, 0.6, 0.8}},
		// GET per-round ratios 1.2, 0.5, 0.9: the median ratio (0.9) is
		// not the ratio of the medians (198/200 = 0.99).
		{rows[1], 200, 198, 0.2, 1.98, 0.9, 0.5, 1.2, []float64{1.2, 0.5, 0.9}},
	}
	for _, tc := range tests {
		r := tc.row
		if r.Rounds != 3 {
			t.Errorf("%s: Rounds = %d, want 3", r.Test, r.Rounds)
		}
		checks := []struct {
			what      string
			got, want float64
		}{
			{"redis ops", r.Stats[0].RPS, tc.rps0},
			{"ringcache ops", r.Stats[1].RPS, tc.rps1},
			{"redis p50", r.Stats[0].P50Ms, tc.p50_0},
			{"ringcache p99", r.Stats[1].P99Ms, tc.p99_1},
			{"ratio", r.Ratio, tc.ratio},
			{"ratio min", r.RatioMin, tc.ratioMin},
			{"ratio max", r.RatioMax, tc.ratioMax},
		}
		for _, c := range checks {
			if !sameFloat(c.got, c.want) {
				t.Errorf("%s %s = %v, want %v", r.Test, c.what, c.got, c.want)
			}
		}
		if !slices.EqualFunc(r.Ratios, tc.ratios, sameFloat) {
			t.Errorf("%s ratios = %v, want %v", r.Test, r.Ratios, tc.ratios)
		}
	}

	// A single series has statistics but no ratio.
	single, err := Summarize([]Series{redis})
	if err != nil {
		t.Fatal(err)
	}
	if r := single[0]; r.Stats[0].RPS != 100 || r.Stats[0].RPSMin != 90 || r.Stats[0].RPSMax != 110 || !math.IsNaN(r.Ratio) || r.Ratios != nil {
		t.Errorf("single series row = %+v", r)
	}
}

func TestSummarizeErrors(t *testing.T) {
	ok := Series{Name: "a", Rounds: rounds([2]float64{1, 1}, [2]float64{1, 1})}
	missing := Series{Name: "b", Rounds: [][]Result{{{Test: "SET", RPS: 1}, {Test: "GET", RPS: 1}}, {{Test: "SET", RPS: 1}}}}
	dup := Series{Name: "b", Rounds: [][]Result{{{Test: "SET"}, {Test: "SET"}}, {{Test: "SET"}}}}
	tests := []struct {
		name    string
		in      []Series
		wantErr string
	}{
		{"no series", nil, "no series"},
		{"no rounds", []Series{{Name: "a"}}, "no rounds"},
		{"round count mismatch", []Series{ok, {Name: "b", Rounds: rounds([2]float64{1, 1})}}, "b has 1 rounds"},
		{"test missing in a round", []Series{ok, missing}, `b round 2: test "GET" missing`},
		{"duplicate test", []Series{ok, dup}, "reported twice"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Summarize(tc.in)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("err = %v, want it to contain %q", err, tc.wantErr)
			}
		})
	}
}

func TestSplitArgs(t *testing.T) {
	tests := []struct {
		in      string
		want    []string
		wantErr bool
	}{
		{"", nil, false},
		{"   ", nil, false},
		{"--maxmemory 1gb", []string{"--maxmemory", "1gb"}, false},
		{"--save '' --appendonly no", []string{"--save", "", "--appendonly", "no"}, false},
		{`--name "a b" x\ y`, []string{"--name", "a b", "x y"}, false},
		{`"say \"hi\" \n" 'it''s'`, []string{`say "hi" \n`, "its"}, false},
		{`a"b"'c'`, []string{"abc"}, false},
		{"'open", nil, true},
		{`trailing\`, nil, true},
	}
	for _, tc := range tests {
		got, err := SplitArgs(tc.in)
		if (err != nil) != tc.wantErr {
			t.Errorf("SplitArgs(%q) err = %v, wantErr %v", tc.in, err, tc.wantErr)
			continue
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("SplitArgs(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestParseProcStatus(t *testing.T) {
	status := "Name:\tredis-server\nVmPeak:\t  100 kB\nVmHWM:\t    9216 kB\nVmRSS:\t    8192 kB\nThreads:\t5\n"
	m, err := parseProcStatus([]byte(status))
	if err != nil || m.RSSKiB != 8192 || m.HWMKiB != 9216 {
		t.Errorf("parseProcStatus = %+v, %v; want RSS 8192 HWM 9216", m, err)
	}
	if _, err := parseProcStatus([]byte("Name:\tkthreadd\n")); err == nil {
		t.Error("no Vm lines: want an error")
	}
}

func TestFormatOps(t *testing.T) {
	for in, want := range map[float64]string{0: "0", 999.4: "999", 1000: "1,000", 253164.55: "253,165", 1234567: "1,234,567"} {
		if got := FormatOps(in); got != want {
			t.Errorf("FormatOps(%v) = %q, want %q", in, got, want)
		}
	}
	if got := FormatOps(math.NaN()); got != "n/a" {
		t.Errorf("FormatOps(NaN) = %q", got)
	}
}

func TestReport(t *testing.T) {
	rows, err := Summarize([]Series{
		{Name: "redis", Rounds: rounds([2]float64{100000, 200000})},
		{Name: "ringcache", Rounds: rounds([2]float64{80000, 250000})},
	})
	if err != nil {
		t.Fatal(err)
	}
	rep := &Report{Title: "t", Targets: []string{"redis", "ringcache"}, Rows: rows,
		Mem: []TargetMem{{Name: "redis", Stat: MemStat{RSSKiB: 2048, HWMKiB: 3072}}, {Name: "ringcache", Stat: MemStat{RSSKiB: 1024, HWMKiB: 1024}}}}

	var text strings.Builder
	if err := rep.WriteText(&text); err != nil {
		t.Fatal(err)
	}
	// Header, rule and rows of an aligned table have equal widths.
	lines := strings.Split(text.String(), "\n")
	var table []string
	for _, l := range lines {
		if strings.HasPrefix(l, "test") || strings.HasPrefix(l, "----") || strings.HasPrefix(l, "SET") || strings.HasPrefix(l, "GET") {
			table = append(table, l)
		}
	}
	if len(table) != 4 {
		t.Fatalf("table lines = %q", table)
	}
	for _, l := range table[1:] {
		if len(l) != len(table[0]) {
			t.Errorf("misaligned:\n%s", strings.Join(table, "\n"))
			break
		}
	}
	for _, want := range []string{"100,000", "0.80", "0.80..0.80", "1.25", "redis: 2.0 MiB (peak 3.0 MiB)"} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("text report lacks %q:\n%s", want, text.String())
		}
	}

	var csvOut strings.Builder
	if err := rep.WriteCSV(&csvOut); err != nil {
		t.Fatal(err)
	}
	wantCSV := "test,rounds,redis_ops_s,redis_ops_s_min,redis_ops_s_max,ringcache_ops_s,ringcache_ops_s_min,ringcache_ops_s_max,ratio,ratio_min,ratio_max,redis_p50_ms,redis_p99_ms,ringcache_p50_ms,ringcache_p99_ms,redis_rss_kib,redis_peak_rss_kib,ringcache_rss_kib,ringcache_peak_rss_kib\n" +
		"SET,1,100000.00,100000.00,100000.00,80000.00,80000.00,80000.00,0.8000,0.8000,0.8000,100.000,1000.000,80.000,800.000,2048,3072,1024,1024\n" +
		"GET,1,200000.00,200000.00,200000.00,250000.00,250000.00,250000.00,1.2500,1.2500,1.2500,200.000,2000.000,250.000,2500.000,2048,3072,1024,1024\n"
	if csvOut.String() != wantCSV {
		t.Errorf("CSV:\n%s\nwant:\n%s", csvOut.String(), wantCSV)
	}

	var md strings.Builder
	if err := rep.WriteMarkdown(&md); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(md.String(), "|---|---:|") || !strings.Contains(md.String(), "| SET | 100,000 | 80,000 | 0.80 |") {
		t.Errorf("Markdown:\n%s", md.String())
	}
}

// TestRunBenchmarkConnectionRefused checks that a redis-benchmark that
// cannot connect is stopped promptly: redis-benchmark 7.0 would otherwise
// spin forever.
func TestRunBenchmarkConnectionRefused(t *testing.T) {
	bin := needTool(t, "redis-benchmark")
	port, err := FreePort()
	if err != nil {
		t.Fatal(err)
	}
	spec := BenchSpec{Binary: bin, Addr: "127.0.0.1:" + strconv.Itoa(port), Tests: "set", Requests: 100,
		Keyspace: 10, Clients: 1, Pipeline: 1, DataSize: 3, Timeout: time.Minute}
	began := time.Now()
	_, _, err = RunBenchmark(context.Background(), spec)
	if err == nil || !strings.Contains(err.Error(), "Could not connect") {
		t.Fatalf("err = %v, want a could-not-connect error", err)
	}
	if d := time.Since(began); d > 20*time.Second {
		t.Errorf("took %v; the stderr watcher should have killed redis-benchmark", d)
	}
}

// TestRedisEndToEnd starts a real redis-server in a workspace, benchmarks
// it briefly, and checks that Close removes everything.
func TestRedisEndToEnd(t *testing.T) {
	server := needTool(t, "redis-server")
	bench := needTool(t, "redis-benchmark")
	ws, err := NewWorkspace("harness-test-", false)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	dir, err := ws.Dir("redis")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	srv, err := ws.StartReady(ctx, 3, 30*time.Second, func(port int) ServerSpec {
		return ServerSpec{Name: "redis", Path: server, Args: RedisArgs(port), Dir: dir, Port: port}
	})
	if err != nil {
		t.Fatal(err)
	}
	res, _, err := RunBenchmark(ctx, BenchSpec{Binary: bench, Addr: srv.Addr(), Tests: "set,get",
		Requests: 2000, Keyspace: 100, Clients: 4, Pipeline: 4, DataSize: 3, Timeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 2 || res[0].Test != "SET" || res[1].Test != "GET" || res[0].RPS <= 0 {
		t.Errorf("results = %+v", res)
	}
	if m, err := srv.Mem(); err != nil || m.RSSKiB <= 0 || m.HWMKiB < m.RSSKiB {
		t.Errorf("Mem = %+v, %v", m, err)
	}
	if err := ws.Close(); err != nil {
		t.Fatal(err)
	}
	if exited, _ := srv.Exited(); !exited {
		t.Error("server still running after Close")
	}
	if _, err := os.Stat(ws.Root); !os.IsNotExist(err) {
		t.Errorf("workspace %s not removed: %v", ws.Root, err)
	}
}

// needTool returns the path of an installed tool, skipping the test when
// it is missing or in -short mode, since these tests spawn real processes.
func needTool(t *testing.T, name string) string {
	t.Helper()
	if testing.Short() {
		t.Skip("spawns processes; skipped in -short mode")
	}
	p, err := exec.LookPath(name)
	if err != nil {
		t.Skipf("%s not installed", name)
	}
	return p
}

// wantErr checks err against a table case's expected error: with want set,
// err must contain it (and the case ends: false); with want empty, err must
// be nil, and the case goes on (true).
func wantErr(t *testing.T, err error, want string) bool {
	t.Helper()
	if want != "" {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("err = %v, want it to contain %q", err, want)
		}
		return false
	}
	if err != nil {
		t.Fatal(err)
	}
	return true
}
