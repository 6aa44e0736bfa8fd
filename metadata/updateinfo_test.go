package metadata

import (
	"bytes"
	"errors"
	"os"
	"strings"
	"testing"
)

func TestFilterUpdateinfo(t *testing.T) {
	in, err := os.ReadFile("testdata/updateinfo/updateinfo.xml")
	if err != nil {
		t.Fatal(err)
	}
	drop := func(p PackageID) bool { return p.Name == "dnfpt-lib" && strings.Contains(p.Release, ".alma.") }
	var out bytes.Buffer
	n, err := FilterUpdateinfo(bytes.NewReader(in), &out, drop)
	if err != nil {
		t.Fatal(err)
	}
	if n != 2 {
		t.Fatalf("dropped %d entries, want 2", n)
	}
	got := out.String()
	if strings.Contains(got, `name="dnfpt-lib"`) || strings.Contains(got, "dnfpt-lib-1.0-1.el9.alma.1.noarch.rpm") {
		t.Fatalf("filtered package still listed:\n%s", got)
	}
	for _, keep := range []string{
		`<package name="dnfpt-app" version="1.0" release="1.el9" epoch="0" arch="noarch" src="dnfpt-app-1.0-1.el9.src.rpm">`,
		"<description>Fixes &amp; more &lt;stuff&gt;.</description>",
		"<id>ALBA-2024:0002</id>",
		`<?xml version="1.0" encoding="UTF-8"?>`,
	} {
		if !strings.Contains(got, keep) {
			t.Errorf("output lost %q", keep)
		}
	}
	// Only the dropped elements differ: removing them from the input by
	// hand gives the output exactly.
	want := string(in)
	for _, el := range dropElements(t, want, `<package name="dnfpt-lib"`) {
		want = strings.Replace(want, el, "", 1)
	}
	if got != want {
		t.Fatalf("output differs beyond the dropped elements:\n%s", got)
	}

	// Keep-all is the identity.
	out.Reset()
	if n, err := FilterUpdateinfo(bytes.NewReader(in), &out, func(PackageID) bool { return false }); err != nil || n != 0 || !bytes.Equal(out.Bytes(), in) {
		t.Fatalf("keep-all: n=%d err=%v identical=%v", n, err, bytes.Equal(out.Bytes(), in))
	}
}

// dropElements finds the whole elements starting with prefix.
func dropElements(t *testing.T, doc, prefix string) []string {
	var els []string
	for rest := doc; ; {
		i := strings.Index(rest, prefix)
		if i < 0 {
			return els
		}
		rest = rest[i:]
		end := strings.Index(rest, "</package>") + len("</package>")
		if self := strings.Index(rest, "/>"); self >= 0 && self < strings.Index(rest, ">")+1 {
			end = self + 2
		}
		els = append(els, rest[:end])
		rest = rest[end:]
	}
}

func TestFilterUpdateinfoRejectsMalformed(t *testing.T) {
	for _, in := range []string{"", "<notupdates/>", "<updates><update>", "<updates></updatez>"} {
		if _, err := FilterUpdateinfo(strings.NewReader(in), &bytes.Buffer{}, func(PackageID) bool { return true }); !errors.Is(err, ErrMalformed) {
			t.Errorf("%q: err %v, want ErrMalformed", in, err)
		}
	}
}

func TestModularPackages(t *testing.T) {
	f, err := os.Open("testdata/updateinfo/modules.yaml")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	got, err := ModularPackages(f)
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []PackageID{
		{Name: "dnfpt-lib", Epoch: "0", Version: "1.0", Release: "1.module_el9+1+abc", Arch: "noarch"},
		{Name: "dnfpt-app", Version: "1.0", Release: "1.module_el9+1+abc", Arch: "noarch"},
	} {
		if !got[ModularKey(id)] {
			t.Errorf("%s not modular; have %v", ModularKey(id), got)
		}
	}
	if len(got) != 2 {
		t.Errorf("%d modular packages, want 2: %v", len(got), got)
	}
	if _, err := ModularPackages(strings.NewReader("document: modulemd\ndata: [")); !errors.Is(err, ErrMalformed) {
		t.Errorf("bad YAML: %v", err)
	}
}
