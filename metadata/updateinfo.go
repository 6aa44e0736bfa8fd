package metadata

import (
	"encoding/xml"
	"fmt"
	"io"
)

// FilterUpdateinfo copies the uncompressed updateinfo.xml in r to w,
// dropping from each advisory's package list the <package> entries for
// which drop returns true. Everything else is copied byte for byte. It
// returns how many entries were dropped. It runs within the default
// Limits; see Limits.FilterUpdateinfo.
func FilterUpdateinfo(r io.Reader, w io.Writer, drop func(PackageID) bool) (int, error) {
	return Limits{}.FilterUpdateinfo(r, w, drop)
}

// FilterUpdateinfo is the package-level FilterUpdateinfo within l: a token
// (a text node, a tag, a comment) or a dropped <package> element over
// l.MaxElement bytes is ErrTooLarge, so the parse holds at most about that
// much whatever the input.
func (l Limits) FilterUpdateinfo(r io.Reader, w io.Writer, drop func(PackageID) bool) (int, error) {
	sp := &splicer{src: r, out: w, max: l.element(), what: "updateinfo.xml"}
	dec := xml.NewDecoder(sp)
	dec.Strict = true
	depth, inPkglist, dropped := 0, 0, 0
	sawRoot := false
	for {
		start := dec.InputOffset()
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			if sp.err != nil {
				return dropped, sp.err
			}
			return dropped, fmt.Errorf("%w: updateinfo.xml: %v", ErrMalformed, err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			depth++
			if depth == 1 {
				if t.Name.Local != "updates" {
					return dropped, fmt.Errorf("%w: updateinfo.xml: root element is <%s>", ErrMalformed, t.Name.Local)
				}
				sawRoot = true
			}
			switch {
			case t.Name.Local == "pkglist":
				inPkglist = depth
			case t.Name.Local == "package" && inPkglist > 0:
				id := PackageID{
					Name: attr(t, "name"), Arch: attr(t, "arch"), Epoch: attr(t, "epoch"),
					Version: attr(t, "version"), Release: attr(t, "release"),
				}
				if !drop(id) {
					break
				}
				if err := sp.copyTo(start); err != nil {
					return dropped, err
				}
				if err := dec.Skip(); err != nil {
					if sp.err != nil {
						return dropped, sp.err
					}
					return dropped, fmt.Errorf("%w: updateinfo.xml: %v", ErrMalformed, err)
				}
				depth--
				sp.skipTo(dec.InputOffset())
				dropped++
			}
		case xml.EndElement:
			if depth == inPkglist {
				inPkglist = 0
			}
			depth--
		}
		// Everything before the decoder's position is final: write it,
		// so the buffer never holds more than one token.
		if err := sp.copyTo(dec.InputOffset()); err != nil {
			return dropped, err
		}
	}
	if !sawRoot {
		return dropped, fmt.Errorf("%w: updateinfo.xml: no <updates> element", ErrMalformed)
	}
	return dropped, sp.finish()
}

func attr(e xml.StartElement, name string) string {
	for _, a := range e.Attr {
		if a.Name.Local == name {
			return a.Value
		}
	}
	return ""
}
