//go:build unix

package cache

import (
	"io/fs"
	"syscall"
)

// allocated is the space a file takes on disk: its allocated 512-byte
// blocks, whatever its length says.
func allocated(fi fs.FileInfo) int64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return int64(st.Blocks) * 512
	}
	return fi.Size()
}
