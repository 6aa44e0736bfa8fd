package proxy

import (
	"fmt"
	"path"
	"strings"
)

// Views a repo can be served in.
const (
	ViewDefault = ""
	ViewRaw     = "raw"
)

// target is a parsed client request: /<repo>[@view]/<rel>.
type target struct {
	repo string
	view string
	rel  string // cleaned path below the repo prefix, no leading "/"
}

// parseTarget splits and cleans a request path. rawPath is the path as the
// client sent it (still escaped), decoded the same path unescaped. Anything
// that could step outside the repo prefix is refused: ".." and "." segments
// in any encoding, encoded slashes or backslashes, empty segments ("//"),
// NUL and control characters.
func parseTarget(rawPath, decoded string) (target, error) {
	var t target
	if !strings.HasPrefix(decoded, "/") {
		return t, fmt.Errorf("%w: path must start with /", ErrBadRequest)
	}
	if strings.IndexByte(rawPath, '%') >= 0 {
		lower := strings.ToLower(rawPath)
		for _, bad := range []string{"%2f", "%5c", "%00"} {
			if strings.Contains(lower, bad) {
				return t, fmt.Errorf("%w: encoded %s in path", ErrBadRequest, bad)
			}
		}
	}
	for _, r := range decoded {
		if r < 0x20 || r == 0x7f || r == '\\' {
			return t, fmt.Errorf("%w: control character or backslash in path", ErrBadRequest)
		}
	}
	first, rest, _ := strings.Cut(decoded[1:], "/")
	t.repo, t.view, _ = strings.Cut(first, "@")
	if t.repo == "" {
		return t, fmt.Errorf("%w: no repo in path", ErrNotFound)
	}
	if rest == "" {
		return t, nil
	}
	// No ".", ".." or empty segment but a last one (a trailing slash):
	// exactly the paths path.Clean leaves alone, checked without copying.
	for seg, more := rest, true; more; {
		var s string
		s, seg, more = strings.Cut(seg, "/")
		switch {
		case s == "." || s == "..":
			return t, fmt.Errorf("%w: %q segment in path", ErrBadRequest, s)
		case s == "" && more:
			return t, fmt.Errorf("%w: empty segment in path", ErrBadRequest)
		}
	}
	t.rel = rest
	return t, nil
}

// checkSubpath refuses a sub-path of a repo (an admin parameter) that a
// client's request path could not be: the same rules as parseTarget.
func checkSubpath(repo, p string) error {
	if p == "" {
		return nil
	}
	_, err := parseTarget("/"+repo+"/"+p, "/"+repo+"/"+p)
	return err
}

// Path kinds, which decide caching and verification.
const (
	kindRepomd    = "repomd"    // <root>repodata/repomd.xml
	kindSignature = "signature" // <root>repodata/repomd.xml.asc
	kindMetalink  = "metalink"  // <root>repodata/repomd.xml.metalink (made by the proxy)
	kindRepodata  = "repodata"  // <root>repodata/<file>
	kindPackage   = "package"   // *.rpm
	kindDir       = "dir"       // ends in "/"
	kindFile      = "file"      // anything else (.treeinfo, keys, images)
)

// classify returns a path's kind and, for repodata paths, its repo root
// (the directory holding repodata/, with a trailing "/" or empty).
func classify(rel string) (kind, root string) {
	dir, file := path.Split(rel)
	switch {
	case rel == "" || strings.HasSuffix(rel, "/"):
		return kindDir, ""
	case strings.HasSuffix(dir, "repodata/") && (dir == "repodata/" || strings.HasSuffix(dir, "/repodata/")):
		root = strings.TrimSuffix(dir, "repodata/")
		switch file {
		case "repomd.xml":
			return kindRepomd, root
		case "repomd.xml.asc":
			return kindSignature, root
		case "repomd.xml.metalink":
			return kindMetalink, root
		}
		return kindRepodata, root
	case strings.HasSuffix(file, ".rpm"):
		return kindPackage, ""
	}
	return kindFile, ""
}
