package abi

import (
	"testing"

	"github.com/dnfproxy/dnfproxy/metadata"
)

func TestPairs(t *testing.T) {
	pkg := func(name, ver, rel, arch, sum string, provides ...string) metadata.PackageDeps {
		p := metadata.PackageDeps{Package: metadata.Package{Name: name, Version: ver, Release: rel, Arch: arch,
			Checksum: metadata.Checksum{Type: "sha256", Value: sum}, Href: "Packages/" + name + ".rpm"}}
		for _, pr := range provides {
			p.ABIProvides = append(p.ABIProvides, metadata.Provide{Name: pr})
		}
		return p
	}
	ref := []metadata.PackageDeps{
		pkg("libfoo", "1.0", "1.el9", "x86_64", "aa", "libfoo.so.1()(64bit)"),
		pkg("libfoo", "1.0", "3.el9", "x86_64", "ab", "libfoo.so.1()(64bit)"),
		pkg("bash", "5.1", "1.el9", "x86_64", "b0"),
		pkg("same", "1", "1.el9", "x86_64", "cc", "libsame.so.1()(64bit)"),
		pkg("kernel-core", "5.14", "1.el9", "x86_64", "k0", "kernel(printk)"),
		pkg("lib.a", "1", "1.el9", "x86_64", "z0", "liba.so.1()(64bit)"),
	}
	cur := []metadata.PackageDeps{
		pkg("libfoo", "1.0", "1.el9.alma.1", "x86_64", "ba", "libfoo.so.1()(64bit)"), // matched with 1.el9, not the newest
		pkg("libfoo", "1.0", "9.el9", "x86_64", "bb"),                                // newest reference build; the old side has the soname
		pkg("bash", "5.1", "1.el9", "x86_64", "b1"),                                  // no sonames on either side
		pkg("same", "1", "1.el9", "x86_64", "cc", "libsame.so.1()(64bit)"),           // the very same file
		pkg("libnew", "1", "1.el9", "x86_64", "dd", "libnew.so.1()(64bit)"),          // not in the reference
		pkg("libfoo", "1.0", "1.el9", "aarch64", "ee", "libfoo.so.1()(64bit)"),       // other arch
		pkg("kernel-core", "5.14", "1.el9", "x86_64", "k1", "kernel(printk)"),        // kernel symbols are metadata's
		pkg("lib", "1", "1.el9", "a.x86_64", "z1", "liba.so.1()(64bit)"),             // not lib.a of arch x86_64
	}
	got := Pairs(ref, cur, nil)
	want := []string{"libfoo-1.0-1.el9.alma.1.x86_64 <- libfoo-1.0-1.el9.x86_64", "libfoo-1.0-9.el9.x86_64 <- libfoo-1.0-3.el9.x86_64"}
	if len(got) != len(want) {
		t.Fatalf("pairs %+v", got)
	}
	for i, p := range got {
		if s := p.New.NEVRA() + " <- " + p.Old.NEVRA(); s != want[i] {
			t.Errorf("pair %d: %s, want %s", i, s, want[i])
		}
		if p.Old.Checksum.Value == "" || p.New.Href == "" {
			t.Errorf("pair %d lacks checksum or href: %+v", i, p)
		}
	}
}
