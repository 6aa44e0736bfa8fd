package metadata

import (
	"errors"
	"strings"
	"testing"
)

func abiPkg(name, evr, arch string, provides ...string) ABIPackage {
	e, err := ParseEVR(evr)
	if err != nil {
		panic(err)
	}
	p := ABIPackage{PackageID: PackageID{Name: name, Arch: arch, Epoch: e.Epoch, Version: e.Version, Release: e.Release}}
	for _, pr := range provides {
		n, v, _ := strings.Cut(pr, " = ")
		p.Provides = append(p.Provides, Provide{Name: n, Version: v})
	}
	return p
}

func classes(fs []Finding) string {
	var out []string
	for _, f := range fs {
		out = append(out, f.Class)
	}
	return strings.Join(out, ",")
}

// checkFindings fails the test unless got has exactly the classes want
// (comma-separated, in order) and, when in is not empty, a reason holding in.
func checkFindings(t *testing.T, got []Finding, want, in string) {
	t.Helper()
	if classes(got) != want {
		t.Fatalf("classes %q, want %q (%+v)", classes(got), want, got)
	}
	if in == "" {
		return
	}
	var all []string
	for _, f := range got {
		all = append(all, f.Reason)
	}
	if !strings.Contains(strings.Join(all, "|"), in) {
		t.Fatalf("reasons %q lack %q", all, in)
	}
}

func TestCompareWithReference(t *testing.T) {
	ref := NewReference([]ABIPackage{
		abiPkg("openssl-libs", "1:3.0.7-24.el9", "x86_64", "libssl.so.3()(64bit)", "libssl.so.3(OPENSSL_3.0.0)(64bit)", "openssl-libs = 1:3.0.7-24.el9"),
		abiPkg("openssl-libs", "1:3.0.7-20.el9", "x86_64", "libssl.so.3()(64bit)"),
		abiPkg("kernel-core", "5.14.0-362.el9", "x86_64", "kernel(printk) = 0x1111", "kernel(kmalloc) = 0x2222"),
		abiPkg("bash", "5.1.8-6.el9", "x86_64"),
	})
	for _, tc := range []struct {
		name string
		pkg  ABIPackage
		want string
		in   string // a reason fragment
	}{
		{"identical rebuild", abiPkg("openssl-libs", "1:3.0.7-24.el9", "x86_64", "libssl.so.3()(64bit)", "libssl.so.3(OPENSSL_3.0.0)(64bit)"), "", ""},
		{"vendor patch, same ABI", abiPkg("openssl-libs", "1:3.0.7-24.el9.alma.1", "x86_64", "libssl.so.3()(64bit)", "libssl.so.3(OPENSSL_3.0.0)(64bit)"), "patched", ".alma.1"},
		{"version node added", abiPkg("openssl-libs", "1:3.0.7-24.el9.alma.1", "x86_64", "libssl.so.3()(64bit)", "libssl.so.3(OPENSSL_3.0.0)(64bit)", "libssl.so.3(ALMA_3.0.1)(64bit)"), "patched,abi-extended", "adds libssl.so.3(ALMA_3.0.1)(64bit)"},
		{"version node removed", abiPkg("openssl-libs", "1:3.0.7-24.el9", "x86_64", "libssl.so.3()(64bit)"), "abi-changed", "removes libssl.so.3(OPENSSL_3.0.0)(64bit)"},
		{"kernel CRC changed", abiPkg("kernel-core", "5.14.0-362.el9.rocky.0.1", "x86_64", "kernel(printk) = 0x1111", "kernel(kmalloc) = 0x9999"), "patched,abi-changed", "kernel(kmalloc) = 0x9999 (reference 0x2222)"},
		{"newer than reference", abiPkg("bash", "5.1.8-9.el9", "x86_64"), "version-differs", "5.1.8-6.el9"},
		{"older build matches an older reference build", abiPkg("openssl-libs", "1:3.0.7-20.el9", "x86_64", "libssl.so.3()(64bit)"), "", ""},
		{"not in reference", abiPkg("alma-logos", "90.4-1.el9", "noarch"), "not-in-reference", "not in the reference"},
		{"other arch not in reference", abiPkg("bash", "5.1.8-6.el9", "aarch64"), "not-in-reference", ""},
	} {
		t.Run(tc.name, func(t *testing.T) { checkFindings(t, Compare(tc.pkg, ref), tc.want, tc.in) })
	}
	// Without a reference only the vendor marker counts.
	if got := classes(Compare(abiPkg("x", "1-1.el9.alma", "noarch"), nil)); got != "patched" {
		t.Fatalf("no reference: %q", got)
	}
}

func TestVendorMarker(t *testing.T) {
	for rel, want := range map[string]string{
		"24.el9.alma.1": ".alma.1", "362.el9.rocky.0.1": ".rocky.0.1", "1.el9_2.alma": ".alma",
		"1.el9": "", "3.almalinux": "", "1.el9_3": "",
	} {
		if got := VendorMarker(rel); got != want {
			t.Errorf("VendorMarker(%q) = %q, want %q", rel, got, want)
		}
	}
	if got := StripVendorMarker("24.el9.alma.1"); got != "24.el9" {
		t.Errorf("strip: %q", got)
	}
}

func TestIsABIProvide(t *testing.T) {
	for name, want := range map[string]bool{
		"libssl.so.3()(64bit)":              true,
		"libssl.so.3(OPENSSL_3.0.0)(64bit)": true,
		"libt32.so.1":                       true, // 32-bit soname: no parentheses
		"libt32.so.1(T32_1.0)":              true,
		"ld-linux.so.2":                     true,
		"libfoo.so":                         true,
		"kernel(printk)":                    true,
		"ksym(printk)":                      true,
		"/usr/lib/libt32.so.1":              false, // a file provide
		"libt32":                            false,
		"perl(Foo::Bar)":                    false,
		"bash":                              false,
		"config(libt32)":                    false,
		"python3dist(setuptools)":           false,
		"libt32.so.1 extra":                 false,
	} {
		if got := IsABIProvide(name); got != want {
			t.Errorf("IsABIProvide(%q) = %v, want %v", name, got, want)
		}
	}
}

// staticStablelist is a kABI stablelist of a fixed set of symbols.
type staticStablelist map[string]bool

func (s staticStablelist) OnStablelist(sym string) bool { return s[sym] }

func TestCompareWithOptions(t *testing.T) {
	ref := NewReference([]ABIPackage{
		abiPkg("libt32", "1.0-1.el9", "i686", "libt32.so.1", "libt32.so.1(T32_1.0)", "libt32 = 1.0-1.el9"),
		abiPkg("glibc", "2.34-100.el9_4.4", "x86_64", "libc.so.6()(64bit)", "libc.so.6(GLIBC_2.34)(64bit)"),
		abiPkg("systemd", "252-32.el9", "x86_64", "libsystemd.so.0()(64bit)"),
		abiPkg("kernel-core", "5.14.0-427.el9", "x86_64", "kernel(printk) = 0x1111", "kernel(kmalloc) = 0x2222", "kernel(vfree) = 0x3333"),
	})
	stable := staticStablelist{"printk": true, "vfree": true}
	kernel := func(rel string, provides ...string) ABIPackage {
		return abiPkg("kernel-core", "5.14.0-"+rel, "x86_64", provides...)
	}
	for _, tc := range []struct {
		name   string
		pkg    ABIPackage
		want   string
		in     string   // a reason fragment
		breaks []string // stablelist breaks
	}{
		{"i686 soname bump", abiPkg("libt32", "2.0-1.el9", "i686", "libt32.so.2", "libt32.so.2(T32_2.0)"), "version-differs,abi-changed", "removes libt32.so.1, libt32.so.1(T32_1.0)", nil},
		{"i686 version node added", abiPkg("libt32", "1.0-1.el9.alma.1", "i686", "libt32.so.1", "libt32.so.1(T32_1.0)", "libt32.so.1(T32_1.1)"), "patched,abi-extended", "adds libt32.so.1(T32_1.1)", nil},
		{"Oracle .0.1 before the dist tag", abiPkg("glibc", "2.34-100.0.1.el9_4.4", "x86_64", "libc.so.6()(64bit)", "libc.so.6(GLIBC_2.34)(64bit)"), "patched", `".0.1"`, nil},
		{"Oracle .0.2, newer base", abiPkg("glibc", "2.34-105.0.2.el9_4", "x86_64", "libc.so.6()(64bit)", "libc.so.6(GLIBC_2.34)(64bit)"), "patched,version-differs", "2.34-105.el9_4 differs from the reference's 2.34-100.el9_4.4", nil},
		{"Hyperscale SIG tag", abiPkg("systemd", "252-32.hs.el9", "x86_64", "libsystemd.so.0()(64bit)"), "patched", `".hs"`, nil},
		{"custom marker stripped", abiPkg("systemd", "252-32.el9.ciq.3", "x86_64", "libsystemd.so.0()(64bit)"), "patched", `".ciq.3"`, nil},
		{"kernel CRC same", kernel("427.el9.alma.1", "kernel(printk) = 0x1111", "kernel(kmalloc) = 0x2222", "kernel(vfree) = 0x3333"), "patched", "", nil},
		{"kernel symbol added", kernel("427.el9", "kernel(printk) = 0x1111", "kernel(kmalloc) = 0x2222", "kernel(vfree) = 0x3333", "kernel(newsym) = 0x4444"), "abi-extended", "adds kernel(newsym)", nil},
		{"kernel CRC changed on the stablelist", kernel("427.el9", "kernel(printk) = 0x9999", "kernel(kmalloc) = 0x2222", "kernel(vfree) = 0x3333"), "abi-changed,abi-changed", "breaks the kABI stablelist (1 symbols): kernel(printk) CRC 0x1111 -> 0x9999", []string{"printk"}},
		{"kernel CRC changed off the stablelist", kernel("427.el9", "kernel(printk) = 0x1111", "kernel(kmalloc) = 0x7777", "kernel(vfree) = 0x3333"), "abi-changed", "kernel(kmalloc) = 0x7777 (reference 0x2222) [not on the kABI stablelist]", nil},
		{"kernel stablelisted symbol removed", kernel("427.el9", "kernel(printk) = 0x1111", "kernel(kmalloc) = 0x2222"), "abi-changed,abi-changed", "kernel(vfree) removed (reference CRC 0x3333)", []string{"vfree"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			markers, err := NewVendorMarkers([]string{`\.ciq\.[0-9]+`})
			if err != nil {
				t.Fatal(err)
			}
			got := CompareWith(tc.pkg, ref, CompareOptions{Markers: markers, Stablelist: stable})
			if classes(got.Findings) != tc.want {
				t.Fatalf("classes %q, want %q (%+v)", classes(got.Findings), tc.want, got.Findings)
			}
			var all []string
			for _, f := range got.Findings {
				all = append(all, f.Reason)
			}
			if !strings.Contains(strings.Join(all, "|"), tc.in) {
				t.Fatalf("reasons %q lack %q", all, tc.in)
			}
			if strings.Join(got.StablelistBreaks, ",") != strings.Join(tc.breaks, ",") {
				t.Fatalf("stablelist breaks %q, want %q", got.StablelistBreaks, tc.breaks)
			}
		})
	}
	// The plain Compare keeps working for the existing callers, with the
	// built-in markers: the Oracle build is only patched.
	if got := classes(Compare(abiPkg("glibc", "2.34-100.0.1.el9_4.4", "x86_64", "libc.so.6()(64bit)", "libc.so.6(GLIBC_2.34)(64bit)"), ref)); got != "patched" {
		t.Fatalf("Compare of the Oracle build: %q", got)
	}
}

func TestVendorMarkers(t *testing.T) {
	for rel, want := range map[string][2]string{ // release: {marker, stripped}
		"24.el9.alma.1":        {".alma.1", "24.el9"},
		"1.el9_2.alma":         {".alma", "1.el9_2"},
		"362.el9.rocky.0.1":    {".rocky.0.1", "362.el9"},
		"100.0.1.el9_4.4":      {".0.1", "100.el9_4.4"},
		"11.0.2.el8_10":        {".0.2", "11.el8_10"},
		"1.hs.el9":             {".hs", "1.el9"},
		"2.hsx.el9":            {".hsx", "2.el9"},
		"3.hs+fb.el9":          {".hs+fb", "3.el9"},
		"1.el9.centos":         {".centos", "1.el9"},
		"70.13.1.el9_0":        {"", "70.13.1.el9_0"},
		"0.1.rc1.el9":          {"", "0.1.rc1.el9"},
		"3.almalinux":          {"", "3.almalinux"},
		"100.0.1.el9.alma.2":   {".0.1.alma.2", "100.el9"},
		"1.module+el8.4.0+123": {"", "1.module+el8.4.0+123"},
	} {
		m := DefaultVendorMarkers()
		if got := m.Find(rel); got != want[0] {
			t.Errorf("Find(%q) = %q, want %q", rel, got, want[0])
		}
		if got := m.Strip(rel); got != want[1] {
			t.Errorf("Strip(%q) = %q, want %q", rel, got, want[1])
		}
	}
	for _, bad := range []string{`\.alma(`, `(a)(b)`} {
		if _, err := NewVendorMarkers([]string{bad}); !errors.Is(err, ErrBadVendorMarker) || !strings.Contains(err.Error(), bad) {
			t.Errorf("NewVendorMarkers(%q): %v, want ErrBadVendorMarker naming it", bad, err)
		}
	}
}
