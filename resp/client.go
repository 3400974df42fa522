package resp

// A small pipelined client for node-to-node traffic (replication, handoff,
// probes). Nodes talk to each other over RESP so that one port, one parser
// and redis-cli serve for both users and peers; this client is the other
// half of that conversation.
//
// The peer is another node, but it may be a wrong, buggy or hostile one (a
// stale address now owned by something else, a port scanner answering back):
// every length it announces is checked before memory is spent on it, and
// memory is only ever spent in proportion to bytes that have actually
// arrived, so no reply can make a node allocate without bound or crash.

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync/atomic"
	"time"
)

// Limits on what one reply may announce. They are fixed, not a Limits: they
// guard against a broken peer, not against a policy a user tunes, and they
// sit well above anything a sane node sends.
const (
	// maxReplyBulk is the longest bulk string a reply may announce: twice
	// Redis's default proto-max-bulk-len.
	maxReplyBulk = 1 << 30
	// maxReplyElems bounds the values in one reply, all levels together,
	// so that a reply of tiny nested elements cannot cost gigabytes of
	// Values for megabytes of input.
	maxReplyElems = 16 << 20
	// maxReplyDepth is how deeply aggregates may nest; reading recurses
	// once per level.
	maxReplyDepth = 32
	// clientReadBuf is the read buffer, and so also the longest line (a
	// simple string, an error, a number or a length) a reply may have.
	clientReadBuf = 64 << 10
	// clientWriteBuf is the write buffer's first capacity.
	clientWriteBuf = 64 << 10
	// clientKeepBuf is the most write buffer capacity kept after a flush:
	// one huge batch should not pin its memory for the connection's life.
	clientKeepBuf = 4 << 20
	// maxPrealloc bounds the elements allocated for an aggregate, and
	// maxPreallocBulk the bytes allocated for a bulk string, before its
	// data has arrived; beyond them, slices grow as data comes in.
	maxPrealloc     = 1024
	maxPreallocBulk = 64 << 10
)

// ErrBadReply is wrapped by every error for a reply that is not RESP or
// breaks the client's limits. The stream cannot be resynchronised after
// one, so the Conn returns the same error from then on.
var ErrBadReply = errors.New("resp: bad reply")

// errEmptyCommand is returned by Do without arguments: such a command gets
// no reply, so waiting for one would hang.
var errEmptyCommand = errors.New("resp: empty command")

// Conn is one client connection: commands are buffered and flushed
// explicitly, so many can be in flight (pipelining); replies are read in
// order.
//
// A Conn is not safe for concurrent use, with two exceptions that make
// streaming possible: one goroutine may write (WriteCommand, Buffered,
// Flush) while another reads (ReadReply), and Close may be called from any
// goroutine, to unblock both. Every error from Flush or ReadReply, an I/O
// error or timeout as well as ErrBadReply, breaks the Conn for good: after
// it, where the next reply starts is unknown, so both return the same error
// from then on.
type Conn struct {
	nc   net.Conn
	r    *bufio.Reader
	wbuf []byte

	// err is the first error, shared by the reading and writing sides.
	err atomic.Pointer[error]

	// left is how many more values the reply being read may hold.
	left int
}

// Dial connects to addr, giving up after timeout. Nagle's algorithm is off:
// a pipeline is already one write per flush, and delaying a lone command
// for an ACK would add a round trip to every replicated write.
func Dial(addr string, timeout time.Duration) (*Conn, error) {
	nc, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return nil, err
	}
	if tc, ok := nc.(*net.TCPConn); ok {
		if err := tc.SetNoDelay(true); err != nil {
			_ = nc.Close()
			return nil, err
		}
	}
	return NewConn(nc), nil
}

// NewConn wraps an established connection, for TLS or tests. The write
// buffer is allocated on the first command, so a Conn that only reads (a
// stream consumer, a fuzz target) costs just its read buffer.
func NewConn(nc net.Conn) *Conn {
	return &Conn{nc: nc, r: bufio.NewReaderSize(nc, clientReadBuf)}
}

// broken returns the error that broke the Conn, or nil.
func (c *Conn) broken() error {
	if p := c.err.Load(); p != nil {
		return *p
	}
	return nil
}

// fail breaks the Conn with err unless it is broken already, and returns
// the error that broke it, so that both sides report the same one.
func (c *Conn) fail(err error) error {
	c.err.CompareAndSwap(nil, &err)
	return *c.err.Load()
}

// WriteCommand appends the command to the write buffer; nothing is sent
// until Flush, so a batch of commands costs one write. A command with no
// arguments is dropped: it would get no reply, and the replies after it
// would be matched to the wrong commands.
func (c *Conn) WriteCommand(args ...[]byte) {
	if len(args) == 0 || c.broken() != nil {
		return
	}
	b := c.wbuf
	if b == nil {
		b = make([]byte, 0, clientWriteBuf)
	}
	b = append(b, '*')
	b = strconv.AppendInt(b, int64(len(args)), 10)
	b = append(b, '\r', '\n')
	for _, a := range args {
		b = append(b, '$')
		b = strconv.AppendInt(b, int64(len(a)), 10)
		b = append(b, '\r', '\n')
		b = append(b, a...)
		b = append(b, '\r', '\n')
	}
	c.wbuf = b
}

// Buffered returns the bytes written but not yet flushed, so that a caller
// batching commands can flush when a batch is big enough.
func (c *Conn) Buffered() int { return len(c.wbuf) }

// Flush sends the write buffer. A failed or partial write breaks the Conn:
// the peer may have seen half a command.
func (c *Conn) Flush() error {
	if err := c.broken(); err != nil {
		return err
	}
	if len(c.wbuf) == 0 {
		return nil
	}
	_, err := c.nc.Write(c.wbuf)
	if cap(c.wbuf) > clientKeepBuf {
		c.wbuf = nil
	} else {
		c.wbuf = c.wbuf[:0]
	}
	if err != nil {
		return c.fail(err)
	}
	return nil
}

// Do sends one command and waits for its reply. It is for a Conn with
// nothing else in flight: with replies pending, it would return the oldest.
func (c *Conn) Do(args ...[]byte) (Value, error) {
	if len(args) == 0 {
		return Value{}, errEmptyCommand
	}
	c.WriteCommand(args...)
	if err := c.Flush(); err != nil {
		return Value{}, err
	}
	return c.ReadReply()
}

// SetDeadline bounds reads and writes, as net.Conn's does. Hitting it
// breaks the Conn (see Conn), so it is a failure detector, not a poll.
func (c *Conn) SetDeadline(t time.Time) error { return c.nc.SetDeadline(t) }

// SetReadDeadline bounds reads, as net.Conn's does; hitting it breaks the
// Conn.
func (c *Conn) SetReadDeadline(t time.Time) error { return c.nc.SetReadDeadline(t) }

// Close closes the connection. Replies still buffered are dropped: the
// Conn returns net.ErrClosed from then on, unless it was broken before.
func (c *Conn) Close() error {
	c.fail(net.ErrClosed)
	return c.nc.Close()
}

// ReadReply reads the next reply. An error reply is a Value of KindError,
// not a Go error: a Go error means the connection is broken. RESP3 blob
// errors ("!") are read as KindError too, and verbatim strings ("=") as
// KindVerbatim with the format ("txt:") dropped. Push messages (">") are read as
// KindPush values, in line with the replies. Big numbers and attributes
// are not supported: a node never asks for them.
func (c *Conn) ReadReply() (Value, error) {
	if err := c.broken(); err != nil {
		return Value{}, err
	}
	c.left = maxReplyElems
	v, err := c.readValue(0)
	if err != nil {
		return Value{}, c.fail(err)
	}
	return v, nil
}

// readValue reads one value at nesting depth depth (0 for the reply).
func (c *Conn) readValue(depth int) (Value, error) {
	line, err := c.readLine(depth)
	if err != nil {
		return Value{}, err
	}
	switch line[0] {
	case '+':
		return Value{Kind: KindSimple, Str: simpleString(line[1:])}, nil
	case '-':
		return Value{Kind: KindError, Str: string(line[1:])}, nil
	case ':':
		n, ok := parseReplyInt(line[1:])
		if !ok {
			return Value{}, badReply("invalid integer", line)
		}
		return Value{Kind: KindInt, Int: n}, nil
	case '$', '!', '=':
		n, ok := parseReplyInt(line[1:])
		switch {
		case ok && n == -1 && line[0] == '$':
			return Null, nil
		case !ok || n < 0:
			return Value{}, badReply("invalid bulk length", line)
		case n > maxReplyBulk:
			return Value{}, badReply("bulk length over 1 GiB", line)
		}
		kind := line[0] // line is overwritten by the read
		b, err := c.readBulk(int(n))
		if err != nil {
			return Value{}, err
		}
		switch kind {
		case '!':
			return Value{Kind: KindError, Str: string(b)}, nil
		case '=':
			if len(b) < 4 || b[3] != ':' {
				return Value{}, fmt.Errorf("%w: verbatim string without a format", ErrBadReply)
			}
			return Value{Kind: KindVerbatim, Str: string(b[4:])}, nil
		}
		return Value{Kind: KindBulk, Bytes: b}, nil
	case '*', '~', '%', '>':
		n, ok := parseReplyInt(line[1:])
		if ok && n == -1 && line[0] == '*' {
			return NullArray, nil
		}
		if !ok || n < 0 {
			return Value{}, badReply("invalid aggregate length", line)
		}
		if depth+1 > maxReplyDepth {
			return Value{}, fmt.Errorf("%w: aggregates nested deeper than %d", ErrBadReply, maxReplyDepth)
		}
		kind := KindArray
		switch line[0] {
		case '~':
			kind = KindSet
		case '>':
			kind = KindPush
		case '%':
			kind = KindMap
			if n > int64(c.left/2) {
				return Value{}, badReply("too many elements", line)
			}
			n *= 2
		}
		if n > int64(c.left) {
			return Value{}, badReply("too many elements", line)
		}
		c.left -= int(n)
		elems := make([]Value, 0, min(n, maxPrealloc))
		for i := int64(0); i < n; i++ {
			e, err := c.readValue(depth + 1)
			if err != nil {
				return Value{}, err
			}
			elems = append(elems, e)
		}
		return Value{Kind: kind, Elems: elems}, nil
	case '_':
		if len(line) != 1 {
			return Value{}, badReply("invalid null", line)
		}
		return Null, nil
	case ',':
		f, err := strconv.ParseFloat(string(line[1:]), 64)
		if err != nil {
			return Value{}, badReply("invalid double", line)
		}
		return Double(f), nil
	case '#':
		if len(line) == 2 && line[1] == 't' {
			return Bool(true), nil
		}
		if len(line) == 2 && line[1] == 'f' {
			return Bool(false), nil
		}
		return Value{}, badReply("invalid boolean", line)
	}
	return Value{}, badReply("unknown reply type", line)
}

// readLine returns the next line without its CRLF, never empty. The slice
// points into the read buffer and is valid until the next read. A line that
// does not fit in the buffer is an error, which bounds every line.
func (c *Conn) readLine(depth int) ([]byte, error) {
	line, err := c.r.ReadSlice('\n')
	switch {
	case err == bufio.ErrBufferFull:
		return nil, fmt.Errorf("%w: line longer than %d bytes", ErrBadReply, clientReadBuf)
	case err == io.EOF && (depth > 0 || len(line) > 0):
		return nil, io.ErrUnexpectedEOF
	case err != nil:
		return nil, err
	}
	n := len(line)
	if n < 2 || line[n-2] != '\r' {
		return nil, badReply("line not ended by CRLF", line)
	}
	if n == 2 {
		return nil, badReply("empty line", line)
	}
	return line[:n-2], nil
}

// readBulk reads a payload of n bytes and its CRLF into a new slice. It
// allocates at most maxPreallocBulk bytes ahead of the data, so that a
// peer announcing a gigabyte and sending nothing costs nothing; past that
// the slice doubles as data arrives, which copies each byte about once more.
func (c *Conn) readBulk(n int) ([]byte, error) {
	b := make([]byte, min(n, maxPreallocBulk))
	got := 0
	for {
		k, err := io.ReadFull(c.r, b[got:])
		got += k
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		if err != nil {
			return nil, err
		}
		if got == n {
			break
		}
		nb := make([]byte, min(n, 2*len(b)))
		copy(nb, b)
		b = nb
	}
	crlf, err := c.r.Peek(2)
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	if err != nil {
		return nil, err
	}
	if crlf[0] != '\r' || crlf[1] != '\n' {
		return nil, fmt.Errorf("%w: bulk string not ended by CRLF", ErrBadReply)
	}
	_, _ = c.r.Discard(2)
	return b, nil
}

// simpleString returns s as a string, without allocating for the replies a
// node gets all the time.
func simpleString(s []byte) string {
	switch string(s) { // no allocation: the compiler compares in place
	case "OK":
		return "OK"
	case "PONG":
		return "PONG"
	case "QUEUED":
		return "QUEUED"
	}
	return string(s)
}

// parseReplyInt parses a decimal int64 with an optional '-', as Redis
// writes integers and lengths. It takes no '+', spaces or other decoration.
func parseReplyInt(b []byte) (int64, bool) {
	neg := len(b) > 0 && b[0] == '-'
	if neg {
		b = b[1:]
	}
	if len(b) == 0 || len(b) > 19 {
		return 0, false
	}
	var v uint64
	for _, ch := range b {
		if ch < '0' || ch > '9' {
			return 0, false
		}
		v = v*10 + uint64(ch-'0') // 19 digits cannot overflow uint64
	}
	switch {
	case neg && v <= 1<<63:
		return int64(-v), true // -(1<<63) wraps to MinInt64, as wanted
	case !neg && v < 1<<63:
		return int64(v), true
	}
	return 0, false
}

// badReply is ErrBadReply with what was wrong and the start of the line, so
// that a log shows what the peer sent, without a megabyte of it.
func badReply(what string, line []byte) error {
	const show = 40
	if len(line) > show {
		return fmt.Errorf("%w: %s: %q...", ErrBadReply, what, line[:show])
	}
	return fmt.Errorf("%w: %s: %q", ErrBadReply, what, line)
}
