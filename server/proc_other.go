//go:build !linux

package server

import "runtime"

// processRSS is what the Go runtime holds from the system: the closest
// figure to a resident set size without /proc.
func processRSS() int64 {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.Sys)
}

// systemMemory is unknown without Linux's sysinfo.
func systemMemory() int64 { return 0 }
