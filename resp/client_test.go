package resp

import (
	"bytes"
	"errors"
	"io"
	"math"
	"net"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tidwall/redcon"
)

// clientStartServer runs a redcon server on a free loopback port with a few
// commands whose replies cover the RESP2 types, and stops it when the test
// ends.
func clientStartServer(tb testing.TB) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	var mu sync.Mutex
	var counter int64
	stop := serveTestCommands(tb, ln, map[string]testHandler{
		"INCR": func(conn redcon.Conn, _ redcon.Command) {
			mu.Lock()
			counter++
			n := counter
			mu.Unlock()
			conn.WriteInt64(n)
		},
		"LIST": func(conn redcon.Conn, _ redcon.Command) {
			conn.WriteArray(3)
			conn.WriteBulkString("a")
			conn.WriteInt(2)
			conn.WriteArray(1)
			conn.WriteString("OK")
		},
		"NIL":      func(conn redcon.Conn, _ redcon.Command) { conn.WriteNull() },
		"NILARRAY": func(conn redcon.Conn, _ redcon.Command) { conn.WriteRaw([]byte("*-1\r\n")) },
		"SLEEP": func(conn redcon.Conn, cmd redcon.Command) {
			// No reply yet: a test of read deadlines.
			d, _ := strconv.Atoi(string(cmd.Args[1]))
			time.Sleep(time.Duration(d) * time.Millisecond)
			conn.WriteString("OK")
		},
	})
	tb.Cleanup(stop)
	return ln.Addr().String()
}

// clientDial connects to addr and closes the Conn when the test ends.
func clientDial(tb testing.TB, addr string) *Conn {
	tb.Helper()
	c, err := Dial(addr, time.Second)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = c.Close() })
	return c
}

// clientArgs turns strings into command arguments.
func clientArgs(ss ...string) [][]byte {
	args := make([][]byte, len(ss))
	for i, s := range ss {
		args[i] = []byte(s)
	}
	return args
}

// clientMemConn is a net.Conn that reads fixed bytes, at most chunk at a
// time (0: as many as asked), and discards writes. With loop it reads them
// over and over, for allocation tests.
type clientMemConn struct {
	data  []byte
	off   int
	chunk int
	loop  bool
}

func (m *clientMemConn) Read(p []byte) (int, error) {
	if m.off == len(m.data) {
		if !m.loop || len(m.data) == 0 {
			return 0, io.EOF
		}
		m.off = 0
	}
	end := len(m.data)
	if m.chunk > 0 && m.off+m.chunk < end {
		end = m.off + m.chunk
	}
	n := copy(p, m.data[m.off:end])
	m.off += n
	return n, nil
}

func (m *clientMemConn) Write(p []byte) (int, error)      { return len(p), nil }
func (m *clientMemConn) Close() error                     { return nil }
func (m *clientMemConn) LocalAddr() net.Addr              { return &net.TCPAddr{} }
func (m *clientMemConn) RemoteAddr() net.Addr             { return &net.TCPAddr{} }
func (m *clientMemConn) SetDeadline(time.Time) error      { return nil }
func (m *clientMemConn) SetReadDeadline(time.Time) error  { return nil }
func (m *clientMemConn) SetWriteDeadline(time.Time) error { return nil }

// clientPipeConn returns the client end of a net.Pipe whose server end
// writes raw and then closes.
func clientPipeConn(raw []byte) net.Conn {
	cli, srv := net.Pipe()
	go func() {
		_, _ = srv.Write(raw)
		_ = srv.Close()
	}()
	return cli
}

// clientSameValue compares values as a caller would: by kind and content,
// with NaN equal to itself and a nil slice equal to an empty one.
func clientSameValue(a, b Value) bool {
	if a.Kind != b.Kind || a.Int != b.Int || a.Str != b.Str ||
		!bytes.Equal(a.Bytes, b.Bytes) || len(a.Elems) != len(b.Elems) {
		return false
	}
	if a.Float != b.Float && !(math.IsNaN(a.Float) && math.IsNaN(b.Float)) {
		return false
	}
	for i := range a.Elems {
		if !clientSameValue(a.Elems[i], b.Elems[i]) {
			return false
		}
	}
	return true
}

// clientAllocated returns the bytes f allocates on the heap.
func clientAllocated(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

func TestClientDo(t *testing.T) {
	c := clientDial(t, clientStartServer(t))
	big := bytes.Repeat([]byte("0123456789abcdef"), 100_000) // past the bulk pre-allocation
	for _, tc := range []struct {
		name string
		args [][]byte
		want Value
	}{
		{"simple", clientArgs("PING"), Pong},
		{"bulk", clientArgs("ECHO", "hello"), Bulk([]byte("hello"))},
		{"empty bulk", clientArgs("ECHO", ""), Bulk([]byte{})},
		{"binary bulk", [][]byte{[]byte("ECHO"), []byte("a\r\nb\x00c")}, Bulk([]byte("a\r\nb\x00c"))},
		{"large bulk", [][]byte{[]byte("ECHO"), big}, Bulk(big)},
		{"error", clientArgs("NOSUCH"), Value{Kind: KindError, Str: "ERR unknown command 'NOSUCH'"}},
		{"arity error", clientArgs("ECHO"), Value{Kind: KindError, Str: "ERR wrong number of arguments for 'echo' command"}},
		{"integer", clientArgs("INCR"), Int(1)},
		{"integer again", clientArgs("INCR"), Int(2)},
		{"array", clientArgs("LIST"), Array(Bulk([]byte("a")), Int(2), Array(OK))},
		{"null", clientArgs("NIL"), Null},
		{"null array", clientArgs("NILARRAY"), NullArray},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := c.Do(tc.args...)
			if err != nil {
				t.Fatalf("Do: %v", err)
			}
			if !clientSameValue(got, tc.want) {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
		})
	}
	if _, err := c.Do(); err == nil {
		t.Fatal("Do without arguments: no error")
	}
	// ... and the Conn still works.
	if v, err := c.Do(clientArgs("PING")...); err != nil || v.Str != "PONG" {
		t.Fatalf("PING after empty Do: %+v, %v", v, err)
	}
}

func TestClientPipeline(t *testing.T) {
	c := clientDial(t, clientStartServer(t))
	const n = 1000
	for i := 0; i < n; i++ {
		c.WriteCommand([]byte("ECHO"), strconv.AppendInt(nil, int64(i), 10))
	}
	if c.Buffered() == 0 {
		t.Fatal("nothing buffered before Flush")
	}
	if err := c.Flush(); err != nil {
		t.Fatal(err)
	}
	if c.Buffered() != 0 {
		t.Fatalf("%d bytes buffered after Flush", c.Buffered())
	}
	for i := 0; i < n; i++ {
		v, err := c.ReadReply()
		if err != nil {
			t.Fatalf("reply %d: %v", i, err)
		}
		if want := strconv.Itoa(i); v.Kind != KindBulk || string(v.Bytes) != want {
			t.Fatalf("reply %d: got %+v, want bulk %q", i, v, want)
		}
	}
}

// TestClientStream writes from one goroutine while another reads, as a
// replication stream does; run with -race.
func TestClientStream(t *testing.T) {
	c := clientDial(t, clientStartServer(t))
	const batches, per = 50, 100
	errc := make(chan error, 1)
	go func() {
		for b := 0; b < batches; b++ {
			for i := 0; i < per; i++ {
				c.WriteCommand([]byte("INCR"))
			}
			if err := c.Flush(); err != nil {
				errc <- err
				return
			}
		}
		errc <- nil
	}()
	for i := 1; i <= batches*per; i++ {
		v, err := c.ReadReply()
		if err != nil {
			t.Fatalf("reply %d: %v", i, err)
		}
		if v.Kind != KindInt || v.Int != int64(i) {
			t.Fatalf("reply %d: got %+v", i, v)
		}
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
}

func TestClientDeadline(t *testing.T) {
	c := clientDial(t, clientStartServer(t))
	if err := c.SetReadDeadline(time.Now().Add(50 * time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	_, err := c.Do(clientArgs("SLEEP", "500")...)
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("got %v, want a timeout", err)
	}
	// The late reply must not be taken for the next command's.
	_ = c.SetDeadline(time.Time{})
	if _, err2 := c.Do(clientArgs("PING")...); err2 != err {
		t.Fatalf("after a timeout: got %v, want the same error %v", err2, err)
	}
}

func TestClientDialRefused(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	if c, err := Dial(addr, time.Second); err == nil {
		_ = c.Close()
		t.Fatal("Dial to a closed port: no error")
	}
}

func TestClientClose(t *testing.T) {
	c := NewConn(&clientMemConn{data: []byte("+OK\r\n+OK\r\n")})
	if _, err := c.ReadReply(); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.ReadReply(); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("ReadReply after Close: %v, want net.ErrClosed", err)
	}
	c.WriteCommand([]byte("PING"))
	if err := c.Flush(); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Flush after Close: %v, want net.ErrClosed", err)
	}
}

// TestClientCloseUnblocks closes a Conn while another goroutine waits for
// a reply that never comes.
func TestClientCloseUnblocks(t *testing.T) {
	cli, srv := net.Pipe()
	defer srv.Close()
	c := NewConn(cli)
	errc := make(chan error, 1)
	go func() {
		_, err := c.ReadReply()
		errc <- err
	}()
	time.Sleep(10 * time.Millisecond)
	_ = c.Close()
	select {
	case err := <-errc:
		if err == nil {
			t.Fatal("ReadReply after Close: no error")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("ReadReply still blocked after Close")
	}
}

func TestClientWriteCommand(t *testing.T) {
	c := NewConn(&clientMemConn{})
	c.WriteCommand(clientArgs("SET", "k", "")...)
	c.WriteCommand()
	c.WriteCommand([]byte("GET"), []byte("a\r\nb"))
	want := "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$0\r\n\r\n*2\r\n$3\r\nGET\r\n$4\r\na\r\nb\r\n"
	if got := string(c.wbuf); got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
	if c.Buffered() != len(want) {
		t.Fatalf("Buffered() = %d, want %d", c.Buffered(), len(want))
	}
	// What it writes, redcon reads back.
	rd := redcon.NewReader(bytes.NewReader(c.wbuf))
	for _, args := range [][]string{{"SET", "k", ""}, {"GET", "a\r\nb"}} {
		cmd, err := rd.ReadCommand()
		if err != nil {
			t.Fatal(err)
		}
		if len(cmd.Args) != len(args) {
			t.Fatalf("got %q, want %q", cmd.Args, args)
		}
		for i := range args {
			if string(cmd.Args[i]) != args[i] {
				t.Fatalf("got %q, want %q", cmd.Args, args)
			}
		}
	}
}

func TestClientWriteCommandAllocs(t *testing.T) {
	c := NewConn(&clientMemConn{})
	key, val := []byte("key:123456"), bytes.Repeat([]byte("v"), 100)
	c.WriteCommand([]byte("SET"), key, val) // the buffer
	if err := c.Flush(); err != nil {
		t.Fatal(err)
	}
	allocs := testing.AllocsPerRun(1000, func() {
		for i := 0; i < 100; i++ {
			c.WriteCommand([]byte("SET"), key, val)
		}
		_ = c.Flush()
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per batch, want 0", allocs)
	}
}

func TestReadReplyAllocs(t *testing.T) {
	for _, tc := range []struct {
		raw  string
		want float64
	}{
		{"+OK\r\n", 0},
		{"+PONG\r\n", 0},
		{":12345\r\n", 0},
		{"$-1\r\n", 0},
		{"$3\r\nfoo\r\n", 1},        // the bytes, which the caller keeps
		{"*2\r\n:1\r\n:2\r\n", 1},   // the elements
		{"-ERR x\r\n", 1},           // the text
		{"+SOMETHING ELSE\r\n", 1},  // the text
		{"*1\r\n$3\r\nfoo\r\n", 2},  // the elements and the bytes
		{"%1\r\n+key\r\n:1\r\n", 2}, // the elements and the key
		{"$0\r\n\r\n", 0},           // an empty slice needs no memory
		{"#t\r\n", 0},
		{",1.5\r\n", 0},
		{"_\r\n", 0},
		{"*-1\r\n", 0},
		{"*0\r\n", 0},
		{"=7\r\ntxt:abc\r\n", 2},        // the bytes, then the string
		{"!5\r\nERR x\r\n", 2},          // the bytes, then the string
		{"~2\r\n+OK\r\n+PONG\r\n", 1},   // the elements; the strings are shared
		{"*1\r\n*1\r\n*1\r\n:1\r\n", 3}, // one slice per level
	} {
		c := NewConn(&clientMemConn{data: []byte(tc.raw), loop: true})
		got := testing.AllocsPerRun(1000, func() {
			if _, err := c.ReadReply(); err != nil {
				t.Fatal(err)
			}
		})
		if got != tc.want {
			t.Errorf("%q: %v allocations, want %v", tc.raw, got, tc.want)
		}
	}
}

// clientNested is depth aggregates, one inside the other, around ":1".
func clientNested(depth int) string {
	return strings.Repeat("*1\r\n", depth) + ":1\r\n"
}

func TestReadReplyTypes(t *testing.T) {
	deep := Int(1)
	for i := 0; i < maxReplyDepth; i++ {
		deep = Array(deep)
	}
	for _, tc := range []struct {
		name, raw string
		want      Value
	}{
		{"simple", "+OK\r\n", OK},
		{"simple other", "+hello world\r\n", Simple("hello world")},
		{"simple empty", "+\r\n", Simple("")},
		{"simple with CR", "+a\rb\r\n", Simple("a\rb")},
		{"error", "-ERR bad thing\r\n", Value{Kind: KindError, Str: "ERR bad thing"}},
		{"error moved", "-MOVED 3999 127.0.0.1:6381\r\n", Value{Kind: KindError, Str: "MOVED 3999 127.0.0.1:6381"}},
		{"blob error", "!21\r\nSYNTAX invalid syntax\r\n", Value{Kind: KindError, Str: "SYNTAX invalid syntax"}},
		{"int", ":42\r\n", Int(42)},
		{"int zero", ":0\r\n", Int(0)},
		{"int negative", ":-7\r\n", Int(-7)},
		{"int max", ":9223372036854775807\r\n", Int(math.MaxInt64)},
		{"int min", ":-9223372036854775808\r\n", Int(math.MinInt64)},
		{"bulk", "$5\r\nhello\r\n", Bulk([]byte("hello"))},
		{"bulk empty", "$0\r\n\r\n", Bulk([]byte{})},
		{"bulk binary", "$6\r\n\r\n\x00\xff\r\n\r\n", Bulk([]byte("\r\n\x00\xff\r\n"))},
		{"bulk null", "$-1\r\n", Null},
		{"array", "*3\r\n$1\r\na\r\n:1\r\n+OK\r\n", Array(Bulk([]byte("a")), Int(1), OK)},
		{"array empty", "*0\r\n", Array()},
		{"push", ">2\r\n$10\r\ninvalidate\r\n*1\r\n$1\r\nk\r\n", Push(Bulk([]byte("invalidate")), Array(Bulk([]byte("k"))))},
		{"array null", "*-1\r\n", NullArray},
		{"array with nulls", "*2\r\n$-1\r\n*-1\r\n", Array(Null, NullArray)},
		{"array nested", "*2\r\n*1\r\n:1\r\n*0\r\n", Array(Array(Int(1)), Array())},
		{"array deepest", clientNested(maxReplyDepth), deep},
		{"set", "~2\r\n+a\r\n+b\r\n", Set(Simple("a"), Simple("b"))},
		{"map", "%2\r\n+a\r\n:1\r\n+b\r\n*1\r\n_\r\n", Map(Simple("a"), Int(1), Simple("b"), Array(Null))},
		{"map empty", "%0\r\n", Map()},
		{"null", "_\r\n", Null},
		{"double", ",1.5\r\n", Double(1.5)},
		{"double exp", ",-1.25e-10\r\n", Double(-1.25e-10)},
		{"double inf", ",inf\r\n", Double(math.Inf(1))},
		{"double -inf", ",-inf\r\n", Double(math.Inf(-1))},
		{"double nan", ",nan\r\n", Double(math.NaN())},
		{"bool true", "#t\r\n", Bool(true)},
		{"bool false", "#f\r\n", Bool(false)},
		{"verbatim", "=15\r\ntxt:Some string\r\n", Verbatim("Some string")},
		{"verbatim markdown", "=8\r\nmkd:# hi\r\n", Verbatim("# hi")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conns := map[string]net.Conn{
				"pipe":     clientPipeConn([]byte(tc.raw)),
				"one byte": &clientMemConn{data: []byte(tc.raw), chunk: 1},
			}
			for how, nc := range conns {
				c := NewConn(nc)
				got, err := c.ReadReply()
				if err != nil {
					t.Fatalf("%s: %v", how, err)
				}
				if !clientSameValue(got, tc.want) {
					t.Fatalf("%s: got %+v, want %+v", how, got, tc.want)
				}
				if _, err := c.ReadReply(); err != io.EOF {
					t.Fatalf("%s: after the reply: %v, want io.EOF", how, err)
				}
				_ = c.Close()
			}
		})
	}
}

// TestReadReplyKeep checks that a bulk's bytes survive later reads: they
// must not point into the read buffer.
func TestReadReplyKeep(t *testing.T) {
	c := NewConn(&clientMemConn{data: []byte("$3\r\nfoo\r\n*1\r\n$3\r\nbar\r\n$3\r\nbaz\r\n")})
	var got []Value
	for i := 0; i < 3; i++ {
		v, err := c.ReadReply()
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, v)
	}
	c.r.Reset(&clientMemConn{data: bytes.Repeat([]byte("x"), 100)})
	_, _ = c.r.Peek(100)
	if string(got[0].Bytes) != "foo" || string(got[1].Elems[0].Bytes) != "bar" || string(got[2].Bytes) != "baz" {
		t.Fatalf("replies changed under the caller: %q %q %q", got[0].Bytes, got[1].Elems[0].Bytes, got[2].Bytes)
	}
}

func TestReadReplyMalformed(t *testing.T) {
	bad := func(err error) bool { return errors.Is(err, ErrBadReply) }
	short := func(err error) bool { return err == io.ErrUnexpectedEOF }
	for _, tc := range []struct {
		name, raw string
		want      func(error) bool
	}{
		{"huge bulk length", "$99999999999\r\n", bad},
		{"bulk over 1 GiB", "$1073741825\r\n", bad},
		{"bulk length overflow", "$99999999999999999999\r\n", bad},
		{"bulk of 1 GiB, then nothing", "$1073741824\r\nabc", short},
		{"bulk negative", "$-2\r\n", bad},
		{"bulk minus zero", "$-\r\n", bad},
		{"bulk length not a number", "$abc\r\n", bad},
		{"bulk length empty", "$\r\n", bad},
		{"bulk length plus", "$+3\r\nfoo\r\n", bad},
		{"bulk length space", "$ 3\r\nfoo\r\n", bad},
		{"bulk without CRLF", "$3\r\nfooXY", bad},
		{"bulk without LF", "$3\r\nfoo\rX", bad},
		{"bulk too long", "$3\r\nfoobar\r\n", bad},
		{"bulk cut", "$3\r\nfo", short},
		{"bulk cut before CRLF", "$3\r\nfoo", short},
		{"bulk cut in CRLF", "$3\r\nfoo\r", short},
		{"array negative", "*-2\r\n", bad},
		{"array over 16M", "*16777217\r\n", bad},
		{"array of 16M, then nothing", "*16777216\r\n", short},
		{"arrays of 16M inside one", "*16000000\r\n*16000000\r\n", bad},
		{"map over 16M values", "%8388609\r\n", bad},
		{"map length overflow", "%9223372036854775807\r\n", bad},
		{"set negative", "~-1\r\n", bad},
		{"map negative", "%-1\r\n", bad},
		{"array cut", "*2\r\n:1\r\n", short},
		{"too deep", clientNested(maxReplyDepth + 1), bad},
		{"very deep", clientNested(100000), bad},
		{"line without CR", "+OK\n", bad},
		{"line cut", "+OK", short},
		{"line cut after CR", "+OK\r", short},
		{"line too long", "+" + strings.Repeat("a", clientReadBuf) + "\r\n", bad},
		{"line too long, no end", "-" + strings.Repeat("a", 1<<20), bad},
		{"empty line", "\r\n", bad},
		{"bare LF", "\n", bad},
		{"unknown type", "?x\r\n", bad},
		{"inline command", "PING\r\n", bad},
		{"attribute", "|1\r\n+a\r\n+b\r\n", bad},
		{"big number", "(12345678901234567890\r\n", bad},
		{"int empty", ":\r\n", bad},
		{"int junk", ":12a\r\n", bad},
		{"int overflow", ":9223372036854775808\r\n", bad},
		{"int underflow", ":-9223372036854775809\r\n", bad},
		{"int plus", ":+1\r\n", bad},
		{"null with data", "_x\r\n", bad},
		{"bool other", "#x\r\n", bad},
		{"bool long", "#tt\r\n", bad},
		{"double junk", ",abc\r\n", bad},
		{"double empty", ",\r\n", bad},
		{"verbatim without format", "=3\r\nabc\r\n", bad},
		{"verbatim null", "=-1\r\n", bad},
		{"blob error null", "!-1\r\n", bad},
		{"streamed bulk", "$?\r\n;3\r\nfoo\r\n;0\r\n", bad},
		{"streamed array", "*?\r\n:1\r\n.\r\n", bad},
		{"error in array", "*2\r\n:1\r\n$x\r\n", bad},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := NewConn(&clientMemConn{data: []byte(tc.raw)})
			var err error
			used := clientAllocated(func() { _, err = c.ReadReply() })
			if err == nil || !tc.want(err) {
				t.Fatalf("got %v", err)
			}
			if used > 4<<20 {
				t.Fatalf("allocated %d bytes for %d bytes of input", used, len(tc.raw))
			}
			// The Conn is broken for good, with the same error.
			if _, err2 := c.ReadReply(); err2 != err {
				t.Fatalf("second ReadReply: %v, want %v", err2, err)
			}
			c.WriteCommand([]byte("PING"))
			if err2 := c.Flush(); err2 != err {
				t.Fatalf("Flush: %v, want %v", err2, err)
			}
		})
	}
}

// TestReadReplyAfterGood checks that replies before a bad one are read.
func TestReadReplyAfterGood(t *testing.T) {
	c := NewConn(&clientMemConn{data: []byte("+OK\r\n:1\r\n$-5\r\n+OK\r\n")})
	for _, want := range []Value{OK, Int(1)} {
		v, err := c.ReadReply()
		if err != nil || !clientSameValue(v, want) {
			t.Fatalf("got %+v, %v; want %+v", v, err, want)
		}
	}
	if _, err := c.ReadReply(); !errors.Is(err, ErrBadReply) {
		t.Fatalf("got %v, want ErrBadReply", err)
	}
}

// clientReadAll reads replies from raw until the first error, over a Conn
// whose reads return at most chunk bytes.
func clientReadAll(raw []byte, chunk int) ([]Value, error) {
	c := NewConn(&clientMemConn{data: raw, chunk: chunk})
	var vals []Value
	for {
		v, err := c.ReadReply()
		if err != nil {
			return vals, err
		}
		vals = append(vals, v)
	}
}

// FuzzReadReply feeds arbitrary bytes to ReadReply. It must never panic;
// how the bytes arrive must not change what is read; and whatever is read
// must encode (resp.Append) to RESP that reads back to the same encoding.
func FuzzReadReply(f *testing.F) {
	for _, s := range []string{
		"+OK\r\n", "-ERR x\r\n", ":1\r\n", ":-9223372036854775808\r\n",
		"$3\r\nfoo\r\n", "$0\r\n\r\n", "$-1\r\n", "*-1\r\n", "*0\r\n",
		"*2\r\n$1\r\na\r\n:2\r\n", "%1\r\n+k\r\n~1\r\n,1.5\r\n",
		"_\r\n", "#t\r\n", "#f\r\n", ",inf\r\n", ",nan\r\n",
		"=7\r\ntxt:abc\r\n", "!3\r\nERR\r\n",
		"+OK\r\n+PONG\r\n:3\r\n", clientNested(maxReplyDepth), clientNested(maxReplyDepth + 1),
		"$99999999999\r\n", "$1073741824\r\nab", "*16777217\r\n", "$-2\r\n",
		"+OK\n", "$3\r\nfooXY", "\r\n", "*1\r\n", "%9223372036854775807\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		vals, err := clientReadAll(raw, 0)
		vals1, err1 := clientReadAll(raw, 1)
		if len(vals) != len(vals1) || (err == nil) != (err1 == nil) || err.Error() != err1.Error() {
			t.Fatalf("whole: %d values, %v; one byte at a time: %d values, %v", len(vals), err, len(vals1), err1)
		}
		for i := range vals {
			if !clientSameValue(vals[i], vals1[i]) {
				t.Fatalf("value %d: whole %+v, one byte at a time %+v", i, vals[i], vals1[i])
			}
		}
		if err != io.EOF && err != io.ErrUnexpectedEOF && !errors.Is(err, ErrBadReply) {
			t.Fatalf("unexpected error %v", err)
		}
		for _, v := range vals {
			enc := Append(nil, v, 3)
			back, err := clientReadAll(enc, 0)
			if err != io.EOF || len(back) != 1 {
				t.Fatalf("%+v encodes to %q, which reads as %d values, %v", v, enc, len(back), err)
			}
			if enc2 := Append(nil, back[0], 3); !bytes.Equal(enc, enc2) {
				t.Fatalf("%+v encodes to %q, which reads back as %q", v, enc, enc2)
			}
		}
	})
}
