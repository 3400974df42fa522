package server_test

import (
	"bytes"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"github.com/ringcache/ringcache/server/servertest"
)

// tool finds a Redis command-line tool; .ci/run installs them.
func tool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s not found (apt-get install redis-tools): %v", name, err)
	}
	return p
}

func runTool(t *testing.T, stdin []byte, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(tool(t, name), args...)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
	return string(out)
}

func TestRedisCLI(t *testing.T) {
	n := servertest.Start(t)
	port := strconv.Itoa(n.Config.Port)
	cli := func(args ...string) string {
		return strings.TrimSpace(runTool(t, nil, "redis-cli", append([]string{"-p", port}, args...)...))
	}
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"set", "greeting", "hello", "EX", "60"}, "OK"},
		{[]string{"get", "greeting"}, "hello"},
		{[]string{"ttl", "greeting"}, "60"},
		{[]string{"incr", "n"}, "1"},
		{[]string{"get", "missing"}, ""},
		{[]string{"ping"}, "PONG"},
		{[]string{"dbsize"}, "2"},
		{[]string{"get"}, "ERR wrong number of arguments for 'get' command"},
		{[]string{"mset", "a", "1", "b", "2"}, "OK"}, // keys in two slots: fine without -c
		{[]string{"mget", "a", "b"}, "1\n2"},
		{[]string{"-3", "get", "missing"}, ""}, // RESP3 null: must not fail
	}
	for _, tt := range tests {
		got := cli(tt.args...)
		if tt.want != "" && got != tt.want {
			t.Errorf("redis-cli %v = %q, want %q", tt.args, got, tt.want)
		}
	}
	// Batch mode: commands on stdin, as a script would feed them.
	out := runTool(t, []byte("set a 1\nincrby a 41\nget a\n"), "redis-cli", "-p", port)
	if got := strings.Fields(out); strings.Join(got, " ") != "OK 42 42" {
		t.Errorf("redis-cli batch = %q", out)
	}
}

// TestRedisCLIPipe mass-inserts 100,000 keys with redis-cli --pipe.
func TestRedisCLIPipe(t *testing.T) {
	n := servertest.Start(t)
	const keys = 100000
	var buf bytes.Buffer
	for i := range keys {
		k, v := fmt.Sprintf("key:%d", i), fmt.Sprintf("value:%d", i)
		fmt.Fprintf(&buf, "*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n", len(k), k, len(v), v)
	}
	out := runTool(t, buf.Bytes(), "redis-cli", "-p", strconv.Itoa(n.Config.Port), "--pipe")
	if !strings.Contains(out, fmt.Sprintf("errors: 0, replies: %d", keys)) {
		t.Fatalf("redis-cli --pipe: %s", out)
	}
	ctx := servertest.Ctx(t)
	rdb := n.Client()
	if got := rdb.DBSize(ctx).Val(); got != keys {
		t.Fatalf("DBSIZE = %d, want %d", got, keys)
	}
	for _, i := range []int{0, 4242, keys - 1} {
		if v := rdb.Get(ctx, fmt.Sprintf("key:%d", i)).Val(); v != fmt.Sprintf("value:%d", i) {
			t.Fatalf("key:%d = %q", i, v)
		}
	}
}

// TestRedisBenchmark runs redis-benchmark's set, get, incr and mset tests
// and expects every request to succeed.
func TestRedisBenchmark(t *testing.T) {
	n := servertest.Start(t)
	out := runTool(t, nil, "redis-benchmark", "-p", strconv.Itoa(n.Config.Port), "-t", "set,get,incr,mset", "-n", "20000", "--csv")
	if strings.Contains(strings.ToLower(out), "error") {
		t.Fatalf("redis-benchmark reported errors:\n%s", out)
	}
	for _, test := range []string{"SET", "GET", "INCR", "MSET"} {
		found := false
		for _, line := range strings.Split(out, "\n") {
			if strings.HasPrefix(line, `"`+test) {
				found = true
				fields := strings.Split(line, ",")
				rps, err := strconv.ParseFloat(strings.Trim(fields[1], `"`), 64)
				if err != nil || rps <= 0 {
					t.Errorf("%s: bad rps in %q", test, line)
				}
			}
		}
		if !found {
			t.Errorf("redis-benchmark output has no %s line:\n%s", test, out)
		}
	}
	ctx := servertest.Ctx(t)
	if v, err := n.Client().Get(ctx, "counter:__rand_int__").Int(); err != nil || v != 20000 {
		t.Errorf("INCR counter = %d, %v; want 20000", v, err)
	}
}
