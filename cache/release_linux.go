package cache

import (
	"bytes"
	"os"
	"strconv"
	"syscall"
)

// releaseMapped drops the pages of dir's value-log files (*.vlog) from this
// process's page tables with madvise(MADV_DONTNEED). On a shared file
// mapping that loses nothing: dirty pages stay in the page cache, to be
// written back as usual, and a later access faults the page back in from
// the page cache. It only shrinks the resident set, which badger's mmap
// I/O would otherwise grow by every byte of every object written or read.
//
// The addresses come from /proc/self/maps, so the caller must make sure
// badger cannot unmap or move a value-log mapping meanwhile (which it only
// does while writing, iterating, collecting garbage or closing): otherwise
// the range could by then belong to other memory, which DONTNEED would zero.
// Errors are ignored: this is an optimisation.
func releaseMapped(dir string) {
	maps, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		return
	}
	suffix := []byte(".vlog")
	prefix := []byte(dir + "/")
	for line := range bytes.Lines(maps) {
		line = bytes.TrimRight(line, "\n")
		// "start-end perms offset dev inode   path"; the path may hold spaces.
		i := bytes.Index(line, prefix)
		if i < 0 || !bytes.HasSuffix(line, suffix) || bytes.IndexByte(line[i+len(prefix):], '/') >= 0 {
			continue
		}
		rng, _, _ := bytes.Cut(line, []byte(" "))
		lo, hi, ok := bytes.Cut(rng, []byte("-"))
		if !ok {
			continue
		}
		start, err1 := strconv.ParseUint(string(lo), 16, 64)
		end, err2 := strconv.ParseUint(string(hi), 16, 64)
		if err1 != nil || err2 != nil || end <= start {
			continue
		}
		syscall.Syscall(syscall.SYS_MADVISE, uintptr(start), uintptr(end-start), syscall.MADV_DONTNEED)
	}
}
