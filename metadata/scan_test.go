package metadata_test

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/dnfproxy/dnfproxy/internal/testenv"
	"github.com/dnfproxy/dnfproxy/metadata"
	"github.com/dnfproxy/dnfproxy/metadata/bombs"
)

// corpus returns the path of a file or folder of the shared test corpora
// (../shared/corpora from the repository root). It skips the test when
// they are absent, and fails it in CI.
func corpus(t testing.TB, rel string) string {
	t.Helper()
	p := filepath.Join(filepath.Dir(testenv.TestdataDir()), "..", "shared", "corpora", filepath.FromSlash(rel))
	if _, err := os.Stat(p); err != nil {
		if testenv.InCI() {
			t.Fatalf("corpus file missing: %v", err)
		}
		t.Skipf("corpus file missing: %v", err)
	}
	return p
}

// readRepoPrimary returns the uncompressed primary.xml of a repository
// directory, as its repomd.xml lists it.
func readRepoPrimary(t testing.TB, dir string) []byte {
	t.Helper()
	md, err := metadata.ParseRepomd(readFile(t, filepath.Join(dir, "repodata", "repomd.xml")))
	if err != nil {
		t.Fatalf("%s: %v", dir, err)
	}
	rec, ok := md.Record("primary")
	if !ok {
		t.Fatalf("%s: no primary record", dir)
	}
	zr, err := metadata.Decompress(bytes.NewReader(readFile(t, filepath.Join(dir, filepath.FromSlash(rec.Href)))), metadata.CodecOf(rec.Href), 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	data, err := io.ReadAll(zr)
	if err != nil {
		t.Fatalf("%s: %v", rec.Href, err)
	}
	return data
}

// scanBoth runs the scanner and the old encoding/xml one on data.
func scanBoth(data []byte, deps bool) (got, want []metadata.PackageDeps, gotErr, wantErr error) {
	gotErr = metadata.ScanPrimaryAll(bytes.NewReader(data), func(p *metadata.PackageDeps) error {
		if !deps {
			p = &metadata.PackageDeps{Package: p.Package}
		}
		p.PkgID = "" // the old scanner had none
		got = append(got, *p)
		return nil
	})
	wantErr = refScanPrimaryDeps(bytes.NewReader(data), deps, func(p metadata.PackageDeps) error {
		want = append(want, p)
		return nil
	})
	return
}

// checkEquivalent asserts that the scanner yields what the old one did on
// data: the same packages with the same fields, and an error (ErrMalformed)
// exactly when the old one failed.
func checkEquivalent(t *testing.T, what string, data []byte) (pkgs []metadata.PackageDeps, err error) {
	t.Helper()
	got, want, gotErr, wantErr := scanBoth(data, true)
	switch {
	case (gotErr == nil) != (wantErr == nil):
		t.Errorf("%s: error %v, the old scanner's %v", what, gotErr, wantErr)
	case gotErr != nil && !errors.Is(gotErr, metadata.ErrMalformed):
		t.Errorf("%s: error %v, want ErrMalformed", what, gotErr)
	case gotErr == nil && !reflect.DeepEqual(got, want):
		t.Errorf("%s: %d packages differ from the old scanner's %d", what, len(got), len(want))
		for i := range min(len(got), len(want)) {
			if !reflect.DeepEqual(got[i], want[i]) {
				t.Errorf("first difference, package %d:\n got %+v\nwant %+v", i, got[i], want[i])
				break
			}
		}
	}
	// ScanPrimary gives the same packages as ScanPrimaryAll.
	var index []metadata.Package
	ierr := metadata.ScanPrimary(bytes.NewReader(data), func(p metadata.Package) error { index = append(index, p); return nil })
	if (ierr == nil) != (gotErr == nil) || len(index) != len(got) {
		t.Errorf("%s: ScanPrimary %d packages, %v; ScanPrimaryAll %d, %v", what, len(index), ierr, len(got), gotErr)
	}
	for i := range min(len(index), len(got)) {
		if index[i] != got[i].Package {
			t.Errorf("%s: ScanPrimary package %d is %+v, ScanPrimaryAll's %+v", what, i, index[i], got[i].Package)
			break
		}
	}
	return got, gotErr
}

// TestScanEquivalenceCreaterepo: repositories createrepo_c makes of the
// fixture RPMs and of the corpora's RPMs, in its flavours.
func TestScanEquivalenceCreaterepo(t *testing.T) {
	deps := buildDepsRPM(t)
	fixtures := append(slices.Clone(allRPMs), deps)
	rpmsOf := func(dir string) []string {
		names, _ := filepath.Glob(filepath.Join(dir, "*.rpm"))
		return names
	}
	for _, tc := range []struct {
		name   string
		rpms   func() []string
		args   []string
		broken bool // both scanners must refuse it
	}{
		{"fixtures", func() []string { return fixtures }, nil, false},
		{"fixtures sha1 xz", func() []string { return fixtures }, []string{"--checksum=sha1", "--general-compress-type=xz"}, false},
		{"fixtures sha512 bz2", func() []string { return fixtures }, []string{"--checksum=sha512", "--general-compress-type=bz2"}, false},
		{"fixtures xml:base", func() []string { return fixtures }, []string{"--baseurl=http://mirror.example/repo/"}, false},
		{"pulp zoo", func() []string { return rpmsOf(corpus(t, "pulp-fixtures/rpm/assets")) }, nil, false},
		{"pulp non-UTF-8", func() []string { return rpmsOf(corpus(t, "pulp-fixtures/rpm/assets-non-utf-8")) }, nil, false},
		{"pulp modular", func() []string { return rpmsOf(corpus(t, "pulp-fixtures/rpm/assets-modularity")) }, nil, false},
		{"createrepo_c packages", func() []string { return rpmsOf(corpus(t, "createrepo_c/tests/testdata/packages")) }, nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rpms := tc.rpms()
			if len(rpms) == 0 {
				t.Fatal("no RPMs")
			}
			dir, _ := makeRepo(t, rpms, append([]string{"--no-database"}, tc.args...)...)
			pkgs, err := checkEquivalent(t, tc.name, readRepoPrimary(t, dir))
			switch {
			case tc.broken && err == nil:
				t.Errorf("accepted a primary.xml both should refuse")
			case !tc.broken && (err != nil || len(pkgs) != len(rpms)):
				t.Errorf("%d packages of %d RPMs, %v", len(pkgs), len(rpms), err)
			}
		})
	}
}

// TestScanEquivalenceCorpora: ready repositories of other projects, and the
// real CentOS Stream 9 AppStream primary.xml (17,649 packages).
func TestScanEquivalenceCorpora(t *testing.T) {
	for _, tc := range []struct {
		dir  string
		want int // packages; 0: any
	}{
		{"createrepo_c/tests/testdata/repo_00", 0},
		{"createrepo_c/tests/testdata/repo_01", 0},
		{"createrepo_c/tests/testdata/repo_02", 0},
		{"createrepo_c/tests/testdata/repo_03", 0},
		{"createrepo_c/tests/testdata/repo_04", 0},
		{"createrepo_c/tests/testdata/repo_with_additional_metadata", 0},
		{"createrepo_c/tests/testdata/repo_with_duplicate_packages", 0},
		{"librepo/tests/test_data/repo_yum_01", 0},
		{"osbuild/test/data/testrepos/custom", 0},
		{"osbuild/test/data/testrepos/appstream", 17649},
	} {
		t.Run(tc.dir, func(t *testing.T) {
			pkgs, err := checkEquivalent(t, tc.dir, readRepoPrimary(t, corpus(t, tc.dir)))
			if err != nil {
				t.Fatalf("%s: %v", tc.dir, err)
			}
			if tc.want > 0 && len(pkgs) != tc.want {
				t.Errorf("%d packages, want %d", len(pkgs), tc.want)
			}
			t.Logf("%d packages", len(pkgs))
		})
	}
}

// TestScanEquivalenceSyntax: hand-made variants of goodPrimary for what
// XML allows and createrepo_c does not write, and for what it forbids.
func TestScanEquivalenceSyntax(t *testing.T) {
	const entry = `<rpm:entry name="dnfpt-app" flags="EQ" epoch="0" ver="1.0" rel="1.el9"/>`
	for _, tc := range []struct {
		name     string
		old, new string // replaced in goodPrimary
		check    func(p metadata.PackageDeps) bool
		bad      bool
		// stricter: the old scanner accepted it, this one refuses it, as
		// the rewriter always did (its document scanner reads the
		// package's identity: see scan.go)
		stricter bool
	}{
		{name: "references in text", old: "<name>dnfpt-app</name>", new: "<name>dnfpt&#45;app&#x2d;&lt;x&gt;&amp;&quot;&apos;</name>",
			check: func(p metadata.PackageDeps) bool { return p.Name == `dnfpt-app-<x>&"'` }},
		{name: "references in attributes", old: `ver="1.0" rel`, new: `ver="1&#46;0&amp;" rel`,
			check: func(p metadata.PackageDeps) bool { return p.Version == "1.0&" }},
		{name: "CDATA", old: "<name>dnfpt-app</name>", new: "<name><![CDATA[dnfpt]]>-<![CDATA[app<&>]]></name>",
			check: func(p metadata.PackageDeps) bool { return p.Name == "dnfpt-app<&>" }},
		{name: "CDATA elsewhere", old: "<summary>app</summary>", new: "<summary><![CDATA[a & b </summary> ]]></summary>"},
		{name: "comments and PIs in a field", old: "<arch>noarch</arch>", new: "<arch>no<!-- x -->ar<?pi x?>ch</arch>",
			check: func(p metadata.PackageDeps) bool { return p.Arch == "noarch" }},
		{name: "nested element in a field", old: "<arch>noarch</arch>", new: "<arch>no<b>x</b>arch</arch>", stricter: true},
		{name: "nested element in a field nobody reads", old: "<summary>app</summary>", new: "<summary>a<b>x</b>pp</summary>"},
		{name: "white space kept", old: "<name>dnfpt-app</name>", new: "<name> dnfpt-app\t</name>",
			check: func(p metadata.PackageDeps) bool { return p.Name == " dnfpt-app\t" }},
		{name: "CRLF line ends", old: "<name>dnfpt-app</name>", new: "<name>dnfpt\r\napp\rx</name>",
			check: func(p metadata.PackageDeps) bool { return p.Name == "dnfpt\napp\nx" }},
		{name: "repeated element: last wins", old: "<arch>noarch</arch>", new: "<arch>x86_64</arch><arch>noarch</arch>",
			check: func(p metadata.PackageDeps) bool { return p.Arch == "noarch" }},
		{name: "other rpm prefix", old: "<rpm:provides>\n      " + entry + "\n    </rpm:provides>",
			new:   `<r:provides xmlns:r="http://linux.duke.edu/metadata/rpm"><r:entry name="dnfpt-app"/><r:entry name="libx.so.1()(64bit)" ver="2"/></r:provides>`,
			check: func(p metadata.PackageDeps) bool { return len(p.ABIProvides) == 1 && p.ABIProvides[0].Version == "2" }},
		{name: "no prefix", old: "<rpm:provides>\n      " + entry + "\n    </rpm:provides>",
			new: `<provides><entry name=" dnfpt-app "/></provides><requires><entry name="rpmlib(X)"/><entry name="b"/></requires><file>/usr/bin/x </file><file/>`,
			check: func(p metadata.PackageDeps) bool {
				return slices.Equal(p.Provides, []string{"dnfpt-app"}) && slices.Equal(p.Requires, []string{"b"}) && slices.Equal(p.Files, []string{"/usr/bin/x"})
			}},
		{name: "prefixed package fields", old: "<name>dnfpt-app</name>", new: "<c:name xmlns:c=\"x\">dnfpt-app</c:name>", stricter: true},
		{name: "prefixed size and location", old: `<size package="6265" installed="20" archive="292"/>`, new: `<c:size xmlns:c="x" package="6265"/>`,
			check: func(p metadata.PackageDeps) bool { return p.Size == 6265 }},
		{name: "prefixed attribute", old: `<version epoch="0"`, new: `<version x:epoch="3"`,
			check: func(p metadata.PackageDeps) bool { return p.Epoch == "3" }},
		{name: "single quotes", old: `<size package="6265"`, new: `<size package='6265'`},
		{name: "no XML declaration", old: `<?xml version="1.0" encoding="UTF-8"?>`, new: ``},
		{name: "declaration in lower case utf-8", old: `encoding="UTF-8"`, new: `encoding='utf-8'`},
		{name: "multi-byte UTF-8", old: "<summary>app</summary>", new: "<summary>äpp ☃ 𝄞</summary>"},
		{name: "BOM", old: `<?xml`, new: "\xef\xbb\xbf<?xml"},
		// Refused by both.
		{name: "Latin-1 declaration", old: `encoding="UTF-8"`, new: `encoding="ISO-8859-1"`, bad: true},
		{name: "XML 1.1", old: `version="1.0" encoding`, new: `version="1.1" encoding`, bad: true},
		{name: "invalid UTF-8 in a field nobody reads", old: "<summary>app</summary>", new: "<summary>\xe4pp</summary>", bad: true},
		{name: "invalid UTF-8 in a name", old: "<name>dnfpt-app</name>", new: "<name>dnfpt-\xff</name>", bad: true},
		{name: "control character", old: "<summary>app</summary>", new: "<summary>a\x01p</summary>", bad: true},
		{name: "U+FFFE", old: "<summary>app</summary>", new: "<summary>a\uFFFEp</summary>", bad: true},
		{name: "unknown entity in an attribute", old: `<size package="6265"`, new: `<size installed="&nbsp;" package="6265"`, bad: true},
		{name: "bad character reference", old: "<summary>app</summary>", new: "<summary>&#0;</summary>", bad: true},
		{name: "mismatched prefix", old: "</rpm:provides>", new: "</r:provides>", bad: true},
		{name: "unknown entity in the root", old: `packages="2"`, new: `packages="2" x="&nbsp;"`, bad: true},
		{name: "unknown entity between packages", old: "</package>\n<package", new: "</package>&nbsp;<package", bad: true},
		{name: "references between packages", old: "</package>\n<package", new: "</package>&#10;&amp;<package"},
		{name: "xml:base", old: `<location href`, new: `<location xml:base="http://x/" href`,
			check: func(p metadata.PackageDeps) bool { return p.LocationBase == "http://x/" }},
		{name: "unclosed element in a field", old: "<arch>noarch</arch>", new: "<arch>no<b>arch</arch>", bad: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := strings.Replace(goodPrimary, tc.old, tc.new, 1)
			if in == goodPrimary && tc.old != tc.new {
				t.Fatalf("%q not found", tc.old)
			}
			if tc.stricter {
				_, _, gotErr, wantErr := scanBoth([]byte(in), true)
				if !errors.Is(gotErr, metadata.ErrMalformed) || wantErr != nil {
					t.Errorf("error %v, the old scanner's %v; want ErrMalformed and none", gotErr, wantErr)
				}
				return
			}
			pkgs, err := checkEquivalent(t, tc.name, []byte(in))
			switch {
			case tc.bad && err == nil:
				t.Errorf("accepted")
			case !tc.bad && err != nil:
				t.Errorf("refused: %v", err)
			case tc.check != nil && len(pkgs) > 0 && !tc.check(pkgs[0]):
				t.Errorf("first package %+v", pkgs[0])
			}
		})
	}
}

// TestScanPrimaryAll: one pass gives the index fields, the pkgid, the
// dependencies and the ABI provides.
func TestScanPrimaryAll(t *testing.T) {
	deps := buildDepsRPM(t)
	dir, md := makeRepo(t, append(slices.Clone(allRPMs), deps), "--no-database")
	var all []*metadata.PackageDeps
	err := metadata.ScanPrimaryAll(bytes.NewReader(readPrimary(t, dir, md)), func(p *metadata.PackageDeps) error {
		all = append(all, p)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]*metadata.PackageDeps{}
	for _, p := range all {
		if p.PkgID != p.Checksum.Value {
			t.Errorf("%s: pkgid %q, checksum %v", p.NEVRA(), p.PkgID, p.Checksum)
		}
		byName[p.Name] = p
	}
	if p := byName["dnfpt-deps"]; p == nil || !slices.Contains(p.Requires, "/usr/bin/sh") || !slices.Equal(p.Files, []string{"/usr/bin/dnfpt-deps"}) {
		t.Errorf("dnfpt-deps: %+v", p)
	}
	// The alma rebuild of the library has a second symbol version; both
	// builds provide the soname, versionless.
	var abi [][]metadata.Provide
	for _, p := range all {
		if p.Name == "dnfpt-lib" {
			abi = append(abi, p.ABIProvides)
		}
	}
	if len(abi) != 2 || len(abi[0])+len(abi[1]) != 3 {
		t.Errorf("dnfpt-lib ABI provides: %+v", abi)
	}
}

// TestScanMemoryBounds: what a primary.xml bomb costs the scanner, and the
// rewriter, is bounded by the element limit, not by the bomb.
func TestScanMemoryBounds(t *testing.T) {
	ws, wsEnd := bombs.WhitespacePrimary()
	huge, hugeEnd := bombs.HugePackagePrimary()
	const size = 1 << 30
	for _, tc := range []struct {
		name string
		in   func() io.Reader
	}{
		{"zeros", func() io.Reader { return bombs.Fill(nil, 0, size, nil) }},
		{"whitespace text node", func() io.Reader { return bombs.Fill(ws, ' ', size, wsEnd) }},
		{"huge package", func() io.Reader { return bombs.Fill(huge, 'x', size, hugeEnd) }},
		{"huge comment", func() io.Reader { return bombs.Fill(append(slices.Clone(ws), "<!--"...), '-', size, wsEnd) }},
	} {
		lim := metadata.Limits{MaxElement: 4 << 20}
		t.Run(tc.name, func(t *testing.T) {
			var err error
			alloc := allocDuring(func() { err = lim.ScanPrimary(tc.in(), func(metadata.Package) error { return nil }) })
			if !errors.Is(err, metadata.ErrTooLarge) && !(tc.name == "zeros" && errors.Is(err, metadata.ErrMalformed)) {
				t.Errorf("ScanPrimary: %v, want ErrTooLarge", err)
			}
			if alloc > 16<<20 {
				t.Errorf("ScanPrimary allocated %d MiB with a 4 MiB element limit", alloc>>20)
			}
			alloc = allocDuring(func() { err = metadata.ScanPrimaryDeps(tc.in(), func(metadata.PackageDeps) error { return nil }) })
			if !errors.Is(err, metadata.ErrTooLarge) && !(tc.name == "zeros" && errors.Is(err, metadata.ErrMalformed)) {
				t.Errorf("ScanPrimaryDeps: %v, want ErrTooLarge", err)
			}
			if alloc > 4*metadata.DefaultMaxElement {
				t.Errorf("ScanPrimaryDeps allocated %d MiB with the default element limit", alloc>>20)
			}
			alloc = allocDuring(func() {
				_, err = metadata.NewPlan(tc.in(), metadata.None, 2*size, func(metadata.PackageID, string) metadata.Decision { return metadata.Decision{} })
			})
			if !errors.Is(err, metadata.ErrTooLarge) && !(tc.name == "zeros" && errors.Is(err, metadata.ErrMalformed)) {
				t.Errorf("NewPlan: %v, want ErrTooLarge", err)
			}
			if alloc > 4*metadata.DefaultMaxElement {
				t.Errorf("NewPlan allocated %d MiB with the default element limit", alloc>>20)
			}
		})
	}
	// Just under the limit is fine.
	err := metadata.Limits{MaxElement: 1 << 20}.ScanPrimary(bombs.Fill(huge, 'x', 1<<20-2048, hugeEnd), func(metadata.Package) error { return nil })
	if err != nil {
		t.Errorf("a package just under the limit: %v", err)
	}
}

// TestScanCharacters: forbidden characters are found wherever they sit
// relative to the scanner's eight-byte steps, and allowed ones pass.
func TestScanCharacters(t *testing.T) {
	for k := range 17 {
		pad := strings.Repeat("a", k)
		for _, tc := range []struct {
			c  string
			ok bool
		}{{"\x01", false}, {"\x1f", false}, {"\xc3", false}, {"\xef\xbf\xbf", false}, {"\x7f", true}, {"é", true}, {"\t\r\n", true}} {
			in := strings.Replace(goodPrimary, "<summary>app</summary>", "<summary>"+pad+tc.c+"bbbbbbbbbbbbbbbb</summary>", 1)
			err := metadata.ScanPrimary(strings.NewReader(in), func(metadata.Package) error { return nil })
			if (err == nil) != tc.ok {
				t.Errorf("%q after %d bytes: %v", tc.c, k, err)
			}
		}
	}
}
