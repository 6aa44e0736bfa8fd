package keys

import (
	"path"
	"strings"
)

// ContentType names what a path holds. No Content-Encoding is ever set:
// a .gz file is served as the gzip bytes it is.
func ContentType(rel string) string {
	switch ext := path.Ext(rel); ext {
	case ".xml":
		return "text/xml; charset=utf-8"
	case ".rpm":
		return "application/x-rpm"
	case ".gz":
		return "application/gzip"
	case ".xz":
		return "application/x-xz"
	case ".zst":
		return "application/zstd"
	case ".bz2":
		return "application/x-bzip2"
	case ".asc":
		return "application/pgp-signature"
	case ".key":
		return "application/pgp-keys"
	case ".json":
		return "application/json"
	case ".yaml", ".yml", ".txt":
		return "text/plain; charset=utf-8"
	}
	if strings.HasPrefix(path.Base(rel), "RPM-GPG-KEY") {
		return "text/plain; charset=utf-8"
	}
	return "application/octet-stream"
}
