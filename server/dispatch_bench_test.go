package server_test

import (
	"bufio"
	"net"
	"strings"
	"testing"

	"github.com/ringcache/ringcache/server/servertest"
)

// BenchmarkDispatch measures a command's way through a real in-process
// node over loopback: RESP parsing, the command table, routing, execution
// and the reply, with 16 commands per round trip (as redis-benchmark -P
// 16) so that the server's work, not the round trip, dominates. One
// iteration is one command.
func BenchmarkDispatch(b *testing.B) {
	n := servertest.Start(b)
	conn, err := net.Dial("tcp", n.Addr)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	r := bufio.NewReaderSize(conn, 64<<10)
	const pipeline = 16
	for _, tc := range []struct{ name, cmd string }{
		{"PING", "*1\r\n$4\r\nPING\r\n"},
		{"GET", "*2\r\n$3\r\nGET\r\n$16\r\nkey:000000000042\r\n"},
		{"SET", "*3\r\n$3\r\nSET\r\n$16\r\nkey:000000000042\r\n$3\r\nabc\r\n"},
		{"INCR", "*2\r\n$4\r\nINCR\r\n$7\r\ncounter\r\n"},
	} {
		batch := []byte(strings.Repeat(tc.cmd, pipeline))
		b.Run(tc.name, func(b *testing.B) {
			sent := 0
			for b.Loop() {
				if sent%pipeline == 0 {
					if _, err := conn.Write(batch); err != nil {
						b.Fatal(err)
					}
				}
				sent++
				if sent%pipeline == 0 {
					readReplies(b, r, pipeline)
				}
			}
			// Drain the replies of a partly consumed last batch.
			if rem := sent % pipeline; rem != 0 {
				readReplies(b, r, pipeline)
			}
		})
	}
}

// readReplies reads n single-line or bulk replies, failing on an error.
func readReplies(b *testing.B, r *bufio.Reader, n int) {
	for range n {
		line, err := r.ReadString('\n')
		if err != nil {
			b.Fatal(err)
		}
		switch line[0] {
		case '-':
			b.Fatalf("error reply %q", line)
		case '$':
			if line != "$-1\r\n" {
				if _, err := r.ReadString('\n'); err != nil {
					b.Fatal(err)
				}
			}
		}
	}
}
