package main

import (
	"strings"
	"testing"

	"github.com/ringcache/ringcache/bench/harness"
)

func TestReportTitle(t *testing.T) {
	const load = "-t set,get -n 1000 --csv"
	tests := []struct {
		cluster bool
		nodes   int
		targets []string
		want    string
	}{
		{false, 3, []string{"redis", "ringcache"}, "ringcache vs redis: redis-benchmark " + load},
		{true, 3, []string{"redis", "ringcache"}, "3-node ringcache cluster vs 3-master Redis Cluster (--cluster): redis-benchmark " + load},
		{true, 5, []string{"redis", "ringcache"}, "5-node ringcache cluster vs 5-master Redis Cluster (--cluster): redis-benchmark " + load},
		{false, 3, []string{"redis"}, "redis only: redis-benchmark " + load},
		{true, 3, []string{"redis"}, "3-master Redis Cluster only (--cluster): redis-benchmark " + load},
		{true, 4, []string{"ringcache"}, "4-node ringcache cluster only (--cluster): redis-benchmark " + load},
	}
	for _, tc := range tests {
		if got := reportTitle(tc.cluster, tc.nodes, tc.targets, load); got != tc.want {
			t.Errorf("reportTitle(%v, %d, %q):\n got %q\nwant %q", tc.cluster, tc.nodes, tc.targets, got, tc.want)
		}
	}
}

func TestTickWarning(t *testing.T) {
	// -n 50000 at 200,000 ops/s is 0.25s per test: a tick may be all of it.
	short := [][]harness.Result{{{Test: "SET", RPS: 100000}, {Test: "GET", RPS: 200000}}}
	// -n 1000000 at 50,000 ops/s is 20s per test: at most 1.25%.
	long := [][]harness.Result{{{Test: "SET", RPS: 50000}}}
	tests := []struct {
		name     string
		threaded bool
		requests int
		runs     [][]harness.Result
		want     []string // substrings; none means no warning
	}{
		{"not threaded", false, 50000, short, nil},
		{"threaded and short", true, 50000, short, []string{"shortest test took 0.25s", "up to 100%", "-n 2400000 or more"}},
		{"threaded and long enough", true, 1000000, long, nil},
		{"threaded, 5s per test", true, 1000000, [][]harness.Result{{{Test: "SET", RPS: 200000}}}, []string{"took 5.00s", "up to 5%", "-n 2400000 or more"}},
		// 10,000,000 at 1,000,000 ops/s is exactly 10s, 2.5%: the limit.
		{"threaded, 10s per test", true, 10000000, [][]harness.Result{{{Test: "SET", RPS: 1000000}}}, nil},
		// The default -n on a 3-master Redis Cluster that runs 2% faster.
		{"threaded, 9.8s per test", true, 8000000, [][]harness.Result{{{Test: "SET", RPS: 819001}}}, []string{"took 9.77s", "up to 3%", "-n 9900000 or more"}},
		{"no results", true, 1000, nil, nil},
	}
	for _, tc := range tests {
		got := tickWarning(tc.threaded, tc.requests, tc.runs)
		if len(tc.want) == 0 {
			if got != "" {
				t.Errorf("%s: got warning %q, want none", tc.name, got)
			}
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(got, w) {
				t.Errorf("%s: warning %q lacks %q", tc.name, got, w)
			}
		}
	}
}
