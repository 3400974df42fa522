//go:build !linux

package harness

import (
	"errors"
	"os"
	"syscall"
)

// sysProcAttr returns nil: process groups and parent-death signals are
// only wired up on Linux, where the benchmarks are meant to run.
func sysProcAttr() *syscall.SysProcAttr { return nil }

// terminateGroup asks p (only p, not its children) to terminate.
func terminateGroup(p *os.Process) { _ = p.Signal(syscall.SIGTERM) }

// killGroup kills p (only p, not its children).
func killGroup(p *os.Process) { _ = p.Kill() }

// readMem is unsupported: it relies on /proc/<pid>/status.
func readMem(int) (MemStat, error) {
	return MemStat{}, errors.New("memory statistics need Linux /proc")
}
