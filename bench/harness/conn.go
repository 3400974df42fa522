package harness

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/ringcache/ringcache/cluster"
)

// Conn is a plain RESP2 connection for the harness's own traffic: bulk
// loading, the failover probe and its background load. It follows no
// redirects: a MOVED or TRYAGAIN comes back as a *ReplyError, which is
// what the failover probe needs to see.
type Conn struct {
	c net.Conn
	r *bufio.Reader
	w *bufio.Writer
}

// ReplyError is an error reply from the server, e.g. "MOVED 3999 127.0.0.1:6381".
type ReplyError struct{ Msg string }

func (e *ReplyError) Error() string { return e.Msg }

// Dial connects to addr within timeout.
func Dial(ctx context.Context, addr string, timeout time.Duration) (*Conn, error) {
	d := net.Dialer{Timeout: timeout}
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	return &Conn{c: c, r: bufio.NewReaderSize(c, 64<<10), w: bufio.NewWriterSize(c, 64<<10)}, nil
}

// Close closes the connection.
func (c *Conn) Close() error { return c.c.Close() }

// Send buffers one command; Flush sends what is buffered.
func (c *Conn) Send(args ...string) error {
	c.w.WriteString("*" + strconv.Itoa(len(args)) + "\r\n")
	for _, a := range args {
		c.w.WriteString("$" + strconv.Itoa(len(a)) + "\r\n")
		c.w.WriteString(a)
		c.w.WriteString("\r\n")
	}
	return nil
}

// Flush writes the buffered commands.
func (c *Conn) Flush() error { return c.w.Flush() }

// Receive reads one reply: string, int64, nil, []any, or a *ReplyError
// as the error.
func (c *Conn) Receive() (any, error) { return readValue(c.r) }

// Do sends one command and reads its reply, within timeout.
func (c *Conn) Do(timeout time.Duration, args ...string) (any, error) {
	c.c.SetDeadline(time.Now().Add(timeout))
	defer c.c.SetDeadline(time.Time{})
	c.Send(args...)
	if err := c.Flush(); err != nil {
		return nil, err
	}
	return c.Receive()
}

// SetDeadline bounds the connection's next reads and writes.
func (c *Conn) SetDeadline(t time.Time) error { return c.c.SetDeadline(t) }

// readValue reads one RESP2 or RESP3 value. Maps are returned as flat
// []any (key, value, ...), as RESP2 would send them.
func readValue(r *bufio.Reader) (any, error) {
	line, err := r.ReadString('\n')
	if err != nil {
		return nil, err
	}
	line = strings.TrimSuffix(strings.TrimSuffix(line, "\n"), "\r")
	if line == "" {
		return nil, errors.New("empty reply line")
	}
	body := line[1:]
	switch line[0] {
	case '+':
		return body, nil
	case '-':
		return nil, &ReplyError{Msg: body}
	case ':':
		n, err := strconv.ParseInt(body, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("bad integer reply %q", line)
		}
		return n, nil
	case '_':
		return nil, nil
	case '$', '=':
		n, err := strconv.Atoi(body)
		if err != nil || n < -1 {
			return nil, fmt.Errorf("bad length in reply %q", line)
		}
		if n == -1 {
			return nil, nil
		}
		buf := make([]byte, n+2)
		if _, err := io.ReadFull(r, buf); err != nil {
			return nil, err
		}
		s := string(buf[:n])
		if line[0] == '=' && len(s) >= 4 && s[3] == ':' {
			s = s[4:]
		}
		return s, nil
	case '*', '%', '~':
		n, err := strconv.Atoi(body)
		if err != nil || n < -1 {
			return nil, fmt.Errorf("bad length in reply %q", line)
		}
		if n == -1 {
			return nil, nil
		}
		if line[0] == '%' {
			n *= 2
		}
		out := make([]any, n)
		for i := range out {
			v, err := readValue(r)
			var re *ReplyError
			if err != nil && !errors.As(err, &re) {
				return nil, err
			}
			if re != nil {
				v = re
			}
			out[i] = v
		}
		return out, nil
	}
	return nil, fmt.Errorf("unsupported reply %q", line)
}

// SlotMap maps each of the ClusterSlots slots to its primary's address.
type SlotMap [ClusterSlots]string

// ParseClusterSlots turns a CLUSTER SLOTS reply, as returned by
// Conn.Do, into a SlotMap. Every slot must be covered.
//
//  1. 1) (integer) 0  2) (integer) 5460  3) 1) "127.0.0.1" 2) (integer) 30001 3) "id" ...
func ParseClusterSlots(reply any) (*SlotMap, error) {
	ranges, ok := reply.([]any)
	if !ok {
		return nil, fmt.Errorf("CLUSTER SLOTS: reply is %T, not an array", reply)
	}
	var m SlotMap
	for _, rv := range ranges {
		r, ok := rv.([]any)
		if !ok || len(r) < 3 {
			return nil, fmt.Errorf("CLUSTER SLOTS: bad range %v", rv)
		}
		lo, ok1 := r[0].(int64)
		hi, ok2 := r[1].(int64)
		node, ok3 := r[2].([]any)
		if !ok1 || !ok2 || !ok3 || len(node) < 2 || lo < 0 || hi < lo || hi >= ClusterSlots {
			return nil, fmt.Errorf("CLUSTER SLOTS: bad range %v", rv)
		}
		ip, ok1 := node[0].(string)
		port, ok2 := node[1].(int64)
		if !ok1 || !ok2 {
			return nil, fmt.Errorf("CLUSTER SLOTS: bad node %v", node)
		}
		addr := net.JoinHostPort(ip, strconv.FormatInt(port, 10))
		for s := lo; s <= hi; s++ {
			m[s] = addr
		}
	}
	for s, a := range m {
		if a == "" {
			return nil, fmt.Errorf("CLUSTER SLOTS: slot %d not covered", s)
		}
	}
	return &m, nil
}

// FetchSlots asks addr for CLUSTER SLOTS.
func FetchSlots(ctx context.Context, addr string) (*SlotMap, error) {
	c, err := Dial(ctx, addr, time.Second)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	reply, err := c.Do(5*time.Second, "CLUSTER", "SLOTS")
	if err != nil {
		return nil, fmt.Errorf("%s: CLUSTER SLOTS: %w", addr, err)
	}
	return ParseClusterSlots(reply)
}

// KeySlot is the Redis Cluster hash slot of key, honouring hash tags:
// ringcache's own, which its tests check against Redis's vectors.
func KeySlot(key string) uint16 { return cluster.KeySlot([]byte(key)) }
