package resp

// Request limits in front of redcon.
//
// redcon's Reader has no limits: it grows its buffer for whatever a client
// announces or sends, so one "$4294967296" header, or an endless inline line,
// makes the node allocate without bound. A guarded connection runs every byte
// through a small streaming scanner before redcon sees it. The scanner knows
// just enough RESP to find request boundaries and header lines; bulk payloads
// are skipped by count. It passes redcon only bytes that redcon parses
// without error and that are within the limits; on the first framing error
// or limit breach it hands redcon the complete requests before the offending
// one (so they run and are answered, as in Redis), then writes Redis's error
// reply itself and fails the read, which makes redcon close the connection.
//
// Inline commands ("PING\r\n", what telnet and health checks send) are not
// passed to redcon as they are: the scanner splits each line as Redis's
// sdssplitargs does and passes the equivalent multibulk request. redcon's
// own inline parser allocates the rest of the line once per argument, so a
// 64 KiB line of "a a a ..." costs it about a gigabyte of garbage and a fifth
// of a second; it also differs from Redis (no \xHH escapes, tab is not a
// separator, 'a"b c"' is an error). Lines are rare and short, so the copy is
// cheap, and inline commands now mean exactly what they mean to Redis.
//
// Where Redis 7.0 and redcon disagree on multibulk requests, the scanner
// follows Redis:
//
//   - "*0\r\n" and "*-1\r\n" (any count <= 0) are skipped silently by Redis,
//     but redcon answers them with a protocol error; the scanner removes
//     those header lines from the stream, so redcon never sees them.
//   - Lengths are parsed as Redis's string2ll does: no '+', no leading zeros,
//     no "-0", at most 20 characters. redcon's strconv.Atoi would take
//     "$+3" or "$03"; Redis (and so the scanner) rejects them.
//   - An error in a header line is raised when its '\r' has arrived, as in
//     Redis, so "*1\r\nx" waits for the rest of the line before it is
//     answered with "expected '$', got 'x'", and a line that grows past
//     MaxInlineLen without a '\r' gets Redis's "too big ... count string".
//   - Redis looks for line ends with strchr, which stops at a NUL byte: after
//     a NUL, Redis sees no line end until MaxInlineLen bytes have piled up,
//     and then answers "too big ...". The scanner does the same.
//
// Where Redis is lax, the scanner is strict, because skipping bytes unread
// would store a silently truncated value ("never a corrupted key"):
//
//   - Redis skips the two bytes after a bulk payload without looking at them
//     and so accepts "$3\r\nfooXY"; the scanner (like redcon) requires "\r\n"
//     there and answers "Protocol error: invalid bulk length" otherwise.
//   - Redis takes any byte after the '\r' that ends a "*<n>" or "$<n>" line;
//     the scanner requires '\n' and answers "invalid multibulk length" or
//     "invalid bulk length" otherwise.
//   - Redis counts a trailing '\r' against the inline limit only if the '\n'
//     after it has not arrived yet; the scanner never counts the "\r\n"
//     terminator, so the outcome does not depend on how the bytes were split.

import (
	"bytes"
	"errors"
	"math"
	"net"
	"strconv"
	"time"
)

// Limits bound what one request may make the server read and hold. A zero or
// negative field means its default.
type Limits struct {
	// MaxBulkLen is the longest bulk string a request may announce, as
	// Redis's proto-max-bulk-len. Default 512 MiB.
	MaxBulkLen int64
	// MaxMultiBulkLen is the most arguments a request may announce. Default
	// 1024*1024 (Redis 7.0 allows up to INT_MAX, older Redis 1024*1024).
	MaxMultiBulkLen int64
	// MaxInlineLen is the longest inline command line, and the longest a
	// "*<n>" or "$<n>" header line may grow without its CRLF, as Redis's
	// PROTO_INLINE_MAX_SIZE. Default 64 KiB.
	MaxInlineLen int
	// MaxQueryBufLen bounds the total size of one multibulk request, as
	// Redis's client-query-buffer-limit: redcon buffers a whole request
	// before it runs it, so without this a client could announce a million
	// arguments of 512 MiB each. A request whose next bulk would take it
	// past the limit closes the connection without a reply, as Redis does.
	// Default 1 GiB.
	MaxQueryBufLen int64
}

// Redis 7's defaults.
const (
	defaultMaxBulkLen      = 512 << 20
	defaultMaxMultiBulkLen = 1024 * 1024
	defaultMaxInlineLen    = 64 << 10
	defaultMaxQueryBufLen  = 1 << 30
)

// DefaultLimits returns Redis's default limits: 512 MiB bulk strings,
// 1024*1024 arguments, 64 KiB inline lines, 1 GiB per request.
func DefaultLimits() Limits {
	return Limits{
		MaxBulkLen:      defaultMaxBulkLen,
		MaxMultiBulkLen: defaultMaxMultiBulkLen,
		MaxInlineLen:    defaultMaxInlineLen,
		MaxQueryBufLen:  defaultMaxQueryBufLen,
	}
}

// withDefaults fills in unset fields, so that a Limits built from a partial
// configuration never means "nothing allowed".
func (l Limits) withDefaults() Limits {
	if l.MaxBulkLen <= 0 {
		l.MaxBulkLen = defaultMaxBulkLen
	}
	if l.MaxMultiBulkLen <= 0 {
		l.MaxMultiBulkLen = defaultMaxMultiBulkLen
	}
	if l.MaxMultiBulkLen > math.MaxInt32 {
		// Redis's own hard limit: it keeps the count in an int.
		l.MaxMultiBulkLen = math.MaxInt32
	}
	if l.MaxInlineLen <= 0 {
		l.MaxInlineLen = defaultMaxInlineLen
	}
	if l.MaxQueryBufLen <= 0 {
		l.MaxQueryBufLen = defaultMaxQueryBufLen
	}
	return l
}

// ProtocolError is the error a guarded connection's Read returns after a
// framing error or a limit breach, once "-ERR Protocol error: <Reason>" has
// been written to the client.
type ProtocolError struct {
	// Reason is Redis's text after "Protocol error: ", such as
	// "invalid bulk length".
	Reason string
}

// Error returns "Protocol error: " and the reason, as redcon words its own.
func (e *ProtocolError) Error() string { return "Protocol error: " + e.Reason }

// ErrQueryBufferLimit is what a guarded connection's Read returns when a
// request would exceed Limits.MaxQueryBufLen. Nothing is written to the
// client: Redis too just closes such a connection (and logs it).
var ErrQueryBufferLimit = errors.New("resp: client reached max query buffer length")

// The framing errors, with Redis 7.0's texts.
var (
	errInvalidMultiBulk = &ProtocolError{"invalid multibulk length"}
	errInvalidBulk      = &ProtocolError{"invalid bulk length"}
	errTooBigInline     = &ProtocolError{"too big inline request"}
	errTooBigMultiBulk  = &ProtocolError{"too big mbulk count string"}
	errTooBigBulk       = &ProtocolError{"too big bulk count string"}
	errUnbalanced       = &ProtocolError{"unbalanced quotes in request"}
)

// errExpectedDollar is Redis's error for an argument that does not start
// with '$'. Redis's reply path turns CR and LF into spaces.
func errExpectedDollar(c byte) *ProtocolError {
	if c == '\r' || c == '\n' {
		c = ' '
	}
	return &ProtocolError{"expected '$', got '" + string([]byte{c}) + "'"}
}

// replyTimeout bounds the write of the error reply: a client that does not
// read must not keep the connection's goroutine blocked; the connection is
// being closed anyway.
const replyTimeout = 2 * time.Second

// NewGuardListener wraps ln so that every accepted connection is guarded by
// NewGuardConn. lim is called once per accepted connection, so a limit
// changed at runtime (CONFIG SET proto-max-bulk-len) applies to the clients
// that connect after the change; a nil lim means DefaultLimits.
func NewGuardListener(ln net.Listener, lim func() Limits) net.Listener {
	return &guardListener{Listener: ln, lim: lim}
}

type guardListener struct {
	net.Listener
	lim func() Limits
}

// Accept waits for the next connection and returns it guarded.
func (l *guardListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	lim := DefaultLimits()
	if l.lim != nil {
		lim = l.lim()
	}
	return NewGuardConn(c, lim), nil
}

// NewGuardConn wraps c so that its Read passes on only well-framed requests
// within lim, with inline commands turned into multibulk requests. On the
// first framing error Read returns the complete requests before the bad one;
// the next Read writes Redis's error reply to c and returns a
// *ProtocolError (ErrQueryBufferLimit, without a reply, for MaxQueryBufLen).
// Writes and everything else go to c unchanged. The guard must see the
// plain bytes: with TLS, wrap the *tls.Conn, not the TCP connection.
func NewGuardConn(c net.Conn, lim Limits) net.Conn {
	g := &guardConn{Conn: c}
	g.s.lim = lim.withDefaults()
	return g
}

// Sizes for the hold-back of a "*<n>" line, which may only be passed on once
// it is complete: a count that turns out to be <= 0 must be removed.
const (
	// maxHeld is the longest header line that can still be valid: '*', at
	// most 20 characters of number (string2ll refuses 21), and '\r'.
	maxHeld = 22
	// minRead is the smallest buffer read works in. It is larger than
	// maxHeld, so a buffer that fills up always has room for some bytes
	// before a held header; smaller reads go through stage.
	minRead = 64
)

type guardConn struct {
	net.Conn
	s scanner

	carry  [maxHeld]byte // a held "*<n>" line to put back in front of the next read
	ncarry int

	stage  [minRead]byte // for reads into buffers smaller than minRead
	staged []byte        // checked bytes in stage not yet returned

	unread []byte // bytes read but not yet scanned (those after an inline command)
	uoff   int    // unread[uoff:] is left

	rerr  error  // I/O error to return on the next Read, after the bytes read with it
	perr  error  // protocol error: every Read returns it
	reply []byte // the error reply still to write, if any
}

// NetConn returns the wrapped connection, for TCP options and the like.
func (g *guardConn) NetConn() net.Conn { return g.Conn }

// Read reads from the connection and returns only checked bytes.
func (g *guardConn) Read(p []byte) (int, error) {
	if len(g.staged) > 0 {
		n := copy(p, g.staged)
		g.staged = g.staged[n:]
		return n, nil
	}
	if len(p) == 0 {
		return 0, nil
	}
	if len(p) < minRead {
		// read needs room for a held header line and something else;
		// redcon (through bufio) always reads at least 4096 bytes, so this
		// is for other callers.
		n, err := g.read(g.stage[:])
		g.staged = g.stage[:n]
		k := copy(p, g.staged)
		g.staged = g.staged[k:]
		return k, err
	}
	return g.read(p)
}

// read fills p (len(p) >= minRead) from the connection through the scanner.
// It returns either n > 0 checked bytes and a nil error, or 0 and an error:
// redcon drops the bytes of a read that also returns an error.
//
// It keeps reading until the bytes in p end at least one request, or p is
// full. Until a request is complete redcon could do nothing but read again,
// re-parsing its whole buffer each time; filling p instead lets redcon's
// buffer double between parses, so a request trickled in small packets costs
// linear, not quadratic, parsing. No command waits for this: as soon as one
// is complete, read returns.
func (g *guardConn) read(p []byte) (int, error) {
	if g.perr != nil {
		return 0, g.fail()
	}
	s := &g.s
	s.reqStart, s.lastEnd = -1, 0
	w := 0
	switch {
	case s.poff < len(s.pend):
		// An inline command, converted, comes first.
		w = copy(p, s.pend[s.poff:])
		s.poff += w
		if s.poff < len(s.pend) {
			return w, nil
		}
		s.pend = trim(s.pend)
		s.poff = 0
		s.lastEnd = w
	case s.st == stMultiBulk || s.st == stMultiBulkLF:
		// A "*<n>" line left over from the last read: its bytes, unless
		// it is already known to be bad, go back in front.
		w = copy(p, g.carry[:g.ncarry])
		g.ncarry = 0
		s.hdrStart, s.reqStart = 0, 0
	}
	for {
		var n int
		var err error
		if g.uoff > 0 && g.uoff == len(g.unread) {
			g.unread, g.uoff = trim(g.unread), 0
		}
		fromUnread := g.uoff < len(g.unread)
		switch {
		case w == len(p):
			// hold leaves at least the bytes before a held header: it
			// started in this p (a carried one is at most maxHeld bytes)
			// and is at most maxHeld long, while len(p) >= minRead.
			return g.hold(p, w), nil
		case fromUnread:
			n = copy(p[w:], g.unread[g.uoff:])
			g.uoff += n
		case s.lastEnd > 0:
			// A complete request to pass on: do not wait for more.
			return g.hold(p, w), nil
		case g.rerr != nil:
			// Reported after the bytes that came before it.
			err, g.rerr = g.rerr, nil
		default:
			n, err = g.Conn.Read(p[w:])
		}
		if n > 0 {
			end := w + n
			var r int
			var perr error
			w, r, perr = s.scan(p, w, end)
			if perr != nil {
				// Pass on the complete requests before the bad one; the
				// bytes of the bad one that an earlier read passed on
				// stay an incomplete request in redcon's buffer.
				out := max(s.reqStart, 0)
				g.perr = perr
				var pe *ProtocolError
				if errors.As(perr, &pe) {
					g.reply = []byte("-ERR " + pe.Error() + "\r\n")
				}
				if out > 0 {
					return out, nil
				}
				return 0, g.fail()
			}
			if s.poff < len(s.pend) {
				// scan stopped after an inline command: keep what
				// follows it for later, and put the command in its place.
				if r < end {
					if fromUnread {
						g.uoff -= end - r
					} else {
						g.unread = append(g.unread[:0], p[r:end]...)
						g.uoff = 0
					}
				}
				k := copy(p[w:], s.pend[s.poff:])
				s.poff += k
				w += k
				if s.poff == len(s.pend) {
					s.pend, s.poff = trim(s.pend), 0
				}
				if err != nil {
					g.rerr = err
				}
				return w, nil
			}
		}
		if err != nil {
			if out := g.hold(p, w); out > 0 {
				g.rerr = err
				return out, nil
			}
			return 0, err
		}
	}
}

// trim empties a buffer for reuse, or drops it if a rare long line made it
// big, so that an idle connection holds little memory.
func trim(b []byte) []byte {
	if cap(b) > 16<<10 {
		return nil
	}
	return b[:0]
}

// hold returns how many of the w bytes in p may be passed on: all but a
// "*<n>" line still waiting for its end, which it keeps in carry.
func (g *guardConn) hold(p []byte, w int) int {
	s := &g.s
	if s.st != stMultiBulk && s.st != stMultiBulkLF {
		return w
	}
	if !s.dead {
		g.ncarry = copy(g.carry[:], p[s.hdrStart:w])
	}
	return s.hdrStart
}

// fail writes the pending error reply, once, and returns the error. The
// reply is written here, on the read after the good requests were passed
// on, because redcon has by then run them and flushed their replies, so the
// client gets everything in order.
func (g *guardConn) fail() error {
	if g.reply != nil {
		_ = g.Conn.SetWriteDeadline(time.Now().Add(replyTimeout))
		_, _ = g.Conn.Write(g.reply) // the connection is closing either way
		g.reply = nil
	}
	return g.perr
}

// Scanner states.
const (
	stStart       uint8 = iota // at a request boundary
	stMultiBulk                // in "*<n>", before its '\r'
	stMultiBulkLF              // after the '\r' of "*<n>"
	stBulk                     // in "$<n>", before its '\r'
	stBulkLF                   // after the '\r' of "$<n>"
	stPayload                  // in a bulk payload
	stPayloadCR                // after a bulk payload
	stPayloadLF                // after a bulk payload's '\r'
	stInline                   // in an inline command line
	stBlind                    // after a NUL in a line: no line end until too big
)

// scanner is the streaming state machine. Its state survives from one read
// to the next; it does O(1) work per header byte and per payload chunk.
type scanner struct {
	lim Limits
	st  uint8

	args   int64  // arguments still to come in the current multibulk
	skip   int64  // payload bytes still to come in the current bulk
	reqLen int64  // bytes of the current multibulk request, counting announced payloads
	line   int    // bytes of the current header or inline line so far
	first  byte   // first byte of a bulk header line (should be '$')
	num    number // the length in a header line
	dead   bool   // the header line is certain to fail: pass on no more of it
	tooBig error  // in stBlind, the error to give past MaxInlineLen

	lbuf []byte // the inline line so far
	abuf []byte // its arguments, one after the other
	aend []int  // where each argument ends in abuf
	pend []byte // the inline command as multibulk, to pass on
	poff int    // pend[poff:] is still to pass on

	cmds int64 // commands passed on (for tests)

	// Positions in the current read's output, valid within one read.
	reqStart int // where the current request started, -1 if in an earlier read
	hdrStart int // where the current "*<n>" line started
	lastEnd  int // where the last complete request ended, 0 if none
}

// scan checks the bytes p[w:end] that were just read, moving those to pass
// on down to p[w:] when bytes before them were dropped. It returns the new
// output length and how far it read, and an error at the first framing error
// or limit breach. It stops early right after an inline command, which it
// leaves in s.pend for the caller to pass on in its place.
func (s *scanner) scan(p []byte, w, end int) (int, int, error) {
	r := w
	for r < end {
		switch s.st {
		case stStart:
			s.reqStart = w
			s.line = 0
			s.dead = false
			s.num = number{}
			if p[r] == '*' {
				// Fast path: a whole, plainly valid "*<n>\r\n" line.
				if n, k := fastLen(p[r+1 : end]); k > 0 && n > 0 && n <= s.lim.MaxMultiBulkLen && k-1 <= s.lim.MaxInlineLen {
					k++ // the '*'
					if w != r {
						copy(p[w:], p[r:r+k])
					}
					w += k
					r += k
					s.args = n
					s.reqLen = int64(k)
					s.st = stBulk
					continue
				}
				s.st = stMultiBulk
				s.hdrStart = w
			} else {
				s.st = stInline
				s.lbuf = s.lbuf[:0]
			}

		case stMultiBulk:
			for ; r < end; r++ {
				c := p[r]
				if c == '\r' {
					break
				}
				if c == 0 {
					w = s.hdrStart
					s.line++
					r++
					if err := s.blind(errTooBigMultiBulk); err != nil {
						return w, r, err
					}
					break
				}
				s.line++
				if s.line > s.lim.MaxInlineLen {
					return w, r, errTooBigMultiBulk
				}
				if s.line > 1 { // not the '*'
					s.num.add(c)
				}
				if s.dead {
					continue
				}
				if s.num.bad {
					// Redis answers only at the '\r'; no need to keep
					// the bytes until then.
					s.dead = true
					w = s.hdrStart
					continue
				}
				p[w] = c
				w++
			}
			if r < end && s.st == stMultiBulk {
				if !s.dead {
					p[w] = '\r'
					w++
				}
				r++
				s.st = stMultiBulkLF
			}

		case stMultiBulkLF:
			c := p[r]
			r++
			n, ok := s.num.value()
			if c != '\n' || !ok || n > s.lim.MaxMultiBulkLen {
				return w, r, errInvalidMultiBulk
			}
			if n <= 0 {
				// Redis ignores an empty or null request; redcon would
				// fail on it, so it never sees it.
				w = s.hdrStart
				s.st = stStart
				s.lastEnd = w
				continue
			}
			p[w] = '\n'
			w++
			s.args = n
			s.reqLen = int64(s.line) + 2
			s.st = stBulk
			s.line = 0
			s.num = number{}

		case stBulk:
			// Fast path: a whole, plainly valid "$<n>\r\n" line.
			if s.line == 0 && p[r] == '$' {
				if n, k := fastLen(p[r+1 : end]); k > 0 && n <= s.lim.MaxBulkLen && k-1 <= s.lim.MaxInlineLen {
					k++ // the '$'
					s.reqLen += int64(k)
					if n+2 > s.lim.MaxQueryBufLen-s.reqLen {
						return w, r + k, ErrQueryBufferLimit
					}
					s.reqLen += n + 2
					if w != r {
						copy(p[w:], p[r:r+k])
					}
					w += k
					r += k
					s.skip = n
					s.st = stPayload
					continue
				}
			}
			for ; r < end; r++ {
				c := p[r]
				if c == '\r' {
					break
				}
				if c == 0 {
					s.line++
					r++
					if err := s.blind(errTooBigBulk); err != nil {
						return w, r, err
					}
					break
				}
				s.line++
				if s.line > s.lim.MaxInlineLen {
					return w, r, errTooBigBulk
				}
				if s.line == 1 {
					s.first = c
					// redcon fails at once on a byte other than '$',
					// Redis only at the line's end: hold the line back.
					s.dead = c != '$'
				} else {
					s.num.add(c)
					s.dead = s.dead || s.num.bad
				}
				if !s.dead {
					p[w] = c
					w++
				}
			}
			if r < end && s.st == stBulk {
				if s.line == 0 {
					s.first = '\r'
					s.dead = true
				}
				if !s.dead {
					p[w] = '\r'
					w++
				}
				r++
				s.st = stBulkLF
			}

		case stBulkLF:
			c := p[r]
			r++
			if s.first != '$' {
				return w, r, errExpectedDollar(s.first)
			}
			n, ok := s.num.value()
			if c != '\n' || !ok || n < 0 || n > s.lim.MaxBulkLen {
				return w, r, errInvalidBulk
			}
			s.reqLen += int64(s.line) + 2
			if n+2 > s.lim.MaxQueryBufLen-s.reqLen {
				return w, r, ErrQueryBufferLimit
			}
			s.reqLen += n + 2
			p[w] = '\n'
			w++
			s.skip = n
			s.st = stPayload

		case stPayload:
			// Fast path: the rest of the payload and its CRLF are here.
			if int64(end-r) >= s.skip+2 && p[r+int(s.skip)] == '\r' && p[r+int(s.skip)+1] == '\n' {
				k := int(s.skip) + 2
				if w != r {
					copy(p[w:], p[r:r+k])
				}
				w += k
				r += k
				s.skip = 0
				s.bulkDone(w)
				continue
			}
			k := end - r
			if int64(k) > s.skip {
				k = int(s.skip)
			}
			if w != r {
				copy(p[w:], p[r:r+k])
			}
			w += k
			r += k
			s.skip -= int64(k)
			if s.skip == 0 {
				s.st = stPayloadCR
			}

		case stPayloadCR:
			if p[r] != '\r' {
				return w, r, errInvalidBulk
			}
			p[w] = '\r'
			w++
			r++
			s.st = stPayloadLF

		case stPayloadLF:
			if p[r] != '\n' {
				return w, r, errInvalidBulk
			}
			p[w] = '\n'
			w++
			r++
			s.bulkDone(w)

		case stInline:
			// The line goes to lbuf, not to the output.
			rest := p[r:end]
			nl := bytes.IndexByte(rest, '\n')
			seg := rest
			if nl >= 0 {
				seg = rest[:nl]
			}
			if z := bytes.IndexByte(seg, 0); z >= 0 {
				s.line = len(s.lbuf) + z + 1
				r += z + 1
				if err := s.blind(errTooBigInline); err != nil {
					return w, r, err
				}
				continue
			}
			// Room for MaxInlineLen bytes and a '\r' that may turn out to
			// be the terminator.
			if len(seg) > s.lim.MaxInlineLen+1-len(s.lbuf) {
				return w, r, errTooBigInline
			}
			s.lbuf = append(s.lbuf, seg...)
			line := s.lbuf
			if n := len(line); n > 0 && line[n-1] == '\r' {
				line = line[:n-1]
			}
			if len(line) > s.lim.MaxInlineLen {
				return w, r, errTooBigInline
			}
			if nl < 0 {
				r = end
				continue
			}
			r += nl + 1
			s.st = stStart
			s.lbuf = trim(s.lbuf)
			argc, ok := s.splitInline(line)
			if !ok {
				return w, r, errUnbalanced
			}
			if argc == 0 {
				continue // Redis ignores an empty line
			}
			s.cmds++
			return w, r, nil

		case stBlind:
			s.line += end - r
			r = end
			if s.line > s.lim.MaxInlineLen {
				return w, r, s.tooBig
			}
		}
	}
	return w, r, nil
}

// bulkDone moves on after a bulk's CRLF, which ends the output at w: to the
// next bulk header, or to the next request.
func (s *scanner) bulkDone(w int) {
	s.args--
	if s.args > 0 {
		s.st = stBulk
		s.line = 0
		s.dead = false
		s.num = number{}
		return
	}
	s.st = stStart
	s.lastEnd = w
	s.cmds++
}

// fastLen parses the common case of a length line after its '*' or '$': a
// number without sign or leading zero, of at most 18 digits (so it cannot
// overflow), and "\r\n". It returns the number and the bytes it took, or
// k == 0 for anything else, which the byte-by-byte path then handles (and
// judges) exactly as Redis would.
func fastLen(b []byte) (n int64, k int) {
	i := 0
	for ; i < len(b) && i < 19; i++ {
		c := b[i]
		if c < '0' || c > '9' {
			break
		}
		n = n*10 + int64(c-'0')
	}
	if i == 0 || i > 18 || i+1 >= len(b) || b[i] != '\r' || b[i+1] != '\n' || (b[0] == '0' && i > 1) {
		return 0, 0
	}
	return n, i + 2
}

// blind enters stBlind after a NUL in a line (s.line counts the line so
// far, the NUL included): Redis's strchr no longer finds the line's end, so
// Redis waits until more than MaxInlineLen bytes have come since the line's
// start and then fails with tooBig.
func (s *scanner) blind(tooBig error) error {
	s.st = stBlind
	s.tooBig = tooBig
	s.dead = true
	if s.line > s.lim.MaxInlineLen {
		return tooBig
	}
	return nil
}

// splitInline splits an inline command line (without its line end) into
// arguments exactly as Redis's sdssplitargs does, and encodes them as a
// multibulk request in s.pend. It returns the number of arguments, and false
// for unbalanced quotes. The line holds no NUL (see stBlind), so the C
// code's reads of the terminating NUL are reads past the end here.
func (s *scanner) splitInline(line []byte) (int, bool) {
	at := func(i int) byte {
		if i < len(line) {
			return line[i]
		}
		return 0
	}
	s.abuf, s.aend = s.abuf[:0], s.aend[:0]
	i := 0
	for {
		for i < len(line) && isSpace(line[i]) {
			i++
		}
		if i == len(line) {
			break
		}
		inq, insq, done := false, false, false
		for !done {
			c := at(i)
			switch {
			case inq:
				switch {
				case c == '\\' && at(i+1) == 'x' && isHex(at(i+2)) && isHex(at(i+3)):
					s.abuf = append(s.abuf, unhex(at(i+2))<<4|unhex(at(i+3)))
					i += 3
				case c == '\\' && i+1 < len(line):
					i++
					c = line[i]
					switch c {
					case 'n':
						c = '\n'
					case 'r':
						c = '\r'
					case 't':
						c = '\t'
					case 'b':
						c = '\b'
					case 'a':
						c = '\a'
					}
					s.abuf = append(s.abuf, c)
				case c == '"':
					// A closing quote must be followed by a space or
					// nothing at all.
					if i+1 < len(line) && !isSpace(line[i+1]) {
						return 0, false
					}
					done = true
				case i >= len(line):
					return 0, false // unterminated quotes
				default:
					s.abuf = append(s.abuf, c)
				}
			case insq:
				switch {
				case c == '\\' && at(i+1) == '\'':
					i++
					s.abuf = append(s.abuf, '\'')
				case c == '\'':
					if i+1 < len(line) && !isSpace(line[i+1]) {
						return 0, false
					}
					done = true
				case i >= len(line):
					return 0, false
				default:
					s.abuf = append(s.abuf, c)
				}
			default:
				switch {
				case i >= len(line) || c == ' ' || c == '\n' || c == '\r' || c == '\t':
					done = true
				case c == '"':
					inq = true
				case c == '\'':
					insq = true
				default:
					s.abuf = append(s.abuf, c)
				}
			}
			if i < len(line) {
				i++
			}
		}
		s.aend = append(s.aend, len(s.abuf))
	}
	if len(s.aend) == 0 {
		return 0, true
	}
	s.pend = append(s.pend[:0], '*')
	s.pend = strconv.AppendInt(s.pend, int64(len(s.aend)), 10)
	s.pend = append(s.pend, '\r', '\n')
	from := 0
	for _, to := range s.aend {
		s.pend = append(s.pend, '$')
		s.pend = strconv.AppendInt(s.pend, int64(to-from), 10)
		s.pend = append(s.pend, '\r', '\n')
		s.pend = append(s.pend, s.abuf[from:to]...)
		s.pend = append(s.pend, '\r', '\n')
		from = to
	}
	s.poff = 0
	argc := len(s.aend)
	s.abuf, s.aend = trim(s.abuf), s.aend[:0]
	return argc, true
}

// isSpace is C's isspace in the "C" locale.
func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r'
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c >= '0' && c <= '9':
		return c - '0'
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10
	}
	return c - 'A' + 10
}

// number parses a length incrementally with the rules of Redis's string2ll:
// an optional '-', then "0" alone or a digit 1-9 and more digits, at most 20
// characters, within int64.
type number struct {
	v    uint64
	n    uint8 // characters so far (stops counting once bad)
	neg  bool
	zero bool // the digits are "0", which must stay alone
	bad  bool
}

func (x *number) add(c byte) {
	if x.bad {
		return
	}
	x.n++
	switch {
	case x.n > 20 || x.zero:
		x.bad = true
	case c == '-' && x.n == 1:
		x.neg = true
	case c < '0' || c > '9':
		x.bad = true
	case c == '0' && x.v == 0:
		// A first digit 0: fine alone, as "0"; never after '-'.
		if x.neg {
			x.bad = true
		} else {
			x.zero = true
		}
	default:
		d := uint64(c - '0')
		if x.v > (math.MaxUint64-d)/10 {
			x.bad = true
			return
		}
		x.v = x.v*10 + d
	}
}

// value returns the number, and whether the characters were one.
func (x *number) value() (int64, bool) {
	switch {
	case x.bad || (!x.zero && x.v == 0): // also "" and "-"
		return 0, false
	case x.neg && x.v <= 1<<63:
		return int64(-x.v), true // -(1<<63) wraps to MinInt64, as wanted
	case !x.neg && x.v <= math.MaxInt64:
		return int64(x.v), true
	}
	return 0, false
}
