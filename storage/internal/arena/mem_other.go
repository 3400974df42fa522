//go:build !linux

package arena

// Without Linux's mmap the arena's memory is Go memory: pointer-free, so
// the collector does not scan it, but it counts towards the heap goal.
func mapMemory(n int) ([]byte, error) { return make([]byte, n), nil }

func unmap([]byte) {}

func release([]byte) {}
