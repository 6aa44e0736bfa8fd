package metadata_test

// The encoding/xml scanner that ScanPrimary and ScanPrimaryDeps used before
// scan.go, kept as the reference of TestScanEquivalence and
// BenchmarkScanPrimary. Only tests use it.

import (
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/dnfproxy/dnfproxy/metadata"
)

type refDepEntry struct {
	Name string `xml:"name,attr"`
	Ver  string `xml:"ver,attr"`
}

type refPackage struct {
	Name    string `xml:"name"`
	Arch    string `xml:"arch"`
	Version struct {
		Epoch string `xml:"epoch,attr"`
		Ver   string `xml:"ver,attr"`
		Rel   string `xml:"rel,attr"`
	} `xml:"version"`
	Checksum struct {
		Type  string `xml:"type,attr"`
		Value string `xml:",chardata"`
	} `xml:"checksum"`
	Size struct {
		Package string `xml:"package,attr"`
	} `xml:"size"`
	Location struct {
		Href string `xml:"href,attr"`
		Base string `xml:"base,attr"`
	} `xml:"location"`
	Format struct {
		Provides []refDepEntry `xml:"provides>entry"`
		Requires []refDepEntry `xml:"requires>entry"`
		Files    []string      `xml:"file"`
	} `xml:"format"`
}

func (x *refPackage) toPackage() (metadata.Package, error) {
	p := metadata.Package{
		Name: x.Name, Arch: x.Arch,
		Epoch: x.Version.Epoch, Version: x.Version.Ver, Release: x.Version.Rel,
	}
	if p.Name == "" || p.Arch == "" || p.Version == "" {
		return p, fmt.Errorf("%w: missing name, arch or version", metadata.ErrMalformed)
	}
	p.LocationBase = x.Location.Base
	var err error
	if p.Href, err = metadata.CleanHref(x.Location.Href); err != nil {
		return p, fmt.Errorf("%w: location: %v", metadata.ErrMalformed, err)
	}
	if p.Checksum, err = metadata.NewChecksum(x.Checksum.Type, x.Checksum.Value); err != nil {
		return p, err
	}
	if p.Size, err = strconv.ParseInt(strings.TrimSpace(x.Size.Package), 10, 64); err != nil || p.Size < 0 {
		return p, fmt.Errorf("%w: bad package size %q", metadata.ErrMalformed, x.Size.Package)
	}
	return p, nil
}

// refScanPrimaryDeps is the old ScanPrimaryDeps; deps false skips the
// dependency lists, as the old ScanPrimary decoded none.
func refScanPrimaryDeps(r io.Reader, deps bool, fn func(metadata.PackageDeps) error) error {
	dec := xml.NewDecoder(r)
	dec.Strict = true
	seenRoot := false
	n := 0
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			if !seenRoot {
				return fmt.Errorf("%w: primary.xml: no <metadata> element", metadata.ErrMalformed)
			}
			return nil
		}
		if err != nil {
			return fmt.Errorf("%w: primary.xml: %v", metadata.ErrMalformed, err)
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
				return fmt.Errorf("%w: primary.xml: %v", metadata.ErrMalformed, err)
			}
			continue
		}
		n++
		var x refPackage
		if err := dec.DecodeElement(&x, &start); err != nil {
			return fmt.Errorf("%w: primary.xml package %d: %v", metadata.ErrMalformed, n, err)
		}
		p, err := x.toPackage()
		if err != nil {
			return fmt.Errorf("primary.xml package %d (%s): %w", n, x.Name, err)
		}
		d := metadata.PackageDeps{Package: p}
		if deps {
			for _, e := range x.Format.Provides {
				if name := strings.TrimSpace(e.Name); name != "" {
					d.Provides = append(d.Provides, name)
					if metadata.IsABIProvide(name) {
						d.ABIProvides = append(d.ABIProvides, metadata.Provide{Name: name, Version: e.Ver})
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
		}
		if err := fn(d); err != nil {
			if errors.Is(err, metadata.ErrMalformed) {
				return fmt.Errorf("primary.xml package %d (%s): %w", n, x.Name, err)
			}
			return err
		}
	}
}
