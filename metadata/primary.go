package metadata

import (
	"fmt"
	"strconv"
	"strings"
)

// Package is what the proxy needs to know of one <package> of primary.xml.
type Package struct {
	Name    string
	Arch    string
	Epoch   string
	Version string
	Release string
	Href    string // location: relative to the repo root, or to LocationBase when that is set
	// LocationBase is the xml:base of the location as upstream wrote it
	// (createrepo_c --baseurl): clients fetch the package from
	// LocationBase + Href. ResolveLocation tells whether that is inside
	// the repo.
	LocationBase string
	Checksum     Checksum
	Size         int64 // of the .rpm file
}

// NEVRA renders name-[epoch:]version-release.arch as dnf prints it.
func (p Package) NEVRA() string { return p.ID().NEVRA() }

// ID returns what identifies the package to rules.
func (p Package) ID() PackageID {
	return PackageID{Name: p.Name, Arch: p.Arch, Epoch: p.Epoch, Version: p.Version, Release: p.Release}
}

// xmlPackage holds the fields of a <package> as written, before
// toPackage validates them.
type xmlPackage struct {
	Name     string
	Arch     string
	Version  struct{ Epoch, Ver, Rel string }
	Checksum struct{ Type, Value string }
	Size     struct{ Package string }
	Location struct{ Href, Base string }
}

func (x *xmlPackage) toPackage() (Package, error) {
	p := Package{
		Name: x.Name, Arch: x.Arch,
		Epoch: x.Version.Epoch, Version: x.Version.Ver, Release: x.Version.Rel,
	}
	if p.Name == "" || p.Arch == "" || p.Version == "" {
		return p, fmt.Errorf("%w: missing name, arch or version", ErrMalformed)
	}
	p.LocationBase = x.Location.Base
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
