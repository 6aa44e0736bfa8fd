package metadata

import (
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"
)

// Provide is one rpm provide: a name and, for versioned provides such as
// "kernel(symbol) = 0x1a2b3c4d", its version.
type Provide struct {
	Name    string
	Version string
}

// ABIPackage is what the reference comparison needs of a package.
type ABIPackage struct {
	PackageID
	Provides []Provide
}

// IsABIProvide says whether a provide describes exported ABI: shared
// library sonames and their symbol version nodes, in the 64-bit form
// ("libfoo.so.1()(64bit)", "libfoo.so.1(FOO_1.2)(64bit)") and the 32-bit
// form rpm writes without parentheses ("libfoo.so.1", "libfoo.so.1(FOO_1.2)"),
// and kernel symbols ("kernel(sym)", "ksym(sym)") whose version is the
// symbol's CRC.
func IsABIProvide(name string) bool {
	if strings.HasPrefix(name, "kernel(") || strings.HasPrefix(name, "ksym(") {
		return true
	}
	if strings.HasPrefix(name, "/") || !strings.Contains(name, ".so") {
		return false
	}
	if strings.Contains(name, "(") {
		return true
	}
	return bareSoname.MatchString(name)
}

// bareSoname is a 32-bit soname provide: "libt32.so.1", "ld-linux.so.2".
var bareSoname = regexp.MustCompile(`^[A-Za-z0-9_.+-]+\.so(\.[A-Za-z0-9_+-]+)*$`)

// KernelStablelist says whether a kernel symbol is on the kABI stablelist
// of the reference (RHEL's kernel-abi-stablelists).
type KernelStablelist interface {
	OnStablelist(symbol string) bool
}

// CompareOptions are the settings of CompareWith. The zero value uses the
// built-in vendor markers and no kABI stablelist.
type CompareOptions struct {
	Markers    *VendorMarkers   // nil: DefaultVendorMarkers
	Stablelist KernelStablelist // nil: stablelist unknown
}

// Comparison is the result of CompareWith.
type Comparison struct {
	Findings []Finding
	// StablelistBreaks are the kernel symbols on the kABI stablelist whose
	// CRC changed or that are gone, sorted (only with a Stablelist).
	StablelistBreaks []string
}

// Reference is a reference repo's packages, indexed for comparison: one
// slice sorted by name and arch, each name.arch's builds newest first, so
// the builds of a package are a subslice found by binary search. A proxy
// keeps the Reference of each reference repo it compares with; a map of
// name.arch to slices of copies took more than twice the memory.
type Reference struct {
	pkgs []ABIPackage
}

// NewReference indexes the reference repo's packages. It keeps a copy of
// pkgs (the slice, not the strings), so the caller's slice may go.
func NewReference(pkgs []ABIPackage) *Reference {
	sorted := slices.Clone(pkgs)
	slices.SortStableFunc(sorted, func(a, b ABIPackage) int {
		if c := cmpNameArch(a.PackageID, b.Name, b.Arch); c != 0 {
			return c
		}
		return CompareEVR(b.PackageID.EVR(), a.PackageID.EVR()) // newest first
	})
	return &Reference{pkgs: sorted}
}

func cmpNameArch(p PackageID, name, arch string) int {
	if c := strings.Compare(p.Name, name); c != 0 {
		return c
	}
	return strings.Compare(p.Arch, arch)
}

// builds returns the reference's builds of name.arch, newest first.
func (r *Reference) builds(name, arch string) []ABIPackage {
	i, found := slices.BinarySearchFunc(r.pkgs, 0, func(p ABIPackage, _ int) int { return cmpNameArch(p.PackageID, name, arch) })
	if !found {
		return nil
	}
	j := i + 1
	for j < len(r.pkgs) && r.pkgs[j].Name == name && r.pkgs[j].Arch == arch {
		j++
	}
	return r.pkgs[i:j:j]
}

// Compare returns the findings of comparing one package with the
// reference (ref may be nil: then only the vendor marker is checked), with
// the built-in vendor markers.
func Compare(p ABIPackage, ref *Reference) []Finding {
	return CompareWith(p, ref, CompareOptions{}).Findings
}

// CompareWith compares one package with the reference like Compare, with
// the given vendor markers and kABI stablelist.
func CompareWith(p ABIPackage, ref *Reference, o CompareOptions) Comparison {
	markers := o.Markers
	if markers == nil {
		markers = defaultMarkers
	}
	var c Comparison
	if m := markers.Find(p.Release); m != "" {
		c.Findings = append(c.Findings, Finding{Class: ClassPatched, Reason: fmt.Sprintf("release %s carries the vendor marker %q", p.Release, m)})
	}
	if ref == nil {
		return c
	}
	builds := ref.builds(p.Name, p.Arch)
	if len(builds) == 0 {
		c.Findings = append(c.Findings, Finding{Class: ClassNotInReference, Reason: fmt.Sprintf("%s.%s is not in the reference repo", p.Name, p.Arch)})
		return c
	}
	base, same := MatchReference(p.PackageID, builds, markers)
	if !same {
		stripped := p.PackageID.EVR()
		stripped.Release = markers.Strip(stripped.Release)
		c.Findings = append(c.Findings, Finding{Class: ClassVersionDiffers, Reason: fmt.Sprintf("%s differs from the reference's %s", stripped, base.PackageID.EVR())})
	}
	fs, breaks := compareABI(p, base, o.Stablelist)
	c.Findings = append(c.Findings, fs...)
	c.StablelistBreaks = breaks
	return c
}

// MatchReference picks the reference build a package is compared with from
// builds (newest first, not empty): the one whose EVR equals the package's
// once the vendor markers are stripped (same is true), or else the newest.
// markers nil means the built-in ones.
func MatchReference(p PackageID, builds []ABIPackage, markers *VendorMarkers) (base ABIPackage, same bool) {
	if markers == nil {
		markers = defaultMarkers
	}
	stripped := p.EVR()
	stripped.Release = markers.Strip(stripped.Release)
	for _, b := range builds {
		if CompareEVR(b.PackageID.EVR(), stripped) == 0 {
			return b, true
		}
	}
	return builds[0], false
}

// compareABI compares the exported-ABI provides of a package with a
// reference build: anything removed or a kernel symbol whose CRC changed
// is abi-changed; only additions are abi-extended. With a stablelist, the
// kernel symbols on it that changed or went away are returned as breaks and
// get a finding of their own, listed first.
func compareABI(p, ref ABIPackage, sl KernelStablelist) ([]Finding, []string) {
	have, want := abiSet(p.Provides), abiSet(ref.Provides)
	var removed, changed, added, breaks, breakText []string
	for name, v := range want {
		got, ok := have[name]
		if !ok {
			removed = append(removed, name)
		} else if got != v {
			changed = append(changed, fmt.Sprintf("%s = %s (reference %s)%s", name, got, v, stablelistNote(sl, name)))
		} else {
			continue
		}
		if sym, isKernel := kernelSymbol(name); isKernel && sl != nil && sl.OnStablelist(sym) {
			breaks = append(breaks, sym)
			if ok {
				breakText = append(breakText, fmt.Sprintf("%s CRC %s -> %s", name, v, got))
			} else {
				breakText = append(breakText, fmt.Sprintf("%s removed (reference CRC %s)", name, v))
			}
		}
	}
	for name := range have {
		if _, ok := want[name]; !ok {
			added = append(added, name)
		}
	}
	sort.Strings(removed)
	sort.Strings(changed)
	sort.Strings(added)
	sort.Strings(breaks)
	sort.Strings(breakText)
	refName := ref.Name + "-" + ref.PackageID.EVR().String()
	var out []Finding
	if len(breaks) > 0 {
		out = append(out, Finding{Class: ClassABIChanged, Reason: fmt.Sprintf("compared with %s: breaks the kABI stablelist (%d symbols): %s", refName, len(breaks), summarize(breakText))})
	}
	switch {
	case len(removed) > 0 || len(changed) > 0:
		var parts []string
		if len(removed) > 0 {
			parts = append(parts, "removes "+summarize(removed))
		}
		if len(changed) > 0 {
			parts = append(parts, "changes "+summarize(changed))
		}
		out = append(out, Finding{Class: ClassABIChanged, Reason: fmt.Sprintf("compared with %s: %s", refName, strings.Join(parts, "; "))})
	case len(added) > 0:
		out = append(out, Finding{Class: ClassABIExtended, Reason: fmt.Sprintf("compared with %s: adds %s", refName, summarize(added))})
	}
	return out, breaks
}

// kernelSymbol returns sym of "kernel(sym)" or "ksym(sym)".
func kernelSymbol(provide string) (string, bool) {
	for _, prefix := range []string{"kernel(", "ksym("} {
		if rest, ok := strings.CutPrefix(provide, prefix); ok && strings.HasSuffix(rest, ")") {
			return strings.TrimSuffix(rest, ")"), true
		}
	}
	return "", false
}

func stablelistNote(sl KernelStablelist, provide string) string {
	sym, ok := kernelSymbol(provide)
	if !ok || sl == nil {
		return ""
	}
	if sl.OnStablelist(sym) {
		return " [on the kABI stablelist]"
	}
	return " [not on the kABI stablelist]"
}

func abiSet(ps []Provide) map[string]string {
	m := map[string]string{}
	for _, p := range ps {
		if IsABIProvide(p.Name) {
			m[p.Name] = p.Version
		}
	}
	return m
}

// summarize lists up to three items and counts the rest.
func summarize(items []string) string {
	if len(items) <= 3 {
		return strings.Join(items, ", ")
	}
	return fmt.Sprintf("%s and %d more", strings.Join(items[:3], ", "), len(items)-3)
}
