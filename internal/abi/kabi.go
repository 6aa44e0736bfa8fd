package abi

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"path"
	"regexp"
	"sort"
	"strings"

	"github.com/dnfproxy/dnfproxy/metadata"
)

// ErrBadStablelist is wrapped by ParseStablelist for malformed content.
var ErrBadStablelist = errors.New("bad kABI stablelist")

// Stablelist is the set of kernel symbols RHEL keeps stable for kernel
// modules, per architecture (kernel-abi-stablelists ships
// /usr/lib/modules/kabi-rhelNM/kabi_stablelist_<arch>; RHEL 7 and 8 named
// them kabi_whitelist_<arch>).
type Stablelist struct {
	byArch map[string]map[string]bool
}

// section is a stablelist section header: "[rhel9_x86_64_stablelist]".
var section = regexp.MustCompile(`^\[rhel[0-9]*_(.+)_(?:stablelist|whitelist)\]$`)

// stablelistPath says whether a package file is a kABI stablelist.
func stablelistPath(p string) bool {
	dir, file := path.Split(p)
	if !strings.HasPrefix(file, "kabi_stablelist_") && !strings.HasPrefix(file, "kabi_whitelist_") {
		return false
	}
	dir = strings.TrimSuffix(dir, "/")
	return strings.HasPrefix(path.Base(dir), "kabi-") &&
		(strings.HasPrefix(dir, "/usr/lib/modules/") || strings.HasPrefix(dir, "/lib/modules/"))
}

// ParseStablelist reads one stablelist file: sections "[rhelN_<arch>_stablelist]"
// each followed by one symbol a line (indented by a tab). Blank lines and
// lines starting with '#' are ignored. A symbol outside a section or a line
// that is not one symbol is an error wrapping ErrBadStablelist.
func ParseStablelist(r io.Reader) (*Stablelist, error) {
	s := &Stablelist{byArch: map[string]map[string]bool{}}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 4096), 64<<10)
	var cur map[string]bool
	for line := 1; sc.Scan(); line++ {
		text := strings.TrimSpace(sc.Text())
		switch {
		case text == "" || strings.HasPrefix(text, "#"):
		case strings.HasPrefix(text, "["):
			m := section.FindStringSubmatch(text)
			if m == nil {
				return nil, fmt.Errorf("%w: line %d: section %q is not [rhelN_<arch>_stablelist]", ErrBadStablelist, line, text)
			}
			if s.byArch[m[1]] == nil {
				s.byArch[m[1]] = map[string]bool{}
			}
			cur = s.byArch[m[1]]
		case cur == nil:
			return nil, fmt.Errorf("%w: line %d: symbol %q before any section", ErrBadStablelist, line, text)
		case strings.ContainsAny(text, " \t[]()"):
			return nil, fmt.Errorf("%w: line %d: %q is not a symbol name", ErrBadStablelist, line, text)
		default:
			cur[text] = true
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadStablelist, err)
	}
	return s, nil
}

func (s *Stablelist) merge(o *Stablelist) {
	if s.byArch == nil {
		s.byArch = map[string]map[string]bool{}
	}
	for arch, syms := range o.byArch {
		if s.byArch[arch] == nil {
			s.byArch[arch] = map[string]bool{}
		}
		for sym := range syms {
			s.byArch[arch][sym] = true
		}
	}
}

// Arches returns the architectures the stablelist covers, sorted.
func (s *Stablelist) Arches() []string {
	var out []string
	for a := range s.byArch {
		out = append(out, a)
	}
	sort.Strings(out)
	return out
}

// Len returns the number of symbols stablelisted for arch.
func (s *Stablelist) Len(arch string) int { return len(s.byArch[arch]) }

// Contains says whether sym is stablelisted for arch.
func (s *Stablelist) Contains(arch, sym string) bool { return s.byArch[arch][sym] }

// ForArch returns the stablelist of one architecture in the form
// metadata.CompareOptions takes, or nil when the arch is not covered (so a
// comparison says nothing about the stablelist rather than "not on it").
func (s *Stablelist) ForArch(arch string) metadata.KernelStablelist {
	if s == nil || s.byArch[arch] == nil {
		return nil
	}
	return ArchStablelist(s.byArch[arch])
}

// ArchStablelist is one architecture's stablelist; it implements
// metadata.KernelStablelist.
type ArchStablelist map[string]bool

// OnStablelist says whether sym is on the list.
func (a ArchStablelist) OnStablelist(sym string) bool { return a[sym] }
