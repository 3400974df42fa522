package storage

import (
	"bufio"
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
)

// releaseMappedFiles drops from this process's resident memory the pages
// of the shared file mappings under dir: Badger's files, which Badger maps
// and writes through memory, and which the node does not read back in
// normal operation (reads come from the keyspace). The pages stay in the
// operating system's page cache, where the kernel keeps or reclaims them
// like any file data, and a later access maps them in again; for a shared
// file mapping MADV_DONTNEED loses nothing, dirty pages included. Without
// this, every byte written to Badger would stay in the node's RSS as long
// as Badger keeps the file mapped.
func releaseMappedFiles(dir string) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return
	}
	prefix := []byte(abs + "/")
	f, err := os.Open("/proc/self/maps")
	if err != nil {
		return
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// start-end perms offset dev inode path
		fields := bytes.Fields(sc.Bytes())
		if len(fields) < 6 || len(fields[1]) < 4 || fields[1][3] != 's' || !bytes.HasPrefix(fields[5], prefix) {
			continue
		}
		lo, hi, ok := bytes.Cut(fields[0], []byte("-"))
		if !ok {
			continue
		}
		start, err1 := strconv.ParseUint(string(lo), 16, 64)
		end, err2 := strconv.ParseUint(string(hi), 16, 64)
		if err1 != nil || err2 != nil || end <= start {
			continue
		}
		// By address: the mapping is Badger's, not a Go slice of ours.
		_, _, _ = syscall.Syscall(syscall.SYS_MADVISE, uintptr(start), uintptr(end-start), syscall.MADV_DONTNEED)
	}
}
