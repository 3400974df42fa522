//go:build !linux

package storage

// releaseMappedFiles does nothing where /proc and madvise are not there.
func releaseMappedFiles(string) {}
