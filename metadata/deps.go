package metadata

import (
	"encoding/xml"
	"fmt"
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
	dec := xml.NewDecoder(r)
	dec.Strict = true
	seenRoot := false
	n := 0
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			if !seenRoot {
				return fmt.Errorf("%w: primary.xml: no <metadata> element", ErrMalformed)
			}
			return nil
		}
		if err != nil {
			return fmt.Errorf("%w: primary.xml: %v", ErrMalformed, err)
		}
		start, ok := tok.(xml.StartElement)
		if !ok {
			continue
		}
		switch start.Name.Local {
		case "metadata":
			seenRoot = true
			continue
		case "package":
		default:
			if err := dec.Skip(); err != nil {
				return fmt.Errorf("%w: primary.xml: %v", ErrMalformed, err)
			}
			continue
		}
		n++
		var x xmlDepsPackage
		if err := dec.DecodeElement(&x, &start); err != nil {
			return fmt.Errorf("%w: primary.xml package %d: %v", ErrMalformed, n, err)
		}
		p, err := x.toPackage()
		if err != nil {
			return fmt.Errorf("primary.xml package %d (%s): %w", n, x.Name, err)
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
		if err := fn(d); err != nil {
			return err
		}
	}
}
