package server_test

import (
	"bufio"
	"io"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/ringcache/ringcache/server/servertest"
)

// rawSend writes raw bytes on a new connection and returns everything the
// node sends back until it closes the connection or goes quiet.
func rawSend(t *testing.T, addr, payload string) (reply string, closed bool) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := io.WriteString(c, payload); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(2 * time.Second))
	b, err := io.ReadAll(c)
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		return string(b), false
	}
	return string(b), true
}

func TestBadInputFraming(t *testing.T) {
	n := servertest.Start(t)
	tests := []struct {
		name, payload, want string
	}{
		{"bad multibulk length", "*abc\r\n", "-ERR Protocol error: invalid multibulk length\r\n"},
		{"huge multibulk length", "*2000000\r\n", "-ERR Protocol error: invalid multibulk length\r\n"},
		{"bad bulk length", "*1\r\n$x\r\n", "-ERR Protocol error: invalid bulk length\r\n"},
		{"negative bulk length", "*1\r\n$-5\r\n", "-ERR Protocol error: invalid bulk length\r\n"},
		{"4 GB bulk", "*2\r\n$3\r\nSET\r\n$4294967296\r\n", "-ERR Protocol error: invalid bulk length\r\n"},
		{"expected dollar", "*1\r\nGET\r\n", "-ERR Protocol error: expected '$', got 'G'\r\n"},
		{"unbalanced quotes", "SET \"a b\r\n", "-ERR Protocol error: unbalanced quotes in request\r\n"},
		{"good then bad", "PING\r\n*1\r\n$4\r\nPING\r\n*x\r\n", "+PONG\r\n+PONG\r\n-ERR Protocol error: invalid multibulk length\r\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, closed := rawSend(t, n.Addr, tt.payload)
			if got != tt.want {
				t.Errorf("reply %q, want %q", got, tt.want)
			}
			if !closed {
				t.Errorf("connection left open after a framing error")
			}
		})
	}
	// Inline requests over 64 KB without a newline are refused.
	got, closed := rawSend(t, n.Addr, "SET k "+strings.Repeat("x", 70*1024))
	if !strings.HasPrefix(got, "-ERR Protocol error: too big inline request") || !closed {
		t.Errorf("oversized inline: %q closed=%v", got, closed)
	}
	// The node still serves others.
	ctx := servertest.Ctx(t)
	if err := n.Client().Set(ctx, "still", "alive", 0).Err(); err != nil {
		t.Fatalf("node stopped serving after bad input: %v", err)
	}
}

// TestHugeBulkDoesNotAllocate announces a 500 MB bulk (under the limit) and
// sends only a little of it: the node must not reserve the announced size.
func TestHugeBulkDoesNotAllocate(t *testing.T) {
	n := servertest.Start(t)
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	conns := make([]net.Conn, 0, 10)
	for range 10 {
		c, err := net.Dial("tcp", n.Addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		io.WriteString(c, "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$500000000\r\n"+strings.Repeat("x", 1000))
		conns = append(conns, c)
	}
	// Make sure the node has read what was sent.
	ctx := servertest.Ctx(t)
	if err := n.Client().Ping(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond) // let the readers run; this bounds nothing
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	if grown := int64(after.HeapAlloc) - int64(before.HeapAlloc); grown > 64<<20 {
		t.Fatalf("heap grew by %d MB for 10 announced 500 MB bulks", grown>>20)
	}
	for _, c := range conns {
		c.Close()
	}
}

// TestBadCommands sends malformed commands; each gets an error and the
// connection keeps working.
func TestBadCommands(t *testing.T) {
	n := servertest.Start(t)
	c, err := net.Dial("tcp", n.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	r := bufio.NewReader(c)
	for _, tt := range []struct{ req, want string }{
		{"*1\r\n$0\r\n\r\n", "-ERR unknown command '', with args beginning with: \r\n"},
		{"*2\r\n$3\r\nGET\r\n$0\r\n\r\n", "$-1\r\n"},
		{"*3\r\n$4\r\nINCR\r\n$1\r\na\r\n$1\r\nb\r\n", "-ERR wrong number of arguments for 'incr' command\r\n"},
		{"*3\r\n$6\r\nINCRBY\r\n$1\r\na\r\n$3\r\n1.5\r\n", "-ERR value is not an integer or out of range\r\n"},
		{"*1\r\n$4\r\nPING\r\n", "+PONG\r\n"},
	} {
		io.WriteString(c, tt.req)
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("%q: %v", tt.req, err)
		}
		if line != tt.want {
			t.Errorf("%q: got %q, want %q", tt.req, line, tt.want)
		}
	}
}
