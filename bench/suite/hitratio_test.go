package main

import (
	"context"
	"math"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ringcache/ringcache/bench/harness"
)

func TestZipfMass(t *testing.T) {
	// n = 3, s = 1: weights 1, 1/2, 1/3, total 11/6.
	z := newZipf(3, 1)
	for k, want := range map[int]float64{-1: 0, 0: 0, 1: 6.0 / 11, 2: 9.0 / 11, 3: 1, 4: 1} {
		if got := z.mass(k); math.Abs(got-want) > 1e-12 {
			t.Errorf("mass(%d) = %v, want %v", k, got, want)
		}
	}
	// The bound of the hit-ratio phase against a direct sum, and its
	// growth: monotonic, ending at exactly 1.
	const n, s = 1000000, 1.01
	z = newZipf(n, s)
	var h, hk float64
	for k := n; k >= 1; k-- {
		h += math.Pow(float64(k), -s)
	}
	for k := 1; k <= 250000; k++ {
		hk += math.Pow(float64(k), -s)
	}
	if got, want := z.mass(250000), hk/h; math.Abs(got-want) > 1e-9 {
		t.Errorf("mass(250000) = %v, want %v", got, want)
	}
	// Euler-Maclaurin: H(n, s) ~ (n^(1-s) - 1)/(1-s) + 0.5(1 + n^-s) + s/12 (1 - n^(-s-1)) + ...
	approx := func(m float64) float64 {
		return (math.Pow(m, 1-s)-1)/(1-s) + 0.5*(1+math.Pow(m, -s)) + s/12*(1-math.Pow(m, -s-1))
	}
	if got, want := z.mass(250000), approx(250000)/approx(n); math.Abs(got-want) > 2e-3 {
		t.Errorf("mass(250000) = %v, Euler-Maclaurin %v", got, want)
	}
	if z.mass(n) != 1 || z.cdf[n-1] != 1 {
		t.Errorf("mass(n) = %v", z.mass(n))
	}
	for i := 1; i < n; i++ {
		if z.cdf[i] < z.cdf[i-1] {
			t.Fatalf("cdf decreases at %d: %v < %v", i, z.cdf[i], z.cdf[i-1])
		}
	}
}

func TestZipfRank(t *testing.T) {
	z := newZipf(3, 1) // cdf 6/11, 9/11, 1
	for _, tc := range []struct {
		u    float64
		want int
	}{{0, 1}, {0.5, 1}, {6.0/11 - 1e-12, 1}, {z.cdf[0], 2}, {0.8, 2}, {0.9, 3}, {math.Nextafter(1, 0), 3}} {
		if got := z.rank(tc.u); got != tc.want {
			t.Errorf("rank(%v) = %d, want %d", tc.u, got, tc.want)
		}
	}
}

// TestZipfSampler draws from the sampler and checks that rank k comes up
// in proportion to 1/k^s.
func TestZipfSampler(t *testing.T) {
	const n, s, draws = 100000, 1.01, 1000000
	z := newZipf(n, s)
	var h float64
	for k := n; k >= 1; k-- {
		h += math.Pow(float64(k), -s)
	}
	st := newZipfStream(z, 7)
	counts := make([]int, n+1)
	for range draws {
		k := st.next()
		if k < 1 || k > n {
			t.Fatalf("rank %d out of 1..%d", k, n)
		}
		counts[k]++
	}
	// Single ranks and ranges of ranks, each within 5 standard deviations
	// of its expected count (binomial).
	for _, r := range [][2]int{{1, 1}, {2, 2}, {3, 3}, {10, 10}, {100, 100}, {11, 100}, {101, 1000}, {1001, 10000}, {10001, n}} {
		var p float64
		got := 0
		for k := r[0]; k <= r[1]; k++ {
			p += math.Pow(float64(k), -s) / h
			got += counts[k]
		}
		want := p * draws
		if sd := math.Sqrt(want * (1 - p)); math.Abs(float64(got)-want) > 5*sd {
			t.Errorf("ranks %d..%d: %d draws, want %.0f ± %.0f", r[0], r[1], got, want, 5*sd)
		}
	}
	// The slope of log(count) over log(rank) for the head is -s.
	var sx, sy, sxx, sxy float64
	const m = 50
	for k := 1; k <= m; k++ {
		x, y := math.Log(float64(k)), math.Log(float64(counts[k]))
		sx, sy, sxx, sxy = sx+x, sy+y, sxx+x*x, sxy+x*y
	}
	if slope := (m*sxy - sx*sy) / (m*sxx - sx*sx); math.Abs(slope+s) > 0.05 {
		t.Errorf("log-log slope over ranks 1..%d = %.3f, want %.3f", m, slope, -s)
	}
	// Seeded: the same seed gives the same stream, another seed another.
	a, b, c := newZipfStream(z, 1), newZipfStream(z, 1), newZipfStream(z, 2)
	same, differ := true, false
	for range 1000 {
		x, y, w := a.next(), b.next(), c.next()
		same = same && x == y
		differ = differ || x != w
	}
	if !same || !differ {
		t.Errorf("seeding: same seed same stream %v, other seed differs %v", same, differ)
	}
}

func TestSettle(t *testing.T) {
	tests := []struct {
		name   string
		rss    []int64
		want   int
		wantOK bool
	}{
		{"flat from the start", []int64{100, 100, 100, 100, 100, 100, 100, 100}, 0, true},
		{"one drop, then flat", []int64{300, 220, 220, 221, 221, 221, 221, 221, 221}, 1, true},
		// A plateau that a look back over 5 s would take, then the give-back.
		{"late drop", []int64{290, 227, 227, 227, 221, 221, 221, 221, 221, 221, 190, 190, 190, 190, 190, 191}, 10, true},
		{"noise under 1%", []int64{1000, 995, 1001, 992, 999, 1000, 996}, 0, true},
		{"slow creep up", []int64{100, 101, 102, 103, 104, 105, 106}, 0, true},
		{"drop too late to hold", []int64{200, 200, 200, 200, 200, 200, 200, 150, 150}, 8, false},
		{"empty", nil, -1, false},
	}
	for _, tc := range tests {
		got, ok := settle(tc.rss, 5, 0.01)
		if got != tc.want || ok != tc.wantOK {
			t.Errorf("%s: settle = %d, %v; want %d, %v", tc.name, got, ok, tc.want, tc.wantOK)
		}
	}
}

// TestCacheAside runs the cache-aside client against a small
// redis-server: a keyspace that fits, so the warm pass fills it and a
// second pass over the same stream hits throughout.
func TestCacheAside(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns redis-server; skipped in -short mode")
	}
	server, err := exec.LookPath("redis-server")
	if err != nil {
		t.Skip("redis-server not installed")
	}
	ws, err := harness.NewWorkspace("suite-hitratio-test-", false)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	ctx := context.Background()
	dir, _ := ws.Dir("redis")
	srv, err := ws.StartReady(ctx, 3, 30*time.Second, func(p int) harness.ServerSpec {
		return harness.ServerSpec{Name: "redis", Path: server, Args: harness.RedisArgs(p), Dir: dir, Port: p}
	})
	if err != nil {
		t.Fatal(err)
	}
	z := newZipf(2000, 1.01)
	value := strings.Repeat("v", 10)
	first, err := cacheAside(ctx, srv.Addr(), newZipfStream(z, 1), 20000, 64, value)
	if err != nil {
		t.Fatal(err)
	}
	keys, err := harness.Command(ctx, srv.Addr(), "DBSIZE")
	if err != nil {
		t.Fatal(err)
	}
	if first.requests != 20000 || first.hits+first.misses != first.requests || first.sets != first.misses-first.repeatMisses ||
		first.getErrors+first.setErrors+first.wrong != 0 || keys != strconv.FormatInt(first.sets, 10) {
		t.Errorf("first pass %+v, DBSIZE %s", first, keys)
	}
	again, err := cacheAside(ctx, srv.Addr(), newZipfStream(z, 1), 20000, 64, value)
	if err != nil {
		t.Fatal(err)
	}
	if again.hits != 20000 || again.sets != 0 {
		t.Errorf("second pass over the same stream %+v, want all hits", again)
	}
	// A wrong value is counted, not taken for a hit.
	if _, err := harness.Command(ctx, srv.Addr(), "SET", "key:0", "other"); err != nil {
		t.Fatal(err)
	}
	odd, err := cacheAside(ctx, srv.Addr(), newZipfStream(z, 1), 1000, 64, value)
	if err != nil {
		t.Fatal(err)
	}
	if odd.wrong == 0 || odd.hits+odd.wrong != 1000 || !strings.Contains(odd.lastError, "key:0") {
		t.Errorf("pass with a wrong value %+v", odd)
	}
}
