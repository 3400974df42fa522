package harness

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

// SignalContext returns a context that is cancelled on the first SIGINT or
// SIGTERM, so that running commands are killed and deferred cleanup
// (Workspace.Close) stops the servers and removes temporary files.
//
// After the first signal the default handling is restored, so a second
// Ctrl-C ends the harness immediately if cleanup itself hangs; the servers
// still die then because they carry a parent-death signal.
func SignalContext(parent context.Context) (context.Context, context.CancelFunc) {
	ctx, stop := signal.NotifyContext(parent, os.Interrupt, syscall.SIGTERM)
	go func() {
		<-ctx.Done()
		stop() // idempotent, so racing with the caller's stop is fine
	}()
	return ctx, stop
}

// Interrupted reports whether ctx was cancelled by a signal, with a message
// naming it, so callers can exit with the conventional status 130.
func Interrupted(ctx context.Context) (bool, string) {
	if ctx.Err() == nil {
		return false, ""
	}
	return true, fmt.Sprint(context.Cause(ctx))
}

// RunInterruptible runs fn under a context that SIGINT and SIGTERM cancel
// (its servers are stopped on the way out), reports the outcome on stderr
// under name, and returns the exit status: 0, 1 for a failure, 130 when
// interrupted.
func RunInterruptible(name string, fn func(ctx context.Context) error) int {
	ctx, stop := SignalContext(context.Background())
	defer stop()
	err := fn(ctx)
	if interrupted, why := Interrupted(ctx); interrupted {
		fmt.Fprintf(os.Stderr, "%s: interrupted (%s); servers stopped\n", name, why)
		return 130
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, name+": FAILED:", err)
		return 1
	}
	return 0
}
