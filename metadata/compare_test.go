package metadata

import (
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
		t.Run(tc.name, func(t *testing.T) {
			got := Compare(tc.pkg, ref)
			if classes(got) != tc.want {
				t.Fatalf("classes %q, want %q (%+v)", classes(got), tc.want, got)
			}
			if tc.in != "" {
				var all []string
				for _, f := range got {
					all = append(all, f.Reason)
				}
				if !strings.Contains(strings.Join(all, "|"), tc.in) {
					t.Fatalf("reasons %q lack %q", all, tc.in)
				}
			}
		})
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
