package harness

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// Workspace owns a temporary directory and the servers started in it, so
// that one Close stops every process and removes every file, whichever way
// the benchmark ends.
type Workspace struct {
	// Root is the temporary directory holding per-server directories.
	Root string
	// Keep leaves Root on disk after Close, for inspecting logs and data.
	Keep bool

	mu      sync.Mutex
	servers []*Server
	closed  bool
}

// NewWorkspace creates a fresh temporary directory named after prefix.
func NewWorkspace(prefix string, keep bool) (*Workspace, error) {
	root, err := os.MkdirTemp("", prefix)
	if err != nil {
		return nil, err
	}
	return &Workspace{Root: root, Keep: keep}, nil
}

// Dir creates (if needed) and returns Root/name.
func (w *Workspace) Dir(name string) (string, error) {
	d := filepath.Join(w.Root, name)
	if err := os.MkdirAll(d, 0o755); err != nil {
		return "", err
	}
	return d, nil
}

// StartReady starts a server on a free port and waits until it answers
// PING. spec is called with the chosen port and must return the full spec.
// See StartReadyPorts.
func (w *Workspace) StartReady(ctx context.Context, attempts int, timeout time.Duration, spec func(port int) ServerSpec) (*Server, error) {
	return w.StartReadyPorts(ctx, attempts, timeout, 1, func(ports []int) ServerSpec { return spec(ports[0]) })
}

// StartReadyPorts starts a server that needs nports distinct free ports
// (e.g. a client port and a cluster bus port) and waits until it answers
// PING. spec is called with the chosen ports and must return the full
// spec, whose Port is the one that is pinged.
//
// If the process dies before becoming ready because another process
// grabbed a port between FreePorts and bind (its log says "address
// already in use"), it is retried with new ports, up to attempts times in
// total. The server is tracked and will be stopped by Close.
func (w *Workspace) StartReadyPorts(ctx context.Context, attempts int, timeout time.Duration, nports int, spec func(ports []int) ServerSpec) (*Server, error) {
	var lastErr error
	for range max(attempts, 1) {
		ports, err := FreePorts(nports)
		if err != nil {
			return nil, err
		}
		s, err := Start(spec(ports))
		if err != nil {
			return nil, err
		}
		if err := w.track(s); err != nil {
			return nil, err
		}
		lastErr = s.WaitReady(ctx, timeout)
		if lastErr == nil {
			return s, nil
		}
		exited, _ := s.Exited()
		s.Stop(5 * time.Second)
		if !exited || !s.PortInUse() || ctx.Err() != nil {
			// Any other failure would repeat on other ports.
			return nil, lastErr
		}
	}
	return nil, lastErr
}

// track registers s for Close, refusing if Close has already begun (a
// signal arrived while the server was starting).
func (w *Workspace) track(s *Server) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		s.Stop(5 * time.Second)
		return errors.New("workspace closed")
	}
	w.servers = append(w.servers, s)
	return nil
}

// Close stops all servers (SIGTERM, then SIGKILL after a grace period) and
// removes Root unless Keep is set. It is safe to call more than once.
func (w *Workspace) Close() error {
	w.mu.Lock()
	servers := w.servers
	w.servers = nil
	alreadyClosed := w.closed
	w.closed = true
	w.mu.Unlock()

	var errs []string
	for _, s := range servers {
		if err := s.Stop(10 * time.Second); err != nil {
			errs = append(errs, err.Error())
		}
	}
	if !w.Keep && !alreadyClosed {
		if err := os.RemoveAll(w.Root); err != nil {
			errs = append(errs, err.Error())
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("cleanup: %s", strings.Join(errs, "; "))
	}
	return nil
}
