package abi

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dnfproxy/dnfproxy/internal/testenv"
)

// largeSpec builds a package with a sparse file of 4 GiB + 101 bytes
// (rpm then writes the stripped "07070X" payload and requires
// rpmlib(LargeFiles)), placed before a shared library in the payload, plus a
// symlink and a hard link to the library. zstd level 1 keeps the RPM at
// about 200 KB.
const largeSpec = `Name: bigfile
Version: 1.0
Release: 1.el9
Summary: a file of 4 GiB and a library
License: MIT
%global debug_package %{nil}
%global __os_install_post %{nil}
%global _binary_payload w1T.zstdio
%description
Large-file payload test.
%install
mkdir -p %{buildroot}/usr/lib64/big
truncate -s 4294967397 %{buildroot}/usr/lib64/big/zeros
printf 'int big_f(void) { return 1; }\nint big_v = 7;\n' > b.c
gcc -shared -fPIC -Wl,-soname,libbig.so.1 -o %{buildroot}/usr/lib64/libbig.so.1 b.c
ln %{buildroot}/usr/lib64/libbig.so.1 %{buildroot}/usr/lib64/libbig.so.1.0
ln -s libbig.so.1 %{buildroot}/usr/lib64/libbig.so
%files
/usr/lib64/big/zeros
/usr/lib64/libbig.so
/usr/lib64/libbig.so.1
/usr/lib64/libbig.so.1.0
`

// TestLargeFilePayload reads a real rpmbuild package whose payload is
// rpm's stripped cpio form: the library after the 4 GiB file is found with
// its symbols, and the whole payload is read. A payload cut short is a bad
// package.
func TestLargeFilePayload(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and reads a 4 GiB payload")
	}
	if raceDetector {
		// One goroutine: nothing for the detector to see, and decoding
		// 4 GiB instrumented takes minutes (35 s without).
		t.Skip("reads a 4 GiB payload: run without -race")
	}
	for _, tool := range []string{"rpmbuild", "gcc", "truncate"} {
		testenv.RequireTool(t, tool)
	}
	dir := t.TempDir()
	spec := filepath.Join(dir, "big.spec")
	if err := os.WriteFile(spec, []byte(largeSpec), 0o644); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	out, err := exec.Command("rpmbuild", "-bb", "--define", "_topdir "+filepath.Join(dir, "top"), spec).CombinedOutput()
	if err != nil {
		t.Fatalf("rpmbuild: %v\n%s", err, out)
	}
	rpms, _ := filepath.Glob(filepath.Join(dir, "top", "RPMS", "*", "bigfile-*.rpm"))
	if len(rpms) != 1 {
		t.Fatalf("rpmbuild made %v", rpms)
	}
	b, err := os.ReadFile(rpms[0])
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("rpmbuild: %d-byte package in %v", len(b), time.Since(start).Round(time.Millisecond))

	start = time.Now()
	p, err := ScanRPM(context.Background(), strings.NewReader(string(b)), Limits{})
	if err != nil {
		t.Fatalf("ScanRPM: %v", err)
	}
	t.Logf("ScanRPM: %d payload bytes in %v", p.PayloadBytes, time.Since(start).Round(time.Millisecond))
	if p.PayloadBytes < 4<<30 {
		t.Errorf("payload of %d bytes read, want the whole (over 4 GiB)", p.PayloadBytes)
	}
	var lib *Library
	for _, l := range p.Libraries {
		if l.SONAME == "libbig.so.1" {
			lib = l
		}
	}
	if lib == nil {
		t.Fatalf("libbig.so.1 not found: %+v", p.Libraries)
	}
	var names []string
	for _, s := range lib.Symbols {
		names = append(names, s.Name)
	}
	got := strings.Join(names, " ")
	for _, want := range []string{"big_f", "big_v"} {
		if !strings.Contains(got, want) {
			t.Errorf("libbig.so.1 exports %q, want %s among them", got, want)
		}
	}

	// The same package cut in the middle of the large file.
	_, err = ScanRPM(context.Background(), strings.NewReader(string(b[:len(b)/2])), Limits{})
	if !errors.Is(err, ErrBadPackage) {
		t.Errorf("truncated package: err %v, want ErrBadPackage", err)
	}
}
