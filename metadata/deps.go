package metadata

import (
	"io"
	"strings"
)

// PackageDeps is a package of primary.xml with the dependency data a
// resolver needs: what it provides, what it requires, and the files primary
// lists for it (the ones that requires such as /usr/bin/sh can point at).
type PackageDeps struct {
	Package
	Provides []string // names of the rpm:provides entries
	Requires []string // names of the rpm:requires entries, without rpmlib(...)
	Files    []string // the <file> entries (files, dirs and ghosts alike)
	// ABIProvides are the provides describing exported ABI (IsABIProvide)
	// with their versions: a kernel symbol's version is its CRC.
	ABIProvides []Provide
}

type xmlDepEntry struct {
	Name string `xml:"name,attr"`
	Ver  string `xml:"ver,attr"`
}

type xmlDepsPackage struct {
	xmlPackage
	Format struct {
		Provides []xmlDepEntry `xml:"provides>entry"`
		Requires []xmlDepEntry `xml:"requires>entry"`
		Files    []string      `xml:"file"`
	} `xml:"format"`
}

// ScanPrimaryDeps streams the uncompressed primary.xml in r like
// ScanPrimary, with the same validation, and calls fn for every package with
// its provides, requires and files. Only names are kept: versions and flags
// of dependencies are dropped, as are the rpmlib(...) requires that rpm
// itself satisfies.
func ScanPrimaryDeps(r io.Reader, fn func(PackageDeps) error) error {
	return scanPackages(r, func(x *xmlDepsPackage) error {
		p, err := x.toPackage()
		if err != nil {
			return err
		}
		d := PackageDeps{Package: p}
		for _, e := range x.Format.Provides {
			if name := strings.TrimSpace(e.Name); name != "" {
				d.Provides = append(d.Provides, name)
				if IsABIProvide(name) {
					d.ABIProvides = append(d.ABIProvides, Provide{Name: name, Version: e.Ver})
				}
			}
		}
		for _, e := range x.Format.Requires {
			name := strings.TrimSpace(e.Name)
			if name == "" || strings.HasPrefix(name, "rpmlib(") {
				continue
			}
			d.Requires = append(d.Requires, name)
		}
		for _, f := range x.Format.Files {
			if f = strings.TrimSpace(f); f != "" {
				d.Files = append(d.Files, f)
			}
		}
		return fn(d)
	})
}
