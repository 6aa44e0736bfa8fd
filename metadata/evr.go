package metadata

import (
	"errors"
	"fmt"
	"strings"
)

// CompareVersions compares two version (or release) strings the way rpm's
// rpmvercmp does and returns -1, 0 or +1.
//
// The strings are split into segments of ASCII digits and segments of ASCII
// letters; every other byte separates segments and is otherwise ignored, so
// "1.0", "1_0" and "1..0" are equal. Segments are compared pairwise:
//
//   - '~' sorts before everything, even the end of the string:
//     "1.0~rc1" < "1.0".
//   - '^' sorts after the end of the string but before anything else:
//     "1.0" < "1.0^git1" < "1.0.1".
//   - Two numeric segments compare as numbers: leading zeros are ignored,
//     then the longer one is greater, then bytewise.
//   - Two alphabetic segments compare bytewise ("Z" < "a").
//   - A numeric segment is greater than an alphabetic one: "1.0.1" > "1.0.a".
//   - When one string runs out of segments, the one with segments left is
//     greater: "1.0.1" > "1.0", "1.0a" > "1.0".
func CompareVersions(a, b string) int {
	if a == b {
		return 0
	}
	i, j := 0, 0
	for i < len(a) || j < len(b) {
		i = skipSeparators(a, i)
		j = skipSeparators(b, j)

		// Tilde: sorts before everything else, including the end.
		if at(a, i) == '~' || at(b, j) == '~' {
			if at(a, i) != '~' {
				return 1
			}
			if at(b, j) != '~' {
				return -1
			}
			i++
			j++
			continue
		}

		// Caret: after the end of the string, before anything else.
		if at(a, i) == '^' || at(b, j) == '^' {
			switch {
			case i == len(a):
				return -1
			case j == len(b):
				return 1
			case a[i] != '^':
				return 1
			case b[j] != '^':
				return -1
			}
			i++
			j++
			continue
		}

		if i == len(a) || j == len(b) {
			break
		}

		// Take a segment of the type a starts with from both strings.
		isNum := isDigit(a[i])
		class := isAlpha
		if isNum {
			class = isDigit
		}
		si, sj := i, j
		for i < len(a) && class(a[i]) {
			i++
		}
		for j < len(b) && class(b[j]) {
			j++
		}
		segA, segB := a[si:i], b[sj:j]
		if segB == "" {
			// b has a segment of the other type here: numbers are
			// newer than letters.
			if isNum {
				return 1
			}
			return -1
		}
		if isNum {
			segA = strings.TrimLeft(segA, "0")
			segB = strings.TrimLeft(segB, "0")
			if len(segA) != len(segB) {
				if len(segA) > len(segB) {
					return 1
				}
				return -1
			}
		}
		if c := strings.Compare(segA, segB); c != 0 {
			return c
		}
	}
	switch {
	case i >= len(a) && j >= len(b):
		return 0
	case i >= len(a):
		return -1
	default:
		return 1
	}
}

// at returns s[i], or 0 past the end of s (rpm's NUL terminator).
func at(s string, i int) byte {
	if i < len(s) {
		return s[i]
	}
	return 0
}

// skipSeparators returns the index of the first byte at or after i that
// starts a segment or is '~' or '^'.
func skipSeparators(s string, i int) int {
	for i < len(s) && !isAlpha(s[i]) && !isDigit(s[i]) && s[i] != '~' && s[i] != '^' {
		i++
	}
	return i
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }
func isAlpha(c byte) bool { return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' }

// EVR is an rpm epoch:version-release. An empty Epoch means epoch 0; an empty
// Release means "not given" (see CompareEVR).
type EVR struct {
	Epoch   string
	Version string
	Release string
}

// String returns e as "[epoch:]version[-release]", the form ParseEVR reads.
func (e EVR) String() string {
	s := e.Version
	if e.Epoch != "" {
		s = e.Epoch + ":" + s
	}
	if e.Release != "" {
		s += "-" + e.Release
	}
	return s
}

// ParseEVR parses "[epoch:]version[-release]". The epoch, when present, is
// decimal digits; version and release are non-empty and made of the bytes
// rpm allows in them (ASCII letters, digits and "._+~^"), so a version
// cannot hold a second '-' or ':'.
func ParseEVR(s string) (EVR, error) {
	var e EVR
	if s == "" {
		return e, errors.New("empty EVR")
	}
	rest := s
	if epoch, after, ok := strings.Cut(rest, ":"); ok {
		if epoch == "" {
			return e, fmt.Errorf("EVR %q: empty epoch before ':'", s)
		}
		for k := 0; k < len(epoch); k++ {
			if !isDigit(epoch[k]) {
				return e, fmt.Errorf("EVR %q: epoch %q is not a number", s, epoch)
			}
		}
		if len(epoch) > 10 {
			return e, fmt.Errorf("EVR %q: epoch %q is too large", s, epoch)
		}
		e.Epoch, rest = epoch, after
	}
	e.Version, e.Release, _ = strings.Cut(rest, "-")
	if e.Version == "" {
		return EVR{}, fmt.Errorf("EVR %q: empty version", s)
	}
	if strings.Contains(rest, "-") && e.Release == "" {
		return EVR{}, fmt.Errorf("EVR %q: empty release after '-'", s)
	}
	for _, part := range []struct{ what, s string }{{"version", e.Version}, {"release", e.Release}} {
		for k := 0; k < len(part.s); k++ {
			if c := part.s[k]; !isAlpha(c) && !isDigit(c) && !strings.ContainsRune("._+~^", rune(c)) {
				return EVR{}, fmt.Errorf("EVR %q: %s %q contains %q", s, part.what, part.s, rune(c))
			}
		}
	}
	return e, nil
}

// CompareEVR compares two EVRs and returns -1, 0 or +1, following the rule
// rpm applies when it matches a dependency against a package (rpmdsCompare):
// a missing epoch counts as "0" and epochs compare with CompareVersions (so
// "01" equals "1"); then the versions compare; then the releases, but only
// when both are given. So "1.0" equals "1.0-5", and a rule "evr: >= 1.0"
// matches every release of 1.0 as `Requires: foo >= 1.0` does, while
// "evr: < 1.0" matches none of them.
//
// rpm's total ordering of EVR strings (rpm.vercmp, rpmverCmp) differs only
// there: it orders "1.0" before "1.0-5". Rules describe ranges, as
// dependencies do, so they take the dependency rule. CompareEVR is reflexive
// and antisymmetric; like rpm's rule it is not transitive across EVRs with
// and without a release.
func CompareEVR(a, b EVR) int {
	ea, eb := a.Epoch, b.Epoch
	if ea == "" {
		ea = "0"
	}
	if eb == "" {
		eb = "0"
	}
	if c := CompareVersions(ea, eb); c != 0 {
		return c
	}
	if c := CompareVersions(a.Version, b.Version); c != 0 {
		return c
	}
	if a.Release == "" || b.Release == "" {
		return 0
	}
	return CompareVersions(a.Release, b.Release)
}
