package metadata

import (
	"fmt"
	"runtime"
	"testing"

	"github.com/dnfproxy/dnfproxy/internal/testenv"
)

// TestReferenceBuilds: a package is compared with the builds of its own
// name and arch, the newest when none has its EVR, whatever the order the
// reference listed them in; a name with a dot does not meet a shorter
// name with a dotted arch (the map it replaced keyed both "foo.bar.x86_64").
func TestReferenceBuilds(t *testing.T) {
	ref := NewReference([]ABIPackage{
		abiPkg("foo", "1.0-3.el9", "x86_64", "libfoo.so.1()(64bit)"),
		abiPkg("foo", "1.0-10.el9", "x86_64", "libfoo.so.2()(64bit)"),
		abiPkg("zlib", "1.2-1.el9", "x86_64"),
		abiPkg("foo", "1.0-5.el9", "x86_64", "libfoo.so.1()(64bit)"),
		abiPkg("foo", "1.0-1.el9", "i686"),
		abiPkg("foo.bar", "2-1.el9", "x86_64"),
		abiPkg("a", "1-1.el9", "noarch"),
	})
	for _, tc := range []struct {
		name string
		pkg  ABIPackage
		want string
		in   string
	}{
		{"newest build when none matches", abiPkg("foo", "1.0-11.el9", "x86_64", "libfoo.so.2()(64bit)"), "version-differs", "reference's 1.0-10.el9"},
		{"the build with the same EVR", abiPkg("foo", "1.0-5.el9", "x86_64", "libfoo.so.1()(64bit)"), "", ""},
		{"the other arch's builds", abiPkg("foo", "1.0-1.el9", "i686"), "", ""},
		{"an arch the reference lacks", abiPkg("foo", "1.0-10.el9", "aarch64"), "not-in-reference", ""},
		{"a dotted name is its own", abiPkg("foo", "2-1.el9", "bar.x86_64"), "not-in-reference", ""},
		{"first of the slice", abiPkg("a", "1-1.el9", "noarch"), "", ""},
		{"last of the slice", abiPkg("zlib", "1.2-1.el9", "x86_64"), "", ""},
		{"before the first", abiPkg("0ad", "1-1.el9", "x86_64"), "not-in-reference", ""},
		{"after the last", abiPkg("zzz", "1-1.el9", "x86_64"), "not-in-reference", ""},
	} {
		t.Run(tc.name, func(t *testing.T) { checkFindings(t, Compare(tc.pkg, ref), tc.want, tc.in) })
	}
	if got := classes(Compare(abiPkg("x", "1-1", "noarch"), NewReference(nil))); got != "not-in-reference" {
		t.Errorf("empty reference: %q", got)
	}
}

// TestReferenceMemory: the index a Reference adds over its packages is
// at most their slice (104 bytes a package), however many builds a name
// has. The map of name.arch to slices of copies it replaced added 166
// bytes a package here (and 7 MB of a proxy's live heap while it built
// the annotate view of a 30,000-package repo against its reference).
func TestReferenceMemory(t *testing.T) {
	const n = 30000
	pkgs := make([]ABIPackage, n)
	for i := range pkgs {
		pkgs[i] = ABIPackage{PackageID: PackageID{
			Name: fmt.Sprintf("package-%d", i/2), Arch: "x86_64", Epoch: "0",
			Version: fmt.Sprintf("1.%d", i%7), Release: fmt.Sprintf("%d.el9", i%3),
		}}
		if i%4 == 0 {
			pkgs[i].Provides = []Provide{{Name: fmt.Sprintf("libp%d.so.1()(64bit)", i)}}
		}
	}
	before := testenv.HeapAfterGC()
	ref := NewReference(pkgs)
	held := int(testenv.HeapAfterGC() - before)
	runtime.KeepAlive(pkgs)
	t.Logf("Reference of %d packages adds %d bytes (%d a package)", n, held, held/n)
	if held > 110*n {
		t.Errorf("Reference of %d packages adds %d bytes (%d a package), want at most 110 a package", n, held, held/n)
	}
	if got := classes(Compare(pkgs[n/2], ref)); got != "" {
		t.Errorf("a package of the reference compared with it: %q", got)
	}
}
