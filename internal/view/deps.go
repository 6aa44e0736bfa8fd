package view

import (
	"hash/maphash"
	"slices"

	"github.com/dnfproxy/dnfproxy/metadata"
)

// depSummary is what the affected dependents need of every package of a
// generation, gathered during the analysis's one scan of primary.xml so
// that a filter view does not read primary.xml again: each package's
// provided names (provides and files) and required names as 64-bit hashes,
// and the names themselves only for packages with findings, the only ones
// a view may filter. A hash collision could at worst hide or invent one
// affected dependent; with a per-analysis random seed and 64 bits it is
// negligible against the millions of names of the largest repos.
type depSummary struct {
	seed   maphash.Seed
	hashes []uint64 // per package: provides, then requires
	pkgs   []depPkg
	names  map[uint64]string // names provided by packages with findings
}

type depPkg struct {
	nevra   string
	an      int32  // index in analysis.pkgs, -1 without findings
	provEnd uint32 // hashes[start:provEnd] provides, [provEnd:end] requires
	end     uint32
}

func newDepSummary() *depSummary {
	return &depSummary{seed: maphash.MakeSeed(), names: map[uint64]string{}}
}

// add records a package and returns its index in d.pkgs; an is its index
// in analysis.pkgs or -1. The names it provides are kept (for the report)
// when keepNames is set: a package with findings, or one a later pass may
// give findings.
func (d *depSummary) add(p *metadata.PackageDeps, an int32, keepNames bool) int {
	for _, list := range [][]string{p.Provides, p.Files} {
		for _, name := range list {
			h := maphash.String(d.seed, name)
			d.hashes = append(d.hashes, h)
			if keepNames {
				d.names[h] = name
			}
		}
	}
	provEnd := uint32(len(d.hashes))
	start := provEnd
	for _, req := range p.Requires {
		h := maphash.String(d.seed, req)
		if !slices.Contains(d.hashes[start:], h) {
			d.hashes = append(d.hashes, h)
		}
	}
	d.pkgs = append(d.pkgs, depPkg{nevra: p.NEVRA(), an: an, provEnd: provEnd, end: uint32(len(d.hashes))})
	return len(d.pkgs) - 1
}

// affected lists the kept packages whose requirements only filtered
// packages satisfied; filtered tells whether the package at an index of
// analysis.pkgs is filtered.
func (d *depSummary) affected(filtered func(an int32) bool) []AffectedPackage {
	isFiltered := func(p depPkg) bool { return p.an >= 0 && filtered(p.an) }
	byFiltered := map[uint64][]string{} // name → filtered NEVRAs providing it
	start := uint32(0)
	for _, p := range d.pkgs {
		if isFiltered(p) {
			for _, h := range d.hashes[start:p.provEnd] {
				byFiltered[h] = append(byFiltered[h], p.nevra)
			}
		}
		start = p.end
	}
	if len(byFiltered) == 0 {
		return nil
	}
	keptProvides := map[uint64]bool{}
	type need struct {
		nevra string
		reqs  []uint64
	}
	var needs []need
	start = 0
	for _, p := range d.pkgs {
		provs, reqs := d.hashes[start:p.provEnd], d.hashes[p.provEnd:p.end]
		start = p.end
		if isFiltered(p) {
			continue
		}
		for _, h := range provs {
			if _, ok := byFiltered[h]; ok {
				keptProvides[h] = true
			}
		}
		n := need{nevra: p.nevra}
		for _, h := range reqs {
			if _, ok := byFiltered[h]; ok {
				n.reqs = append(n.reqs, h)
			}
		}
		if len(n.reqs) > 0 {
			needs = append(needs, n)
		}
	}
	var out []AffectedPackage
	for _, n := range needs {
		a := AffectedPackage{NEVRA: n.nevra}
		for _, h := range n.reqs {
			if keptProvides[h] {
				continue
			}
			a.Requires = append(a.Requires, d.names[h])
			for _, f := range byFiltered[h] {
				if !slices.Contains(a.Filtered, f) {
					a.Filtered = append(a.Filtered, f)
				}
			}
		}
		if len(a.Requires) > 0 {
			out = append(out, a)
		}
	}
	return out
}
