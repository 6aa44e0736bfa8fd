package abi

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
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

// strippedPayload writes a stripped payload: entries (file index, content)
// then the trailer, padded as rpm pads them.
func strippedPayload(entries ...any) []byte {
	var b strings.Builder
	pad := func() {
		for b.Len()%4 != 0 {
			b.WriteByte(0)
		}
	}
	for i := 0; i+1 < len(entries); i += 2 {
		pad()
		b.WriteString(strippedMagic + fmt.Sprintf("%08x", entries[i].(int)))
		pad()
		b.WriteString(entries[i+1].(string))
	}
	pad()
	b.WriteString("070701" + strings.Repeat("0", 8*6) + "00000000" + strings.Repeat("0", 8*4) + "0000000b" + "00000000" + newcTrailer + "\x00")
	pad()
	return []byte(b.String())
}

// testStripped is a header's view of four files: a regular file, a symlink
// to it, and a hard-link pair whose content comes with the last link.
func testStripped() *strippedFiles {
	return &strippedFiles{
		paths:   []string{"/a", "/l", "/h1", "/h2"},
		modes:   []int64{0o100644, 0o120777, 0o100644, 0o100644},
		sizes:   []int64{3, 1, 5, 5},
		content: []bool{true, false, false, true},
	}
}

func TestWalkStripped(t *testing.T) {
	for _, tc := range []struct {
		name    string
		payload []byte
		want    string // "path=content ..." of the files given to fn
		err     string
	}{
		{"all kinds", strippedPayload(0, "abc", 1, "a", 2, "", 3, "hello"), "/a=abc /h2=hello", ""},
		{"empty archive", strippedPayload(), "", ""},
		{"index out of range", strippedPayload(4, ""), "", "file index 4 of 4 files"},
		{"cut in a file", strippedPayload(0, "abc")[:17], "/a=a", "/a: unexpected EOF"},
		{"no trailer", []byte(strippedMagic + "00000000\x00\x00abc"), "/a=abc", "no trailer"},
		{"full entry", []byte("070701" + strings.Repeat("0", 88) + "00000002" + "00000000" + "x\x00"), "", `full entry "x"`},
		{"bad magic", []byte("0707Q1"), "", `entry magic "0707Q1"`},
		{"bad index", []byte(strippedMagic + "0000000g"), "", `file index "0000000g"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			err := walkStripped(bufio.NewReader(bytes.NewReader(tc.payload)), &rpmHeader{}, testStripped(),
				func(_ *rpmHeader, e payloadEntry, body io.Reader) error {
					b, _ := io.ReadAll(body)
					got = append(got, e.Path+"="+string(b))
					return nil
				})
			if g := strings.Join(got, " "); g != tc.want {
				t.Errorf("files %q, want %q", g, tc.want)
			}
			switch {
			case tc.err == "" && err != nil:
				t.Fatalf("err %v", err)
			case tc.err != "" && (!errors.Is(err, ErrBadPackage) || !strings.Contains(err.Error(), tc.err)):
				t.Fatalf("err %v, want ErrBadPackage with %q", err, tc.err)
			}
		})
	}
}

// FuzzWalkStripped: any payload bytes give files and nil, or an error
// wrapping ErrBadPackage; never a panic, never more bytes than declared.
func FuzzWalkStripped(f *testing.F) {
	f.Add(strippedPayload(0, "abc", 1, "a", 2, "", 3, "hello"))
	f.Add(strippedPayload(3, "hello"))
	f.Add([]byte(strippedMagic + "ffffffff"))
	f.Fuzz(func(t *testing.T, b []byte) {
		files := testStripped()
		err := walkStripped(bufio.NewReader(bytes.NewReader(b)), &rpmHeader{}, files,
			func(_ *rpmHeader, e payloadEntry, body io.Reader) error {
				n, _ := io.Copy(io.Discard, body)
				if n > e.Size {
					t.Fatalf("%s: %d bytes, declared %d", e.Path, n, e.Size)
				}
				return nil
			})
		if err != nil && !errors.Is(err, ErrBadPackage) {
			t.Fatalf("unexpected error kind: %v", err)
		}
	})
}
