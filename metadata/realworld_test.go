package metadata_test

// Regression tests over repositories that other projects made: the shapes
// that dnf, librepo and zypper accept and the rewriter once refused. Each
// has a checked-in copy of the shape (so it runs without the corpora) and,
// where the corpora hold one, a test over the real repository.

import (
	"bytes"
	"encoding/xml"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/dnfproxy/dnfproxy/internal/testenv"
	"github.com/dnfproxy/dnfproxy/metadata"
)

// fractionalRepomd has the shape of librepo's repo_yum_02: old yum wrote
// fractions of a second in some <timestamp>s.
const fractionalRepomd = `<?xml version="1.0" encoding="UTF-8"?>
<repomd xmlns="http://linux.duke.edu/metadata/repo" xmlns:rpm="http://linux.duke.edu/metadata/rpm">
  <revision>1355393568</revision>
  <data type="primary">
    <checksum type="sha256">` + sum256 + `</checksum>
    <open-checksum type="sha256">` + open256 + `</open-checksum>
    <location href="repodata/p-primary.xml.gz"/>
    <timestamp>1355393567.25</timestamp>
    <size>956</size>
    <open-size>3411</open-size>
  </data>
  <data type="origin">
    <checksum type="sha256">` + sum256 + `</checksum>
    <location href="repodata/o-pkgorigins.gz"/>
    <timestamp>1355315696.84</timestamp>
    <size>140</size>
  </data>
</repomd>
`

func TestFractionalTimestamp(t *testing.T) {
	md, err := metadata.ParseRepomd([]byte(fractionalRepomd))
	if err != nil {
		t.Fatalf("ParseRepomd: %v", err)
	}
	if r, _ := md.Record("origin"); r.Timestamp != 1355315696 {
		t.Errorf("origin timestamp = %d, want 1355315696", r.Timestamp)
	}
	info := metadata.FileInfo{Codec: metadata.Gzip, Checksum: metadata.Checksum{Type: "sha256", Value: sha64b},
		OpenChecksum: metadata.Checksum{Type: "sha256", Value: sha64a}, Size: 5, OpenSize: 50}
	got, err := metadata.RewriteRepomd([]byte(fractionalRepomd), map[string]metadata.FileInfo{"primary": info}, nil, nil)
	if err != nil {
		t.Fatalf("RewriteRepomd: %v", err)
	}
	// The replaced record gets whole seconds; the others keep their bytes.
	for _, want := range []string{"<timestamp>1355393567</timestamp>", "<timestamp>1355315696.84</timestamp>"} {
		if !bytes.Contains(got, []byte(want)) {
			t.Errorf("rewritten repomd.xml lacks %s:\n%s", want, got)
		}
	}
}

// TestFractionalTimestampCorpus reads librepo's own old-yum repos.
func TestFractionalTimestampCorpus(t *testing.T) {
	for _, rel := range []string{
		"librepo/tests/test_data/repo_yum_02",
		"librepo/tests/python/tests/servermock/yum_mock/static/02",
	} {
		t.Run(rel, func(t *testing.T) {
			dir := testenv.CorpusPath(t, rel)
			orig := readFile(t, filepath.Join(dir, "repodata", "repomd.xml"))
			if !bytes.Contains(orig, []byte(".84</timestamp>")) {
				t.Fatal("the corpus repomd.xml has no fractional timestamp any more")
			}
			md, err := metadata.ParseRepomd(orig)
			if err != nil {
				t.Fatalf("ParseRepomd: %v", err)
			}
			prim, _ := md.Record("primary")
			data := readFile(t, filepath.Join(dir, prim.Href))
			var out bytes.Buffer
			plan, err := metadata.NewPlan(bytes.NewReader(data), metadata.CodecOf(prim.Href), rwLimit, keepAll)
			if err != nil {
				t.Fatal(err)
			}
			res, err := plan.Rewrite(metadata.KindPrimary, bytes.NewReader(data), metadata.CodecOf(prim.Href), &out, metadata.Gzip, rwLimit)
			if err != nil {
				t.Fatal(err)
			}
			rw, err := metadata.RewriteRepomd(orig, map[string]metadata.FileInfo{"primary": res.FileInfo}, nil, nil)
			if err != nil {
				t.Fatalf("RewriteRepomd: %v", err)
			}
			if _, err := metadata.ParseRepomd(rw); err != nil {
				t.Fatalf("rewritten repomd.xml: %v", err)
			}
		})
	}
}

// corpusRepomd reads a corpus repo's repomd.xml.
func corpusRepomd(t *testing.T, dir string) ([]byte, *metadata.Repomd) {
	t.Helper()
	orig := readFile(t, filepath.Join(dir, "repodata", "repomd.xml"))
	md, err := metadata.ParseRepomd(orig)
	if err != nil {
		t.Fatalf("ParseRepomd(%s): %v", dir, err)
	}
	return orig, md
}

// A small repo in createrepo_c's layout, written for these tests: three
// packages (a pkgid each) and the package files listing them.
const (
	pidA = "90f61e546938a11449b710160ad294618a5bd3062e46f8cf851fd0088af184b7"
	pidB = "6d43a638af70ef899933b1fd86a866f18f65b0e0e17dcbf2e42bfd0cdd7c63c3"
	pidC = "0b0b4b1e3e6e5d0e2d2f8f7c3a6f0c1e9d7b5a3c1e0f2d4b6a8c0e2f4a6b8c0d"
)

type shapePkg struct{ pkgid, name, ver string }

func shapePrimary(count string, pkgs ...shapePkg) string {
	var b strings.Builder
	b.WriteString(`<?xml version="1.0" encoding="UTF-8"?>
<metadata xmlns="http://linux.duke.edu/metadata/common" xmlns:rpm="http://linux.duke.edu/metadata/rpm"` + count + `>
`)
	for _, p := range pkgs {
		b.WriteString(`<package type="rpm">
  <name>` + p.name + `</name>
  <arch>x86_64</arch>
  <version epoch="0" ver="` + p.ver + `" rel="1"/>
  <checksum type="sha256" pkgid="YES">` + p.pkgid + `</checksum>
  <summary>Package ` + p.name + `</summary>
  <description>The ` + p.name + ` package.</description>
  <packager></packager>
  <url></url>
  <time file="1545791375" build="1334670842"/>
  <size package="2237" installed="0" archive="256"/>
  <location href="` + p.name + `-` + p.ver + `-1.x86_64.rpm"/>
  <format>
    <rpm:license>GPL</rpm:license>
    <rpm:provides>
      <rpm:entry name="` + p.name + `" flags="EQ" epoch="0" ver="` + p.ver + `" rel="1"/>
    </rpm:provides>
    <file>/usr/bin/` + p.name + `</file>
  </format>
</package>
`)
	}
	b.WriteString("</metadata>\n")
	return b.String()
}

// shapeFile writes a filelists, other or filelists-ext document.
func shapeFile(kind metadata.FileKind, count string, pkgs ...shapePkg) string {
	root := map[metadata.FileKind]string{metadata.KindFilelists: "filelists", metadata.KindOther: "otherdata", metadata.KindFilelistsExt: "filelists-ext"}[kind]
	var b strings.Builder
	b.WriteString(`<?xml version="1.0" encoding="UTF-8"?>
<` + root + ` xmlns="http://linux.duke.edu/metadata/` + strings.TrimSuffix(root, "data") + `"` + count + `>
`)
	for _, p := range pkgs {
		b.WriteString(`<package pkgid="` + p.pkgid + `" name="` + p.name + `" arch="x86_64">
  <version epoch="0" ver="` + p.ver + `" rel="1"/>
`)
		switch kind {
		case metadata.KindFilelists:
			b.WriteString("  <file>/usr/bin/" + p.name + "</file>\n")
		case metadata.KindFilelistsExt:
			b.WriteString(`  <checksum type="sha256"/>
  <file hash="e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855">/usr/bin/` + p.name + "</file>\n")
		case metadata.KindOther:
			b.WriteString(`  <changelog author="Someone &lt;a@example.invalid&gt; - ` + p.ver + `-1" date="1334664000">- First release</changelog>` + "\n")
		}
		b.WriteString("</package>\n")
	}
	b.WriteString("</" + root + ">\n")
	return b.String()
}

func count(n int) string { return ` packages="` + strconv.Itoa(n) + `"` }

// rewriteString rewrites an uncompressed document, from a reader that can
// seek (as cache objects do: a count is taken in a first pass when needed)
// and from one that cannot (the body is held): both write the same bytes.
func rewriteString(t *testing.T, plan *metadata.Plan, kind metadata.FileKind, in string) (string, metadata.RewriteResult) {
	t.Helper()
	var out, streamed bytes.Buffer
	res, err := plan.Rewrite(kind, strings.NewReader(in), metadata.None, &out, metadata.None, rwLimit)
	if err != nil {
		t.Fatalf("Rewrite(%s): %v\n%s", kind, err, in)
	}
	res2, err := plan.Rewrite(kind, struct{ io.Reader }{strings.NewReader(in)}, metadata.None, &streamed, metadata.None, rwLimit)
	if err != nil || res2 != res || !bytes.Equal(streamed.Bytes(), out.Bytes()) {
		t.Fatalf("Rewrite(%s) of a reader that cannot seek: %+v, %v\n%s\nwith seeking: %+v\n%s", kind, res2, err, streamed.Bytes(), res, out.Bytes())
	}
	if err := xml.Unmarshal(out.Bytes(), new(struct{})); err != nil {
		t.Fatalf("Rewrite(%s) output does not parse: %v\n%s", kind, err, out.Bytes())
	}
	return out.String(), res
}

// pkgidsOf lists the pkgid of each package of a rewritten document, found
// independently of the scanner: pkgid="..." attributes (filelists, other)
// or pkgid checksums (primary).
func pkgidsOf(doc string) []string {
	var out []string
	for _, m := range pkgidRE.FindAllStringSubmatch(doc, -1) {
		out = append(out, m[1]+m[2])
	}
	return out
}

var pkgidRE = regexp.MustCompile(`<package pkgid="([0-9a-f]+)"|<checksum type="sha256" pkgid="YES">([0-9a-f]+)<`)

// TestDuplicatePkgids: createrepo_c's repo_with_duplicate_packages lists
// each package twice, under one pkgid, in primary, filelists and other.
// A verdict applies to every copy in every file.
func TestDuplicatePkgids(t *testing.T) {
	a, b := shapePkg{pidA, "fake_bash", "1.1.1"}, shapePkg{pidB, "super_kernel", "6.0.1"}
	pkgs := []shapePkg{a, a, b, b}
	files := map[metadata.FileKind]string{metadata.KindPrimary: shapePrimary(count(4), pkgs...)}
	for _, k := range []metadata.FileKind{metadata.KindFilelists, metadata.KindOther, metadata.KindFilelistsExt} {
		files[k] = shapeFile(k, count(4), pkgs...)
	}
	filterA := metadata.Decision{Action: metadata.ActionFilter, Findings: almaFindings[1:]}
	annotateB := metadata.Decision{Action: metadata.ActionAnnotate, Findings: almaFindings}
	calls := 0
	tests := []struct {
		name   string
		decide metadata.DecideFunc
	}{
		{"same verdict for each copy", func(id metadata.PackageID, _ string) metadata.Decision {
			switch id.Name {
			case a.name:
				return filterA
			case b.name:
				return annotateB
			}
			return metadata.Decision{}
		}},
		// Only the second copy of each gets a verdict: the strongest wins
		// for both copies.
		{"verdict on the second copy only", func(id metadata.PackageID, _ string) metadata.Decision {
			calls++
			switch {
			case calls == 2:
				return filterA
			case calls == 4:
				return annotateB
			case calls == 3:
				return metadata.Decision{Action: metadata.ActionNone}
			}
			return metadata.Decision{}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			calls = 0
			plan, err := metadata.NewPlan(strings.NewReader(files[metadata.KindPrimary]), metadata.None, rwLimit, tt.decide)
			if err != nil {
				t.Fatalf("NewPlan: %v", err)
			}
			if plan.Packages != 4 || plan.Kept != 2 || plan.Filtered != 2 || plan.Annotated != 2 {
				t.Fatalf("plan counts %d packages, %d kept, %d filtered, %d annotated; want 4, 2, 2, 2", plan.Packages, plan.Kept, plan.Filtered, plan.Annotated)
			}
			same, err := metadata.PlanOf(plan.Packages, plan.Decided())
			if err != nil {
				t.Fatalf("PlanOf(Decided()): %v", err)
			}
			for _, p := range []*metadata.Plan{plan, same} {
				for kind, in := range files {
					out, res := rewriteString(t, p, kind, in)
					if got := pkgidsOf(out); !slices.Equal(got, []string{pidB, pidB}) {
						t.Errorf("%s lists %q, want both copies of %s only", kind, got, b.name)
					}
					if res.Packages != 2 || res.Filtered != 2 || !strings.Contains(out, count(2)+">") {
						t.Errorf("%s: %+v, root %s; want 2 written, 2 dropped, packages=\"2\"", kind, res, rootCount(t, []byte(out)))
					}
					if kind == metadata.KindPrimary && (res.Annotated != 2 || strings.Count(out, "[RHEL-ABI: abi-changed,patched] ") != 2) {
						t.Errorf("primary: %d annotated, want both copies:\n%s", res.Annotated, out)
					}
				}
			}
		})
	}
	t.Run("one pkgid naming two packages", func(t *testing.T) {
		in := shapePrimary(count(2), a, shapePkg{pidA, "other", "1"})
		_, err := metadata.NewPlan(strings.NewReader(in), metadata.None, rwLimit, func(metadata.PackageID, string) metadata.Decision { return filterA })
		if !errors.Is(err, metadata.ErrMalformed) {
			t.Errorf("NewPlan = %v, want ErrMalformed", err)
		}
	})
}

// TestDuplicatePkgidsCorpus rewrites createrepo_c's own repo and loads the
// result in dnf.
func TestDuplicatePkgidsCorpus(t *testing.T) {
	src := testenv.CorpusPath(t, "createrepo_c/tests/testdata/repo_with_duplicate_packages")
	rw := rewriteRepo(t, src, func(id metadata.PackageID, _ string) metadata.Decision {
		switch id.Name {
		case "fake_bash":
			return metadata.Decision{Action: metadata.ActionFilter, Findings: almaFindings[1:]}
		case "super_kernel":
			return metadata.Decision{Action: metadata.ActionAnnotate, Findings: almaFindings}
		}
		return metadata.Decision{}
	}, metadata.Gzip)
	if rw.plan.Packages != 4 || rw.plan.Filtered != 2 || rw.plan.Annotated != 2 {
		t.Fatalf("plan: %d packages, %d filtered, %d annotated; want 4, 2, 2", rw.plan.Packages, rw.plan.Filtered, rw.plan.Annotated)
	}
	for _, kind := range packageKinds {
		out := openRecord(t, rw.dir, rw.md, string(kind))
		if got := rootCount(t, out); got != "2" {
			t.Errorf("%s: packages=%q, want 2", kind, got)
		}
		if n := len(packageElements(out)); n != 2 || bytes.Contains(out, []byte("fake_bash")) {
			t.Errorf("%s: %d packages, fake_bash listed: %v; want the 2 copies of super_kernel only", kind, n, bytes.Contains(out, []byte("fake_bash")))
		}
	}
	testenv.RequireTool(t, "dnf")
	srv := httptest.NewServer(http.FileServer(http.Dir(rw.dir)))
	t.Cleanup(srv.Close)
	dnf := testenv.NewDNF(t, map[string]string{"dup": srv.URL})
	if got := dnf.RepoQuery(); !slices.Equal(got, []string{"super_kernel-6.0.1-2.x86_64"}) {
		t.Errorf("repoquery = %q, want super_kernel only", got)
	}
	if got := dnf.RepoQuery("--whatprovides", "abi-divergence(rhel)"); !slices.Equal(got, []string{"super_kernel-6.0.1-2.x86_64"}) {
		t.Errorf("whatprovides abi-divergence(rhel) = %q", got)
	}
	if got := dnf.RepoQuery("--whatprovides", "/usr/bin/super_kernel"); !slices.Equal(got, []string{"super_kernel-6.0.1-2.x86_64"}) {
		t.Errorf("whatprovides /usr/bin/super_kernel (filelists) = %q", got)
	}

	testenv.RequireTool(t, "zypper")
	z := testenv.NewZypper(t, map[string]string{"dup": srv.URL})
	if err := z.Refresh(); err != nil {
		t.Fatalf("zypper refresh of the rewritten repo: %v", err)
	}
	found, err := z.Search("*")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, p := range found {
		names = append(names, p.Name)
	}
	if names = slices.Compact(names); !slices.Equal(names, []string{"super_kernel"}) {
		t.Errorf("zypper search lists %q, want super_kernel only", names)
	}
	info, err := z.Info("super_kernel")
	if err != nil {
		t.Fatal(err)
	}
	if s := info["Summary"]; s != "[RHEL-ABI: abi-changed,patched] Test package" {
		t.Errorf("zypper info: Summary %q, want the annotation", s)
	}
	if d := info["Description"]; !strings.Contains(d, "RHEL ABI compatibility: patched — vendor release marker .alma.1") {
		t.Errorf("zypper info: Description %q lacks the annotation", d)
	}
}

// TestPackageCountDisagrees: a filelists.xml (or other.xml) whose
// packages="N" is not primary.xml's, such as the stub filelists of
// osbuild's AppStream snapshot, is rewritten as it is, and the output's
// count is what it lists.
func TestPackageCountDisagrees(t *testing.T) {
	a, b, c := shapePkg{pidA, "fake_bash", "1.1.1"}, shapePkg{pidB, "super_kernel", "6.0.1"}, shapePkg{pidC, "zeta", "2"}
	primary := shapePrimary(count(3), a, b, c)
	plan, err := metadata.NewPlan(strings.NewReader(primary), metadata.None, rwLimit, func(id metadata.PackageID, _ string) metadata.Decision {
		if id.Name == a.name {
			return metadata.Decision{Action: metadata.ActionFilter, Findings: almaFindings[1:]}
		}
		return metadata.Decision{}
	})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name      string
		kind      metadata.FileKind
		in        string
		wantCount string // "" for no count attribute
		wantIDs   []string
	}{
		{"stub", metadata.KindFilelists, shapeFile(metadata.KindFilelists, count(0)), "0", nil},
		{"fewer, count of what is there", metadata.KindFilelists, shapeFile(metadata.KindFilelists, count(2), a, c), "1", []string{pidC}},
		{"fewer, wrong count", metadata.KindOther, shapeFile(metadata.KindOther, count(7), a, b), "1", []string{pidB}},
		{"no count", metadata.KindFilelists, shapeFile(metadata.KindFilelists, "", c, a), "", []string{pidC}},
		{"more than primary", metadata.KindFilelistsExt, shapeFile(metadata.KindFilelistsExt, count(4), a, b, c, shapePkg{strings.Repeat("e", 64), "extra", "1"}), "3", []string{pidB, pidC, strings.Repeat("e", 64)}},
		{"primary with a wrong count", metadata.KindPrimary, shapePrimary(count(9), a, b, c), "2", []string{pidB, pidC}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, res := rewriteString(t, plan, tt.kind, tt.in)
			if got := pkgidsOf(out); !slices.Equal(got, tt.wantIDs) {
				t.Errorf("lists %q, want %q", got, tt.wantIDs)
			}
			m := countRE.FindStringSubmatch(out)
			switch {
			case tt.wantCount == "" && m != nil:
				t.Errorf("output has packages=%q, upstream had none", m[1])
			case tt.wantCount != "" && (m == nil || m[1] != tt.wantCount):
				t.Errorf("output count %q, want %q", m, tt.wantCount)
			}
			if strconv.Itoa(res.Packages) != tt.wantCount && tt.wantCount != "" {
				t.Errorf("result says %d written", res.Packages)
			}
			// Everything but the dropped package and the count is kept.
			want := tt.in
			if tt.wantCount != "" {
				want = strings.Replace(want, countRE.FindString(want), `packages="`+tt.wantCount+`"`, 1)
			}
			want = regexp.MustCompile(`(?s)<package( pkgid="`+pidA+`"| type="rpm">\s*<name>fake_bash).*?</package>\n`).ReplaceAllString(want, "")
			if out != want {
				t.Errorf("output\n%s\nwant\n%s", out, want)
			}
		})
	}
	t.Run("seekable reader not at its start", func(t *testing.T) {
		doc := shapeFile(metadata.KindFilelists, count(2), a, c)
		want, _ := rewriteString(t, plan, metadata.KindFilelists, doc)
		r := strings.NewReader("junk before the file" + doc)
		if _, err := r.Seek(int64(len("junk before the file")), io.SeekStart); err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		if _, err := plan.Rewrite(metadata.KindFilelists, r, metadata.None, &out, metadata.None, rwLimit); err != nil || out.String() != want {
			t.Errorf("Rewrite = %v\n%s\nwant\n%s", err, out.String(), want)
		}
	})
	// A count that agrees with primary.xml is trusted while streaming; a
	// file that then lists other packages cannot be fixed any more.
	t.Run("count agrees but packages differ", func(t *testing.T) {
		_, err := plan.Rewrite(metadata.KindFilelists, strings.NewReader(shapeFile(metadata.KindFilelists, count(3), a, b)), metadata.None, io.Discard, metadata.None, rwLimit)
		if !errors.Is(err, metadata.ErrMalformed) {
			t.Errorf("Rewrite = %v, want ErrMalformed", err)
		}
	})
}

// TestStubFilelistsCorpus: the real CentOS Stream 9 AppStream primary.xml
// (17,649 packages) comes with a stub filelists.xml (packages="0").
func TestStubFilelistsCorpus(t *testing.T) {
	if testing.Short() {
		t.Skip("scans a 17,649-package primary.xml")
	}
	dir := testenv.CorpusPath(t, "osbuild/test/data/testrepos/appstream")
	_, md := corpusRepomd(t, dir)
	open := func(typ string) (*os.File, metadata.Codec) {
		rec, _ := md.Record(typ)
		f, err := os.Open(filepath.Join(dir, rec.Href))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close() })
		return f, metadata.CodecOf(rec.Href)
	}
	f, codec := open("primary")
	plan, err := metadata.NewPlan(f, codec, 1<<30, func(id metadata.PackageID, _ string) metadata.Decision {
		if strings.HasPrefix(id.Name, "nodejs") {
			return metadata.Decision{Action: metadata.ActionFilter, Findings: almaFindings[1:]}
		}
		return metadata.Decision{}
	})
	if err != nil {
		t.Fatal(err)
	}
	if plan.Packages != 17649 || plan.Filtered == 0 {
		t.Fatalf("plan: %d packages, %d filtered", plan.Packages, plan.Filtered)
	}
	f, codec = open("filelists")
	var out bytes.Buffer
	res, err := plan.Rewrite(metadata.KindFilelists, f, codec, &out, metadata.None, rwLimit)
	if err != nil {
		t.Fatalf("Rewrite(stub filelists): %v", err)
	}
	if res.Packages != 0 || !strings.Contains(out.String(), `packages="0"`) {
		t.Errorf("stub rewritten to %+v:\n%s", res, out.String())
	}
}

// TestFilelistsExt: createrepo_c --filelists-ext (repo_04) adds a
// filelists-ext record listing packages by pkgid; the filtered packages
// leave it like they leave filelists.
func TestFilelistsExtCorpus(t *testing.T) {
	src := testenv.CorpusPath(t, "createrepo_c/tests/testdata/repo_04")
	rw := rewriteRepo(t, src, func(id metadata.PackageID, _ string) metadata.Decision {
		if id.Name == "fake_bash" {
			return metadata.Decision{Action: metadata.ActionFilter, Findings: almaFindings[1:]}
		}
		return metadata.Decision{}
	}, metadata.Gzip)
	res, ok := rw.results[metadata.KindFilelistsExt]
	if !ok {
		t.Fatal("filelists-ext was not rewritten")
	}
	if res.Packages != 1 || res.Filtered != 1 {
		t.Errorf("filelists-ext: %+v, want 1 written, 1 dropped", res)
	}
	out := openRecord(t, rw.dir, rw.md, "filelists-ext")
	if bytes.Contains(out, []byte("fake_bash")) || rootCount(t, out) != "1" || !bytes.Contains(out, []byte(`name="super_kernel"`)) {
		t.Errorf("filelists-ext still lists fake_bash or lost super_kernel:\n%s", out)
	}
	// The kept package is byte for byte upstream's.
	orig := openRecord(t, src, corpusMD(t, src), "filelists-ext")
	for _, p := range packageElements(out) {
		if !bytes.Contains(orig, []byte(p)) {
			t.Errorf("kept package changed:\n%s", p)
		}
	}
}

func corpusMD(t *testing.T, dir string) *metadata.Repomd {
	_, md := corpusRepomd(t, dir)
	return md
}

func TestResolveLocation(t *testing.T) {
	roots := []string{"https://mirror.example/pub/el9/BaseOS/x86_64/os/", "http://backup.example:8080/el9"}
	tests := []struct {
		base, href string
		rel        string // "" with inside false
		err        bool
	}{
		{"", "Packages/a.rpm", "Packages/a.rpm", false},
		{"", "../a.rpm", "", true},
		{"https://mirror.example/pub/el9/BaseOS/x86_64/os/", "Packages/a.rpm", "Packages/a.rpm", false},
		{"https://mirror.example/pub/el9/BaseOS/x86_64/os", "Packages/a.rpm", "Packages/a.rpm", false},
		{"HTTPS://Mirror.Example:443/pub/el9/BaseOS/x86_64/os/Packages/", "a.rpm", "Packages/a.rpm", false},
		{"https://mirror.example/pub/el9/BaseOS/x86_64/os/Packages/sub/", "../a.rpm", "Packages/a.rpm", false},
		{"http://backup.example:8080/el9/", "b.rpm", "b.rpm", false},
		{"http://backup.example/el9/", "b.rpm", "", false},                                       // other port
		{"http://mirror.example/pub/el9/BaseOS/x86_64/os/", "a.rpm", "", false},                  // other scheme
		{"https://elsewhere.example/pub/el9/BaseOS/x86_64/os/", "a.rpm", "", false},              // other host
		{"https://mirror.example/pub/el9/AppStream/x86_64/os/", "a.rpm", "", false},              // other root
		{"https://mirror.example/pub/el9/BaseOS/x86_64/os/", "../../AppStream/a.rpm", "", false}, // escapes
		{"https://mirror.example/pub/el9/BaseOS/x86_64/os-extra/", "a.rpm", "", false},           // prefix of a segment
		{"https://user@mirror.example/pub/el9/BaseOS/x86_64/os/", "a.rpm", "", false},
		{"https://mirror.example/pub/el9/BaseOS/x86_64/os/?x=1", "a.rpm", "", false},
		{"media/", "a.rpm", "", false}, // relative base
		{"https://mirror.example/pub/el9/BaseOS/x86_64/os/", "http://evil.example/a.rpm", "", true},
		{"https://mirror.example/pub/el9/BaseOS/x86_64/os/", "/etc/passwd", "", true},
	}
	for _, tt := range tests {
		rel, inside, err := metadata.ResolveLocation(tt.base, tt.href, roots)
		if rel != tt.rel || inside != (tt.rel != "") || (err != nil) != tt.err {
			t.Errorf("ResolveLocation(%q, %q) = %q, %v, %v; want %q, inside %v, error %v", tt.base, tt.href, rel, inside, err, tt.rel, tt.rel != "", tt.err)
		}
	}
}

func FuzzResolveLocation(f *testing.F) {
	f.Add("https://m.example/pub/", "Packages/a.rpm", "https://m.example/pub")
	f.Add("http://m.example:80/pub/x/", "../a.rpm", "http://m.example/pub/")
	f.Fuzz(func(t *testing.T, base, href, root string) {
		rel, inside, _ := metadata.ResolveLocation(base, href, []string{root})
		if !inside {
			return
		}
		checkSafeHref(t, rel)
	})
}

// TestLocationBase: createrepo_c --baseurl puts xml:base on every package
// location. The rewritten primary.xml keeps the location elements as
// upstream wrote them, in annotated, filtered and kept packages, and dnf
// reads the base from it.
func TestLocationBase(t *testing.T) {
	const base = "http://mirror.invalid/pub/el9/"
	src, _ := makeRepo(t, allRPMs, "--baseurl", base)
	rw := rewriteRepo(t, src, decideBy("dnfpt-tool"), metadata.Gzip)
	locRE := regexp.MustCompile(`<location [^>]*>`)
	orig := openRecord(t, src, corpusMD(t, src), "primary")
	out := openRecord(t, rw.dir, rw.md, "primary")
	want := slices.DeleteFunc(locRE.FindAllString(string(orig), -1), func(s string) bool { return strings.Contains(s, "dnfpt-tool") })
	got := locRE.FindAllString(string(out), -1)
	if !slices.Equal(got, want) || len(got) != len(allRPMs)-1 {
		t.Fatalf("locations\n%q\nwant\n%q", got, want)
	}
	for _, l := range got {
		if !strings.Contains(l, `xml:base="`+base+`"`) {
			t.Errorf("location lost its base: %s", l)
		}
	}
	if rw.plan.Annotated != 1 {
		t.Errorf("annotated %d", rw.plan.Annotated)
	}
	testenv.RequireTool(t, "dnf")
	srv := httptest.NewServer(http.FileServer(http.Dir(rw.dir)))
	t.Cleanup(srv.Close)
	dnf := testenv.NewDNF(t, map[string]string{"xb": srv.URL})
	// %{baseurl} is the package's xml:base (--location shows the repo's
	// own URL, with or without one).
	got = dnf.RepoQuery("--qf", "%{baseurl} %{location}", "dnfpt-app", "dnfpt-lib")
	want = []string{base + " Packages/" + testenv.RPMApp, base + " Packages/" + testenv.RPMLibAlma, base + " Packages/" + testenv.RPMLib}
	if !slices.Equal(got, want) {
		t.Errorf("dnf repoquery %%{baseurl} %%{location} = %q, want %q", got, want)
	}
}

// TestOldYumRepoLibrepo rewrites librepo's old-yum repo as the filter view
// does (fractional timestamps, plain and gzipped comps, sqlite databases,
// prestodelta, pkgorigins) and has librepo, dnf's downloader, fetch the
// result with every checksum verified.
func TestOldYumRepoLibrepo(t *testing.T) {
	src := testenv.CorpusPath(t, "librepo/tests/test_data/repo_yum_02")
	rw := rewriteRepoComps(t, src, func(id metadata.PackageID, _ string) metadata.Decision {
		return metadata.Decision{Action: metadata.ActionFilter, Findings: almaFindings[1:]}
	}, metadata.Gzip, dropNames("foobar"))
	if rw.plan.Filtered != 1 || rw.plan.Kept != 0 {
		t.Fatalf("plan: %d filtered, %d kept", rw.plan.Filtered, rw.plan.Kept)
	}
	for _, typ := range []string{"group", "group_gz"} {
		if data := openRecord(t, rw.dir, rw.md, typ); bytes.Contains(data, []byte("foobar")) {
			t.Errorf("%s still lists foobar", typ)
		}
	}
	if !bytes.Contains(rw.repomd, []byte("<timestamp>1355315696.84</timestamp>")) {
		t.Error("the origin record's timestamp changed")
	}
	srv := httptest.NewServer(http.FileServer(http.Dir(rw.dir)))
	t.Cleanup(srv.Close)
	res, err := testenv.Librepo(t, t.TempDir(), testenv.LibrepoOptions{URLs: []string{srv.URL + "/"}})
	if err != nil {
		t.Fatalf("librepo refuses the rewritten repo: %v", err)
	}
	for _, typ := range []string{"primary", "filelists", "other", "group", "group_gz", "updateinfo", "origin", "abi-divergence"} {
		if res.Paths[typ] == "" && !slices.Contains(res.Records, typ) {
			t.Errorf("librepo did not get %s: %+v", typ, res)
		}
	}
	if slices.Contains(res.Records, "primary_db") {
		t.Error("the rewritten repomd.xml still lists primary_db")
	}
}
