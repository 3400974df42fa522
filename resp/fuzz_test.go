package resp

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"strconv"
	"testing"
)

// guardFuzzLimits are small, so that random input reaches every limit.
var guardFuzzLimits = Limits{MaxBulkLen: 16, MaxMultiBulkLen: 4, MaxInlineLen: 24, MaxQueryBufLen: 80}

// guardRefResult is what the reference says of a whole input.
type guardRefResult struct {
	good  []byte     // what redcon should get for the complete requests
	cmds  [][][]byte // their arguments
	mbulk []bool     // for each, whether it came as a multibulk
	err   error      // nil if the input just ends
}

// guardRef is a plain, whole-buffer reading of the rules the streaming
// scanner implements: Redis's framing (string2ll lengths, errors at the end
// of a header line, "too big" past MaxInlineLen without a line end, a NUL
// hiding every line end), with the strict CRLF checks, and inline lines
// split as sdssplitargs does.
func guardRef(in []byte, lim Limits) guardRefResult {
	lim = lim.withDefaults()
	var res guardRefResult
	pos := 0
	for pos < len(in) {
		if in[pos] != '*' {
			nl := bytes.IndexByte(in[pos:], '\n')
			if z := bytes.IndexByte(in[pos:], 0); z >= 0 && (nl < 0 || z < nl) {
				if len(in)-pos > lim.MaxInlineLen {
					res.err = errTooBigInline
				}
				return res
			}
			content := in[pos:]
			if nl >= 0 {
				content = in[pos : pos+nl]
			}
			content = bytes.TrimSuffix(content, []byte("\r"))
			if len(content) > lim.MaxInlineLen {
				res.err = errTooBigInline
				return res
			}
			if nl < 0 {
				return res
			}
			args, ok := guardRefSplitArgs(content)
			if !ok {
				res.err = errUnbalanced
				return res
			}
			if len(args) > 0 {
				res.good = append(res.good, guardEncode(args)...)
				res.cmds = append(res.cmds, args)
				res.mbulk = append(res.mbulk, false)
			}
			pos += nl + 1
			continue
		}
		// A multibulk request.
		start := pos
		hdr, next, err := guardRefLine(in, pos, lim, errTooBigMultiBulk)
		if err != nil || next < 0 {
			res.err = err
			return res
		}
		n, ok := guardRedisInt(hdr[1:])
		if !ok || n > lim.MaxMultiBulkLen {
			res.err = errInvalidMultiBulk
			return res
		}
		if in[next-1] != '\n' {
			res.err = errInvalidMultiBulk
			return res
		}
		pos = next
		if n <= 0 {
			continue // dropped
		}
		reqLen := int64(pos - start)
		var args [][]byte
		for range n {
			hdr, next, err := guardRefLine(in, pos, lim, errTooBigBulk)
			if err != nil || next < 0 {
				res.err = err
				return res
			}
			if len(hdr) == 0 || hdr[0] != '$' {
				c := byte('\r')
				if len(hdr) > 0 {
					c = hdr[0]
				}
				res.err = errExpectedDollar(c)
				return res
			}
			size, ok := guardRedisInt(hdr[1:])
			if in[next-1] != '\n' || !ok || size < 0 || size > lim.MaxBulkLen {
				res.err = errInvalidBulk
				return res
			}
			reqLen += int64(next - pos)
			if reqLen+size+2 > lim.MaxQueryBufLen {
				res.err = ErrQueryBufferLimit
				return res
			}
			reqLen += size + 2
			pos = next
			end := pos + int(size)
			if end < len(in) && in[end] != '\r' || end+1 < len(in) && in[end+1] != '\n' {
				res.err = errInvalidBulk
				return res
			}
			if end+2 > len(in) {
				return res
			}
			args = append(args, in[pos:end])
			pos = end + 2
		}
		res.good = append(res.good, in[start:pos]...)
		res.cmds = append(res.cmds, args)
		res.mbulk = append(res.mbulk, true)
	}
	return res
}

// guardRefSplitArgs is Redis's sdssplitargs transliterated pointer for pointer,
// over a NUL-terminated copy of the line, as the C code sees it.
func guardRefSplitArgs(line []byte) (args [][]byte, ok bool) {
	b := append(bytes.Clone(line), 0)
	isspace := func(c byte) bool { return bytes.IndexByte([]byte(" \t\n\v\f\r"), c) >= 0 }
	hex := func(c byte) (byte, bool) {
		v, err := strconv.ParseUint(string(c), 16, 8)
		return byte(v), err == nil
	}
	p := 0
	for {
		for b[p] != 0 && isspace(b[p]) {
			p++
		}
		if b[p] == 0 {
			return args, true
		}
		inq, insq, done := false, false, false
		current := []byte{}
		for !done {
			if inq {
				h, ok1 := hex(b[min(p+2, len(b)-1)])
				l, ok2 := hex(b[min(p+3, len(b)-1)])
				if b[p] == '\\' && b[p+1] == 'x' && ok1 && ok2 && p+3 < len(b)-1 {
					current = append(current, h*16+l)
					p += 3
				} else if b[p] == '\\' && b[p+1] != 0 {
					p++
					c := map[byte]byte{'n': '\n', 'r': '\r', 't': '\t', 'b': '\b', 'a': '\a'}[b[p]]
					if c == 0 {
						c = b[p]
					}
					current = append(current, c)
				} else if b[p] == '"' {
					if b[p+1] != 0 && !isspace(b[p+1]) {
						return nil, false
					}
					done = true
				} else if b[p] == 0 {
					return nil, false
				} else {
					current = append(current, b[p])
				}
			} else if insq {
				if b[p] == '\\' && b[p+1] == '\'' {
					p++
					current = append(current, '\'')
				} else if b[p] == '\'' {
					if b[p+1] != 0 && !isspace(b[p+1]) {
						return nil, false
					}
					done = true
				} else if b[p] == 0 {
					return nil, false
				} else {
					current = append(current, b[p])
				}
			} else {
				switch b[p] {
				case ' ', '\n', '\r', '\t', 0:
					done = true
				case '"':
					inq = true
				case '\'':
					insq = true
				default:
					current = append(current, b[p])
				}
			}
			if b[p] != 0 {
				p++
			}
		}
		args = append(args, current)
	}
}

// guardEncode is a multibulk request of args.
func guardEncode(args [][]byte) []byte {
	b := []byte("*" + strconv.Itoa(len(args)) + "\r\n")
	for _, a := range args {
		b = append(b, "$"+strconv.Itoa(len(a))+"\r\n"...)
		b = append(b, a...)
		b = append(b, "\r\n"...)
	}
	return b
}

// guardRefLine finds the header line at pos: its bytes before the '\r', and the
// position after the byte that follows the '\r' (-1 if the input ends
// first). A line longer than MaxInlineLen is tooBig, '\r' or not; so is one
// with a NUL once the input from pos on is longer than that.
func guardRefLine(in []byte, pos int, lim Limits, tooBig error) (line []byte, next int, err error) {
	i := bytes.IndexByte(in[pos:], '\r')
	if z := bytes.IndexByte(in[pos:], 0); z >= 0 && (i < 0 || z < i) {
		// strchr stops at the NUL: no line end until too big.
		if len(in)-pos > lim.MaxInlineLen {
			return nil, -1, tooBig
		}
		return nil, -1, nil
	}
	n := i
	if i < 0 {
		n = len(in) - pos
	}
	if n > lim.MaxInlineLen {
		return nil, -1, tooBig
	}
	if i < 0 || pos+i+2 > len(in) {
		return nil, -1, nil
	}
	return in[pos : pos+i], pos + i + 2, nil
}

// guardRedisInt is Redis's string2ll: what strconv.ParseInt takes, minus a
// leading '+', leading zeros, "-0", and anything of 21 characters or more.
func guardRedisInt(b []byte) (int64, bool) {
	s := string(b)
	if len(s) == 0 || len(s) >= 21 || s[0] == '+' || s == "-0" {
		return 0, false
	}
	digits := s
	if s[0] == '-' {
		digits = s[1:]
	}
	if len(digits) > 1 && digits[0] == '0' {
		return 0, false
	}
	n, err := strconv.ParseInt(s, 10, 64)
	return n, err == nil
}

// guardRandomChunks guardSplits in into pieces of random sizes.
func guardRandomChunks(in []byte, r *rand.Rand) [][]byte {
	var ch [][]byte
	for len(in) > 0 {
		n := min(1+r.IntN(1+r.IntN(32)), len(in))
		ch = append(ch, in[:n])
		in = in[n:]
	}
	return ch
}

func guardArgsEqual(a, b [][]byte) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !bytes.Equal(a[i], b[i]) {
			return false
		}
	}
	return true
}

func guardSameErr(a, b error) bool {
	var pa, pb *ProtocolError
	if errors.As(a, &pa) && errors.As(b, &pb) {
		return pa.Reason == pb.Reason
	}
	return a == b
}

// FuzzGuard runs arbitrary bytes through a guarded connection, whole and in
// random chunkings read through buffers of random sizes, with small limits
// (even seeds) or the defaults (odd seeds). It must not panic, must agree with
// guardRef on the error, the reply and the commands, and what it passes must
// parse in redcon without an error into exactly those commands, none over
// the limits.
func FuzzGuard(f *testing.F) {
	seeds := []string{
		reqPing, reqSetFoo + reqGetFoo, reqEchoBig, "PING\r\n", "SET a b\nGET a\r\n",
		"ECHO \"a\\\"b\" 'c d' \"\"\r\n", "\r\n\n   \r\n",
		"*0\r\n" + reqPing + "*-1\r\n", "*-9223372036854775808\r\n",
		"*2\r\n$3\r\nGET\r\nx\r\n", "*1\r\n\r\n", "*abc\r\n", "*+1\r\n", "*01\r\n",
		"*1\r\n$-1\r\n", "*1\r\n$04\r\nPING\r\n", "*1\r\n$4\r\nPINGxx", "*1\rX$4\r\nPING\r\n",
		"SET \"a b\r\n", "SET a\"b c\r\n", "SET \"a\"b c\r\n",
		"*1\r\n$17\r\n01234567890123456\r\n", "*5\r\n", "*3\r\n$3\r\nSET\r\n$16\r\n0123456789abcdef\r\n$16\r\n0123456789abcdef\r\n",
		"0123456789012345678901234\r\n", "*0123456789012345678901234", "*1\r\n$0123456789012345678901234",
		"*1\r\n$4\x00\r\nPING\r\n", "PING\rX\r\n", "$4\r\nPING\r\n",
		"PING\x00\r\n", "*1\x00\r\n", "ECHO \"a\\x41\\n\" 'b\\'c'\r\n", "ECHO 'x\\\\'\r\n",
		"ECHO\t\"x\"\ty\v\r\r\n", reqPing + "ECHO x\n" + reqPing,
	}
	for i, s := range seeds {
		f.Add([]byte(s), uint64(i))
		f.Add([]byte(s+s), uint64(i)+100)
	}
	f.Fuzz(func(t *testing.T, in []byte, seed uint64) {
		lim := guardFuzzLimits
		if seed&1 == 1 {
			lim = Limits{} // defaults
		}
		ref := guardRef(in, lim)
		r := rand.New(rand.NewPCG(seed, 7))
		readSizes := []int{1, 3, 64, 100, 4096}
		for try := range 4 {
			chunks := [][]byte{in}
			if try > 0 {
				chunks = guardRandomChunks(in, r)
			}
			rs := readSizes[r.IntN(len(readSizes))]
			run := runGuardEOF(chunks, lim, rs, try%2 == 1)

			// The same verdict as the reference.
			wantErr := ref.err
			if wantErr == nil {
				wantErr = io.EOF
			}
			if !guardSameErr(run.err, wantErr) {
				t.Fatalf("err = %v, reference %v (chunks %d, read size %d)", run.err, wantErr, len(chunks), rs)
			}
			var pe *ProtocolError
			wantReply := ""
			if errors.As(ref.err, &pe) {
				wantReply = "-ERR " + pe.Error() + "\r\n"
			}
			if run.reply != wantReply {
				t.Fatalf("reply %q, want %q", run.reply, wantReply)
			}
			// All the complete good requests, and of the rest nothing that
			// completes a command.
			if !bytes.HasPrefix(run.out, ref.good) {
				t.Fatalf("out %q does not start with the good requests %q", run.out, ref.good)
			}
			if run.cmds != int64(len(ref.cmds)) {
				t.Fatalf("scanner counted %d commands, reference %d", run.cmds, len(ref.cmds))
			}
			// redcon parses what the guard passes without an error, into
			// as many commands, each within the limits.
			cmds, err := guardRedconCount(run.out)
			if err != nil {
				t.Fatalf("redcon fails on the guard's output %q: %v", run.out, err)
			}
			if len(cmds) != len(ref.cmds) {
				t.Fatalf("redcon parsed %d commands, reference %d", len(cmds), len(ref.cmds))
			}
			for i, c := range cmds {
				if !guardArgsEqual(c.Args, ref.cmds[i]) {
					t.Fatalf("command %d: redcon got %q, reference %q", i, c.Args, ref.cmds[i])
				}
			}
			// Inline commands answer to MaxInlineLen only, as in Redis.
			l := lim.withDefaults()
			for i, c := range cmds {
				if !ref.mbulk[i] {
					continue
				}
				if int64(len(c.Args)) > l.MaxMultiBulkLen || int64(len(c.Raw)) > l.MaxQueryBufLen {
					t.Fatalf("request over the limits passed: %q", c.Raw)
				}
				for _, a := range c.Args {
					if int64(len(a)) > l.MaxBulkLen {
						t.Fatalf("argument over MaxBulkLen passed: %q", c.Raw)
					}
				}
			}
		}
	})
}

// TestGuardRefSplitArgs pins the reference's reading of sdssplitargs to what
// redis-server 7.0.15 answered to the same inline ECHO commands.
func TestGuardRefSplitArgs(t *testing.T) {
	for _, v := range []struct {
		line string
		args []string // nil: unbalanced quotes
	}{
		{`ECHO "a\x41b"`, []string{"ECHO", "aAb"}},
		{"ECHO\t\"x\"", []string{"ECHO", "x"}},
		{`ECHO a"b c"`, []string{"ECHO", "ab c"}},
		{`ECHO "a"b`, nil},
		{`ECHO 'it\'s'`, []string{"ECHO", "it's"}},
		{`ECHO "a\qb"`, []string{"ECHO", "aqb"}},
		{`ECHO "a\n"`, []string{"ECHO", "a\n"}},
		{`ECHO 'a\nb'`, []string{"ECHO", `a\nb`}},
		{"  \t ECHO   x  ", []string{"ECHO", "x"}},
		{"ECHO \"x\"\ty", []string{"ECHO", "x", "y"}},
		{"\vECHO x", []string{"ECHO", "x"}},
		{"ECHO a\vb", []string{"ECHO", "a\vb"}},
		{`ECHO ""`, []string{"ECHO", ""}},
		{`ECHO ''`, []string{"ECHO", ""}},
		{`ECHO "a\x4"`, []string{"ECHO", "ax4"}},
		{`ECHO "a\"`, nil},
		{"ECHO x\r", []string{"ECHO", "x"}},
		{"ECHO \"x\"\ry", []string{"ECHO", "x", "y"}},
		{`ECHO "a\xZZ"`, []string{"ECHO", "axZZ"}},
		{`ECHO "\x00"`, []string{"ECHO", "\x00"}},
		{`ECHO a"b`, nil},
		{`ECHO "x`, nil},
		{`ECHO 'x\\'`, nil},
		{"\r", []string{}},
		{"ECHO \f x", []string{"ECHO", "x"}},
	} {
		args, ok := guardRefSplitArgs([]byte(v.line))
		if v.args == nil {
			if ok {
				t.Errorf("%q: split into %q, Redis says unbalanced", v.line, args)
			}
			continue
		}
		var want [][]byte
		for _, a := range v.args {
			want = append(want, []byte(a))
		}
		if !ok || !guardArgsEqual(args, want) {
			t.Errorf("%q: split into %q (ok %v), Redis says %q", v.line, args, ok, want)
		}
		// And the scanner agrees.
		var s scanner
		argc, ok := s.splitInline([]byte(v.line))
		if !ok || argc != len(want) || (argc > 0 && string(s.pend) != string(guardEncode(want))) {
			t.Errorf("%q: scanner made %q (ok %v)", v.line, s.pend, ok)
		}
	}
}
