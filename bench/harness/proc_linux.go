package harness

import (
	"fmt"
	"os"
	"strconv"
	"syscall"
)

// sysProcAttr puts a child in its own process group, so it can be
// signalled as a group, and has the kernel SIGKILL it if the harness dies
// without cleaning up (e.g. kill -9), so no servers are left behind.
//
// Pdeathsig fires when the OS thread that forked the child exits; the Go
// runtime only retires threads that a goroutine locked and never unlocked,
// which this package never does.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

// terminateGroup sends SIGTERM to the process group led by p.
func terminateGroup(p *os.Process) {
	// The negative pid addresses the whole group; errors mean it is gone.
	_ = syscall.Kill(-p.Pid, syscall.SIGTERM)
}

// killGroup sends SIGKILL to the process group led by p.
func killGroup(p *os.Process) {
	_ = syscall.Kill(-p.Pid, syscall.SIGKILL)
}

// readMem reads VmRSS and VmHWM of pid from /proc.
func readMem(pid int) (MemStat, error) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return MemStat{}, err
	}
	m, err := parseProcStatus(data)
	if err != nil {
		return m, fmt.Errorf("pid %d: %w", pid, err)
	}
	return m, nil
}
