package harness

import (
	"bufio"
	"context"
	"fmt"
	"math"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// redisNodes is CLUSTER NODES from a 3-master Redis 7.0 cluster.
const redisNodes = "9651ee40798af4feb3aa4c44d2628cae852bb944 127.0.0.1:37002@47002 master - 0 1700000000500 2 connected 5461-10922\n" +
	"48f19e5a2ac88a62b5aaa430760c1b1e0e099f79 127.0.0.1:37001@47001 myself,master - 0 1700000000000 1 connected 0-5460\n" +
	"015dbad7a8ef9a1438a26a657134ce6de5787795 127.0.0.1:37003@47003 master - 0 1700000000000 3 connected 10923-16383\n"

// ringcacheNodes is CLUSTER NODES in ringcache's style: many short
// ranges and single slots per node.
const ringcacheNodes = "030cf807727d32babf7974a6543163d8d9153e18 127.0.0.1:52002@52102 master - 0 0 1 connected 0-99 150 200-5460\n" +
	"6c74e78d8e1404dacb6109dd73b168eb692c64bb 127.0.0.1:52003@52103 master - 0 0 2 connected 100-149 151-199 5461-10922\n" +
	"d8458a6a92083cb73163db3715c2d30f8ce9dbdc 127.0.0.1:52001@52101 myself,master - 0 0 3 connected 10923-16383\n"

const okInfo = "cluster_state:ok\r\ncluster_slots_assigned:16384\r\ncluster_known_nodes:3\r\ncluster_size:3\r\n"

func TestParseClusterInfo(t *testing.T) {
	m := ParseClusterInfo(okInfo + "\r\n")
	want := map[string]string{"cluster_state": "ok", "cluster_slots_assigned": "16384", "cluster_known_nodes": "3", "cluster_size": "3"}
	if len(m) != len(want) {
		t.Fatalf("got %v, want %v", m, want)
	}
	for k, v := range want {
		if m[k] != v {
			t.Errorf("%s = %q, want %q", k, m[k], v)
		}
	}
}

func TestParseClusterNodes(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    []ClusterNode
		wantErr string
	}{
		{
			name: "redis",
			in:   redisNodes,
			want: []ClusterNode{
				{"9651ee40798af4feb3aa4c44d2628cae852bb944", "127.0.0.1:37002", []string{"master"}, 5462},
				{"48f19e5a2ac88a62b5aaa430760c1b1e0e099f79", "127.0.0.1:37001", []string{"myself", "master"}, 5461},
				{"015dbad7a8ef9a1438a26a657134ce6de5787795", "127.0.0.1:37003", []string{"master"}, 5461},
			},
		},
		{
			name: "single slots, hostname, migrating marker, no slots",
			in: "a 10.0.0.1:7000@17000,host-a myself,master - 0 0 1 connected 5 7-9 [10->-b]\n" +
				"b 10.0.0.2:7000@17000 master - 0 0 2 connected\n",
			want: []ClusterNode{
				{"a", "10.0.0.1:7000", []string{"myself", "master"}, 4},
				{"b", "10.0.0.2:7000", []string{"master"}, 0},
			},
		},
		{name: "empty", in: "\n", want: nil},
		{name: "short line", in: "a 10.0.0.1:7000@17000 master\n", wantErr: "fields"},
		{name: "bad range", in: "a 1.2.3.4:1@2 master - 0 0 1 connected 9-3\n", wantErr: `bad slot range "9-3"`},
		{name: "slot out of range", in: "a 1.2.3.4:1@2 master - 0 0 1 connected 0-16384\n", wantErr: "bad slot range"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseClusterNodes(tc.in)
			if !wantErr(t, err, tc.wantErr) {
				return
			}
			if !slices.EqualFunc(got, tc.want, func(a, b ClusterNode) bool {
				return a.ID == b.ID && a.Addr == b.Addr && a.Slots == b.Slots && slices.Equal(a.Flags, b.Flags)
			}) {
				t.Errorf("got  %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestCheckClusterView(t *testing.T) {
	redisAddrs := []string{"127.0.0.1:37001", "127.0.0.1:37002", "127.0.0.1:37003"}
	rcAddrs := []string{"127.0.0.1:52001", "127.0.0.1:52002", "127.0.0.1:52003"}
	tests := []struct {
		name    string
		info    string
		nodes   string
		want    []string
		wantIDs []string
		wantErr string
	}{
		{
			name: "redis formed", info: okInfo, nodes: redisNodes, want: redisAddrs,
			wantIDs: []string{"015dbad7a8ef9a1438a26a657134ce6de5787795", "48f19e5a2ac88a62b5aaa430760c1b1e0e099f79", "9651ee40798af4feb3aa4c44d2628cae852bb944"},
		},
		{
			name: "ringcache formed", info: okInfo, nodes: ringcacheNodes, want: rcAddrs,
			wantIDs: []string{"030cf807727d32babf7974a6543163d8d9153e18", "6c74e78d8e1404dacb6109dd73b168eb692c64bb", "d8458a6a92083cb73163db3715c2d30f8ce9dbdc"},
		},
		{name: "state fail", info: strings.Replace(okInfo, ":ok", ":fail", 1), nodes: redisNodes, want: redisAddrs, wantErr: "cluster_state:fail"},
		{name: "not all known", info: strings.Replace(okInfo, "known_nodes:3", "known_nodes:2", 1), nodes: redisNodes, want: redisAddrs, wantErr: "cluster_known_nodes:2, want 3"},
		{name: "node line missing", info: okInfo, nodes: strings.SplitAfter(redisNodes, "\n")[0], want: redisAddrs, wantErr: "lists 1 nodes, want 3"},
		{name: "wrong address", info: okInfo, nodes: redisNodes, want: rcAddrs, wantErr: "unexpected address"},
		{
			name: "handshake", info: okInfo, want: redisAddrs, wantErr: "flagged handshake",
			nodes: strings.Replace(redisNodes, "@47002 master", "@47002 master,handshake", 1),
		},
		{
			name: "replica", info: okInfo, want: redisAddrs, wantErr: "not a master",
			nodes: strings.Replace(redisNodes, "@47002 master -", "@47002 slave 48f19e5a2ac88a62b5aaa430760c1b1e0e099f79", 1),
		},
		{
			name: "master without slots", info: okInfo, want: redisAddrs, wantErr: "has no slots",
			nodes: strings.Replace(redisNodes, "connected 5461-10922", "connected", 1),
		},
		{
			name: "slots missing", info: okInfo, want: redisAddrs, wantErr: "assigns 16383 slots",
			nodes: strings.Replace(redisNodes, "5461-10922", "5462-10922", 1),
		},
		{
			name: "address twice", info: okInfo, want: redisAddrs, wantErr: "twice",
			nodes: strings.Replace(redisNodes, "127.0.0.1:37003", "127.0.0.1:37001", 1),
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ids, err := CheckClusterView(tc.info, tc.nodes, tc.want)
			if !wantErr(t, err, tc.wantErr) {
				return
			}
			if !slices.Equal(ids, tc.wantIDs) {
				t.Errorf("ids = %q, want %q", ids, tc.wantIDs)
			}
		})
	}
}

func TestReadReply(t *testing.T) {
	tests := []struct {
		in, want, wantErr string
	}{
		{in: "+PONG\r\n", want: "PONG"},
		{in: ":42\r\n", want: "42"},
		{in: "$5\r\nhello\r\n", want: "hello"},
		{in: "$0\r\n\r\n", want: ""},
		{in: "$12\r\nline1\r\nline2\r\n", want: "line1\r\nline2"},
		{in: "=16\r\ntxt:cluster_ok\r\n\r\n", want: "cluster_ok\r\n"},
		{in: "-LOADING Redis is loading\r\n", wantErr: "server replied: LOADING"},
		{in: "$-1\r\n", wantErr: "nil"},
		{in: "$5\r\nhel", wantErr: "EOF"},
		{in: "$x\r\n", wantErr: "bad length"},
		{in: "=3\r\ntxt\r\n", wantErr: "bad verbatim"},
		{in: "*1\r\n$1\r\na\r\n", wantErr: "unsupported"},
		{in: "", wantErr: "EOF"},
	}
	for _, tc := range tests {
		got, err := readReply(bufio.NewReader(strings.NewReader(tc.in)))
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("readReply(%q) err = %v, want it to contain %q", tc.in, err, tc.wantErr)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("readReply(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
	if got := string(encodeCommand([]string{"CLUSTER", "INFO", ""})); got != "*3\r\n$7\r\nCLUSTER\r\n$4\r\nINFO\r\n$0\r\n\r\n" {
		t.Errorf("encodeCommand = %q", got)
	}
}

func TestFatalLine(t *testing.T) {
	tests := []struct {
		line    string
		fatal   bool
		wantWhy string
	}{
		{"Error: Connection reset by peer", true, ""},
		{"Error from server: ERR unknown command 'incr'", true, ""},
		{"Error from server 127.0.0.1:7001: CLUSTERDOWN The cluster is down.", true, ""},
		{"Could not connect to Redis at 127.0.0.1:7000: Connection refused", true, ""},
		{"Failed to fetch cluster configuration from 127.0.0.1:7000", true, ""},
		{"Invalid cluster: 1 node(s).", true, ""},
		{"WARNING: Cluster slots configuration changed, fetching new one...", true, "MOVED/ASK"},
		{"WARNING: Could not fetch server CONFIG", false, ""},
		{"WARNING: Could not fetch node CONFIG 127.0.0.1:7000", false, ""},
		{"Cluster has 3 master nodes:", false, ""},
		{"Master 0: 0123456789abcdef 127.0.0.1:7000", false, ""},
		// Informational lines are exempt even if an address reads "error".
		{"Master 1: e1 error-host:7001", false, ""},
		// ...but only lines of exactly that shape.
		{"Mastering error", true, ""},
	}
	for _, tc := range tests {
		why, fatal := fatalLine(tc.line)
		if fatal != tc.fatal || !strings.Contains(why, tc.wantWhy) {
			t.Errorf("fatalLine(%q) = %q, %v; want fatal %v and %q", tc.line, why, fatal, tc.fatal, tc.wantWhy)
		}
	}
}

func TestBenchSpecCluster(t *testing.T) {
	spec := BenchSpec{Addr: "127.0.0.1:7000", Tests: "set,get", Requests: 10, Keyspace: 5, Clients: 2, Pipeline: 1, DataSize: 3, Cluster: true, Masters: 3}
	args, err := spec.Args()
	if err != nil {
		t.Fatal(err)
	}
	want := "-h 127.0.0.1 -p 7000 --cluster -t set,get -n 10 -r 5 -c 2 -P 1 -d 3 --csv"
	if got := strings.Join(args, " "); got != want {
		t.Errorf("Args = %s\nwant   %s", got, want)
	}
	if got := strings.Join(spec.LoadArgs(), " "); strings.Contains(got, "--cluster") {
		t.Errorf("LoadArgs = %s; --cluster belongs to the title, not the load", got)
	}

	tests := []struct {
		name    string
		cluster bool
		want    int
		got     int
		wantErr string
	}{
		{"single node", false, 0, 0, ""},
		{"count matches", true, 3, 3, ""},
		{"count not checked", true, 0, 5, ""},
		{"no preamble", true, 3, 0, "did not print"},
		{"master skipped", true, 3, 2, "found 2 masters, want 3"},
	}
	for _, tc := range tests {
		err := BenchSpec{Cluster: tc.cluster, Masters: tc.want}.checkMasters(Output{Masters: tc.got})
		if (tc.wantErr == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.wantErr)) {
			t.Errorf("%s: err = %v, want %q", tc.name, err, tc.wantErr)
		}
	}
}

func TestServerArgs(t *testing.T) {
	tests := []struct {
		name string
		got  []string
		want string
	}{
		{"redis cluster node", RedisClusterArgs(7000, 17000),
			"--port 7000 --bind 127.0.0.1 --save  --appendonly no --daemonize no --cluster-enabled yes --cluster-config-file nodes.conf --cluster-port 17000"},
		{"first ringcache node", RingcacheArgs(7000, 17000, "/tmp/n1", "", nil),
			"--bind 127.0.0.1 --port 7000 --cluster-port 17000 --dir /tmp/n1"},
		{"joining ringcache node with extra args", RingcacheArgs(7001, 17001, "/tmp/n2", "127.0.0.1:17000", []string{"--vnodes", "64"}),
			"--bind 127.0.0.1 --port 7001 --cluster-port 17001 --dir /tmp/n2 --join 127.0.0.1:17000 --vnodes 64"},
	}
	for _, tc := range tests {
		if got := strings.Join(tc.got, " "); got != tc.want {
			t.Errorf("%s:\n got %s\nwant %s", tc.name, got, tc.want)
		}
	}
}

func TestStripANSI(t *testing.T) {
	in := "\x1b[29;1m>>> Performing hash slots allocation on 3 nodes...\n\x1b[0mMaster[0] -> Slots 0 - 5460\n\x1b[32;1m[OK] All 16384 slots covered.\n\x1b[0m"
	want := ">>> Performing hash slots allocation on 3 nodes...\nMaster[0] -> Slots 0 - 5460\n[OK] All 16384 slots covered.\n"
	if got := stripANSI(in); got != want {
		t.Errorf("stripANSI = %q, want %q", got, want)
	}
}

// TestRedisClusterEndToEnd forms a real 3-master Redis Cluster the way
// bench/sidebyside -cluster does, benchmarks it with --cluster and checks
// the master count and memory sum.
func TestRedisClusterEndToEnd(t *testing.T) {
	server := needTool(t, "redis-server")
	cli := needTool(t, "redis-cli")
	bench := needTool(t, "redis-benchmark")
	ws, err := NewWorkspace("harness-cluster-test-", false)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	ctx := context.Background()
	var nodes []*Server
	var addrs []string
	for i := range 3 {
		dir, err := ws.Dir(filepath.Join("redis", fmt.Sprintf("node-%d", i+1)))
		if err != nil {
			t.Fatal(err)
		}
		srv, err := ws.StartReadyPorts(ctx, 3, 30*time.Second, 2, func(p []int) ServerSpec {
			return ServerSpec{Name: "redis", Path: server, Args: RedisClusterArgs(p[0], p[1]), Dir: dir, Port: p[0], BusPort: p[1]}
		})
		if err != nil {
			t.Fatal(err)
		}
		nodes = append(nodes, srv)
		addrs = append(addrs, srv.Addr())
	}
	if err := CreateRedisCluster(ctx, cli, addrs, 0, time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := WaitCluster(ctx, nodes, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	res, warnings, err := RunBenchmark(ctx, BenchSpec{Binary: bench, Addr: addrs[0], Tests: "set,get",
		Requests: 3000, Keyspace: 100, Clients: 6, Pipeline: 4, DataSize: 3, Timeout: time.Minute, Cluster: true, Masters: 3})
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 2 || res[0].Test != "SET" || res[1].Test != "GET" || res[0].RPS <= 0 {
		t.Errorf("results = %+v", res)
	}
	if len(warnings) > 0 {
		t.Errorf("unexpected warnings %q", warnings)
	}
	// Every master got keys, so the clients really were spread.
	for _, n := range nodes {
		reply, err := Command(ctx, n.Addr(), "DBSIZE")
		if k, _ := strconv.Atoi(reply); err != nil || k == 0 {
			t.Errorf("%s DBSIZE = %q, %v; want keys on every master", n.Addr(), reply, err)
		}
	}
	sum, err := SumMem(nodes)
	if err != nil {
		t.Fatal(err)
	}
	one, _ := nodes[0].Mem()
	if sum.RSSKiB <= one.RSSKiB || sum.HWMKiB < sum.RSSKiB {
		t.Errorf("SumMem = %+v, first node alone %+v", sum, one)
	}

	// A benchmark expecting more masters than the cluster has fails.
	_, _, err = RunBenchmark(ctx, BenchSpec{Binary: bench, Addr: addrs[0], Tests: "set",
		Requests: 100, Keyspace: 10, Clients: 3, Pipeline: 1, DataSize: 3, Timeout: time.Minute, Cluster: true, Masters: 4})
	if err == nil || !strings.Contains(err.Error(), "found 3 masters, want 4") {
		t.Errorf("err = %v, want a master count mismatch", err)
	}
}

func TestTickBias(t *testing.T) {
	tests := []struct {
		name         string
		n            int
		runs         [][]Result
		wantShortest time.Duration
		wantBias     float64
	}{
		{"none", 1000, nil, 0, 0},
		{"failed figures ignored", 1000, [][]Result{{{RPS: 0}, {RPS: math.NaN()}}}, 0, 0},
		{"shortest of all runs", 1000000, [][]Result{{{RPS: 100000}, {RPS: 200000}}, {{RPS: 400000}}}, 2500 * time.Millisecond, 0.1},
		{"capped at 100%", 1000, [][]Result{{{RPS: 1000000}}}, time.Millisecond, 1},
	}
	for _, tc := range tests {
		shortest, bias := TickBias(tc.n, tc.runs)
		if shortest != tc.wantShortest || !sameFloat(bias, tc.wantBias) {
			t.Errorf("%s: TickBias = %v, %v; want %v, %v", tc.name, shortest, bias, tc.wantShortest, tc.wantBias)
		}
	}
}
