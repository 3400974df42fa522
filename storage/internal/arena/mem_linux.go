package arena

import "syscall"

// mapMemory maps n bytes of anonymous memory: the kernel backs a page only
// once it is written.
func mapMemory(n int) ([]byte, error) {
	return syscall.Mmap(-1, 0, n, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANON|syscall.MAP_PRIVATE)
}

func unmap(m []byte) {
	if len(m) > 0 {
		_ = syscall.Munmap(m[:cap(m)])
	}
}

// release gives a free span's pages back to the kernel; the mapping stays,
// and reads as zeros when used again.
func release(m []byte) { _ = syscall.Madvise(m, syscall.MADV_DONTNEED) }
