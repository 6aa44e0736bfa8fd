package metadata

import (
	"fmt"
	"regexp"
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

// vendorMarker matches the release tag a rebuild adds for its own patches:
// ".alma.1", ".rocky.0.1", ".alma" and the like.
var vendorMarker = regexp.MustCompile(`\.(alma|rocky|circle|navy|centos)\b(\.[0-9]+)*`)

// VendorMarker returns the vendor marker in a release ("" for none).
func VendorMarker(release string) string { return vendorMarker.FindString(release) }

// StripVendorMarker removes the vendor marker from a release.
func StripVendorMarker(release string) string { return vendorMarker.ReplaceAllString(release, "") }

// IsABIProvide says whether a provide describes exported ABI: shared
// library sonames and their symbol version nodes ("libfoo.so.1()(64bit)",
// "libfoo.so.1(FOO_1.2)(64bit)") and kernel symbols ("kernel(sym)",
// "ksym(sym)") whose version is the symbol's CRC.
func IsABIProvide(name string) bool {
	return strings.Contains(name, ".so") && strings.Contains(name, "(") ||
		strings.HasPrefix(name, "kernel(") || strings.HasPrefix(name, "ksym(")
}

// Reference is a reference repo's packages, indexed for comparison.
type Reference struct {
	byNameArch map[string][]ABIPackage
}

// NewReference indexes the reference repo's packages.
func NewReference(pkgs []ABIPackage) *Reference {
	r := &Reference{byNameArch: map[string][]ABIPackage{}}
	for _, p := range pkgs {
		k := p.Name + "." + p.Arch
		r.byNameArch[k] = append(r.byNameArch[k], p)
	}
	for _, list := range r.byNameArch {
		sort.Slice(list, func(i, j int) bool { return CompareEVR(list[i].PackageID.EVR(), list[j].PackageID.EVR()) > 0 })
	}
	return r
}

// Compare returns the findings of comparing one package with the
// reference (ref may be nil: then only the vendor marker is checked).
func Compare(p ABIPackage, ref *Reference) []Finding {
	var out []Finding
	if m := VendorMarker(p.Release); m != "" {
		out = append(out, Finding{Class: ClassPatched, Reason: fmt.Sprintf("release %s carries the vendor marker %q", p.Release, m)})
	}
	if ref == nil {
		return out
	}
	builds := ref.byNameArch[p.Name+"."+p.Arch]
	if len(builds) == 0 {
		return append(out, Finding{Class: ClassNotInReference, Reason: fmt.Sprintf("%s.%s is not in the reference repo", p.Name, p.Arch)})
	}
	stripped := p.PackageID.EVR()
	stripped.Release = StripVendorMarker(stripped.Release)
	same := -1
	for i, b := range builds {
		if CompareEVR(b.PackageID.EVR(), stripped) == 0 {
			same = i
			break
		}
	}
	base := builds[0] // newest reference build
	if same < 0 {
		out = append(out, Finding{Class: ClassVersionDiffers, Reason: fmt.Sprintf("%s differs from the reference's %s", stripped, base.PackageID.EVR())})
	} else {
		base = builds[same]
	}
	return append(out, compareABI(p, base)...)
}

// compareABI compares the exported-ABI provides of a package with a
// reference build: anything removed or a kernel symbol whose CRC changed
// is abi-changed; only additions are abi-extended.
func compareABI(p, ref ABIPackage) []Finding {
	have, want := abiSet(p.Provides), abiSet(ref.Provides)
	var removed, changed, added []string
	for name, v := range want {
		got, ok := have[name]
		switch {
		case !ok:
			removed = append(removed, name)
		case got != v:
			changed = append(changed, fmt.Sprintf("%s = %s (reference %s)", name, got, v))
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
	refName := ref.Name + "-" + ref.PackageID.EVR().String()
	switch {
	case len(removed) > 0 || len(changed) > 0:
		var parts []string
		if len(removed) > 0 {
			parts = append(parts, "removes "+summarize(removed))
		}
		if len(changed) > 0 {
			parts = append(parts, "changes "+summarize(changed))
		}
		return []Finding{{Class: ClassABIChanged, Reason: fmt.Sprintf("compared with %s: %s", refName, strings.Join(parts, "; "))}}
	case len(added) > 0:
		return []Finding{{Class: ClassABIExtended, Reason: fmt.Sprintf("compared with %s: adds %s", refName, summarize(added))}}
	}
	return nil
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
