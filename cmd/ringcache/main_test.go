package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// buildBinary builds the node binary once per test run.
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

// node is a ringcache child process.
type node struct {
	cmd  *exec.Cmd
	log  *strings.Builder
	port int
	done chan error
}

func startNode(t *testing.T, bin string, port int, args ...string) *node {
	t.Helper()
	n := &node{port: port, log: &strings.Builder{}, done: make(chan error, 1)}
	// An explicit free gossip port: the default, port+10000, may be taken
	// or beyond 65535 for a port the system picked.
	base := []string{"--port", strconv.Itoa(port), "--cluster-port", strconv.Itoa(freePort(t))}
	n.cmd = exec.Command(bin, append(base, args...)...)
	n.cmd.Stdout, n.cmd.Stderr = n.log, n.log
	if err := n.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { n.done <- n.cmd.Wait() }()
	t.Cleanup(func() {
		if n.cmd.ProcessState == nil {
			n.cmd.Process.Kill()
			<-n.done
		}
	})
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:" + strconv.Itoa(port), MaxRetries: -1})
	defer rdb.Close()
	deadline := time.Now().Add(20 * time.Second)
	for rdb.Ping(context.Background()).Err() != nil {
		if time.Now().After(deadline) {
			t.Fatalf("node on %d not answering; log:\n%s", port, n.log)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return n
}

func (n *node) client(t *testing.T) *redis.Client {
	c := redis.NewClient(&redis.Options{Addr: "127.0.0.1:" + strconv.Itoa(n.port), MaxRetries: -1})
	t.Cleanup(func() { c.Close() })
	return c
}

// stop sends sig and waits for a clean exit.
func (n *node) stop(t *testing.T, sig os.Signal) {
	t.Helper()
	n.cmd.Process.Signal(sig)
	select {
	case err := <-n.done:
		if err != nil {
			t.Fatalf("node exited with %v; log:\n%s", err, n.log)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("node did not exit after %v; log:\n%s", sig, n.log)
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
