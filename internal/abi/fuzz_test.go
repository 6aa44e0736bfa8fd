package abi

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dnfproxy/dnfproxy/internal/testenv"
)

// FuzzScanRPM: any bytes give a result or an error, never a panic, and
// errors about content wrap ErrBadPackage or ErrTooLarge.
func FuzzScanRPM(f *testing.F) {
	for _, name := range []string{testenv.RPMLib, testenv.RPMLibAlma, testenv.RPMTool} {
		if b, err := os.ReadFile(testenv.RPMPath(name)); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte("\xed\xab\xee\xdb\x03\x00"))
	f.Fuzz(func(t *testing.T, b []byte) {
		_, err := ScanRPM(context.Background(), bytes.NewReader(b), Limits{MaxELFSize: 1 << 20})
		if err != nil && !errors.Is(err, ErrBadPackage) && !errors.Is(err, ErrTooLarge) && !errors.Is(err, ErrBadStablelist) {
			t.Fatalf("unexpected error kind: %v", err)
		}
	})
}

// FuzzReadLibrary: any ELF-looking bytes give a library or an error.
func FuzzReadLibrary(f *testing.F) {
	dir := f.TempDir()
	src := filepath.Join(dir, "l.c")
	os.WriteFile(src, []byte("int v[3]; int g(int x){return x;}\n"), 0o644)
	lib := filepath.Join(dir, "libf.so.1")
	if err := exec.Command("gcc", "-shared", "-fPIC", "-nostdlib", "-Wl,-soname,libf.so.1", "-o", lib, src).Run(); err == nil {
		if b, err := os.ReadFile(lib); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte("\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x03\x00"))
	f.Fuzz(func(t *testing.T, b []byte) {
		l, err := readLibrary(bytes.NewReader(b), "/usr/lib64/libf.so.1")
		if err == nil && l == nil {
			t.Fatal("nil library without an error")
		}
	})
}

func FuzzParseStablelist(f *testing.F) {
	f.Add("[rhel9_x86_64_stablelist]\n\tprintk\n")
	f.Add("# c\n[rhel8_s390x_whitelist]\n\ta\n\tb\n[rhel8_x86_64_whitelist]\n\tc\n")
	f.Fuzz(func(t *testing.T, in string) {
		s, err := ParseStablelist(strings.NewReader(in))
		if err != nil {
			if !errors.Is(err, ErrBadStablelist) {
				t.Fatalf("error %v does not wrap ErrBadStablelist", err)
			}
			return
		}
		for _, a := range s.Arches() {
			for sym := range s.byArch[a] {
				if sym == "" || strings.ContainsAny(sym, " \t\n") {
					t.Fatalf("bad symbol %q", sym)
				}
			}
		}
	})
}
