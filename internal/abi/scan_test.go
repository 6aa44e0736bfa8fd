package abi

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestScanLimits: spooling to a temporary file gives what reading into
// memory gives; an ELF file over the cap is skipped, listed, and not taken
// for a removed library.
func TestScanLimits(t *testing.T) {
	dir := generatedCorpus(t)
	scan := func(id string, lim Limits) *PackageABI {
		t.Helper()
		f, err := os.Open(filepath.Join(dir, id+".rpm"))
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		p, err := ScanRPM(t.Context(), f, lim)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	inMemory := scan("ref-two", Limits{})
	tmp := t.TempDir()
	spooled := scan("ref-two", Limits{MemELFSize: 1024, TempDir: tmp})
	if len(inMemory.Libraries) != 2 || len(Diff(inMemory, spooled)) != 0 {
		t.Fatalf("spooled scan differs: %+v vs %+v", inMemory.Libraries, spooled.Libraries)
	}
	if left, _ := os.ReadDir(tmp); len(left) != 0 {
		t.Fatalf("spool files left behind: %v", left)
	}
	capped := scan("ref-two", Limits{MaxELFSize: 1024})
	if len(capped.Libraries) != 0 || strings.Join(capped.Skipped, ",") != "/usr/lib64/libtwo_a.so.1,/usr/lib64/libtwo_b.so.1" {
		t.Fatalf("over the cap: libraries %+v skipped %v", capped.Libraries, capped.Skipped)
	}
	if fs := Diff(inMemory, capped); len(fs) != 0 {
		t.Fatalf("a skipped library was reported: %+v", fs)
	}
	if inMemory.PayloadBytes <= 0 || inMemory.ID.NEVRA() != "libtwo-1.0-1.el9.x86_64" {
		t.Fatalf("header or payload accounting: %+v", inMemory)
	}
}

// TestScanBadInput: what is not a whole RPM is an error wrapping
// ErrBadPackage, and a cancelled context stops the scan.
func TestScanBadInput(t *testing.T) {
	dir := generatedCorpus(t)
	good, err := os.ReadFile(filepath.Join(dir, "ref-abt.rpm"))
	if err != nil {
		t.Fatal(err)
	}
	for name, b := range map[string][]byte{
		"empty":             nil,
		"not an RPM":        []byte(strings.Repeat("garbage ", 100)),
		"truncated header":  good[:200],
		"truncated payload": good[:len(good)-40],
		"corrupt payload":   append(append([]byte(nil), good[:len(good)-300]...), bytes.Repeat([]byte{0xff}, 300)...),
	} {
		t.Run(name, func(t *testing.T) {
			_, err := ScanRPM(t.Context(), bytes.NewReader(b), Limits{})
			if !errors.Is(err, ErrBadPackage) {
				t.Fatalf("err %v, want ErrBadPackage", err)
			}
		})
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := ScanRPM(ctx, bytes.NewReader(good), Limits{}); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled: %v", err)
	}
}

func TestParseStablelist(t *testing.T) {
	s, err := ParseStablelist(strings.NewReader("# kABI\n[rhel9_x86_64_stablelist]\n\tprintk\n\tvfree\n\n[rhel8_aarch64_whitelist]\n\tkmalloc\n"))
	if err != nil {
		t.Fatal(err)
	}
	if !s.Contains("x86_64", "printk") || s.Contains("x86_64", "kmalloc") || !s.Contains("aarch64", "kmalloc") ||
		strings.Join(s.Arches(), ",") != "aarch64,x86_64" || s.Len("x86_64") != 2 {
		t.Fatalf("parsed %+v", s.byArch)
	}
	if s.ForArch("ppc64le") != nil {
		t.Fatal("an uncovered arch must give a nil stablelist, not an empty one")
	}
	for name, in := range map[string]string{
		"symbol before a section": "\tprintk\n",
		"bad section":             "[kabi]\n\tprintk\n",
		"two words":               "[rhel9_x86_64_stablelist]\n\tprintk vfree\n",
	} {
		if _, err := ParseStablelist(strings.NewReader(in)); !errors.Is(err, ErrBadStablelist) {
			t.Errorf("%s: err %v, want ErrBadStablelist", name, err)
		}
	}
	for p, want := range map[string]bool{
		"/usr/lib/modules/kabi-rhel94/kabi_stablelist_x86_64":  true,
		"/lib/modules/kabi-rhel87/kabi_whitelist_s390x":        true,
		"/usr/lib/modules/kabi-current/kabi_stablelist_x86_64": true,
		"/usr/share/doc/kabi_stablelist_x86_64":                false,
		"/usr/lib/modules/5.14.0/kabi_stablelist_x86_64":       false,
	} {
		if stablelistPath(p) != want {
			t.Errorf("stablelistPath(%q) = %v", p, !want)
		}
	}
}

func TestIsLibDir(t *testing.T) {
	for p, want := range map[string]bool{
		"/usr/lib64/libfoo.so.1":                   true,
		"/usr/lib/gtk-2.0/immodules/im-xim.so":     true,
		"/lib64/libc.so.6":                         true,
		"/opt/vendor/lib/libv.so":                  true,
		"/usr/libexec/foo":                         false,
		"/usr/bin/foo":                             false,
		"/usr/lib/debug/usr/lib64/libfoo.so.debug": false,
	} {
		if isLibDir(p) != want {
			t.Errorf("isLibDir(%q) = %v", p, !want)
		}
	}
}
