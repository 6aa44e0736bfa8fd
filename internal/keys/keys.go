// Package keys names the cache store's key namespaces. It owns no state:
// every owner (repo generations, views, plain objects) builds its keys
// here, so purge and eviction agree with them on what a key belongs to.
//
// Each namespace is followed by "<repo>/":
//
//	obj/     packages and plain files, by path
//	md/      repodata files of generations, by path and checksum
//	gen/     a root's generation record
//	view/    rewritten repodata files of views
//	viewrec/ a root's view records
//	abi/     results of package-pair analyses (followed by the analyser's
//	         own key, "abi/<version>/<old sum>/<new sum>", not by a repo:
//	         results are keyed by content and shared by every repo)
package keys

import "strings"

// The namespaces.
const (
	Obj     = "obj/"
	MD      = "md/"
	Gen     = "gen/"
	View    = "view/"
	ViewRec = "viewrec/"
	ABI     = "abi/"
)

// Namespaces lists every namespace that holds a repo's objects.
var Namespaces = []string{Gen, MD, Obj, View, ViewRec}

// ObjKey is the key of a package or plain file.
func ObjKey(repo, rel string) string { return Obj + repo + "/" + rel }

// MDKey is the key of a verified repodata file. Keyed by checksum too, so
// a repo with plain (non-checksum) file names can never mix two
// generations' bytes.
func MDKey(repo, rel, sum string) string { return MD + repo + "/" + rel + "#" + sum }

// GenKey is the key of a root's generation record.
func GenKey(repo, root string) string { return Gen + repo + "/" + root }

// ViewRecKey is the key of a root's record of one view.
func ViewRecKey(repo, root, view string) string { return ViewRec + repo + "/" + root + "@" + view }

// ViewFileKey is the key of one rewritten file of a view build.
func ViewFileKey(repo, root, view, build, typ string) string {
	return View + repo + "/" + root + view + "/" + build + "/" + typ
}

// ABIKey is the store key of an ELF-layer record (internal/abi's own key).
func ABIKey(k string) string { return ABI + k }

// RepoPrefixes returns the key prefixes of a repo's objects whose path
// starts with prefix, one per namespace.
func RepoPrefixes(repo, prefix string) []string {
	out := make([]string, 0, len(Namespaces))
	for _, ns := range Namespaces {
		out = append(out, ns+repo+"/"+prefix)
	}
	return out
}

// HasAnyPrefix reports whether key starts with one of prefixes.
func HasAnyPrefix(key string, prefixes []string) bool {
	for _, p := range prefixes {
		if strings.HasPrefix(key, p) {
			return true
		}
	}
	return false
}
