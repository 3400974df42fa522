package harness

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// ServerSpec describes one server process to start.
type ServerSpec struct {
	// Name labels the server in progress lines and errors ("redis", "ringcache").
	Name string
	// Path is the executable.
	Path string
	// Args are the command-line arguments, without the executable itself.
	Args []string
	// Dir is the working directory; it must exist. The server's combined
	// stdout and stderr go to Dir/server.log.
	Dir string
	// Port is the TCP port the server will listen on at 127.0.0.1.
	Port int
	// BusPort is the server's cluster bus (Redis) or gossip (ringcache)
	// port, if it was given one; other nodes join through it.
	BusPort int
}

// Server is a running server process started by Start.
type Server struct {
	Spec    ServerSpec
	LogPath string

	cmd     *exec.Cmd
	done    chan struct{} // closed once the process has been reaped
	waitErr error         // valid after done is closed
}

// Start launches the server described by spec in its own process group.
//
// The own process group lets Stop signal the server together with anything
// it forks, and keeps a terminal Ctrl-C from reaching the server before the
// harness has decided how to shut down. Start does not wait for the server
// to accept connections; call WaitReady for that.
func Start(spec ServerSpec) (*Server, error) {
	logPath := filepath.Join(spec.Dir, "server.log")
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", spec.Name, err)
	}
	cmd := exec.Command(spec.Path, spec.Args...)
	cmd.Dir = spec.Dir
	// An *os.File is handed to the child directly, so no copying goroutine
	// has to stay alive and the log survives a crash of the harness.
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("starting %s (%s): %w", spec.Name, spec.Path, err)
	}
	s := &Server{Spec: spec, LogPath: logPath, cmd: cmd, done: make(chan struct{})}
	go func() {
		s.waitErr = cmd.Wait()
		logFile.Close()
		close(s.done)
	}()
	return s, nil
}

// Addr returns the server's host:port.
func (s *Server) Addr() string {
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.Spec.Port))
}

// PID returns the server's process id.
func (s *Server) PID() int { return s.cmd.Process.Pid }

// Exited reports whether the server process has terminated, and if so why.
func (s *Server) Exited() (bool, error) {
	select {
	case <-s.done:
		if s.waitErr == nil {
			return true, errors.New("exited with status 0")
		}
		return true, s.waitErr
	default:
		return false, nil
	}
}

// Done returns a channel that is closed once the server process has
// exited and been reaped.
func (s *Server) Done() <-chan struct{} { return s.done }

// PortInUse reports whether the server log says the port was taken, the
// one start-up failure worth retrying on another port.
func (s *Server) PortInUse() bool {
	data, _ := os.ReadFile(s.LogPath)
	return strings.Contains(strings.ToLower(string(data)), "address already in use")
}

// CheckAlive returns an error, including the tail of the server log, if
// the server has exited. Benchmarks call it after each run so that a crash
// is reported as a crash rather than as a confusing client error.
func (s *Server) CheckAlive() error {
	if exited, err := s.Exited(); exited {
		return fmt.Errorf("%s (pid %d) died: %v\n%s", s.Spec.Name, s.PID(), err, s.LogTail(20))
	}
	return nil
}

// WaitReady polls the server with a RESP PING until it answers +PONG, the
// process exits, ctx is cancelled or timeout passes.
//
// Polling backs off from a few milliseconds to 100ms: fast enough that a
// quick server is not kept waiting, slow enough not to burn the CPU that a
// slow-starting server needs.
func (s *Server) WaitReady(ctx context.Context, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	delay := 5 * time.Millisecond
	var lastErr error
	for {
		if err := s.CheckAlive(); err != nil {
			return err
		}
		err := Ping(ctx, s.Addr())
		if err == nil {
			return nil
		}
		if ctx.Err() == nil {
			// An error caused by our own deadline says nothing about the
			// server; keep the previous, more telling one.
			lastErr = err
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return fmt.Errorf("%s on %s not ready after %v (last error: %v)\n%s",
					s.Spec.Name, s.Addr(), timeout, lastErr, s.LogTail(20))
			}
			return ctx.Err()
		case <-s.done:
			t.Stop()
		case <-t.C:
		}
		delay = min(2*delay, 100*time.Millisecond)
	}
}

// Ping sends one RESP PING to addr over a fresh connection and expects
// PONG. It speaks raw RESP rather than shelling out to redis-cli so that
// readiness polling costs no process spawns and works without redis-tools.
func Ping(ctx context.Context, addr string) error {
	reply, err := Command(ctx, addr, "PING")
	if err != nil {
		// e.g. "LOADING ..." while a server is still starting up.
		return fmt.Errorf("PING: %w", err)
	}
	if reply != "PONG" {
		return fmt.Errorf("PING answered %q", reply)
	}
	return nil
}

// Stop asks the server's process group to terminate with SIGTERM, and
// kills the group with SIGKILL if it is still running after grace. It is
// safe to call more than once.
func (s *Server) Stop(grace time.Duration) error {
	select {
	case <-s.done:
		return nil
	default:
	}
	terminateGroup(s.cmd.Process)
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-s.done:
		return nil
	case <-t.C:
	}
	killGroup(s.cmd.Process)
	// SIGKILL cannot be ignored; the bound only guards against an
	// unkillable (D-state) process hanging the harness forever.
	select {
	case <-s.done:
		return nil
	case <-time.After(5 * time.Second):
		return fmt.Errorf("%s (pid %d) did not exit after SIGKILL", s.Spec.Name, s.PID())
	}
}

// LogTail returns the last n lines of the server log, indented, for
// inclusion in error messages.
func (s *Server) LogTail(n int) string {
	data, err := os.ReadFile(s.LogPath)
	if err != nil {
		return "  (no log: " + err.Error() + ")"
	}
	text := strings.TrimRight(string(data), "\n")
	if text == "" {
		return "  (" + s.LogPath + " is empty)"
	}
	lines := strings.Split(text, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "  --- last lines of %s ---\n", s.LogPath)
	for _, l := range lines {
		b.WriteString("  " + l + "\n")
	}
	return strings.TrimRight(b.String(), "\n")
}

// MemStat is a process's memory use as reported by the kernel.
type MemStat struct {
	RSSKiB int64 // VmRSS: resident set size now
	HWMKiB int64 // VmHWM: peak resident set size
}

// Mem reads the server's current and peak RSS. Call it before Stop.
func (s *Server) Mem() (MemStat, error) {
	return readMem(s.PID())
}

// parseProcStatus extracts VmRSS and VmHWM (in KiB) from the contents of
// /proc/<pid>/status.
func parseProcStatus(data []byte) (MemStat, error) {
	var m MemStat
	var seen int
	for line := range strings.SplitSeq(string(data), "\n") {
		key, val, ok := strings.Cut(line, ":")
		if !ok || (key != "VmRSS" && key != "VmHWM") {
			continue
		}
		f := strings.Fields(val)
		if len(f) != 2 || f[1] != "kB" {
			return m, fmt.Errorf("unexpected %s line %q", key, line)
		}
		n, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return m, fmt.Errorf("unexpected %s line %q", key, line)
		}
		if key == "VmRSS" {
			m.RSSKiB = n
		} else {
			m.HWMKiB = n
		}
		seen++
	}
	if seen != 2 {
		// Kernel threads and zombies have no Vm* lines.
		return m, errors.New("VmRSS/VmHWM not found (process gone?)")
	}
	return m, nil
}

// Kill sends SIGKILL to the server's process group, as kill -9 would,
// and returns once the process has been reaped (or after five seconds).
// The time the caller takes right after Kill returns is the moment the
// server is gone.
func (s *Server) Kill() error {
	killGroup(s.cmd.Process)
	select {
	case <-s.done:
		return nil
	case <-time.After(5 * time.Second):
		return fmt.Errorf("%s (pid %d) did not exit after SIGKILL", s.Spec.Name, s.PID())
	}
}
