package resp

import (
	"net"
	"strings"
	"testing"

	"github.com/tidwall/redcon"
)

// testHandler answers one command of a test server.
type testHandler func(conn redcon.Conn, cmd redcon.Command)

// serveTestCommands serves PING, ECHO and the given commands (keyed by
// upper-case name) on ln with redcon, answering anything else with Redis's
// unknown-command error, and returns the function that stops it.
func serveTestCommands(tb testing.TB, ln net.Listener, cmds map[string]testHandler) (stop func()) {
	tb.Helper()
	srv := redcon.NewServer("", func(conn redcon.Conn, cmd redcon.Command) {
		name := strings.ToUpper(string(cmd.Args[0]))
		switch h, ok := cmds[name]; {
		case ok:
			h(conn, cmd)
		case name == "PING":
			conn.WriteString("PONG")
		case name == "ECHO":
			if len(cmd.Args) != 2 {
				conn.WriteError("ERR wrong number of arguments for 'echo' command")
				return
			}
			conn.WriteBulk(cmd.Args[1])
		default:
			conn.WriteError("ERR unknown command '" + string(cmd.Args[0]) + "'")
		}
	}, nil, nil)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(ln)
	}()
	return func() {
		_ = srv.Close()
		<-done
	}
}
