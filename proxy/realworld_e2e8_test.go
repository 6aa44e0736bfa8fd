package proxy_test

// End-to-end tests of real-world repository shapes with the real clients:
// metadata that every client accepts must be served by every view (xml:base
// locations, fractional timestamps, duplicate pkgids, stub filelists), the
// filter view keeps comps and filelists-ext consistent with what it keeps,
// and a signature request for a root whose repomd.xml fails answers 404
// when upstream has none.

import (
	"bytes"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/dnfproxy/dnfproxy/internal/config"
	"github.com/dnfproxy/dnfproxy/internal/testenv"
	"github.com/dnfproxy/dnfproxy/metadata"
)

// e8Views are the client views every test goes through.
var e8Views = []string{"raw", "annotate", "filter"}

// e8Serve serves a copy-free view of repoDir at <upstream>/r/.
func e8Serve(t *testing.T, repoDir string) *testenv.SickUpstream {
	t.Helper()
	parent := t.TempDir()
	if err := os.Symlink(repoDir, filepath.Join(parent, "r")); err != nil {
		t.Fatal(err)
	}
	return testenv.NewSickUpstream(t, parent)
}

// e8Proxy starts a proxy with repo "up" over the upstream, in annotate
// mode, with rules (YAML, may be "").
func e8Proxy(t *testing.T, upURL, rules string) *bbProxy {
	t.Helper()
	return startBB(t, []config.Repo{bbRepo("up", upURL, config.ModeAnnotate)}, func(c *config.Config) {
		if rules != "" {
			c.RuleFiles = []string{writeFile(t, "rules.yaml", rules)}
		}
	})
}

// e8Base is the client base URL of root r/ in a view ("direct": upstream).
func e8Base(p *bbProxy, up *testenv.SickUpstream, view string) string {
	switch view {
	case "direct":
		return up.URL() + "r/"
	case "raw":
		return p.URL("/up@raw/r/")
	}
	return p.URL("/up@" + view + "/r/")
}

// e8RepoQuery is `dnf repoquery` of all packages through base.
func e8RepoQuery(t *testing.T, base string) []string {
	t.Helper()
	return testenv.NewDNF(t, map[string]string{"r": base}).RepoQuery()
}

// e8Record fetches and decompresses a record of the repomd.xml at base.
func e8Record(t *testing.T, base, typ string) ([]byte, bool) {
	t.Helper()
	st, _, body, err := httpGet(t.Context(), base+"repodata/repomd.xml", nil)
	if err != nil || st != http.StatusOK {
		t.Fatalf("%srepodata/repomd.xml: %d %v", base, st, err)
	}
	md, err := metadata.ParseRepomd(body)
	if err != nil {
		t.Fatalf("%srepodata/repomd.xml: %v", base, err)
	}
	rec, ok := md.Record(typ)
	if !ok {
		return nil, false
	}
	st, _, data, err := httpGet(t.Context(), base+rec.Href, nil)
	if err != nil || st != http.StatusOK {
		t.Fatalf("%s%s: %d %v", base, rec.Href, st, err)
	}
	zr, err := metadata.Decompress(bytes.NewReader(data), metadata.CodecOf(rec.Href), 1<<30)
	if err != nil {
		t.Fatalf("%s%s: %v", base, rec.Href, err)
	}
	defer zr.Close()
	var out bytes.Buffer
	if _, err := out.ReadFrom(zr); err != nil {
		t.Fatalf("%s%s: %v", base, rec.Href, err)
	}
	return out.Bytes(), true
}

// e8SameAsDirect checks that dnf lists the same packages in every view as
// directly, but for the filter view, which lacks the packages named
// filtered (may be ""), and that the raw view's repomd.xml is upstream's.
func e8SameAsDirect(t *testing.T, p *bbProxy, up *testenv.SickUpstream, repoDir, filtered string) []string {
	t.Helper()
	direct := e8RepoQuery(t, e8Base(p, up, "direct"))
	if len(direct) == 0 {
		t.Fatal("dnf lists no package directly")
	}
	for _, view := range e8Views {
		want := direct
		if view == "filter" && filtered != "" {
			want = slices.DeleteFunc(slices.Clone(direct), func(n string) bool { return strings.HasPrefix(n, filtered+"-") })
			if len(want) == len(direct) {
				t.Fatalf("no %s package to filter", filtered)
			}
		}
		if got := e8RepoQuery(t, e8Base(p, up, view)); !slices.Equal(got, want) {
			t.Errorf("%s view: dnf lists %v, want %v", view, got, want)
		}
	}
	want, err := os.ReadFile(filepath.Join(repoDir, "repodata", "repomd.xml"))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, got, _ := p.get(t, "/up@raw/r/repodata/repomd.xml"); !bytes.Equal(got, want) {
		t.Error("the raw view's repomd.xml differs from upstream's")
	}
	return direct
}

// TestE2E8_XMLBase: createrepo_c --baseurl writes xml:base on every package
// location. With the base on upstream itself, dnf installs through every
// view (fetching the RPMs from the xml:base), the views keep the xml:base,
// and the proxy serves those packages verified at their resolved path.
// With a base outside the repo, metadata still works in every view and the
// proxy does not fetch the package for the client.
func TestE2E8_XMLBase(t *testing.T) {
	testenv.RequireTool(t, "dnf")
	testenv.RequireRoot(t)
	dir := t.TempDir()
	up := e8Serve(t, dir)
	testenv.MakeRepo(t, dir, testenv.InitialRPMs(), "--baseurl", up.URL()+"r/")
	p := e8Proxy(t, up.URL(), "")
	if got := e8SameAsDirect(t, p, up, dir, ""); !slices.Equal(got, testenv.InitialNEVRAs()) {
		t.Errorf("dnf lists %v, want %v", got, testenv.InitialNEVRAs())
	}
	for _, view := range e8Views {
		base := e8Base(p, up, view)
		primary, _ := e8Record(t, base, "primary")
		if n := bytes.Count(primary, []byte(`xml:base="`+up.URL()+`r/"`)); n != len(testenv.InitialRPMs()) {
			t.Errorf("%s view: primary.xml has %d xml:base locations, want %d", view, n, len(testenv.InitialRPMs()))
		}
		dnf := testenv.NewDNF(t, map[string]string{"r": base})
		dnf.Install("dnfpt-app")
		if !dnf.Installed("dnfpt-app") || !dnf.Installed("dnfpt-lib") {
			t.Errorf("%s view: dnfpt-app and dnfpt-lib not installed", view)
		}
	}
	// A client asking the proxy anyway gets the package verified: its
	// location resolves inside the repo.
	if st, _, body, err := p.get(t, "/up/r/Packages/"+testenv.RPMApp); err != nil || st != http.StatusOK || len(body) == 0 {
		t.Errorf("package at its resolved path: %d %v", st, err)
	}

	// The package index of a root in pass-through mode (no analysis)
	// resolves the xml:base: inside the repo, the package is verified and
	// cached (upstream asked once for two client requests); outside, it
	// is not indexed, so a client asking the proxy anyway gets upstream's
	// answer passed through, uncached.
	for _, tc := range []struct {
		name, base string
		hits       int
	}{{"inside", up.URL() + "r/", 1}, {"outside", "http://baseurl.invalid/zoo/", 2}} {
		t.Run("index "+tc.name, func(t *testing.T) {
			dir := t.TempDir()
			up := e8Serve(t, dir)
			testenv.MakeRepo(t, dir, testenv.InitialRPMs(), "--baseurl", tc.base)
			if tc.name == "inside" {
				testenv.CreateRepo(t, dir, "--baseurl", up.URL()+"r/")
			}
			p := startBB(t, []config.Repo{bbRepo("off", up.URL(), config.ModeOff)}, nil)
			if st, _, _, _ := p.get(t, "/off/r/repodata/repomd.xml"); st != http.StatusOK {
				t.Fatalf("repomd.xml: %d", st)
			}
			for range 2 {
				if st, _, _, err := p.get(t, "/off/r/Packages/"+testenv.RPMTool); err != nil || st != http.StatusOK {
					t.Fatalf("package: %d %v", st, err)
				}
			}
			if n := up.Hits("/r/Packages/" + testenv.RPMTool); n != tc.hits {
				t.Errorf("upstream asked %d times for the package, want %d", n, tc.hits)
			}
		})
	}

	t.Run("outside", func(t *testing.T) {
		dir := t.TempDir()
		up := e8Serve(t, dir)
		testenv.MakeRepo(t, dir, testenv.InitialRPMs(), "--baseurl", "http://baseurl.invalid/zoo/")
		p := e8Proxy(t, up.URL(), "")
		e8SameAsDirect(t, p, up, dir, "")
		for _, view := range e8Views {
			dnf := testenv.NewDNF(t, map[string]string{"r": e8Base(p, up, view)})
			if _, _, err := dnf.Run("download", "--destdir", t.TempDir(), "dnfpt-tool"); err == nil {
				t.Errorf("%s view: dnf downloaded a package whose xml:base does not resolve", view)
			}
			if n := up.HitsSuffix(".rpm"); n > 0 {
				t.Errorf("%s view: upstream served %d RPM requests for locations outside the repo", view, n)
			}
		}
	})
}

// TestE2E8_FractionalTimestamp: librepo's repo_yum_02 has old yum's
// <timestamp>1355315696.84</timestamp> records.
func TestE2E8_FractionalTimestamp(t *testing.T) {
	testenv.RequireTool(t, "dnf")
	dir := testenv.CorpusPath(t, "librepo/tests/test_data/repo_yum_02")
	repomd, err := os.ReadFile(filepath.Join(dir, "repodata", "repomd.xml"))
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`<timestamp>\d+\.\d+</timestamp>`).Match(repomd) {
		t.Fatal("repo_yum_02 has no fractional timestamp any more")
	}
	up := e8Serve(t, dir)
	p := e8Proxy(t, up.URL(), "")
	e8SameAsDirect(t, p, up, dir, "")
}

// TestE2E8_DuplicatePkgids: createrepo_c's repo_with_duplicate_packages
// lists one package twice; both copies are rewritten the same way.
func TestE2E8_DuplicatePkgids(t *testing.T) {
	testenv.RequireTool(t, "dnf")
	dir := testenv.CorpusPath(t, "createrepo_c/tests/testdata/repo_with_duplicate_packages")
	up := e8Serve(t, dir)
	p := e8Proxy(t, up.URL(), e8Rule("fake_bash"))
	e8SameAsDirect(t, p, up, dir, "fake_bash")
	upPrimary, _ := e8Record(t, e8Base(p, up, "direct"), "primary")
	for _, tc := range []struct {
		view string
		want int // packages left
	}{{"annotate", 4}, {"filter", 2}} {
		primary, _ := e8Record(t, e8Base(p, up, tc.view), "primary")
		if got := bytes.Count(primary, []byte("<package ")); got != tc.want || bytes.Count(upPrimary, []byte("<package ")) != 4 {
			t.Errorf("%s view: %d packages in primary.xml, want %d", tc.view, got, tc.want)
		}
		if tc.view == "annotate" && bytes.Count(primary, []byte("abi-divergence(")) < 2 {
			t.Errorf("annotate view: both copies of fake_bash should be annotated:\n%s", primary)
		}
	}
}

// TestE2E8_StubFilelists: a filelists.xml whose packages= count says 0
// while primary lists three; clients accept it, so does every view.
func TestE2E8_StubFilelists(t *testing.T) {
	testenv.RequireTool(t, "dnf")
	bin := testenv.RequireTool(t, "modifyrepo_c")
	dir := t.TempDir()
	testenv.MakeRepo(t, dir, testenv.InitialRPMs(), "--no-database")
	stub := filepath.Join(t.TempDir(), "filelists.xml")
	doc := `<?xml version="1.0" encoding="UTF-8"?>` + "\n" +
		`<filelists xmlns="http://linux.duke.edu/metadata/filelists" packages="0">` + "\n</filelists>\n"
	if err := os.WriteFile(stub, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(bin, "--mdtype=filelists", stub, filepath.Join(dir, "repodata")).CombinedOutput(); err != nil {
		t.Fatalf("modifyrepo_c: %v\n%s", err, out)
	}
	up := e8Serve(t, dir)
	p := e8Proxy(t, up.URL(), e8Rule("dnfpt-tool"))
	if got := e8SameAsDirect(t, p, up, dir, "dnfpt-tool"); !slices.Equal(got, testenv.InitialNEVRAs()) {
		t.Errorf("dnf lists %v, want %v", got, testenv.InitialNEVRAs())
	}
	for _, view := range []string{"annotate", "filter"} {
		fl, ok := e8Record(t, e8Base(p, up, view), "filelists")
		if !ok || !bytes.Contains(fl, []byte(`packages="0"`)) {
			t.Errorf("%s view: filelists %q, want the stub rewritten as it is", view, fl)
		}
	}
}

// e8Rule classifies the packages named name as diverging.
func e8Rule(name string) string { return strings.ReplaceAll(zooDolphinRules, "dolphin", name) }

// zooDolphinRules classifies dolphin as diverging: the filter view drops
// it, which leaves penguin (Requires: dolphin) uninstallable.
const zooDolphinRules = `rules:
  - name: zoo-dolphin
    match:
      name: "dolphin"
    class: abi-changed
    reason: "test: dolphin diverges"
`

// TestE2E8_FilterComps: pulp-fixtures' zoo with its comps.xml. In the
// filter view, dolphin is gone and so is penguin from the groups, so
// `dnf group install birds` works there as it does directly, and the
// divergence report names the groups that lost packages.
func TestE2E8_FilterComps(t *testing.T) {
	testenv.RequireTool(t, "dnf")
	testenv.RequireRoot(t)
	assets := testenv.CorpusPath(t, "pulp-fixtures/rpm/assets")
	rpms, err := filepath.Glob(filepath.Join(assets, "*.rpm"))
	if err != nil || len(rpms) == 0 {
		t.Fatalf("no zoo RPMs: %v", err)
	}
	dir := t.TempDir()
	testenv.MakeRepo(t, dir, rpms, "--groupfile", filepath.Join(assets, "comps.xml"))
	up := e8Serve(t, dir)
	p := e8Proxy(t, up.URL(), zooDolphinRules)
	for _, view := range []string{"direct", "raw", "annotate", "filter"} {
		t.Run(view, func(t *testing.T) {
			base := e8Base(p, up, view)
			for _, typ := range []string{"group", "group_gz"} {
				comps, ok := e8Record(t, base, typ)
				if !ok {
					t.Fatalf("no %s record", typ)
				}
				hasPenguin := bytes.Contains(comps, []byte(">penguin<"))
				if hasPenguin != (view != "filter") || !bytes.Contains(comps, []byte(">stork<")) {
					t.Errorf("%s: penguin listed %v, stork listed %v", typ, hasPenguin, bytes.Contains(comps, []byte(">stork<")))
				}
			}
			dnf := testenv.NewDNF(t, map[string]string{"zoo": base})
			dnf.Install("@birds")
			for _, name := range []string{"stork", "duck", "cockateel"} {
				if !dnf.Installed(name) {
					t.Errorf("%s not installed by the group", name)
				}
			}
			if got := dnf.Installed("dolphin"); got != (view != "filter") {
				t.Errorf("dolphin installed: %v", got)
			}
		})
	}
	report, ok := e8Record(t, e8Base(p, up, "filter"), "abi-divergence")
	if !ok || !bytes.Contains(report, []byte(`"affected_groups"`)) || !bytes.Contains(report, []byte(`"penguin"`)) {
		t.Errorf("the filter view's report does not name the groups that lost penguin:\n%s", report)
	}
}

// TestE2E8_FilterFilelistsExt: createrepo_c's repo_04 has a filelists-ext
// record; the filter view drops the filtered package from it as from
// filelists.
func TestE2E8_FilterFilelistsExt(t *testing.T) {
	testenv.RequireTool(t, "dnf")
	dir := testenv.CorpusPath(t, "createrepo_c/tests/testdata/repo_04")
	up := e8Serve(t, dir)
	p := e8Proxy(t, up.URL(), e8Rule("fake_bash"))
	direct, _ := e8Record(t, e8Base(p, up, "direct"), "filelists-ext")
	if !bytes.Contains(direct, []byte(`name="fake_bash"`)) {
		t.Fatal("repo_04's filelists-ext does not list fake_bash")
	}
	for _, view := range []string{"raw", "annotate", "filter"} {
		ext, ok := e8Record(t, e8Base(p, up, view), "filelists-ext")
		if !ok {
			t.Errorf("%s view: no filelists-ext record", view)
			continue
		}
		if has := bytes.Contains(ext, []byte(`name="fake_bash"`)); has != (view != "filter") {
			t.Errorf("%s view: filelists-ext lists fake_bash: %v", view, has)
		}
		if !bytes.Contains(ext, []byte(`name="super_kernel"`)) {
			t.Errorf("%s view: filelists-ext lost super_kernel", view)
		}
	}
	if got := e8RepoQuery(t, e8Base(p, up, "filter")); len(got) != 1 || !strings.HasPrefix(got[0], "super_kernel-") {
		t.Errorf("filter view: dnf lists %v, want super_kernel only", got)
	}
}

// TestE2E8_SignatureOfFailedRoot: upstream's repomd.xml of a root is
// broken and it has no repomd.xml.asc: the raw view's signature answers
// 404 (what upstream says), not the repomd's 502.
func TestE2E8_SignatureOfFailedRoot(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "repodata"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "repodata", "repomd.xml"), []byte("<repomd><data"), 0o644); err != nil {
		t.Fatal(err)
	}
	up := e8Serve(t, dir)
	p := e8Proxy(t, up.URL(), "")
	for _, prefix := range []string{"/up@raw/r/", "/up@annotate/r/", "/up@filter/r/"} {
		if st, _, _, err := p.get(t, prefix+"repodata/repomd.xml"); err != nil || st != http.StatusBadGateway {
			t.Errorf("%srepodata/repomd.xml: %d %v, want 502 for a broken repomd.xml", prefix, st, err)
		}
		if st, _, _, err := p.get(t, prefix+"repodata/repomd.xml.asc"); err != nil || st != http.StatusNotFound {
			t.Errorf("%srepodata/repomd.xml.asc: %d %v, want 404", prefix, st, err)
		}
	}
}
