package metadata_test

import (
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dnfproxy/dnfproxy/internal/testenv"
	"github.com/dnfproxy/dnfproxy/metadata"
)

// rpmHeader asks rpm itself for a fixture's name, arch, epoch, version and
// release, so that the expectation does not come from createrepo_c.
func rpmHeader(t *testing.T, file string) metadata.Package {
	t.Helper()
	bin := testenv.RequireTool(t, "rpm")
	out, err := exec.CommandContext(t.Context(), bin, "-qp", "--nosignature", "--nodigest",
		"--qf", `%{NAME}\t%{ARCH}\t%{EPOCHNUM}\t%{VERSION}\t%{RELEASE}`, file).Output()
	if err != nil {
		t.Fatalf("rpm -qp %s: %v", file, err)
	}
	f := strings.Split(string(out), "\t")
	if len(f) != 5 {
		t.Fatalf("rpm -qp %s: unexpected output %q", file, out)
	}
	return metadata.Package{Name: f[0], Arch: f[1], Epoch: f[2], Version: f[3], Release: f[4]}
}

// readPrimary returns the uncompressed primary.xml of a repository.
func readPrimary(t *testing.T, dir string, md *metadata.Repomd) []byte {
	t.Helper()
	rec, ok := md.Record("primary")
	if !ok {
		t.Fatal("repomd.xml has no primary record")
	}
	f, err := os.Open(filepath.Join(dir, filepath.FromSlash(rec.Href)))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := metadata.Decompress(f, metadata.CodecOf(rec.Href), 64<<20)
	if err != nil {
		t.Fatal(err)
	}
	defer zr.Close()
	data, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func TestScanPrimaryFixtures(t *testing.T) {
	for _, tc := range []struct {
		sum  string
		args []string
	}{
		{"sha256", []string{"--no-database"}},
		{"sha1", []string{"--no-database", "--checksum=sha1", "--general-compress-type=xz"}},
		{"sha512", []string{"--no-database", "--checksum=sha512", "--general-compress-type=bz2"}},
	} {
		t.Run(tc.sum, func(t *testing.T) {
			t.Parallel()
			dir, md := makeRepo(t, allRPMs, tc.args...)
			primary := readPrimary(t, dir, md)

			want := map[string]metadata.Package{} // by href
			for _, name := range allRPMs {
				p := rpmHeader(t, testenv.RPMPath(name))
				data := readFile(t, testenv.RPMPath(name))
				p.Href = "Packages/" + name
				p.Size = int64(len(data))
				p.Checksum = sumOf(t, tc.sum, data)
				want[p.Href] = p
			}
			seen := map[string]bool{}
			err := metadata.ScanPrimary(bytes.NewReader(primary), func(p metadata.Package) error {
				w, ok := want[p.Href]
				if !ok {
					t.Errorf("unexpected package %+v", p)
					return nil
				}
				if seen[p.Href] {
					t.Errorf("package %s reported twice", p.Href)
				}
				seen[p.Href] = true
				if p != w {
					t.Errorf("package %s:\n got %+v\nwant %+v", p.Href, p, w)
				}
				if nevra := strings.TrimSuffix(filepath.Base(p.Href), ".rpm"); p.NEVRA() != nevra {
					t.Errorf("NEVRA() = %q, want %q", p.NEVRA(), nevra)
				}
				return nil
			})
			if err != nil {
				t.Fatalf("ScanPrimary: %v", err)
			}
			if len(seen) != len(want) {
				t.Errorf("ScanPrimary found %d packages, want %d", len(seen), len(want))
			}
		})
	}
}

func TestPackageNEVRA(t *testing.T) {
	for _, tc := range []struct {
		p    metadata.Package
		want string
	}{
		{metadata.Package{Name: "a", Epoch: "", Version: "1", Release: "2", Arch: "x86_64"}, "a-1-2.x86_64"},
		{metadata.Package{Name: "a", Epoch: "0", Version: "1", Release: "2", Arch: "noarch"}, "a-1-2.noarch"},
		{metadata.Package{Name: "openssl", Epoch: "1", Version: "3.0.7", Release: "24.el9", Arch: "x86_64"}, "openssl-1:3.0.7-24.el9.x86_64"},
	} {
		if got := tc.p.NEVRA(); got != tc.want {
			t.Errorf("NEVRA() = %q, want %q", got, tc.want)
		}
	}
}

// goodPrimary has two packages; the rejection cases break the first one.
const goodPrimary = `<?xml version="1.0" encoding="UTF-8"?>
<metadata xmlns="http://linux.duke.edu/metadata/common" xmlns:rpm="http://linux.duke.edu/metadata/rpm" packages="2">
<package type="rpm">
  <name>dnfpt-app</name>
  <arch>noarch</arch>
  <version epoch="0" ver="1.0" rel="1.el9"/>
  <checksum type="sha256" pkgid="YES">` + sum256 + `</checksum>
  <summary>app</summary>
  <size package="6265" installed="20" archive="292"/>
  <location href="Packages/dnfpt-app-1.0-1.el9.noarch.rpm"/>
  <format>
    <rpm:provides>
      <rpm:entry name="dnfpt-app" flags="EQ" epoch="0" ver="1.0" rel="1.el9"/>
    </rpm:provides>
  </format>
</package>
<package type="rpm">
  <name>openssl</name>
  <arch>x86_64</arch>
  <version epoch="1" ver="3.0.7" rel="24.el9"/>
  <checksum type="sha" pkgid="YES">` + "ABABABABABABABABABABABABABABABABABABABAB" + `</checksum>
  <size package="0"/>
  <location href="Packages/o/openssl-3.0.7-24.el9.x86_64.rpm"/>
</package>
</metadata>
`

func TestScanPrimaryMinimal(t *testing.T) {
	var got []metadata.Package
	err := metadata.ScanPrimary(strings.NewReader(goodPrimary), func(p metadata.Package) error {
		got = append(got, p)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []metadata.Package{
		{Name: "dnfpt-app", Arch: "noarch", Epoch: "0", Version: "1.0", Release: "1.el9",
			Href: "Packages/dnfpt-app-1.0-1.el9.noarch.rpm", Size: 6265,
			Checksum: metadata.Checksum{Type: "sha256", Value: sum256}},
		{Name: "openssl", Arch: "x86_64", Epoch: "1", Version: "3.0.7", Release: "24.el9",
			Href: "Packages/o/openssl-3.0.7-24.el9.x86_64.rpm", Size: 0,
			Checksum: metadata.Checksum{Type: "sha1", Value: strings.Repeat("ab", 20)}},
	}
	if len(got) != len(want) {
		t.Fatalf("ScanPrimary found %d packages, want %d: %+v", len(got), len(want), got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("package %d:\n got %+v\nwant %+v", i, got[i], want[i])
		}
	}

	// An empty repository is valid.
	empty := `<metadata xmlns="http://linux.duke.edu/metadata/common" packages="0"/>`
	if err := metadata.ScanPrimary(strings.NewReader(empty), func(p metadata.Package) error {
		t.Errorf("package %+v in an empty primary.xml", p)
		return nil
	}); err != nil {
		t.Errorf("ScanPrimary(empty repo) = %v", err)
	}
}

func TestScanPrimaryCallbackError(t *testing.T) {
	stop := errors.New("stop")
	n := 0
	err := metadata.ScanPrimary(strings.NewReader(goodPrimary), func(metadata.Package) error {
		n++
		return stop
	})
	if err != stop || n != 1 {
		t.Errorf("ScanPrimary = %v after %d calls; want the callback's error after 1", err, n)
	}
}

func TestScanPrimaryMalformed(t *testing.T) {
	tests := []struct {
		name string
		old  string // replaced in goodPrimary; "" means use new as the whole input
		new  string
		// late: the damage follows the first package, which ScanPrimary,
		// streaming, may already have reported.
		late bool
	}{
		{"empty input", "", "", false},
		{"not xml", "", "\x1f\x8b\x08\x00 gzip, not xml", false},
		{"no metadata element", "", `<?xml version="1.0"?><!-- nothing -->`, false},
		{"truncated", "", goodPrimary[:len(goodPrimary)*3/4], true},
		{"unclosed metadata", "</metadata>", "", true},
		{"broken second package", "<name>openssl</name>", "", true},
		{"mismatched tags", "</arch>", "</name>", false},
		{"bad entity", "<summary>app", "<summary>&nbsp;", false},
		{"no name", "<name>dnfpt-app</name>", "", false},
		{"no arch", "<arch>noarch</arch>", "", false},
		{"no version", `<version epoch="0" ver="1.0" rel="1.el9"/>`, "", false},
		{"no checksum", `<checksum type="sha256" pkgid="YES">` + sum256 + `</checksum>`, "", false},
		{"short checksum", sum256, sum256[:60], false},
		{"non-hex checksum", sum256, strings.Repeat("z", 64), false},
		{"unknown checksum type", `type="sha256" pkgid`, `type="crc64" pkgid`, false},
		{"no size", `<size package="6265" installed="20" archive="292"/>`, "", false},
		{"negative size", `package="6265"`, `package="-6265"`, false},
		{"non-numeric size", `package="6265"`, `package="6 kB"`, false},
		{"no location", `<location href="Packages/dnfpt-app-1.0-1.el9.noarch.rpm"/>`, "", false},
		{"dot-dot href", `href="Packages/dnfpt-app`, `href="../../etc/dnfpt-app`, false},
		{"absolute href", `href="Packages/dnfpt-app`, `href="/Packages/dnfpt-app`, false},
		{"url href", `href="Packages/dnfpt-app`, `href="https://evil.example/dnfpt-app`, false},
		{"backslash href", `href="Packages/dnfpt-app`, `href="Packages\dnfpt-app`, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := tt.new
			if tt.old != "" {
				in = strings.Replace(goodPrimary, tt.old, tt.new, 1)
				if in == goodPrimary {
					t.Fatalf("test case does not change the input: %q not found", tt.old)
				}
			}
			err := metadata.ScanPrimary(strings.NewReader(in), func(p metadata.Package) error {
				if p.Name == "dnfpt-app" && !tt.late {
					t.Errorf("ScanPrimary returned the broken package %+v", p)
				}
				return nil
			})
			if !errors.Is(err, metadata.ErrMalformed) {
				t.Errorf("ScanPrimary = %v, want ErrMalformed", err)
			}
		})
	}
}

// TestScanPrimaryReadError checks that an I/O error, such as ErrTooLarge
// from Decompress, reaches the caller.
func TestScanPrimaryReadError(t *testing.T) {
	r := io.MultiReader(strings.NewReader(goodPrimary[:200]), errReader{metadata.ErrTooLarge})
	err := metadata.ScanPrimary(r, func(metadata.Package) error { return nil })
	if !errors.Is(err, metadata.ErrTooLarge) && !errors.Is(err, metadata.ErrMalformed) {
		t.Errorf("ScanPrimary(failing reader) = %v", err)
	}
}

// TestScanPrimaryXMLBase: createrepo_c --baseurl puts an xml:base on every
// package location; the scanner gives it as LocationBase, and the href as
// written.
func TestScanPrimaryXMLBase(t *testing.T) {
	const base = "http://mirror.example/repo/"
	dir, _ := makeRepo(t, allRPMs, "--no-database", "--baseurl="+base)
	n := 0
	err := metadata.ScanPrimary(bytes.NewReader(readRepoPrimary(t, dir)), func(p metadata.Package) error {
		n++
		if p.LocationBase != base || !strings.HasSuffix(p.Href, ".rpm") || strings.Contains(p.Href, "://") {
			t.Errorf("%s: base %q href %q", p.NEVRA(), p.LocationBase, p.Href)
		}
		return nil
	})
	if err != nil || n != len(allRPMs) {
		t.Fatalf("%d packages of %d, %v", n, len(allRPMs), err)
	}
}
