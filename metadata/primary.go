package metadata

import (
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// Package is what the proxy needs to know of one <package> of primary.xml.
type Package struct {
	Name     string
	Arch     string
	Epoch    string
	Version  string
	Release  string
	Href     string // location, relative to the repo root
	Checksum Checksum
	Size     int64 // of the .rpm file
}

// NEVRA renders name-[epoch:]version-release.arch as dnf prints it.
func (p Package) NEVRA() string { return p.ID().NEVRA() }

// ID returns what identifies the package to rules.
func (p Package) ID() PackageID {
	return PackageID{Name: p.Name, Arch: p.Arch, Epoch: p.Epoch, Version: p.Version, Release: p.Release}
}

type xmlPackage struct {
	Name    string `xml:"name"`
	Arch    string `xml:"arch"`
	Version struct {
		Epoch string `xml:"epoch,attr"`
		Ver   string `xml:"ver,attr"`
		Rel   string `xml:"rel,attr"`
	} `xml:"version"`
	Checksum xmlSum `xml:"checksum"`
	Size     struct {
		Package string `xml:"package,attr"`
	} `xml:"size"`
	Location struct {
		Href string `xml:"href,attr"`
		Base string `xml:"base,attr"`
	} `xml:"location"`
}

// ScanPrimary streams the uncompressed primary.xml in r and calls fn for
// every package, in document order. It validates what the proxy relies on:
// a safe href, a checksum of a known type, a size.
func ScanPrimary(r io.Reader, fn func(Package) error) error {
	return scanPackages(r, func(x *xmlPackage) error {
		p, err := x.toPackage()
		if err != nil {
			return err
		}
		return fn(p)
	})
}

// scanPackages walks primary.xml and decodes each <package> element into
// a fresh T (a struct embedding xmlPackage, so that the common fields are
// validated the same way), then calls fn with it. Errors name the package.
func scanPackages[T any, PT interface {
	*T
	common() *xmlPackage
}](r io.Reader, fn func(PT) error) error {
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
		x := PT(new(T))
		if err := dec.DecodeElement(x, &start); err != nil {
			return fmt.Errorf("%w: primary.xml package %d: %v", ErrMalformed, n, err)
		}
		if err := fn(x); err != nil {
			if errors.Is(err, ErrMalformed) {
				return fmt.Errorf("primary.xml package %d (%s): %w", n, x.common().Name, err)
			}
			return err
		}
	}
}

func (x *xmlPackage) common() *xmlPackage { return x }

func (x *xmlPackage) toPackage() (Package, error) {
	p := Package{
		Name: x.Name, Arch: x.Arch,
		Epoch: x.Version.Epoch, Version: x.Version.Ver, Release: x.Version.Rel,
	}
	if p.Name == "" || p.Arch == "" || p.Version == "" {
		return p, fmt.Errorf("%w: missing name, arch or version", ErrMalformed)
	}
	if x.Location.Base != "" {
		return p, fmt.Errorf("%w: xml:base package locations are not supported", ErrMalformed)
	}
	var err error
	if p.Href, err = CleanHref(x.Location.Href); err != nil {
		return p, fmt.Errorf("%w: location: %v", ErrMalformed, err)
	}
	if p.Checksum, err = NewChecksum(x.Checksum.Type, x.Checksum.Value); err != nil {
		return p, err
	}
	if p.Size, err = strconv.ParseInt(strings.TrimSpace(x.Size.Package), 10, 64); err != nil || p.Size < 0 {
		return p, fmt.Errorf("%w: bad package size %q", ErrMalformed, x.Size.Package)
	}
	return p, nil
}
