package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// buildBinary builds the node binary once per test.
func buildBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "ringcache")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// logBuffer collects a child's stdout and stderr; safe to read while the
// child writes.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// tail returns the last n lines.
func (b *logBuffer) tail(n int) string {
	s := strings.TrimRight(b.String(), "\n")
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = append([]string{fmt.Sprintf("[... %d earlier lines]", len(lines)-n)}, lines[len(lines)-n:]...)
	}
	return strings.Join(lines, "\n")
}

// note marks a test event in the node's log, so the tails printed on
// failure show what the test did when.
func (b *logBuffer) note(format string, args ...any) {
	fmt.Fprintf(b, "=== test %s: %s\n", time.Now().Format("15:04:05.000"), fmt.Sprintf(format, args...))
}

// node is a ringcache child process. Its ports, flags and data directory
// are kept, so that restart brings the same node back.
type node struct {
	name       string
	bin        string
	port       int
	gossipPort int
	args       []string // flags beyond --port, --cluster-port and --join
	join       string   // gossip address given to --join, if any
	log        *logBuffer

	cmd    *exec.Cmd
	exited chan struct{} // closed when the process has exited
	err    error         // its exit status, once exited is closed
}

// startNode starts a node on port with a free gossip port and waits until
// it answers PING.
func startNode(t *testing.T, bin string, port int, args ...string) *node {
	t.Helper()
	n := newNode(t, bin, port, args...)
	n.start(t)
	return n
}

// newNode describes a node without starting it; its log tail is printed
// if the test fails.
func newNode(t *testing.T, bin string, port int, args ...string) *node {
	// An explicit free gossip port: the default, port+10000, may be taken
	// or beyond 65535 for a port the system picked.
	n := &node{name: "node:" + strconv.Itoa(port), bin: bin, port: port, gossipPort: freePort(t), args: args, log: &logBuffer{}}
	t.Cleanup(func() {
		if t.Failed() || os.Getenv("RINGCACHE_TEST_LOGS") != "" {
			t.Logf("%s (port %d, gossip %d) log tail:\n%s", n.name, n.port, n.gossipPort, n.log.tail(80))
		}
	})
	return n
}

// start runs the process and waits until it answers PING.
func (n *node) start(t *testing.T) {
	t.Helper()
	args := []string{"--port", strconv.Itoa(n.port), "--cluster-port", strconv.Itoa(n.gossipPort)}
	args = append(args, n.args...)
	if n.join != "" {
		args = append(args, "--join", n.join)
	}
	n.log.note("start %s", strings.Join(args, " "))
	n.cmd = exec.Command(n.bin, args...)
	n.cmd.Stdout, n.cmd.Stderr = n.log, n.log
	if err := n.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	cmd, exited := n.cmd, make(chan struct{})
	n.exited = exited
	go func() {
		n.err = cmd.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		select {
		case <-exited:
		default:
			cmd.Process.Kill()
			<-exited
		}
	})
	rdb := redis.NewClient(&redis.Options{Addr: n.addr(), MaxRetries: -1, DialTimeout: 500 * time.Millisecond})
	defer rdb.Close()
	deadline := time.Now().Add(20 * time.Second)
	for rdb.Ping(context.Background()).Err() != nil {
		select {
		case <-exited:
			t.Fatalf("%s exited at start (%v); log:\n%s", n.name, n.err, n.log.tail(40))
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not answering; log:\n%s", n.name, n.log)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// addr is the node's RESP address.
func (n *node) addr() string { return "127.0.0.1:" + strconv.Itoa(n.port) }

// gossipAddr is what other nodes give to --join.
func (n *node) gossipAddr() string { return "127.0.0.1:" + strconv.Itoa(n.gossipPort) }

// running reports whether the process has not exited.
func (n *node) running() bool {
	select {
	case <-n.exited:
		return false
	default:
		return true
	}
}

func (n *node) client(t *testing.T) *redis.Client {
	c := redis.NewClient(&redis.Options{Addr: n.addr(), MaxRetries: -1})
	t.Cleanup(func() { c.Close() })
	return c
}

// kill ends the process with SIGKILL (kill -9) and waits for it to go.
func (n *node) kill(t *testing.T) {
	t.Helper()
	n.log.note("kill -9")
	n.cmd.Process.Kill()
	select {
	case <-n.exited:
	case <-time.After(10 * time.Second):
		t.Fatalf("%s still running 10s after SIGKILL", n.name)
	}
}

// restart starts the exited node again: same ports, flags and data
// directory, joining the cluster through via.
func (n *node) restart(t *testing.T, via *node) {
	t.Helper()
	if n.running() {
		t.Fatalf("restart of %s, which is still running", n.name)
	}
	n.join = via.gossipAddr()
	n.start(t)
}

// waitExit waits up to timeout for the process to exit and returns its
// exit status.
func (n *node) waitExit(t *testing.T, timeout time.Duration) error {
	t.Helper()
	select {
	case <-n.exited:
		return n.err
	case <-time.After(timeout):
		t.Fatalf("%s did not exit within %v; log:\n%s", n.name, timeout, n.log.tail(80))
		return nil
	}
}

// signal sends sig to the process.
func (n *node) signal(sig os.Signal) {
	n.log.note("signal %v", sig)
	n.cmd.Process.Signal(sig)
}

// stop sends sig and waits for a clean exit.
func (n *node) stop(t *testing.T, sig os.Signal) {
	t.Helper()
	n.signal(sig)
	if err := n.waitExit(t, 30*time.Second); err != nil {
		t.Fatalf("%s exited with %v; log:\n%s", n.name, err, n.log)
	}
}

// TestShutdownAndRestart writes keys, stops the node with SIGTERM or
// SIGINT, starts it again on the same directory, and finds every key.
func TestShutdownAndRestart(t *testing.T) {
	bin := buildBinary(t)
	for _, sig := range []os.Signal{syscall.SIGTERM, syscall.SIGINT} {
		t.Run(sig.String(), func(t *testing.T) {
			dir := t.TempDir()
			port := freePort(t)
			n := startNode(t, bin, port, "--dir", dir)
			ctx := context.Background()
			rdb := n.client(t)
			const keys = 5000
			pipe := rdb.Pipeline()
			for i := range keys {
				pipe.Set(ctx, fmt.Sprintf("k%d", i), i, time.Duration(i%2)*time.Hour)
			}
			if _, err := pipe.Exec(ctx); err != nil {
				t.Fatal(err)
			}
			n.stop(t, sig)
			if !strings.Contains(n.log.String(), "bye") {
				t.Errorf("no clean shutdown in the log:\n%s", n.log)
			}
			n = startNode(t, bin, port, "--dir", dir)
			rdb = n.client(t)
			if got := rdb.DBSize(ctx).Val(); got != keys {
				t.Fatalf("after restart DBSIZE = %d, want %d", got, keys)
			}
			for i := range keys {
				v, err := rdb.Get(ctx, fmt.Sprintf("k%d", i)).Int()
				if err != nil || v != i {
					t.Fatalf("k%d = %d, %v", i, v, err)
				}
			}
			if ttl := rdb.TTL(ctx, "k1").Val(); ttl <= 0 {
				t.Fatalf("k1 lost its TTL: %v", ttl)
			}
			n.stop(t, syscall.SIGTERM)
		})
	}
}

// TestFlagsAndInMemory checks --help, a bad flag, and --in-memory (nothing
// written to --dir, nothing kept across a restart).
func TestFlagsAndInMemory(t *testing.T) {
	bin := buildBinary(t)
	out, err := exec.Command(bin, "--help").CombinedOutput()
	if err != nil {
		t.Fatalf("--help: %v", err)
	}
	for _, flag := range []string{"-bind", "-port", "-dir", "-in-memory", "-requirepass", "-maxclients", "-proto-max-bulk-len", "-appendfsync", "-memtable-size"} {
		if !strings.Contains(string(out), flag) {
			t.Errorf("--help does not mention %s", flag)
		}
	}
	if err := exec.Command(bin, "--no-such-flag").Run(); err == nil {
		t.Error("an unknown flag was accepted")
	}
	if err := exec.Command(bin, "--appendfsync", "sometimes").Run(); err == nil {
		t.Error("--appendfsync sometimes was accepted")
	}

	dir := filepath.Join(t.TempDir(), "unused")
	port := freePort(t)
	n := startNode(t, bin, port, "--in-memory", "--dir", dir)
	ctx := context.Background()
	if err := n.client(t).Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	n.stop(t, syscall.SIGTERM)
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("--in-memory wrote %d files to --dir", len(entries))
	}
	n = startNode(t, bin, port, "--in-memory", "--dir", dir)
	if n.client(t).Exists(ctx, "k").Val() != 0 {
		t.Error("--in-memory kept a key across a restart")
	}
	n.stop(t, syscall.SIGTERM)
}

// TestMaxClients refuses connections past --maxclients with Redis's error.
func TestMaxClients(t *testing.T) {
	bin := buildBinary(t)
	n := startNode(t, bin, freePort(t), "--in-memory", "--maxclients", "2")
	addr := "127.0.0.1:" + strconv.Itoa(n.port)
	dialPing := func() (net.Conn, string) {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		c.Write([]byte("PING\r\n"))
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		buf := make([]byte, 128)
		k, _ := c.Read(buf)
		return c, string(buf[:k])
	}
	var conns []net.Conn
	// Connections from startNode's readiness check may still be closing.
	deadline := time.Now().Add(10 * time.Second)
	for len(conns) < 2 {
		c, reply := dialPing()
		if reply == "+PONG\r\n" {
			conns = append(conns, c)
			continue
		}
		c.Close()
		if time.Now().After(deadline) {
			t.Fatalf("could not open 2 connections: %q", reply)
		}
		time.Sleep(10 * time.Millisecond)
	}
	c, reply := dialPing()
	c.Close()
	if reply != "-ERR max number of clients reached\r\n" {
		t.Fatalf("third client got %q", reply)
	}
	conns[0].Close()
	for {
		c, reply := dialPing()
		c.Close()
		if reply == "+PONG\r\n" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("a slot freed by a closed client is never reused")
		}
		time.Sleep(10 * time.Millisecond)
	}
	conns[1].Close()
}
