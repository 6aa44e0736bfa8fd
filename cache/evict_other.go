//go:build !unix

package cache

import "io/fs"

// allocated is a file's length where block counts are not available.
func allocated(fi fs.FileInfo) int64 { return fi.Size() }
