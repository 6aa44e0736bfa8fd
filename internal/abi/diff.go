package abi

import (
	"fmt"
	"strings"

	"github.com/dnfproxy/dnfproxy/metadata"
)

// maxListed is how many items a finding's reason names before it counts
// the rest.
const maxListed = 12

// Diff compares the exported interface of a package (cur) with the build it
// is checked against (ref). A library (by SONAME) that is gone, a removed
// symbol or version node, or an exported object whose size changed is
// abi-changed; additions alone are abi-extended. There is one finding per
// library and kind of change, abi-changed ones first.
//
// Objects without a SONAME (plugins in library directories) are compared
// when the same path is in both builds; one that appears or disappears is
// no finding, since nothing links against it by name (elfutils renames its
// backends with every release).
func Diff(ref, cur *PackageABI) []metadata.Finding {
	against := "compared with " + ref.ID.NEVRA()
	skipped := map[string]bool{}
	for _, p := range cur.Skipped {
		skipped[p] = true
	}
	var changed, extended []metadata.Finding
	var addedLibs []string
	for _, old := range ref.Libraries {
		nw := cur.Library(old.Key())
		if nw == nil {
			if skipped[old.Path] || old.SONAME == "" {
				continue // too big to analyse here: not known to be gone
			}
			changed = append(changed, metadata.Finding{Class: metadata.ClassABIChanged,
				Reason: fmt.Sprintf("%s: %s (%s) is no longer shipped", against, old.Key(), old.Path)})
			continue
		}
		c, e := diffLibrary(old, nw)
		for _, r := range c {
			changed = append(changed, metadata.Finding{Class: metadata.ClassABIChanged, Reason: against + ": " + r})
		}
		for _, r := range e {
			extended = append(extended, metadata.Finding{Class: metadata.ClassABIExtended, Reason: against + ": " + r})
		}
	}
	for _, l := range cur.Libraries {
		if l.SONAME != "" && ref.Library(l.Key()) == nil {
			addedLibs = append(addedLibs, l.Key())
		}
	}
	if len(addedLibs) > 0 {
		extended = append(extended, metadata.Finding{Class: metadata.ClassABIExtended,
			Reason: fmt.Sprintf("%s: adds the librar%s %s", against, plural(len(addedLibs), "y", "ies"), list(addedLibs))})
	}
	return append(changed, extended...)
}

// diffLibrary returns the reasons a library's interface changed
// incompatibly and the reasons it was extended.
func diffLibrary(old, nw *Library) (changed, extended []string) {
	key := old.Key()
	oldSyms, newSyms := symbolMap(old), symbolMap(nw)
	var removed, added, resized []string
	for _, s := range old.Symbols {
		n, ok := newSyms[s.ID()]
		switch {
		case !ok:
			removed = append(removed, s.ID())
		case sized(s) && sized(n) && s.Size != n.Size:
			resized = append(resized, fmt.Sprintf("%s %d -> %d bytes", s.ID(), s.Size, n.Size))
		}
	}
	for _, s := range nw.Symbols {
		if _, ok := oldSyms[s.ID()]; !ok {
			added = append(added, s.ID())
		}
	}
	removedNodes, addedNodes := setDiff(old.Versions, nw.Versions), setDiff(nw.Versions, old.Versions)
	if len(removedNodes) > 0 {
		changed = append(changed, fmt.Sprintf("%s drops the version node%s %s", key, plural(len(removedNodes), "", "s"), list(removedNodes)))
	}
	if len(removed) > 0 {
		changed = append(changed, fmt.Sprintf("%s no longer exports %d symbol%s: %s", key, len(removed), plural(len(removed), "", "s"), list(removed)))
	}
	if len(resized) > 0 {
		changed = append(changed, fmt.Sprintf("%s changes the size of %d object%s: %s", key, len(resized), plural(len(resized), "", "s"), list(resized)))
	}
	if len(addedNodes) > 0 {
		extended = append(extended, fmt.Sprintf("%s adds the version node%s %s", key, plural(len(addedNodes), "", "s"), list(addedNodes)))
	}
	if len(added) > 0 {
		extended = append(extended, fmt.Sprintf("%s exports %d new symbol%s: %s", key, len(added), plural(len(added), "", "s"), list(added)))
	}
	return changed, extended
}

func sized(s Symbol) bool { return s.Type == "object" || s.Type == "tls" || s.Type == "common" }

func symbolMap(l *Library) map[string]Symbol {
	m := make(map[string]Symbol, len(l.Symbols))
	for _, s := range l.Symbols {
		m[s.ID()] = s
	}
	return m
}

// setDiff returns the items of a (sorted) not in b.
func setDiff(a, b []string) []string {
	in := map[string]bool{}
	for _, x := range b {
		in[x] = true
	}
	var out []string
	for _, x := range a {
		if !in[x] {
			out = append(out, x)
		}
	}
	return out
}

func list(items []string) string {
	if len(items) <= maxListed {
		return strings.Join(items, ", ")
	}
	return fmt.Sprintf("%s and %d more", strings.Join(items[:maxListed], ", "), len(items)-maxListed)
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
