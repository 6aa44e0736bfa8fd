package metadata

import (
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"
)

// ErrBadVendorMarker is wrapped by NewVendorMarkers for a pattern that is
// not a valid regular expression.
var ErrBadVendorMarker = errors.New("bad vendor marker")

// DefaultVendorMarkerPatterns are the release markers rebuilds add for their
// own changes. A pattern with a capturing group marks only the group (the
// rest of the match is context); one without marks its whole match.
var DefaultVendorMarkerPatterns = []string{
	// AlmaLinux ".alma", ".alma.1"; Rocky ".rocky.0.1"; and the other
	// rebuilds and CentOS's own ".centos" suffix.
	`\.(?:alma|rocky|circle|navy|centos)\b(?:\.[0-9]+)*`,
	// Oracle Linux puts ".0.N" before the dist tag: glibc-2.34-100.0.1.el9_4.4.
	`(\.0\.[0-9]+)\.el[0-9]+`,
	// CentOS SIG tags before the dist tag: Hyperscale ".hs", ".hsx", ".hsk"
	// (with "+variant"), e.g. systemd-253.4-1.hs.el9.
	`(\.(?:hs|hsx|hsk)(?:\+[A-Za-z0-9]+)?)\.el[0-9]+`,
}

// VendorMarkers finds and strips vendor release markers. The zero value is
// not usable; build one with NewVendorMarkers or DefaultVendorMarkers.
type VendorMarkers struct {
	res []*regexp.Regexp
}

var defaultMarkers = mustMarkers(nil)

func mustMarkers(extra []string) *VendorMarkers {
	m, err := NewVendorMarkers(extra)
	if err != nil {
		panic(err)
	}
	return m
}

// DefaultVendorMarkers returns the built-in markers.
func DefaultVendorMarkers() *VendorMarkers { return defaultMarkers }

// NewVendorMarkers returns the built-in markers followed by extra
// patterns (regular expressions, the compat.vendor_markers setting). An
// invalid pattern is an error wrapping ErrBadVendorMarker that names it.
func NewVendorMarkers(extra []string) (*VendorMarkers, error) {
	m := &VendorMarkers{}
	for _, p := range append(append([]string(nil), DefaultVendorMarkerPatterns...), extra...) {
		re, err := regexp.Compile(p)
		if err != nil {
			return nil, fmt.Errorf("%w %q: %v", ErrBadVendorMarker, p, err)
		}
		if re.NumSubexp() > 1 {
			return nil, fmt.Errorf("%w %q: at most one capturing group (the marker) is allowed; use (?:...) for others", ErrBadVendorMarker, p)
		}
		m.res = append(m.res, re)
	}
	return m, nil
}

// spans returns the non-overlapping [start,end) byte ranges of the markers
// in release, in order.
func (m *VendorMarkers) spans(release string) [][2]int {
	var out [][2]int
	for _, re := range m.res {
		for _, loc := range re.FindAllStringSubmatchIndex(release, -1) {
			s, e := loc[0], loc[1]
			if len(loc) >= 4 && loc[2] >= 0 {
				s, e = loc[2], loc[3]
			}
			if e > s {
				out = append(out, [2]int{s, e})
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i][0] < out[j][0] })
	kept := out[:0]
	for _, sp := range out {
		if len(kept) > 0 && sp[0] < kept[len(kept)-1][1] {
			continue // overlaps an earlier marker
		}
		kept = append(kept, sp)
	}
	return kept
}

// Find returns the markers in release joined in order ("" for none).
func (m *VendorMarkers) Find(release string) string {
	var b strings.Builder
	for _, sp := range m.spans(release) {
		b.WriteString(release[sp[0]:sp[1]])
	}
	return b.String()
}

// Strip removes every marker from release.
func (m *VendorMarkers) Strip(release string) string {
	var b strings.Builder
	last := 0
	for _, sp := range m.spans(release) {
		b.WriteString(release[last:sp[0]])
		last = sp[1]
	}
	b.WriteString(release[last:])
	return b.String()
}

// VendorMarker returns the built-in vendor markers in a release ("" for none).
func VendorMarker(release string) string { return defaultMarkers.Find(release) }

// StripVendorMarker removes the built-in vendor markers from a release.
func StripVendorMarker(release string) string { return defaultMarkers.Strip(release) }
