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
)

// Command sends one command to addr over a fresh connection and returns
// the reply as text. It speaks raw RESP rather than shelling out to
// redis-cli so that readiness polling costs no process spawns.
//
// Only the reply types the harness needs are supported: simple strings,
// integers, bulk strings and RESP3 verbatim strings (which ringcache uses
// for CLUSTER INFO and CLUSTER NODES). An error reply is returned as an
// error. Each call is bounded by one second or ctx's deadline, whichever
// comes first, so a hung server cannot stall a polling loop.
func Command(ctx context.Context, addr string, args ...string) (string, error) {
	d := net.Dialer{Timeout: time.Second}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	deadline := time.Now().Add(time.Second)
	if dl, ok := ctx.Deadline(); ok && dl.Before(deadline) {
		deadline = dl
	}
	conn.SetDeadline(deadline)
	if _, err := conn.Write(encodeCommand(args)); err != nil {
		return "", err
	}
	return readReply(bufio.NewReader(conn))
}

// encodeCommand encodes args as a RESP array of bulk strings.
func encodeCommand(args []string) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	return []byte(b.String())
}

// readReply reads one scalar RESP reply; see Command.
func readReply(r *bufio.Reader) (string, error) {
	line, err := r.ReadString('\n')
	if err != nil {
		return "", err
	}
	line = strings.TrimRight(line, "\r\n")
	if line == "" {
		return "", errors.New("empty reply line")
	}
	switch line[0] {
	case '+', ':':
		return line[1:], nil
	case '-':
		return "", fmt.Errorf("server replied: %s", line[1:])
	case '$', '=':
		n, err := strconv.Atoi(line[1:])
		if err != nil || n < -1 {
			return "", fmt.Errorf("bad length in reply %q", line)
		}
		if n == -1 {
			return "", errors.New("server replied nil")
		}
		buf := make([]byte, n+2)
		if _, err := io.ReadFull(r, buf); err != nil {
			return "", err
		}
		s := string(buf[:n])
		if line[0] == '=' {
			// A verbatim string starts with a three-letter format and a
			// colon, e.g. "txt:".
			if len(s) < 4 || s[3] != ':' {
				return "", fmt.Errorf("bad verbatim string %q", s)
			}
			s = s[4:]
		}
		return s, nil
	}
	return "", fmt.Errorf("unsupported reply %q", line)
}
