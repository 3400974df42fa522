package resp

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tidwall/redcon"
)

// guardChunkConn is a net.Conn whose Read hands out the given chunks one by one
// (a chunk larger than the caller's buffer is handed out over several reads),
// then io.EOF. It records what is written to it.
type guardChunkConn struct {
	chunks [][]byte
	cur    []byte
	wrote  bytes.Buffer
	loop   []byte // if set, Read serves this forever (benchmarks)
	off    int
	eof    bool // return io.EOF with the last bytes, as an io.Reader may
}

func (c *guardChunkConn) Read(p []byte) (int, error) {
	if c.loop != nil {
		n := copy(p, c.loop[c.off:])
		c.off = (c.off + n) % len(c.loop)
		return n, nil
	}
	for len(c.cur) == 0 {
		if len(c.chunks) == 0 {
			return 0, io.EOF
		}
		c.cur, c.chunks = c.chunks[0], c.chunks[1:]
	}
	n := copy(p, c.cur)
	c.cur = c.cur[n:]
	if c.eof && len(c.cur) == 0 && len(c.chunks) == 0 {
		return n, io.EOF
	}
	return n, nil
}

func (c *guardChunkConn) Write(p []byte) (int, error)      { return c.wrote.Write(p) }
func (c *guardChunkConn) Close() error                     { return nil }
func (c *guardChunkConn) LocalAddr() net.Addr              { return &net.TCPAddr{} }
func (c *guardChunkConn) RemoteAddr() net.Addr             { return &net.TCPAddr{} }
func (c *guardChunkConn) SetDeadline(time.Time) error      { return nil }
func (c *guardChunkConn) SetReadDeadline(time.Time) error  { return nil }
func (c *guardChunkConn) SetWriteDeadline(time.Time) error { return nil }

// guardRun is what came out of a guarded connection.
type guardRun struct {
	out   []byte // everything Read returned
	err   error  // the error that ended reading
	reply string // what the guard wrote to the client
	cmds  int64  // commands the scanner counted
}

// runGuard feeds the chunks through a guarded connection, reading with
// buffers of readSize bytes, until Read fails.
func runGuard(chunks [][]byte, lim Limits, readSize int) guardRun {
	return runGuardEOF(chunks, lim, readSize, false)
}

// runGuardEOF is runGuard, with io.EOF coming with the last bytes if eof.
func runGuardEOF(chunks [][]byte, lim Limits, readSize int, eof bool) guardRun {
	cc := &guardChunkConn{chunks: chunks, eof: eof}
	g := NewGuardConn(cc, lim).(*guardConn)
	var run guardRun
	buf := make([]byte, readSize)
	for i := 0; ; i++ {
		n, err := g.Read(buf)
		if n > 0 && err != nil {
			panic("Read returned bytes and an error")
		}
		if n == 0 && err == nil {
			panic("Read returned nothing and no error")
		}
		run.out = append(run.out, buf[:n]...)
		if err != nil {
			run.err = err
			break
		}
	}
	// The error is sticky and the reply is written once.
	if _, err := g.Read(buf); err != run.err && !(errors.Is(err, io.EOF) && errors.Is(run.err, io.EOF)) {
		panic(fmt.Sprintf("second Read after failure: %v, first %v", err, run.err))
	}
	run.reply = cc.wrote.String()
	run.cmds = g.s.cmds
	return run
}

// guardRedconCount parses b with redcon's own reader, as the server does, and
// returns the commands it finds before the data runs out.
func guardRedconCount(b []byte) (cmds []redcon.Command, err error) {
	rd := redcon.NewReader(bytes.NewReader(b))
	for {
		cmd, err := rd.ReadCommand()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return cmds, nil
			}
			return cmds, err
		}
		cmds = append(cmds, cmd)
	}
}

// guardSplits returns the chunkings to try for in: in one piece, split in two at
// every byte boundary (or at random ones, for long inputs), and byte by
// byte.
func guardSplits(in []byte, r *rand.Rand) [][][]byte {
	out := [][][]byte{{in}}
	if len(in) <= 2048 {
		for i := 1; i < len(in); i++ {
			out = append(out, [][]byte{in[:i], in[i:]})
		}
		ones := make([][]byte, len(in))
		for i := range in {
			ones[i] = in[i : i+1]
		}
		out = append(out, ones)
	} else {
		for range 40 {
			i := 1 + r.IntN(len(in)-1)
			out = append(out, [][]byte{in[:i], in[i:]})
		}
	}
	for range 5 {
		var ch [][]byte
		for rest := in; len(rest) > 0; {
			n := min(1+r.IntN(40), len(rest))
			ch = append(ch, rest[:n])
			rest = rest[n:]
		}
		out = append(out, ch)
	}
	return out
}

type guardCase struct {
	name  string
	in    string // well-framed requests, passed on (but for dropped headers)
	bad   string // the offending request and whatever follows
	lim   Limits // zero: defaults
	out   string // what redcon gets, if not in
	err   string // the Protocol error reason, "" for none (io.EOF)
	quiet bool   // ErrQueryBufferLimit: closed without a reply
}

// guardMB encodes a multibulk request.
func guardMB(args ...string) string {
	s := fmt.Sprintf("*%d\r\n", len(args))
	for _, a := range args {
		s += fmt.Sprintf("$%d\r\n%s\r\n", len(a), a)
	}
	return s
}

const (
	reqPing    = "*1\r\n$4\r\nPING\r\n"
	reqSetFoo  = "*3\r\n$3\r\nSET\r\n$3\r\nfoo\r\n$3\r\nbar\r\n"
	reqGetFoo  = "*2\r\n$3\r\nGET\r\n$3\r\nfoo\r\n"
	reqEchoBig = "*2\r\n$4\r\nECHO\r\n$10\r\n0123456789\r\n"
)

var guardCases = []guardCase{
	// Well-framed input passes unchanged.
	{name: "multibulk", in: reqPing},
	{name: "pipeline", in: reqSetFoo + reqGetFoo + reqPing + reqSetFoo + reqGetFoo},
	{name: "empty bulk", in: "*2\r\n$4\r\nECHO\r\n$0\r\n\r\n"},
	{name: "binary payload", in: "*2\r\n$4\r\nECHO\r\n$6\r\n\r\n*\x00$\n\r\n"},
	{name: "empty lines", in: "\r\n\n   \r\n" + reqPing, out: reqPing},

	// Inline commands are split as Redis's sdssplitargs does and passed on
	// as multibulk requests.
	{name: "inline", in: "PING\r\nSET a b\nGET a\r\n", out: guardMB("PING") + guardMB("SET", "a", "b") + guardMB("GET", "a")},
	{name: "inline quotes", in: "ECHO \"a\\\"b\" 'c d' \"\"\r\n", out: guardMB("ECHO", "a\"b", "c d", "")},
	{name: "inline hex escape", in: "ECHO \"a\\x41b\\x00\"\r\n", out: guardMB("ECHO", "aAb\x00")},
	{name: "inline bad hex escape", in: "ECHO \"a\\x4\" \"\\xZZ\"\r\n", out: guardMB("ECHO", "ax4", "xZZ")},
	{name: "inline escapes", in: "ECHO \"\\n\\r\\t\\b\\a\\q\\\\\"\r\n", out: guardMB("ECHO", "\n\r\t\b\aq\\")},
	{name: "inline single quotes", in: "ECHO 'it\\'s' 'a\\nb'\r\n", out: guardMB("ECHO", "it's", "a\\nb")},
	{name: "inline quote inside word", in: "ECHO a\"b c\"\r\n", out: guardMB("ECHO", "ab c")},
	{name: "inline tabs", in: "  \t ECHO\t\"x\"  \r\n", out: guardMB("ECHO", "x")},
	{name: "inline vtab", in: "\vECHO a\vb\f\r\n", out: guardMB("ECHO", "a\vb\f")},
	{name: "inline bare CR", in: "PING\rX\r\n", out: guardMB("PING", "X")},
	{name: "inline CR CR LF", in: "ECHO x\r\r\n", out: guardMB("ECHO", "x")},
	{name: "inline CR after quote", in: "ECHO \"a\"\rb\r\n", out: guardMB("ECHO", "a", "b")},
	{name: "inline starting with $", in: "$4\r\nPING\r\n", out: guardMB("$4") + guardMB("PING")},
	{name: "inline between", in: reqPing + "ECHO x\n" + reqPing, out: reqPing + guardMB("ECHO", "x") + reqPing},
	{name: "inline many args", in: strings.Repeat("a ", 30000) + "\r\n", out: guardMB(strings.Fields(strings.Repeat("a ", 30000))...)},
	{name: "bulk at the limit", in: reqEchoBig, lim: Limits{MaxBulkLen: 10}},
	{name: "args at the limit", in: reqSetFoo, lim: Limits{MaxMultiBulkLen: 3}},
	{name: "inline at the limit", in: "ECHO 0123\r\n", lim: Limits{MaxInlineLen: 9}, out: guardMB("ECHO", "0123")},
	{name: "request at the limit", in: reqSetFoo, lim: Limits{MaxQueryBufLen: int64(len(reqSetFoo))}},

	// Redis skips counts <= 0; redcon would choke on them.
	{name: "*0", in: "*0\r\n" + reqPing + "*0\r\n", out: reqPing},
	{name: "*-1", in: "*-1\r\n" + reqPing, out: reqPing},
	{name: "*-5 then inline", in: "*-5\r\nPING\r\n", out: guardMB("PING")},
	{name: "*min int64", in: "*-9223372036854775808\r\n" + reqPing, out: reqPing},
	{name: "only *0", in: "*0\r\n*0\r\n", out: ""},

	// Incomplete at EOF: passed on as far as it is known good; a "*<n>"
	// line is held until its end.
	{name: "incomplete request", in: reqPing + "*2\r\n$3\r\nGET"},
	{name: "incomplete count", in: reqPing + "*2", out: reqPing},
	{name: "incomplete count CR", in: reqPing + "*2\r", out: reqPing},
	{name: "incomplete inline", in: reqPing + "PIN", out: reqPing},
	{name: "incomplete header without $", in: reqPing + "*1\r\nx", out: reqPing + "*1\r\n"},

	// Framing errors, with Redis 7.0's texts.
	{name: "expected $", in: "", bad: "*2\r\n$3\r\nGET\r\nx\r\n", err: "expected '$', got 'x'"},
	{name: "expected $ CR", bad: "*1\r\n\r\n", err: "expected '$', got ' '"},
	{name: "expected $ LF", bad: "*1\r\n\n\r\n", err: "expected '$', got ' '"},
	{name: "expected $ star", in: reqPing, bad: "*2\r\n$4\r\nECHO\r\n*0\r\n", err: "expected '$', got '*'"},
	{name: "mbulk not a number", in: "PING\r\n", out: guardMB("PING"), bad: "*abc\r\n", err: "invalid multibulk length"},
	{name: "mbulk empty", bad: "*\r\nPING\r\n", err: "invalid multibulk length"},
	{name: "mbulk plus", bad: "*+1\r\n$4\r\nPING\r\n", err: "invalid multibulk length"},
	{name: "mbulk leading zero", bad: "*01\r\n$4\r\nPING\r\n", err: "invalid multibulk length"},
	{name: "mbulk minus zero", bad: "*-0\r\n", err: "invalid multibulk length"},
	{name: "mbulk minus", bad: "*-\r\n", err: "invalid multibulk length"},
	{name: "mbulk below int64", bad: "*-9223372036854775809\r\n", err: "invalid multibulk length"},
	{name: "mbulk 21 chars", bad: "*000000000000000000001\r\n", err: "invalid multibulk length"},
	{name: "mbulk over limit", in: reqPing, bad: "*1048577\r\n", err: "invalid multibulk length"},
	{name: "mbulk over small limit", bad: reqSetFoo, lim: Limits{MaxMultiBulkLen: 2}, err: "invalid multibulk length"},
	{name: "mbulk over INT_MAX", bad: "*2147483648\r\n", lim: Limits{MaxMultiBulkLen: 1 << 40}, err: "invalid multibulk length"},
	{name: "mbulk CR without LF", bad: "*1\rX$4\r\nPING\r\n", err: "invalid multibulk length"},
	{name: "mbulk LF only", bad: "*1\n$4\r\nPING\r\n", err: "invalid multibulk length"},
	{name: "bulk not a number", in: reqPing, bad: "*1\r\n$x\r\n" + reqPing, err: "invalid bulk length"},
	{name: "bulk negative", bad: "*1\r\n$-1\r\n", err: "invalid bulk length"},
	{name: "bulk over 512MB", bad: "*1\r\n$536870913\r\n", err: "invalid bulk length"},
	{name: "bulk 4GB", in: reqSetFoo, bad: "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$4294967296\r\n", err: "invalid bulk length"},
	{name: "bulk over small limit", bad: reqEchoBig, lim: Limits{MaxBulkLen: 9}, err: "invalid bulk length"},
	{name: "bulk leading zero", bad: "*1\r\n$04\r\nPING\r\n", err: "invalid bulk length"},
	{name: "bulk plus", bad: "*1\r\n$+4\r\nPING\r\n", err: "invalid bulk length"},
	{name: "bulk empty", bad: "*1\r\n$\r\n", err: "invalid bulk length"},
	{name: "unterminated single quote", bad: "ECHO 'x\\\\'\r\n", err: "unbalanced quotes in request"},
	{name: "unterminated escape", bad: "ECHO \"x\\", err: ""},

	// After a NUL, Redis's strchr finds no line end: it waits until the
	// line is too big.
	{name: "NUL in inline", in: reqPing, bad: "PING\x00\r\nPING\r\n", err: ""},
	{name: "NUL in inline, too big", in: reqPing, bad: "PING\x00\r\n" + strings.Repeat("x", 65530), err: "too big inline request"},
	{name: "NUL in inline, not too big", in: reqPing, bad: "PING\x00\r\n" + strings.Repeat("x", 65529), err: ""},
	{name: "NUL in count", in: reqPing, bad: "*1\x00\r\n" + reqPing, err: ""},
	{name: "NUL in count, too big", in: reqPing, bad: "*1\x00\r\n" + strings.Repeat("x", 65532), err: "too big mbulk count string"},
	{name: "NUL in count, not too big", in: reqPing, bad: "*1\x00\r\n" + strings.Repeat("x", 65531), err: ""},
	{name: "NUL in bulk header", in: "*1\r\n$4", bad: "\x00\r\nPING\r\n", err: ""},
	{name: "NUL in bulk header, too big", in: reqPing, bad: "*1\r\n$4\x00\r\n" + strings.Repeat("x", 65532), err: "too big bulk count string"},
	{name: "NUL in bulk header, not too big", in: "*1\r\n$4", bad: "\x00\r\n" + strings.Repeat("x", 65531), err: ""},
	{name: "NUL as bulk header", in: "*1\r\n", bad: "\x00\r\n", err: ""},
	{name: "bulk CR without LF", bad: "*1\r\n$4\rXPING\r\n", err: "invalid bulk length"},
	{name: "payload without CRLF", in: reqPing, bad: "*1\r\n$4\r\nPINGxx" + reqPing, err: "invalid bulk length"},
	{name: "payload CR without LF", bad: "*1\r\n$4\r\nPING\rx", err: "invalid bulk length"},
	{name: "payload too long", bad: "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$3\r\nhello\r\n", err: "invalid bulk length"},
	{name: "unbalanced", in: "PING\r\n", out: guardMB("PING"), bad: "SET \"a b\r\n", err: "unbalanced quotes in request"},
	{name: "quote in word", bad: "SET a\"b c\r\n", err: "unbalanced quotes in request"},
	{name: "text after quote", bad: "SET \"a\"b c\r\n", err: "unbalanced quotes in request"},
	{name: "escaped quote", bad: "ECHO \"a\\\"\r\n", err: "unbalanced quotes in request"},
	{name: "inline too long", in: reqPing, bad: strings.Repeat("A", 65537), err: "too big inline request"},
	{name: "inline too long with newline", bad: "ECHO " + strings.Repeat("A", 65532) + "\r\n", err: "too big inline request"},
	{name: "inline over small limit", bad: "ECHO 01234\r\n", lim: Limits{MaxInlineLen: 9}, err: "too big inline request"},
	{name: "inline at limit, CR pending", in: strings.Repeat("A", 65536) + "\r", out: ""},
	{name: "inline at limit", in: strings.Repeat("A", 65536) + "\r\n" + reqPing, out: guardMB(strings.Repeat("A", 65536)) + reqPing},
	{name: "mbulk count too long", in: reqPing, bad: "*" + strings.Repeat("1", 65536), err: "too big mbulk count string"},
	{name: "mbulk count at limit", in: reqPing + "*" + strings.Repeat("1", 65535), out: reqPing},
	{name: "bulk count too long", bad: "*1\r\n$" + strings.Repeat("1", 65536), err: "too big bulk count string"},
	{name: "bulk count too long without $", bad: "*1\r\nx" + strings.Repeat("1", 65536), err: "too big bulk count string"},

	// Limit on a whole request: closed without a reply, as Redis.
	{name: "query buffer", in: reqPing, bad: reqSetFoo, lim: Limits{MaxQueryBufLen: int64(len(reqSetFoo)) - 1}, quiet: true},
	{name: "query buffer counts headers", in: reqPing, bad: "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$4\r\nv",
		lim: Limits{MaxQueryBufLen: 4 + 9 + 7 + 4 + 5}, quiet: true},
}

func TestGuardScanner(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, tc := range guardCases {
		t.Run(tc.name, func(t *testing.T) {
			in := []byte(tc.in + tc.bad)
			want := tc.in
			if tc.out != "" || tc.name == "only *0" || strings.HasPrefix(tc.name, "inline at limit, CR") {
				want = tc.out
			}
			wantCmds, err := guardRedconCount([]byte(want))
			if err != nil {
				t.Fatalf("redcon cannot parse the expected output %q: %v", want, err)
			}
			for _, chunks := range guardSplits(in, r) {
				for i, rs := range []int{1, 5, 64, 4096} {
					eof := i%2 == 1
					run := runGuardEOF(chunks, tc.lim, rs, eof)
					where := fmt.Sprintf("chunks %d (first %d), read size %d, EOF with data %v", len(chunks), len(chunks[0]), rs, eof)
					guardCheckRun(t, where, tc, run, want, len(wantCmds))
					if t.Failed() {
						return
					}
				}
			}
		})
	}
}

func guardCheckRun(t *testing.T, where string, tc guardCase, run guardRun, want string, wantCmds int) {
	t.Helper()
	switch {
	case tc.quiet:
		if run.err != ErrQueryBufferLimit {
			t.Errorf("%s: err = %v, want ErrQueryBufferLimit", where, run.err)
		}
		if run.reply != "" {
			t.Errorf("%s: wrote %q, want nothing", where, run.reply)
		}
	case tc.err == "":
		if run.err != io.EOF {
			t.Errorf("%s: err = %v, want io.EOF", where, run.err)
		}
		if run.reply != "" {
			t.Errorf("%s: wrote %q, want nothing", where, run.reply)
		}
	default:
		var pe *ProtocolError
		if !errors.As(run.err, &pe) || pe.Reason != tc.err {
			t.Errorf("%s: err = %v, want Protocol error: %s", where, run.err, tc.err)
		}
		if wantReply := "-ERR Protocol error: " + tc.err + "\r\n"; run.reply != wantReply {
			t.Errorf("%s: wrote %q, want %q", where, run.reply, wantReply)
		}
	}
	// The good requests come through whole; of the bad one, at most a
	// prefix that an earlier read had already passed on.
	out := string(run.out)
	if !strings.HasPrefix(out, want) {
		t.Errorf("%s: out = %q, want prefix %q", where, guardTrunc(out), guardTrunc(want))
	} else if extra := out[len(want):]; extra != "" && !strings.HasPrefix(tc.bad, extra) {
		t.Errorf("%s: out has %q after the good requests, not a prefix of the bad one %q", where, guardTrunc(extra), guardTrunc(tc.bad))
	}
	if tc.err == "" && !tc.quiet && out != want {
		t.Errorf("%s: out = %q, want %q", where, guardTrunc(out), guardTrunc(want))
	}
	cmds, err := guardRedconCount(run.out)
	if err != nil {
		t.Errorf("%s: redcon fails on what the guard passed: %v", where, err)
	}
	if len(cmds) != wantCmds || run.cmds != int64(wantCmds) {
		t.Errorf("%s: redcon parsed %d commands, scanner counted %d, want %d", where, len(cmds), run.cmds, wantCmds)
	}
}

func guardTrunc(s string) string {
	if len(s) > 80 {
		return s[:60] + fmt.Sprintf("...(%d bytes)", len(s))
	}
	return s
}

func TestGuardNumber(t *testing.T) {
	for _, v := range []struct {
		s  string
		n  int64
		ok bool
	}{
		{"0", 0, true}, {"1", 1, true}, {"-1", -1, true}, {"10", 10, true},
		{"9223372036854775807", 1<<63 - 1, true},
		{"-9223372036854775808", -1 << 63, true},
		{"9223372036854775808", 0, false},
		{"-9223372036854775809", 0, false},
		{"18446744073709551615", 0, false},
		{"18446744073709551616", 0, false},
		{"99999999999999999999", 0, false},
		{"100000000000000000000", 0, false},
		{"", 0, false}, {"-", 0, false}, {"-0", 0, false}, {"00", 0, false},
		{"01", 0, false}, {"+1", 0, false}, {"1-", 0, false}, {"--1", 0, false},
		{" 1", 0, false}, {"1 ", 0, false}, {"0x1", 0, false}, {"1.0", 0, false},
	} {
		var x number
		for i := 0; i < len(v.s); i++ {
			x.add(v.s[i])
		}
		n, ok := x.value()
		if n != v.n || ok != v.ok {
			t.Errorf("number(%q) = %d, %v; want %d, %v", v.s, n, ok, v.n, v.ok)
		}
	}
}

func TestGuardDefaultLimits(t *testing.T) {
	want := Limits{MaxBulkLen: 512 << 20, MaxMultiBulkLen: 1 << 20, MaxInlineLen: 64 << 10, MaxQueryBufLen: 1 << 30}
	if got := DefaultLimits(); got != want {
		t.Errorf("DefaultLimits() = %+v, want %+v", got, want)
	}
	if got := (Limits{}).withDefaults(); got != want {
		t.Errorf("Limits{}.withDefaults() = %+v, want %+v", got, want)
	}
	if got := (Limits{MaxBulkLen: 5}).withDefaults().MaxBulkLen; got != 5 {
		t.Errorf("a set limit was replaced: %d", got)
	}
}

// TestGuardReadAllocs checks that a guarded connection reads without
// allocating in steady state.
func TestGuardReadAllocs(t *testing.T) {
	stream := guardPipeline(100)
	cc := &guardChunkConn{loop: stream}
	g := NewGuardConn(cc, DefaultLimits())
	buf := make([]byte, 4096)
	allocs := testing.AllocsPerRun(1000, func() {
		if _, err := g.Read(buf); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("Read allocates %.1f times per call", allocs)
	}
}

// guardPipeline returns n SET and n GET requests, as redis-benchmark sends them.
func guardPipeline(n int) []byte {
	var b []byte
	for i := range n {
		key := fmt.Sprintf("key:%012d", i)
		b = fmt.Appendf(b, "*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$3\r\nxxx\r\n", len(key), key)
		b = fmt.Appendf(b, "*2\r\n$3\r\nGET\r\n$%d\r\n%s\r\n", len(key), key)
	}
	return b
}

// BenchmarkGuardRead measures the scanner alone: a guarded connection reading
// a SET/GET pipeline from memory, 4 KiB at a time as redcon's bufio does.
func BenchmarkGuardRead(b *testing.B) {
	stream := guardPipeline(1000)
	cc := &guardChunkConn{loop: stream}
	g := NewGuardConn(cc, DefaultLimits())
	buf := make([]byte, 4096)
	b.SetBytes(int64(len(stream)))
	b.ReportAllocs()
	for b.Loop() {
		for n := 0; n < len(stream); {
			k, err := g.Read(buf)
			if err != nil {
				b.Fatal(err)
			}
			n += k
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*2000), "ns/cmd")
}

// BenchmarkGuardRedcon pipelines SET/GET through a real redcon server on
// loopback, with and without the guard, and reports commands per second.
func BenchmarkGuardRedcon(b *testing.B) {
	for _, guarded := range []bool{false, true} {
		b.Run(fmt.Sprintf("guard=%v", guarded), func(b *testing.B) {
			addr, stop := guardStartServer(b, guarded, DefaultLimits())
			defer stop()
			c, err := net.Dial("tcp", addr)
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			const depth = 1000
			batch := guardPipeline(depth / 2)
			// Replies: "+OK\r\n" for SET, "$3\r\nxxx\r\n" for GET.
			replyLen := depth / 2 * (5 + 9)
			go func() {
				for range b.N {
					if _, err := c.Write(batch); err != nil {
						return
					}
				}
			}()
			br := bufio.NewReaderSize(c, 64<<10)
			buf := make([]byte, 64<<10)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := io.ReadFull(br, buf[:replyLen]); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*depth)/b.Elapsed().Seconds(), "cmds/s")
		})
	}
}

// guardStartServer runs a redcon server on a free loopback port, guarded or not,
// with a few commands over a map.
func guardStartServer(tb testing.TB, guarded bool, lim Limits) (addr string, stop func()) {
	return guardStartServerFunc(tb, guarded, func() Limits { return lim })
}

// guardStartServerFunc is guardStartServer with limits asked per connection.
func guardStartServerFunc(tb testing.TB, guarded bool, lim func() Limits) (addr string, stop func()) {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	var mu sync.Mutex
	data := map[string][]byte{}
	var l net.Listener = ln
	if guarded {
		l = NewGuardListener(ln, lim)
	}
	return ln.Addr().String(), serveTestCommands(tb, l, map[string]testHandler{
		"SET": func(conn redcon.Conn, cmd redcon.Command) {
			if len(cmd.Args) != 3 {
				conn.WriteError("ERR wrong number of arguments for 'set' command")
				return
			}
			mu.Lock()
			data[string(cmd.Args[1])] = bytes.Clone(cmd.Args[2])
			mu.Unlock()
			conn.WriteString("OK")
		},
		"GET": func(conn redcon.Conn, cmd redcon.Command) {
			if len(cmd.Args) != 2 {
				conn.WriteError("ERR wrong number of arguments for 'get' command")
				return
			}
			mu.Lock()
			v, ok := data[string(cmd.Args[1])]
			mu.Unlock()
			if !ok {
				conn.WriteNull()
				return
			}
			conn.WriteBulk(v)
		},
	})
}

// guardTalk sends req on a new connection, half-closes nothing, and reads until
// the server closes the connection or wait passes. It reports whether the
// server closed it.
func guardTalk(t *testing.T, addr, req string, wait time.Duration) (reply string, closed bool) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// A write may fail once the server has answered and closed: the reply
	// is what counts.
	_, _ = c.Write([]byte(req))
	return guardReadAll(c, wait)
}

func guardReadAll(c net.Conn, wait time.Duration) (reply string, closed bool) {
	_ = c.SetReadDeadline(time.Now().Add(wait))
	var out []byte
	buf := make([]byte, 64<<10)
	for {
		n, err := c.Read(buf)
		out = append(out, buf[:n]...)
		if err != nil {
			var ne net.Error
			return string(out), !(errors.As(err, &ne) && ne.Timeout())
		}
	}
}

// TestGuardServer runs each framing error against a real redcon server
// behind the guard: the client gets Redis's exact reply, after the replies
// to the commands before the bad one, and the connection is closed.
func TestGuardServer(t *testing.T) {
	addr, stop := guardStartServer(t, true, DefaultLimits())
	defer stop()
	for _, tc := range []struct {
		name, req, reply string
		closed           bool
	}{
		{"ok", reqSetFoo + reqGetFoo + "PING\r\n", "+OK\r\n$3\r\nbar\r\n+PONG\r\n", false},
		{"inline as Redis splits it", "ECHO \"a\\x41b\"\r\n  \t ECHO\tx  \r\nECHO a\"b c\"\n",
			"$3\r\naAb\r\n$1\r\nx\r\n$4\r\nab c\r\n", false},
		// redcon's own inline parser would spend about a second on these.
		{"inline many args", strings.Repeat("PING "+strings.Repeat("a ", 30000)+"\r\n", 5), strings.Repeat("+PONG\r\n", 5), false},
		{"*0 and *-1 ignored", "*0\r\n" + reqPing + "*-1\r\n" + reqPing + "*0\r\n", "+PONG\r\n+PONG\r\n", false},
		{"expected $", "*2\r\n$3\r\nGET\r\nx\r\n", "-ERR Protocol error: expected '$', got 'x'\r\n", true},
		{"commands before run", "PING\r\nPING\r\n" + reqPing + "*1\r\n$x\r\n" + reqPing,
			"+PONG\r\n+PONG\r\n+PONG\r\n-ERR Protocol error: invalid bulk length\r\n", true},
		{"invalid multibulk", "PING\r\n*abc\r\n", "+PONG\r\n-ERR Protocol error: invalid multibulk length\r\n", true},
		{"multibulk over 1M", reqPing + "*1048577\r\n", "+PONG\r\n-ERR Protocol error: invalid multibulk length\r\n", true},
		{"negative bulk", "*1\r\n$-1\r\n", "-ERR Protocol error: invalid bulk length\r\n", true},
		{"4GB bulk", reqSetFoo + "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$4294967296\r\n",
			"+OK\r\n-ERR Protocol error: invalid bulk length\r\n", true},
		{"600MB bulk", "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$629145600\r\n" + strings.Repeat("x", 100000),
			"-ERR Protocol error: invalid bulk length\r\n", true},
		{"payload without CRLF", "*1\r\n$4\r\nPINGxx", "-ERR Protocol error: invalid bulk length\r\n", true},
		{"unbalanced quotes", "PING\r\nSET \"a b\r\n", "+PONG\r\n-ERR Protocol error: unbalanced quotes in request\r\n", true},
		{"too big inline", "PING\r\n" + strings.Repeat("A", 70000), "+PONG\r\n-ERR Protocol error: too big inline request\r\n", true},
		{"too big mbulk count", "*" + strings.Repeat("1", 70000), "-ERR Protocol error: too big mbulk count string\r\n", true},
		{"too big bulk count", "*1\r\n$" + strings.Repeat("1", 70000), "-ERR Protocol error: too big bulk count string\r\n", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			reply, closed := guardTalk(t, addr, tc.req, 500*time.Millisecond)
			if reply != tc.reply || closed != tc.closed {
				t.Errorf("got %q (closed %v), want %q (closed %v)", guardTrunc(reply), closed, tc.reply, tc.closed)
			}
		})
	}
	// Past client-query-buffer-limit Redis closes without a word.
	t.Run("query buffer", func(t *testing.T) {
		addr, stop := guardStartServer(t, true, Limits{MaxQueryBufLen: 1 << 20})
		defer stop()
		reply, closed := guardTalk(t, addr, reqPing+"*2\r\n$4\r\nECHO\r\n$2000000\r\n"+strings.Repeat("x", 1000), time.Second)
		if reply != "+PONG\r\n" || !closed {
			t.Errorf("got %q (closed %v), want +PONG and a close", reply, closed)
		}
	})
}

// TestGuardServerChunked sends a long pipeline, with a bad request at the
// end, in small random writes: every good command is answered in order.
func TestGuardServerChunked(t *testing.T) {
	addr, stop := guardStartServer(t, true, DefaultLimits())
	defer stop()
	var req, want strings.Builder
	for i := range 500 {
		v := strings.Repeat("v", i*37%300)
		fmt.Fprintf(&req, "*3\r\n$3\r\nSET\r\n$2\r\nk%d\r\n$%d\r\n%s\r\n", i%10, len(v), v)
		fmt.Fprintf(&req, "*2\r\n$3\r\nGET\r\n$2\r\nk%d\r\n*0\r\n", i%10)
		fmt.Fprintf(&want, "+OK\r\n$%d\r\n%s\r\n", len(v), v)
	}
	req.WriteString("*1\r\n$4\r\nPINGxx")
	want.WriteString("-ERR Protocol error: invalid bulk length\r\n")
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.(*net.TCPConn).SetNoDelay(true)
	go func() {
		r := rand.New(rand.NewPCG(3, 4))
		b := []byte(req.String())
		for len(b) > 0 {
			n := min(1+r.IntN(200), len(b))
			if _, err := c.Write(b[:n]); err != nil {
				return
			}
			b = b[n:]
			if r.IntN(10) == 0 {
				time.Sleep(time.Millisecond)
			}
		}
	}()
	reply, closed := guardReadAll(c, 5*time.Second)
	if reply != want.String() || !closed {
		t.Errorf("got %d bytes (closed %v), want %d bytes; got ends %q", len(reply), closed, want.Len(), reply[max(0, len(reply)-60):])
	}
}

// TestGuardServerOthersServed checks that clients sending garbage or huge
// announcements do not disturb another client.
func TestGuardServerOthersServed(t *testing.T) {
	addr, stop := guardStartServer(t, true, DefaultLimits())
	defer stop()
	good, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer good.Close()
	br := bufio.NewReader(good)
	roundTrip := func() {
		t.Helper()
		_ = good.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := good.Write([]byte(reqSetFoo + reqGetFoo)); err != nil {
			t.Fatal(err)
		}
		want := "+OK\r\n$3\r\nbar\r\n"
		got := make([]byte, len(want))
		if _, err := io.ReadFull(br, got); err != nil || string(got) != want {
			t.Fatalf("good client got %q, %v", got, err)
		}
	}
	roundTrip()
	// A client that announces a large (allowed) bulk and then stalls.
	const big = 50 << 20
	stall, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer stall.Close()
	if _, err := stall.Write([]byte(fmt.Sprintf("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$%d\r\nxxxx", big))); err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		reply, closed := guardTalk(t, addr, reqPing+"*2\r\n$3\r\nGET\r\nx"+strings.Repeat("y", i*100)+"\r\n", 500*time.Millisecond)
		if reply != "+PONG\r\n-ERR Protocol error: expected '$', got 'x'\r\n" || !closed {
			t.Fatalf("bad client got %q, closed %v", reply, closed)
		}
		roundTrip()
	}
	// The stalled client still gets its answer once it finishes.
	go func() {
		chunk := bytes.Repeat([]byte("z"), 1<<20)
		rest := big - 4
		for rest > 0 {
			n := min(rest, len(chunk))
			if _, err := stall.Write(chunk[:n]); err != nil {
				return
			}
			rest -= n
		}
		_, _ = stall.Write([]byte("\r\n"))
	}()
	_ = stall.SetReadDeadline(time.Now().Add(60 * time.Second))
	got := make([]byte, 5)
	if _, err := io.ReadFull(stall, got); err != nil || string(got) != "+OK\r\n" {
		t.Fatalf("stalled client got %q, %v", got, err)
	}
	roundTrip()
}

// TestGuardServerNoHugeAlloc announces absurd lengths and checks the server
// allocates nothing like them.
func TestGuardServerNoHugeAlloc(t *testing.T) {
	addr, stop := guardStartServer(t, true, DefaultLimits())
	defer stop()
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for _, req := range []string{
		"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$4294967296\r\n",
		"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$629145600\r\n" + strings.Repeat("x", 1<<20),
		"*2147483647\r\n",
		"*1048577\r\n",
		"*1048576\r\n" + strings.Repeat("$536870912\r\n", 3),
	} {
		guardTalk(t, addr, req, 300*time.Millisecond)
	}
	// A client that streams 600 MB into one bulk against the 512 MB limit
	// is stopped at the header: its writes soon fail, well before the
	// 600 MB are out.
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	sent := make(chan int64, 1)
	go func() {
		var n int64
		chunk := bytes.Repeat([]byte("x"), 1<<20)
		if _, err := c.Write([]byte("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$629145600\r\n")); err == nil {
			for n < 600<<20 {
				k, err := c.Write(chunk)
				n += int64(k)
				if err != nil {
					break
				}
			}
		}
		sent <- n
	}()
	reply, closed := guardReadAll(c, 10*time.Second)
	if reply != "-ERR Protocol error: invalid bulk length\r\n" || !closed {
		t.Errorf("streaming client got %q (closed %v)", reply, closed)
	}
	if n := <-sent; n >= 600<<20 {
		t.Errorf("the server took all %d MiB", n>>20)
	}
	runtime.ReadMemStats(&after)
	if grow := int64(after.HeapAlloc) - int64(before.HeapAlloc); grow > 16<<20 {
		t.Errorf("heap grew by %d MiB", grow>>20)
	}
	if total := after.TotalAlloc - before.TotalAlloc; total > 64<<20 {
		t.Errorf("allocated %d MiB in total", total>>20)
	}
}

// TestGuardListenerLimitsPerConn checks that the listener asks for the limits
// at each accept: a change (CONFIG SET proto-max-bulk-len) applies to the
// clients that connect after it, and nil means the defaults.
func TestGuardListenerLimitsPerConn(t *testing.T) {
	var bulk atomic.Int64
	bulk.Store(100)
	addr, stop := guardStartServerFunc(t, true, func() Limits { return Limits{MaxBulkLen: bulk.Load()} })
	defer stop()
	req := guardMB("ECHO", strings.Repeat("x", 50))
	ok := "$50\r\n" + strings.Repeat("x", 50) + "\r\n"
	before, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer before.Close()
	if _, err := before.Write([]byte(req)); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(ok))
	_ = before.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(before, got); err != nil || string(got) != ok {
		t.Fatalf("got %q, %v", got, err)
	}
	bulk.Store(10)
	if reply, closed := guardTalk(t, addr, req, time.Second); reply != "-ERR Protocol error: invalid bulk length\r\n" || !closed {
		t.Errorf("new client got %q (closed %v)", reply, closed)
	}
	if _, err := before.Write([]byte(req)); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(before, got); err != nil || string(got) != ok {
		t.Fatalf("old client got %q, %v", got, err)
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gl := NewGuardListener(ln, nil)
	defer gl.Close()
	go func() {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err == nil {
			defer c.Close()
			time.Sleep(100 * time.Millisecond)
		}
	}()
	c, err := gl.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if got := c.(*guardConn).s.lim; got != DefaultLimits() {
		t.Errorf("nil limits func gave %+v", got)
	}
	if c.(*guardConn).NetConn() == nil {
		t.Error("NetConn() is nil")
	}
}
