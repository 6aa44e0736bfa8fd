package warm

import (
	"cmp"
	"slices"
	"strings"

	"github.com/dnfproxy/dnfproxy/metadata"
)

// selection is the packages to fetch and what could not be resolved.
type selection struct {
	packages   []*metadata.PackageDeps // in primary.xml order
	notFound   []string                // Names that match nothing, sorted
	unresolved int                     // distinct requirements nothing provides
}

// choose picks the packages that mode and names select from one repo's
// primary.xml.
//
// mode: none, latest (newest build per name.arch), all. names: for each, the
// newest build per name.arch of the packages so named (or, when none is, the
// newest package that provides it), then the transitive closure of their
// requires, resolved by name against the provides, files and names of the
// repo's packages. Versions in requires are not compared: a requirement is
// met by the newest provider, preferring one of the requiring package's
// arch (or noarch), and by any provider already chosen. A rich dependency
// ("(a or b)", "(a if b)") adds every package it names that the repo has, so
// it may warm a little more than dnf would install; it is unresolved when
// it names nothing the repo has.
func choose(pkgs []metadata.PackageDeps, mode string, names []string) selection {
	chosen := make([]bool, len(pkgs))
	byHref := map[string]int{} // duplicate hrefs: the first wins
	for i := range pkgs {
		if _, dup := byHref[pkgs[i].Href]; dup {
			continue
		}
		byHref[pkgs[i].Href] = i
	}
	isDup := func(i int) bool { return byHref[pkgs[i].Href] != i }

	switch mode {
	case PackagesAll:
		for i := range pkgs {
			chosen[i] = !isDup(i)
		}
	case PackagesLatest:
		var all []int
		for i := range pkgs {
			if !isDup(i) {
				all = append(all, i)
			}
		}
		for _, i := range newestBy(pkgs, all, func(p *metadata.PackageDeps) string { return p.Name + "." + p.Arch }) {
			chosen[i] = true
		}
	}

	var sel selection
	if len(names) > 0 {
		sel.notFound, sel.unresolved = closure(pkgs, isDup, chosen, names)
	}
	for i := range pkgs {
		if chosen[i] {
			sel.packages = append(sel.packages, &pkgs[i])
		}
	}
	return sel
}

// closure marks names and their dependencies in chosen.
func closure(pkgs []metadata.PackageDeps, isDup func(int) bool, chosen []bool, names []string) (notFound []string, unresolved int) {
	byName := map[string][]int{}
	provider := map[string][]int{} // provide, file or name → packages
	for i := range pkgs {
		if isDup(i) {
			continue
		}
		p := &pkgs[i]
		byName[p.Name] = append(byName[p.Name], i)
		provider[p.Name] = append(provider[p.Name], i)
		for _, s := range p.Provides {
			if s != p.Name {
				provider[s] = append(provider[s], i)
			}
		}
		for _, f := range p.Files {
			provider[f] = append(provider[f], i)
		}
	}

	var queue []int
	add := func(i int) {
		if !chosen[i] {
			chosen[i] = true
			queue = append(queue, i)
		}
	}
	// The named packages themselves: newest per name.arch. Packages already
	// chosen by mode are queued too, for their dependencies only if named.
	for _, name := range names {
		name = strings.TrimSpace(name)
		if name == "" {
			continue
		}
		if idx, ok := byName[name]; ok {
			for _, i := range newestBy(pkgs, idx, func(p *metadata.PackageDeps) string { return p.Arch }) {
				if chosen[i] {
					queue = append(queue, i) // chosen by mode; still resolve its requires
				}
				add(i)
			}
			continue
		}
		if idx, ok := provider[name]; ok {
			add(best(pkgs, idx, nil))
			continue
		}
		notFound = append(notFound, name)
	}

	missing := map[string]bool{}
	seen := make([]bool, len(pkgs))
	for len(queue) > 0 {
		i := queue[0]
		queue = queue[1:]
		if seen[i] {
			continue
		}
		seen[i] = true
		p := &pkgs[i]
		for _, req := range p.Requires {
			found := false
			for _, dep := range depNames(req) {
				idx, ok := provider[dep]
				if !ok {
					continue
				}
				found = true
				if slices.ContainsFunc(idx, func(j int) bool { return chosen[j] }) {
					for _, j := range idx {
						if chosen[j] && !seen[j] {
							queue = append(queue, j)
						}
					}
					continue
				}
				add(best(pkgs, idx, p))
			}
			if !found {
				missing[req] = true
			}
		}
	}
	slices.Sort(notFound)
	return slices.Compact(notFound), len(missing)
}

// best returns the provider to pick among idx for a requirement of by
// (nil for a name asked for directly): one of by's arch or noarch first,
// then the newest, then the first in primary.xml.
func best(pkgs []metadata.PackageDeps, idx []int, by *metadata.PackageDeps) int {
	archOK := func(i int) int {
		if by == nil || pkgs[i].Arch == by.Arch || pkgs[i].Arch == "noarch" || by.Arch == "noarch" {
			return 1
		}
		return 0
	}
	return slices.MaxFunc(idx, func(a, b int) int {
		if c := cmp.Compare(archOK(a), archOK(b)); c != 0 {
			return c
		}
		if c := compareEVR(&pkgs[a], &pkgs[b]); c != 0 {
			return c
		}
		return cmp.Compare(b, a) // MaxFunc keeps the first maximum; be explicit
	})
}

// newestBy returns, of the packages idx points at, the newest build for
// each value of key.
func newestBy(pkgs []metadata.PackageDeps, idx []int, key func(*metadata.PackageDeps) string) []int {
	newest := map[string]int{}
	for _, i := range idx {
		k := key(&pkgs[i])
		if j, ok := newest[k]; !ok || newer(&pkgs[i], &pkgs[j]) {
			newest[k] = i
		}
	}
	out := make([]int, 0, len(newest))
	for _, i := range newest {
		out = append(out, i)
	}
	return out
}

// newer reports whether a is a newer build than b.
func newer(a, b *metadata.PackageDeps) bool { return compareEVR(a, b) > 0 }

func compareEVR(a, b *metadata.PackageDeps) int {
	return metadata.CompareEVR(a.ID().EVR(), b.ID().EVR())
}

// depNames returns the package names, provides or paths a requirement
// names: itself for a plain one, the operands of a rich (boolean)
// dependency such as "(a >= 1.0 or (b if c))".
func depNames(req string) []string {
	if !strings.HasPrefix(req, "(") {
		return []string{req}
	}
	var out []string
	skipVersion := false
	for _, tok := range strings.Fields(req) {
		tok = strings.TrimLeft(tok, "(")
		// Closing parentheses of the expression; a name such as
		// "libc.so.6()(64bit)" keeps its own balanced ones.
		for strings.HasSuffix(tok, ")") && strings.Count(tok, ")") > strings.Count(tok, "(") {
			tok = tok[:len(tok)-1]
		}
		switch {
		case tok == "":
		case skipVersion:
			skipVersion = false
		case tok == "=" || tok == "<" || tok == ">" || tok == "<=" || tok == ">=":
			skipVersion = true
		case tok == "and" || tok == "or" || tok == "if" || tok == "else" ||
			tok == "with" || tok == "without" || tok == "unless":
		default:
			out = append(out, tok)
		}
	}
	return out
}
