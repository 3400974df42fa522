//go:build !linux

package storage

// SystemMemory is unknown here: 0.
func SystemMemory() int64 { return 0 }
