package metadata_test

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"encoding/xml"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"

	"github.com/dnfproxy/dnfproxy/internal/testenv"
	"github.com/dnfproxy/dnfproxy/metadata"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/golden")

const rwLimit = 64 << 20

var packageKinds = []metadata.FileKind{metadata.KindPrimary, metadata.KindFilelists, metadata.KindOther}

// keepAll decides nothing.
func keepAll(metadata.PackageID, string) metadata.Decision { return metadata.Decision{} }

// almaFindings are the two findings of the annotation tests. The reason of
// the first holds characters XML must escape.
var almaFindings = []metadata.Finding{
	{Class: metadata.ClassABIChanged, Reason: "soname version node DNFPT_1.1 added & <not> in RHEL", Link: "https://example.invalid/rhel?a=1&b=2", Rule: "lib-node"},
	{Class: metadata.ClassPatched, Reason: "vendor release marker .alma.1"},
}

// decideBy annotates dnfpt-lib-1.0-1.el9.alma.1 with almaFindings and
// filters the packages named in filter.
func decideBy(filter ...string) metadata.DecideFunc {
	return func(id metadata.PackageID, pkgid string) metadata.Decision {
		switch {
		case slices.Contains(filter, id.Name):
			return metadata.Decision{Action: metadata.ActionFilter, Findings: almaFindings[1:]}
		case id.Name == "dnfpt-lib" && id.Release == "1.el9.alma.1":
			return metadata.Decision{Action: metadata.ActionAnnotate, Findings: almaFindings}
		}
		return metadata.Decision{Action: metadata.ActionNone}
	}
}

// rewritten is a repository rewritten by rewriteRepo.
type rewritten struct {
	dir     string // repo root: repodata/ and Packages/
	plan    *metadata.Plan
	results map[metadata.FileKind]metadata.RewriteResult
	repomd  []byte
	md      *metadata.Repomd
}

// rewriteRepo rewrites the createrepo_c repo in src into a new directory as
// a proxy view would: primary, filelists and other rewritten with out, the
// abi-divergence record added, every other file of the kept records copied,
// Packages/ linked.
func rewriteRepo(t *testing.T, src string, decide metadata.DecideFunc, out metadata.Codec) *rewritten {
	t.Helper()
	return rewriteRepoComps(t, src, decide, out, nil)
}

// rewriteRepoComps is rewriteRepo that also filters every comps record
// with compsDrop, when it is not nil, as the filter view does.
func rewriteRepoComps(t *testing.T, src string, decide metadata.DecideFunc, out metadata.Codec, compsDrop func(string) bool) *rewritten {
	t.Helper()
	orig := readFile(t, filepath.Join(src, "repodata", "repomd.xml"))
	md, err := metadata.ParseRepomd(orig)
	if err != nil {
		t.Fatal(err)
	}
	open := func(typ string) (*os.File, metadata.Codec) {
		rec, ok := md.Record(typ)
		if !ok {
			t.Fatalf("no %s record", typ)
		}
		f, err := os.Open(filepath.Join(src, rec.Href))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close() })
		return f, metadata.CodecOf(rec.Href)
	}
	f, codec := open("primary")
	plan, err := metadata.NewPlan(f, codec, rwLimit, decide)
	if err != nil {
		t.Fatalf("NewPlan: %v", err)
	}
	dst := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dst, "repodata"), 0o755); err != nil {
		t.Fatal(err)
	}
	rw := &rewritten{dir: dst, plan: plan, results: map[metadata.FileKind]metadata.RewriteResult{}}
	replaced := map[string]metadata.FileInfo{}
	for _, kind := range metadata.PackageKinds() {
		if _, ok := md.Record(string(kind)); !ok && kind != metadata.KindPrimary {
			continue
		}
		f, codec := open(string(kind))
		var buf bytes.Buffer
		res, err := plan.Rewrite(kind, f, codec, &buf, out, rwLimit)
		if err != nil {
			t.Fatalf("Rewrite(%s): %v", kind, err)
		}
		rec, _ := md.Record(string(kind))
		writeFile(t, filepath.Join(dst, metadata.RewrittenHref(string(kind), rec.Href, res.FileInfo)), buf.Bytes())
		rw.results[kind] = res
		replaced[string(kind)] = res.FileInfo
	}
	for _, rec := range md.Records {
		if compsDrop == nil || !metadata.IsCompsRecord(rec.Type) {
			continue
		}
		f, codec := open(rec.Type)
		var buf bytes.Buffer
		res, err := metadata.FilterComps(f, codec, &buf, codec, rwLimit, compsDrop)
		if err != nil {
			t.Fatalf("FilterComps(%s): %v", rec.Type, err)
		}
		writeFile(t, filepath.Join(dst, metadata.RewrittenHref(rec.Type, rec.Href, res.FileInfo)), buf.Bytes())
		replaced[rec.Type] = res.FileInfo
	}
	extra := divergenceRecord(t, dst, plan)
	rw.repomd, err = metadata.RewriteRepomd(orig, replaced, []metadata.ExtraRecord{extra}, nil)
	if err != nil {
		t.Fatalf("RewriteRepomd: %v", err)
	}
	if rw.md, err = metadata.ParseRepomd(rw.repomd); err != nil {
		t.Fatal(err)
	}
	for _, rec := range md.Records {
		if _, ok := replaced[rec.Type]; ok || metadata.DropDerived(rec.Type) {
			continue
		}
		writeFile(t, filepath.Join(dst, rec.Href), readFile(t, filepath.Join(src, rec.Href)))
	}
	writeFile(t, filepath.Join(dst, "repodata", "repomd.xml"), rw.repomd)
	if err := os.Symlink(filepath.Join(src, "Packages"), filepath.Join(dst, "Packages")); err != nil {
		t.Fatal(err)
	}
	return rw
}

// divergenceRecord writes the gzip-compressed JSON list of the plan's
// findings into dir and returns its record.
func divergenceRecord(t *testing.T, dir string, plan *metadata.Plan) metadata.ExtraRecord {
	t.Helper()
	var buf bytes.Buffer
	fw, err := metadata.NewFileWriter(&buf, metadata.Gzip)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.NewEncoder(fw).Encode(plan.Decided()); err != nil {
		t.Fatal(err)
	}
	if err := fw.Close(); err != nil {
		t.Fatal(err)
	}
	e := metadata.ExtraRecord{Type: "abi-divergence", Ext: ".json", Info: fw.Info()}
	writeFile(t, filepath.Join(dir, e.Href()), buf.Bytes())
	return e
}

func writeFile(t testing.TB, name string, data []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(name, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// openRecord returns the decompressed content of a repo's record, checking
// the checksums and sizes repomd.xml gives for it.
func openRecord(t *testing.T, dir string, md *metadata.Repomd, typ string) []byte {
	t.Helper()
	rec, ok := md.Record(typ)
	if !ok {
		t.Fatalf("no %s record", typ)
	}
	data := readFile(t, filepath.Join(dir, rec.Href))
	if got := sumOf(t, rec.Checksum.Type, data); got != rec.Checksum {
		t.Errorf("%s: checksum %v, repomd.xml says %v", rec.Href, got, rec.Checksum)
	}
	if int64(len(data)) != rec.Size {
		t.Errorf("%s: %d bytes, repomd.xml says %d", rec.Href, len(data), rec.Size)
	}
	rc, err := metadata.Decompress(bytes.NewReader(data), metadata.CodecOf(rec.Href), rwLimit)
	if err != nil {
		t.Fatal(err)
	}
	open, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("%s: %v", rec.Href, err)
	}
	if !rec.OpenChecksum.IsZero() {
		if got := sumOf(t, rec.OpenChecksum.Type, open); got != rec.OpenChecksum {
			t.Errorf("%s: open-checksum %v, repomd.xml says %v", rec.Href, got, rec.OpenChecksum)
		}
		if int64(len(open)) != rec.OpenSize {
			t.Errorf("%s: %d bytes uncompressed, repomd.xml says %d", rec.Href, len(open), rec.OpenSize)
		}
	}
	return open
}

// packageRE finds <package> elements; createrepo_c's output has no
// comments or CDATA that could fool it, and it is independent of the
// scanner under test.
var packageRE = regexp.MustCompile(`(?s)<package[ >].*?</package>`)

func packageElements(doc []byte) []string {
	var out []string
	for _, m := range packageRE.FindAll(doc, -1) {
		out = append(out, string(m))
	}
	return out
}

var countRE = regexp.MustCompile(`packages="(\d+)"`)

func rootCount(t *testing.T, doc []byte) string {
	t.Helper()
	m := countRE.FindSubmatch(doc)
	if m == nil {
		t.Fatal("no packages= attribute")
	}
	return string(m[1])
}

// dataRE matches one <data> record of repomd.xml with its indentation.
var dataRE = regexp.MustCompile(`(?s)\n *<data type="([^"]+)">.*?</data>`)

// withoutRecords removes the records for which drop is true.
func withoutRecords(doc []byte, drop func(typ string) bool) string {
	return string(dataRE.ReplaceAllFunc(doc, func(m []byte) []byte {
		if drop(string(dataRE.FindSubmatch(m)[1])) {
			return nil
		}
		return m
	}))
}

func TestRewriteKeepAllIsIdentity(t *testing.T) {
	comps := filepath.Join(t.TempDir(), "comps.xml")
	writeFile(t, comps, []byte(testComps))
	src, origMD := makeRepo(t, allRPMs, "--zck", "--groupfile", comps)
	rw := rewriteRepo(t, src, keepAll, metadata.Gzip)

	if rw.plan.Packages != len(allRPMs) || rw.plan.Kept != len(allRPMs) || len(rw.plan.Decided()) != 0 {
		t.Errorf("plan = %+v, want %d packages kept, none decided", rw.plan, len(allRPMs))
	}
	for _, kind := range packageKinds {
		in := openRecord(t, src, origMD, string(kind))
		out := openRecord(t, rw.dir, rw.md, string(kind))
		inPkgs, outPkgs := packageElements(in), packageElements(out)
		if len(inPkgs) != len(allRPMs) {
			t.Fatalf("%s: found %d packages in createrepo_c's output, want %d", kind, len(inPkgs), len(allRPMs))
		}
		if !slices.Equal(inPkgs, outPkgs) {
			t.Errorf("%s: package elements differ", kind)
		}
		if !bytes.Equal(in, out) {
			t.Errorf("%s: keep-all rewrite is not byte-identical", kind)
		}
		if got := rootCount(t, out); got != fmt.Sprint(len(allRPMs)) {
			t.Errorf("%s: packages=%q", kind, got)
		}
		res := rw.results[kind]
		if res.Packages != len(allRPMs) || res.Filtered != 0 || res.Annotated != 0 {
			t.Errorf("%s: result %+v", kind, res)
		}
	}

	// repomd.xml: the rewritten files' records are new, the derived ones
	// gone, abi-divergence added; every other byte is upstream's.
	orig := readFile(t, filepath.Join(src, "repodata", "repomd.xml"))
	rewrittenOrDerived := func(typ string) bool {
		return metadata.DropDerived(typ) || slices.Contains(packageKinds, metadata.FileKind(typ)) || typ == "abi-divergence"
	}
	if a, b := withoutRecords(orig, rewrittenOrDerived), withoutRecords(rw.repomd, rewrittenOrDerived); a != b {
		t.Errorf("repomd.xml differs outside the rewritten records:\n--- upstream\n%s\n--- rewritten\n%s", a, b)
	}
	var types []string
	for _, rec := range rw.md.Records {
		types = append(types, rec.Type)
	}
	if want := []string{"primary", "filelists", "other", "group", "group_gz", "abi-divergence"}; !slices.Equal(types, want) {
		t.Errorf("record types %q, want %q", types, want)
	}
	for _, kind := range packageKinds {
		was, _ := origMD.Record(string(kind))
		now, _ := rw.md.Record(string(kind))
		if now.Timestamp != was.Timestamp {
			t.Errorf("%s timestamp %d, upstream %d", kind, now.Timestamp, was.Timestamp)
		}
		if want := "repodata/" + now.Checksum.Value + "-" + string(kind) + ".xml.gz"; now.Href != want {
			t.Errorf("%s href %q, want %q", kind, now.Href, want)
		}
	}
	if bytes.Contains(rw.repomd, []byte("_zck")) || bytes.Contains(rw.repomd, []byte("sqlite")) {
		t.Errorf("derived records left:\n%s", rw.repomd)
	}

	// Deterministic: the same input gives the same repomd.xml.
	if again := rewriteRepo(t, src, keepAll, metadata.Gzip); !bytes.Equal(again.repomd, rw.repomd) {
		t.Errorf("second rewrite differs:\n%s\n---\n%s", rw.repomd, again.repomd)
	}
}

const testComps = `<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE comps PUBLIC "-//Red Hat, Inc.//DTD Comps info//EN" "comps.dtd">
<comps>
  <group>
    <id>dnfpt</id>
    <name>dnfpt</name>
    <description>dnfproxy test group</description>
    <packagelist><packagereq>dnfpt-app</packagereq></packagelist>
  </group>
</comps>
`

// xmlPrimary is what the parse-back checks read of primary.xml, through
// encoding/xml as an independent parser.
type xmlPrimary struct {
	Count    string `xml:"packages,attr"`
	Packages []struct {
		Name    string `xml:"name"`
		Version struct {
			Rel string `xml:"rel,attr"`
		} `xml:"version"`
		Summary     string `xml:"summary"`
		Description string `xml:"description"`
		Provides    []struct {
			XMLName xml.Name
			Name    string `xml:"name,attr"`
		} `xml:"format>provides>entry"`
	} `xml:"package"`
}

func TestRewriteAnnotate(t *testing.T) {
	src, origMD := makeRepo(t, allRPMs)
	rw := rewriteRepo(t, src, decideBy(), metadata.Gzip)
	in := openRecord(t, src, origMD, "primary")
	out := openRecord(t, rw.dir, rw.md, "primary")

	if rw.plan.Annotated != 1 || rw.results[metadata.KindPrimary].Annotated != 1 {
		t.Fatalf("plan %+v, result %+v: want one annotated package", rw.plan, rw.results[metadata.KindPrimary])
	}
	inPkgs, outPkgs := packageElements(in), packageElements(out)
	if len(inPkgs) != len(outPkgs) {
		t.Fatalf("%d packages in, %d out", len(inPkgs), len(outPkgs))
	}
	var annotated string
	for i := range inPkgs {
		if strings.Contains(inPkgs[i], `rel="1.el9.alma.1"`) {
			annotated = outPkgs[i]
		} else if inPkgs[i] != outPkgs[i] {
			t.Errorf("package %d changed:\n%s", i, outPkgs[i])
		}
	}
	checkGolden(t, "annotate-dnfpt-lib.xml", []byte(annotated+"\n"))
	for _, want := range []string{
		`<rpm:entry name="abi-divergence(rhel)"/>`,
		`<rpm:entry name="abi-divergence(rhel:abi-changed)"/>`,
		`<rpm:entry name="abi-divergence(rhel:patched)"/>`,
	} {
		if !strings.Contains(annotated, want) {
			t.Errorf("annotated package lacks %s", want)
		}
	}
	if strings.Contains(annotated, "xmlns") {
		t.Error("annotated package has a namespace declaration: it was re-encoded")
	}

	var x xmlPrimary
	if err := xml.Unmarshal(out, &x); err != nil {
		t.Fatalf("rewritten primary.xml does not parse: %v", err)
	}
	if x.Count != fmt.Sprint(len(allRPMs)) || len(x.Packages) != len(allRPMs) {
		t.Errorf("packages=%q, %d packages", x.Count, len(x.Packages))
	}
	n := 0
	for _, p := range x.Packages {
		if p.Name != "dnfpt-lib" || p.Version.Rel != "1.el9.alma.1" {
			if strings.Contains(p.Summary, "RHEL-ABI") {
				t.Errorf("%s-%s annotated too", p.Name, p.Version.Rel)
			}
			continue
		}
		n++
		if want := "[RHEL-ABI: abi-changed,patched] dnfproxy test fixture: a library with a soname provide"; p.Summary != want {
			t.Errorf("summary %q, want %q", p.Summary, want)
		}
		wantDesc := "\n\nRHEL ABI compatibility: abi-changed — soname version node DNFPT_1.1 added & <not> in RHEL (https://example.invalid/rhel?a=1&b=2)" +
			"\nRHEL ABI compatibility: patched — vendor release marker .alma.1"
		if !strings.HasSuffix(p.Description, wantDesc) || !strings.HasPrefix(p.Description, "Test fixture for dnfproxy.") {
			t.Errorf("description %q, want the fixture's text and then %q", p.Description, wantDesc)
		}
		var provides []string
		for _, e := range p.Provides {
			if e.XMLName.Space != "http://linux.duke.edu/metadata/rpm" {
				t.Errorf("provide %q in namespace %q", e.Name, e.XMLName.Space)
			}
			provides = append(provides, e.Name)
		}
		want := []string{"dnfpt-lib", "libdnfpt.so.1()(64bit)", "libdnfpt.so.1(DNFPT_1.1)(64bit)",
			"abi-divergence(rhel)", "abi-divergence(rhel:abi-changed)", "abi-divergence(rhel:patched)"}
		if !slices.Equal(provides, want) {
			t.Errorf("provides %q, want %q", provides, want)
		}
	}
	if n != 1 {
		t.Errorf("found %d annotated packages", n)
	}
	// The proxy's own scanner still reads it.
	var scanned []string
	if err := metadata.ScanPrimary(bytes.NewReader(out), func(p metadata.Package) error {
		scanned = append(scanned, p.NEVRA())
		return nil
	}); err != nil || len(scanned) != len(allRPMs) {
		t.Errorf("ScanPrimary: %d packages, %v", len(scanned), err)
	}
	// filelists and other do not change for an annotation.
	for _, kind := range []string{"filelists", "other"} {
		if a, b := openRecord(t, src, origMD, kind), openRecord(t, rw.dir, rw.md, kind); !bytes.Equal(a, b) {
			t.Errorf("%s changed", kind)
		}
	}
	// The abi-divergence record lists the finding.
	var report []metadata.PlannedPackage
	if err := json.Unmarshal(openRecord(t, rw.dir, rw.md, "abi-divergence"), &report); err != nil {
		t.Fatal(err)
	}
	if len(report) != 1 || report[0].ID.Release != "1.el9.alma.1" || !slices.Equal(report[0].Decision.Findings, almaFindings) {
		t.Errorf("abi-divergence report %+v", report)
	}
}

func checkGolden(t *testing.T, name string, got []byte) {
	t.Helper()
	file := filepath.Join("testdata", "golden", name)
	if *update {
		writeFile(t, file, got)
		return
	}
	want, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("%v (run go test -run %s -update to create it)", err, t.Name())
	}
	if !bytes.Equal(got, want) {
		t.Errorf("output differs from %s (-update rewrites it):\n--- got\n%s\n--- want\n%s", file, got, want)
	}
}

func TestRewriteFilter(t *testing.T) {
	src, origMD := makeRepo(t, allRPMs)
	rw := rewriteRepo(t, src, decideBy("dnfpt-tool"), metadata.Gzip)
	want := fmt.Sprint(len(allRPMs) - 1)
	if rw.plan.Filtered != 1 || rw.plan.Kept != len(allRPMs)-1 {
		t.Errorf("plan %+v", rw.plan)
	}
	for _, kind := range packageKinds {
		out := openRecord(t, rw.dir, rw.md, string(kind))
		if got := rootCount(t, out); got != want {
			t.Errorf("%s: packages=%q, want %s", kind, got, want)
		}
		pkgs := packageElements(out)
		if len(pkgs) != len(allRPMs)-1 {
			t.Errorf("%s: %d packages, want %s", kind, len(pkgs), want)
		}
		for _, p := range pkgs {
			if strings.Contains(p, "dnfpt-tool") {
				t.Errorf("%s still lists dnfpt-tool:\n%s", kind, p)
			}
		}
		if bytes.Contains(out, []byte("</package>\n\n")) {
			t.Errorf("%s: the dropped package left an empty line", kind)
		}
		if res := rw.results[kind]; res.Filtered != 1 || res.Packages != len(allRPMs)-1 {
			t.Errorf("%s: result %+v", kind, res)
		}
		if err := xml.Unmarshal(out, new(struct{})); err != nil {
			t.Errorf("%s does not parse: %v", kind, err)
		}
	}

	// A plan made from the same decisions with PlanOf writes the same files.
	same, err := metadata.PlanOf(rw.plan.Packages, rw.plan.Decided())
	if err != nil {
		t.Fatal(err)
	}
	for _, kind := range packageKinds {
		rec, _ := origMD.Record(string(kind))
		f, err := os.Open(filepath.Join(src, rec.Href))
		if err != nil {
			t.Fatal(err)
		}
		res, err := same.Rewrite(kind, f, metadata.CodecOf(rec.Href), io.Discard, metadata.Gzip, rwLimit)
		f.Close()
		if err != nil || res != rw.results[kind] {
			t.Errorf("%s: PlanOf rewrite = %+v, %v; NewPlan's %+v", kind, res, err, rw.results[kind])
		}
	}
	// A plan for another primary.xml is refused.
	other, _ := metadata.PlanOf(rw.plan.Packages+1, rw.plan.Decided())
	rec, _ := origMD.Record("primary")
	f, _ := os.Open(filepath.Join(src, rec.Href))
	defer f.Close()
	if _, err := other.Rewrite(metadata.KindPrimary, f, metadata.Gzip, io.Discard, metadata.Gzip, rwLimit); !errors.Is(err, metadata.ErrMalformed) {
		t.Errorf("rewrite with a plan of another count = %v, want ErrMalformed", err)
	}
}

// TestRewriteCodecs rewrites a repo from every input compression to every
// output compression and checks the new repomd.xml against the files.
func TestRewriteCodecs(t *testing.T) {
	src, md := makeRepo(t, allRPMs, "--no-database")
	// The same files in every input codec: createrepo_c 0.17 writes gz, xz
	// and bz2; zstd is made here.
	inputs := map[string]map[metadata.FileKind][]byte{}
	want := map[metadata.FileKind][]byte{}
	for _, kind := range packageKinds {
		want[kind] = openRecord(t, src, md, string(kind))
	}
	for _, c := range []string{"xz", "bz2"} {
		dir, md := makeRepo(t, allRPMs, "--no-database", "--general-compress-type="+c)
		inputs["."+c] = map[metadata.FileKind][]byte{}
		for _, kind := range packageKinds {
			rec, _ := md.Record(string(kind))
			if metadata.CodecOf(rec.Href) != metadata.Codec("."+c) {
				t.Fatalf("createrepo_c --general-compress-type=%s wrote %s", c, rec.Href)
			}
			inputs["."+c][kind] = readFile(t, filepath.Join(dir, rec.Href))
		}
	}
	inputs[".gz"], inputs[".zst"] = map[metadata.FileKind][]byte{}, map[metadata.FileKind][]byte{}
	for _, kind := range packageKinds {
		rec, _ := md.Record(string(kind))
		inputs[".gz"][kind] = readFile(t, filepath.Join(src, rec.Href))
		inputs[".zst"][kind] = zstdCompress(t, want[kind])
	}
	orig := readFile(t, filepath.Join(src, "repodata", "repomd.xml"))
	for _, inName := range []string{".gz", ".xz", ".bz2", ".zst"} {
		for _, outCodec := range []metadata.Codec{metadata.Gzip, metadata.Xz, metadata.Zstd} {
			t.Run(fmt.Sprintf("%s to %s", inName, outCodec), func(t *testing.T) {
				in := inputs[inName]
				plan, err := metadata.NewPlan(bytes.NewReader(in[metadata.KindPrimary]), metadata.Codec(inName), rwLimit, decideBy("dnfpt-tool"))
				if err != nil {
					t.Fatal(err)
				}
				dir := t.TempDir()
				replaced := map[string]metadata.FileInfo{}
				for _, kind := range packageKinds {
					var buf bytes.Buffer
					res, err := plan.Rewrite(kind, bytes.NewReader(in[kind]), metadata.Codec(inName), &buf, outCodec, rwLimit)
					if err != nil {
						t.Fatal(err)
					}
					rec, _ := md.Record(string(kind))
					writeFile(t, filepath.Join(dir, metadata.RewrittenHref(string(kind), rec.Href, res.FileInfo)), buf.Bytes())
					replaced[string(kind)] = res.FileInfo
				}
				repomd, err := metadata.RewriteRepomd(orig, replaced, nil, nil)
				if err != nil {
					t.Fatal(err)
				}
				newMD, err := metadata.ParseRepomd(repomd)
				if err != nil {
					t.Fatal(err)
				}
				for _, kind := range packageKinds {
					rec, _ := newMD.Record(string(kind))
					if metadata.CodecOf(rec.Href) != outCodec {
						t.Errorf("%s href %q does not end in %s", kind, rec.Href, outCodec)
					}
					got := openRecord(t, dir, newMD, string(kind)) // checks sums and sizes
					if len(packageElements(got)) != len(allRPMs)-1 {
						t.Errorf("%s: %d packages", kind, len(packageElements(got)))
					}
				}
			})
		}
	}
}

func zstdCompress(t *testing.T, data []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw, err := zstd.NewWriter(&buf)
	if err != nil {
		t.Fatal(err)
	}
	zw.Write(data)
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestCompressDeterministic(t *testing.T) {
	data := bytes.Repeat([]byte("<package>dnfpt</package>\n"), 5000)
	for _, c := range []metadata.Codec{metadata.None, metadata.Gzip, metadata.Xz, metadata.Zstd} {
		t.Run(string(c), func(t *testing.T) {
			var infos [2]metadata.FileInfo
			var outs [2][]byte
			for i := range 2 {
				var buf bytes.Buffer
				fw, err := metadata.NewFileWriter(&buf, c)
				if err != nil {
					t.Fatal(err)
				}
				for chunk := range slices.Chunk(data, 1000+i*777) {
					fw.Write(chunk)
				}
				if err := fw.Close(); err != nil {
					t.Fatal(err)
				}
				infos[i], outs[i] = fw.Info(), buf.Bytes()
			}
			if infos[0] != infos[1] || !bytes.Equal(outs[0], outs[1]) {
				t.Fatalf("two compressions differ: %+v, %+v", infos[0], infos[1])
			}
			info := infos[0]
			if info.Size != int64(len(outs[0])) || info.Checksum != sumOf(t, "sha256", outs[0]) ||
				info.OpenSize != int64(len(data)) || info.OpenChecksum != sumOf(t, "sha256", data) {
				t.Errorf("info %+v does not describe the output", info)
			}
			rc, err := metadata.Decompress(bytes.NewReader(outs[0]), c, rwLimit)
			if err != nil {
				t.Fatal(err)
			}
			if back, err := io.ReadAll(rc); err != nil || !bytes.Equal(back, data) {
				t.Errorf("round trip: %v", err)
			}
			if c == metadata.Gzip {
				zr, err := gzip.NewReader(bytes.NewReader(outs[0]))
				if err != nil {
					t.Fatal(err)
				}
				if zr.Name != "" || !zr.ModTime.IsZero() {
					t.Errorf("gzip header has name %q, mtime %v", zr.Name, zr.ModTime)
				}
			}
		})
	}
	if _, err := metadata.Compress(io.Discard, metadata.Bzip2); err == nil {
		t.Error("Compress(bz2) succeeded; rewritten files must not be bz2 (no encoder)")
	}
}

// TestAnnotateShapes annotates packages that lack some of the elements the
// annotation goes into.
func TestAnnotateShapes(t *testing.T) {
	const head = `<?xml version="1.0" encoding="UTF-8"?>
<metadata xmlns="http://linux.duke.edu/metadata/common" xmlns:rpm="http://linux.duke.edu/metadata/rpm" packages="1">
`
	const ident = `  <name>p</name>
  <arch>noarch</arch>
  <version epoch="0" ver="1" rel="1"/>
  <checksum type="sha256" pkgid="YES">aa</checksum>
`
	findings := []metadata.Finding{{Class: "abi-changed", Reason: "r"}}
	const entries = `      <rpm:entry name="abi-divergence(rhel)"/>
      <rpm:entry name="abi-divergence(rhel:abi-changed)"/>`
	tests := []struct {
		name, in, want string
	}{{
		name: "complete",
		in: ident + `  <summary>s</summary>
  <description>d</description>
  <format>
    <rpm:license>MIT</rpm:license>
    <rpm:provides>
      <rpm:entry name="p"/>
    </rpm:provides>
  </format>
`,
		want: ident + `  <summary>[RHEL-ABI: abi-changed] s</summary>
  <description>d

RHEL ABI compatibility: abi-changed — r</description>
  <format>
    <rpm:license>MIT</rpm:license>
    <rpm:provides>
      <rpm:entry name="p"/>
` + entries + `
    </rpm:provides>
  </format>
`,
	}, {
		name: "no provides, empty description",
		in: ident + `  <summary/>
  <description></description>
  <format>
    <rpm:license>MIT</rpm:license>
    <rpm:header-range start="1" end="2"/>
    <rpm:requires>
      <rpm:entry name="q"/>
    </rpm:requires>
  </format>
`,
		want: ident + `  <summary>[RHEL-ABI: abi-changed] </summary>
  <description>RHEL ABI compatibility: abi-changed — r</description>
  <format>
    <rpm:license>MIT</rpm:license>
    <rpm:header-range start="1" end="2"/>
    <rpm:provides>
` + entries + `
    </rpm:provides>
    <rpm:requires>
      <rpm:entry name="q"/>
    </rpm:requires>
  </format>
`,
	}, {
		name: "no summary, description or format",
		in:   ident,
		want: ident[:len(ident)-1] + `
  <summary>[RHEL-ABI: abi-changed] </summary>
  <description>RHEL ABI compatibility: abi-changed — r</description>
  <format>
    <rpm:provides>
` + entries + `
    </rpm:provides>
  </format>
`,
	}, {
		name: "empty provides, CDATA description",
		in: ident + `  <summary>a &amp; b</summary>
  <description><![CDATA[x < y]]>
</description>
  <format>
    <rpm:provides/>
  </format>
`,
		want: ident + `  <summary>[RHEL-ABI: abi-changed] a &amp; b</summary>
  <description><![CDATA[x < y]]>

RHEL ABI compatibility: abi-changed — r</description>
  <format>
    <rpm:provides>
` + entries + `
    </rpm:provides>
  </format>
`,
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := head + `<package type="rpm">` + "\n" + tt.in + "</package>\n</metadata>\n"
			want := head + `<package type="rpm">` + "\n" + tt.want + "</package>\n</metadata>\n"
			decide := func(metadata.PackageID, string) metadata.Decision {
				return metadata.Decision{Action: metadata.ActionAnnotate, Findings: findings}
			}
			plan, err := metadata.NewPlan(strings.NewReader(in), metadata.None, rwLimit, decide)
			if err != nil {
				t.Fatal(err)
			}
			var out bytes.Buffer
			if _, err := plan.Rewrite(metadata.KindPrimary, strings.NewReader(in), metadata.None, &out, metadata.None, rwLimit); err != nil {
				t.Fatal(err)
			}
			if out.String() != want {
				t.Errorf("got\n%s\nwant\n%s", out.String(), want)
			}
			if err := xml.Unmarshal(out.Bytes(), new(struct{})); err != nil {
				t.Errorf("output does not parse: %v", err)
			}
		})
	}
}

// TestRewriteRejects checks that inconsistent or malformed input is an
// error, not a silently wrong file.
func TestRewriteRejects(t *testing.T) {
	plan, err := metadata.NewPlan(strings.NewReader(goodPrimary), metadata.None, rwLimit, keepAll)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		kind metadata.FileKind
		in   string
	}{
		{"wrong root", metadata.KindFilelists, goodPrimary},
		{"package missing", metadata.KindPrimary, regexp.MustCompile(`(?s)<package.*?</package>\s*`).ReplaceAllLiteralString(strings.Replace(goodPrimary, `packages="2"`, `packages="1"`, 1), "")},
		{"truncated", metadata.KindPrimary, goodPrimary[:len(goodPrimary)/2]},
		{"mismatched tags", metadata.KindPrimary, strings.Replace(goodPrimary, "</arch>", "</arh>", 1)},
		{"doctype", metadata.KindPrimary, strings.Replace(goodPrimary, "<metadata", `<!DOCTYPE x [<!ENTITY a "b">]><metadata`, 1)},
		{"trailing element", metadata.KindPrimary, goodPrimary + "<x/>"},
		{"bad entity", metadata.KindPrimary, strings.Replace(goodPrimary, "<name>dnfpt-app", "<name>&foo;dnfpt-app", 1)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := plan.Rewrite(tt.kind, strings.NewReader(tt.in), metadata.None, io.Discard, metadata.None, rwLimit)
			if !errors.Is(err, metadata.ErrMalformed) {
				t.Errorf("Rewrite = %v, want ErrMalformed", err)
			}
		})
	}
	t.Run("mismatched tags in an annotated package", func(t *testing.T) {
		// Kept packages are copied after their identity is read, not
		// checked; annotated ones are lexed to the end.
		in := strings.Replace(goodPrimary, "</summary>", "</sumary>", 1)
		plan, err := metadata.NewPlan(strings.NewReader(in), metadata.None, rwLimit, func(metadata.PackageID, string) metadata.Decision {
			return metadata.Decision{Action: metadata.ActionAnnotate, Findings: almaFindings}
		})
		if err != nil {
			t.Fatal(err)
		}
		_, err = plan.Rewrite(metadata.KindPrimary, strings.NewReader(in), metadata.None, io.Discard, metadata.None, rwLimit)
		if !errors.Is(err, metadata.ErrMalformed) {
			t.Errorf("Rewrite = %v, want ErrMalformed", err)
		}
	})
	t.Run("limit", func(t *testing.T) {
		_, err := plan.Rewrite(metadata.KindPrimary, strings.NewReader(goodPrimary), metadata.None, io.Discard, metadata.None, 100)
		if !errors.Is(err, metadata.ErrTooLarge) {
			t.Errorf("Rewrite = %v, want ErrTooLarge", err)
		}
	})
	t.Run("annotate without findings", func(t *testing.T) {
		_, err := metadata.NewPlan(strings.NewReader(goodPrimary), metadata.None, rwLimit, func(metadata.PackageID, string) metadata.Decision {
			return metadata.Decision{Action: metadata.ActionAnnotate}
		})
		if err == nil {
			t.Error("NewPlan accepted an annotation without findings")
		}
	})
}

func TestRewriteRepomdEdges(t *testing.T) {
	orig := `<?xml version="1.0" encoding="UTF-8"?>
<repomd xmlns="http://linux.duke.edu/metadata/repo" xmlns:rpm="http://linux.duke.edu/metadata/rpm">
  <revision>42</revision>
  <tags>
    <content>binary-x86_64</content>
  </tags>
  <data type="primary">
    <checksum type="sha256">` + sha64a + `</checksum>
    <location xml:base="http://mirror.invalid/" href="repodata/a-primary.xml.gz"/>
    <timestamp>1700000000</timestamp>
    <size>10</size>
  </data>
  <data type="updateinfo">
    <checksum type="sha256">` + sha64a + `</checksum>
    <location href="repodata/u-updateinfo.xml.xz" xml:base="http://mirror.invalid/"/>
    <timestamp>1700000500</timestamp>
  </data>
  <data type="primary_zck">
    <checksum type="sha256">` + sha64a + `</checksum>
    <location href="repodata/a-primary.xml.zck"/>
    <timestamp>1700000000</timestamp>
  </data>
  <data type="modules">
    <checksum type="sha256">` + sha64a + `</checksum>
    <location href="repodata/m-modules.yaml.gz"/>
    <timestamp>1700000100</timestamp>
  </data>
</repomd>
`
	info := metadata.FileInfo{Codec: metadata.Zstd, Checksum: metadata.Checksum{Type: "sha256", Value: sha64b},
		OpenChecksum: metadata.Checksum{Type: "sha256", Value: sha64a}, Size: 5, OpenSize: 50}
	extra := metadata.ExtraRecord{Type: "abi-divergence", Ext: ".json", Info: metadata.FileInfo{Codec: metadata.Gzip,
		Checksum: metadata.Checksum{Type: "sha256", Value: sha64b}, OpenChecksum: metadata.Checksum{Type: "sha256", Value: sha64a}, Size: 1, OpenSize: 2}}
	got, err := metadata.RewriteRepomd([]byte(orig), map[string]metadata.FileInfo{"primary": info}, []metadata.ExtraRecord{extra}, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := `<?xml version="1.0" encoding="UTF-8"?>
<repomd xmlns="http://linux.duke.edu/metadata/repo" xmlns:rpm="http://linux.duke.edu/metadata/rpm">
  <revision>42</revision>
  <tags>
    <content>binary-x86_64</content>
  </tags>
  <data type="primary">
    <checksum type="sha256">` + sha64b + `</checksum>
    <open-checksum type="sha256">` + sha64a + `</open-checksum>
    <location href="repodata/` + sha64b + `-primary.xml.zst"/>
    <timestamp>1700000000</timestamp>
    <size>5</size>
    <open-size>50</open-size>
  </data>
  <data type="updateinfo">
    <checksum type="sha256">` + sha64a + `</checksum>
    <location href="repodata/u-updateinfo.xml.xz"/>
    <timestamp>1700000500</timestamp>
  </data>
  <data type="modules">
    <checksum type="sha256">` + sha64a + `</checksum>
    <location href="repodata/m-modules.yaml.gz"/>
    <timestamp>1700000100</timestamp>
  </data>
  <data type="abi-divergence">
    <checksum type="sha256">` + sha64b + `</checksum>
    <open-checksum type="sha256">` + sha64a + `</open-checksum>
    <location href="repodata/` + sha64b + `-abi-divergence.json.gz"/>
    <timestamp>1700000500</timestamp>
    <size>1</size>
    <open-size>2</open-size>
  </data>
</repomd>
`
	if string(got) != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}

	if _, err := metadata.RewriteRepomd([]byte(orig), map[string]metadata.FileInfo{"filelists": info}, nil, nil); err == nil {
		t.Error("replacing a record repomd.xml lacks succeeded")
	}
}

var (
	sha64a = strings.Repeat("a", 64)
	sha64b = strings.Repeat("b", 64)
)

// TestRewriteDNF serves rewritten repos to the real dnf: the annotation is
// what `dnf info` and `dnf repoquery` show, the filtered package is gone,
// and dnf loads every output compression.
func TestRewriteDNF(t *testing.T) {
	testenv.RequireTool(t, "dnf")
	src, _ := makeRepo(t, allRPMs)
	for _, c := range []metadata.Codec{metadata.Gzip, metadata.Xz, metadata.Zstd} {
		t.Run(strings.TrimPrefix(string(c), "."), func(t *testing.T) {
			t.Parallel()
			rw := rewriteRepo(t, src, decideBy("dnfpt-tool"), c)
			srv := httptest.NewServer(http.FileServer(http.Dir(rw.dir)))
			t.Cleanup(srv.Close)
			dnf := testenv.NewDNF(t, map[string]string{"rw": srv.URL})

			if got, want := dnf.RepoQuery("--whatprovides", "abi-divergence(rhel)"), []string{"dnfpt-lib-1.0-1.el9.alma.1.noarch"}; !slices.Equal(got, want) {
				t.Errorf("whatprovides abi-divergence(rhel) = %q, want %q", got, want)
			}
			all := dnf.RepoQuery()
			want := []string{
				"dnfpt-app-1.0-1.el9.noarch", "dnfpt-big-1.0-1.el9.noarch", "dnfpt-conflict-1.0-1.noarch",
				"dnfpt-extra-1.0-1.el9.noarch", "dnfpt-lib-1.0-1.el9.alma.1.noarch", "dnfpt-lib-1.0-1.el9.noarch",
			}
			if !slices.Equal(all, want) {
				t.Errorf("repoquery = %q, want %q (dnfpt-tool filtered)", all, want)
			}
			if c != metadata.Gzip {
				return
			}
			out, _, err := dnf.Run("info", "dnfpt-lib")
			if err != nil {
				t.Fatal(err)
			}
			for _, want := range []string{
				"[RHEL-ABI: abi-changed,patched] dnfproxy test fixture",
				"RHEL ABI compatibility: abi-changed — soname version node DNFPT_1.1 added & <not> in RHEL",
				"RHEL ABI compatibility: patched — vendor release marker .alma.1",
			} {
				if !strings.Contains(unwrap(out), want) {
					t.Errorf("dnf info lacks %q:\n%s", want, out)
				}
			}
			if got := dnf.RepoQuery("--whatprovides", "abi-divergence(rhel:patched)"); !slices.Equal(got, []string{"dnfpt-lib-1.0-1.el9.alma.1.noarch"}) {
				t.Errorf("whatprovides abi-divergence(rhel:patched) = %q", got)
			}
			// filelists: the kept package's files are there, the filtered one's are not.
			if got := dnf.RepoQuery("--whatprovides", "/usr/share/dnfproxy-test/app/VERSION"); !slices.Equal(got, []string{"dnfpt-app-1.0-1.el9.noarch"}) {
				t.Errorf("whatprovides a file of dnfpt-app = %q", got)
			}
		})
	}
}

// unwrap joins the continuation lines of `dnf info` (": text") so that a
// long line can be searched for.
func unwrap(out string) string {
	var b strings.Builder
	for line := range strings.Lines(out) {
		line = strings.TrimRight(line, "\n")
		if k, v, ok := strings.Cut(line, ": "); ok && strings.TrimSpace(k) == "" {
			b.WriteString(" " + v)
			continue
		}
		b.WriteString("\n" + line)
	}
	return b.String()
}

// FuzzRewritePrimary checks the scanner and the rewriter on any input: no
// panic; a plan that keeps everything reproduces the input byte for byte;
// annotating or filtering everything in a document encoding/xml accepts
// gives a document it still accepts, with the right count.
func FuzzRewritePrimary(f *testing.F) {
	addSeeds(f, "primary.xml")
	f.Add([]byte(goodPrimary))
	f.Fuzz(func(t *testing.T, data []byte) {
		plan, err := metadata.NewPlan(bytes.NewReader(data), metadata.None, 1<<20, keepAll)
		if err != nil {
			if !errors.Is(err, metadata.ErrMalformed) && !errors.Is(err, metadata.ErrTooLarge) {
				t.Fatalf("NewPlan error %v is neither ErrMalformed nor ErrTooLarge", err)
			}
			return
		}
		var out bytes.Buffer
		res, err := plan.Rewrite(metadata.KindPrimary, bytes.NewReader(data), metadata.None, &out, metadata.None, 1<<20)
		if err != nil {
			t.Fatalf("keep-all Rewrite of input NewPlan accepted: %v", err)
		}
		var held bytes.Buffer
		if res2, err := plan.Rewrite(metadata.KindPrimary, struct{ io.Reader }{bytes.NewReader(data)}, metadata.None, &held, metadata.None, 1<<20); err != nil || res2 != res || !bytes.Equal(held.Bytes(), out.Bytes()) {
			t.Fatalf("keep-all Rewrite of a reader that cannot seek differs (%v):\n%q\n%q", err, held.Bytes(), out.Bytes())
		}
		if !bytes.Equal(out.Bytes(), data) {
			// Only a root count that disagrees with the packages listed
			// is changed, to what is written: the output is then a fixed
			// point.
			again, err := metadata.NewPlan(bytes.NewReader(out.Bytes()), metadata.None, 1<<20, keepAll)
			if err != nil {
				t.Fatalf("output of a keep-all rewrite: %v", err)
			}
			var out2 bytes.Buffer
			if _, err := again.Rewrite(metadata.KindPrimary, bytes.NewReader(out.Bytes()), metadata.None, &out2, metadata.None, 1<<20); err != nil || !bytes.Equal(out2.Bytes(), out.Bytes()) {
				t.Fatalf("keep-all rewrite changed the document and is no fixed point (%v):\n%q\n%q\n%q", err, data, out.Bytes(), out2.Bytes())
			}
		}
		if res.Packages != plan.Packages {
			t.Fatalf("result %+v for %d packages, %d bytes", res, plan.Packages, len(data))
		}
		wellFormed := xml.Unmarshal(data, new(struct{})) == nil
		for _, action := range []metadata.Action{metadata.ActionAnnotate, metadata.ActionFilter} {
			decide := func(metadata.PackageID, string) metadata.Decision {
				return metadata.Decision{Action: action, Findings: []metadata.Finding{{Class: "patched", Reason: "r <&>", Link: "l"}}}
			}
			plan, err := metadata.NewPlan(bytes.NewReader(data), metadata.None, 1<<20, decide)
			if err != nil {
				// A pkgid may name two different packages.
				if errors.Is(err, metadata.ErrMalformed) {
					continue
				}
				t.Fatal(err)
			}
			out.Reset()
			res, err := plan.Rewrite(metadata.KindPrimary, bytes.NewReader(data), metadata.None, &out, metadata.None, 1<<20)
			if err != nil {
				// An annotated package is lexed to its end; the plan
				// only read its identity.
				if action == metadata.ActionAnnotate && errors.Is(err, metadata.ErrMalformed) {
					continue
				}
				t.Fatalf("%s: %v", action, err)
			}
			if action == metadata.ActionFilter && (res.Packages != 0 || res.Filtered != plan.Packages) {
				t.Fatalf("filter all: %+v", res)
			}
			if wellFormed {
				if err := xml.Unmarshal(out.Bytes(), new(struct{})); err != nil {
					t.Fatalf("%s: output of a well-formed input does not parse: %v\n%s", action, err, out.Bytes())
				}
			}
		}
	})
}

// FuzzRewriteRepomd: any accepted repomd.xml rewritten without changes
// still parses, and has no derived record left.
func FuzzRewriteRepomd(f *testing.F) {
	addSeeds(f, "repomd-*.xml")
	f.Fuzz(func(t *testing.T, data []byte) {
		out, err := metadata.RewriteRepomd(data, nil, nil, nil)
		if err != nil {
			return
		}
		md, err := metadata.ParseRepomd(out)
		if err != nil {
			t.Fatalf("output does not parse: %v", err)
		}
		for _, rec := range md.Records {
			if metadata.DropDerived(rec.Type) {
				t.Fatalf("record %s left", rec.Type)
			}
		}
	})
}
