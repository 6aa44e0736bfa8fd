package proxy

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dnfproxy/dnfproxy/internal/config"
	"github.com/dnfproxy/dnfproxy/internal/testenv"
	"github.com/dnfproxy/dnfproxy/metadata"
)

const almaLib = "dnfpt-lib-1.0-1.el9.alma.1.noarch"

// viewFixture is an upstream repo with two builds of dnfpt-lib (the newer
// one carrying a vendor marker) and an updateinfo, and a proxy with rules.
type viewFixture struct {
	dir string
	up  *fakeUpstream
	p   *testProxy
}

func newViewFixture(t *testing.T, mode config.Mode, rules string) *viewFixture {
	t.Helper()
	f := &viewFixture{}
	f.dir = newRepoDir(t, "el9", append(testenv.InitialRPMs(), testenv.RPMLibAlma))
	modifyrepo := testenv.RequireTool(t, "modifyrepo_c")
	info := filepath.Join(testenv.TestdataDir(), "..", "metadata", "testdata", "updateinfo", "updateinfo.xml")
	if out, err := exec.Command(modifyrepo, "--mdtype=updateinfo", info, filepath.Join(f.dir, "el9", "repodata")).CombinedOutput(); err != nil {
		t.Fatalf("modifyrepo_c: %v\n%s", err, out)
	}
	rulesFile := filepath.Join(t.TempDir(), "rules.yaml")
	if err := os.WriteFile(rulesFile, []byte(rules), 0o644); err != nil {
		t.Fatal(err)
	}
	f.up = newFakeUpstream(t, f.dir)
	r := testRepo("test", f.up.URL(), time.Minute)
	r.Compat.Mode = mode
	f.p = startProxy(t, []config.Repo{r}, func(c *config.Config) {
		c.RuleFiles = []string{rulesFile}
		c.Signing.KeyFile = "testdata/signing-key.asc"
	})
	return f
}

const almaRule = `rules:
  - name: alma-lib
    match:
      name: "dnfpt-*"
      release: "*.alma*"
    class: abi-changed
    reason: "adds the DNFPT_1.1 symbol version"
    link: "https://example.org/alma-lib"
`

// repoFiles fetches a view's repomd.xml and returns each listed file,
// decompressed, by record type.
func viewFiles(t *testing.T, p *testProxy, base string) ([]byte, map[string][]byte) {
	t.Helper()
	status, repomd, err := p.get(t, base+"repodata/repomd.xml")
	if err != nil || status != 200 {
		t.Fatalf("%srepodata/repomd.xml: %d %v", base, status, err)
	}
	md, err := metadata.ParseRepomd(repomd)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]byte{}
	for _, rec := range md.Records {
		status, body, err := p.get(t, base+rec.Href)
		if err != nil || status != 200 {
			t.Fatalf("%s: %d %v", rec.Href, status, err)
		}
		if rec.Type == "abi-divergence" || strings.HasSuffix(rec.Type, "_db") || strings.HasSuffix(rec.Type, "_zck") ||
			rec.Type == "primary" || rec.Type == "filelists" || rec.Type == "other" || rec.Type == "updateinfo" {
			zr, err := metadata.Decompress(bytes.NewReader(body), metadata.CodecOf(rec.Href), 1<<30)
			if err == nil {
				body, err = io.ReadAll(zr)
			}
			if err != nil && !strings.HasSuffix(rec.Type, "_db") && !strings.HasSuffix(rec.Type, "_zck") {
				t.Fatalf("%s: %v", rec.Href, err)
			}
		}
		out[rec.Type] = body
	}
	return repomd, out
}

func TestViewAnnotateE2E(t *testing.T) {
	f := newViewFixture(t, config.ModeAnnotate, almaRule)
	keyURL := f.p.URL("/test/el9/repodata/repomd.xml.key")
	d := testenv.NewDNF(t, map[string]string{"test": f.p.URL("/test/el9/")},
		testenv.WithRepoOption("test", "repo_gpgcheck", "1"),
		testenv.WithRepoOption("test", "gpgkey", keyURL))
	d.MakeCache() // repo_gpgcheck=1: the proxy's signature of its rewritten repomd.xml verifies

	out, stderr, err := d.Run("info", "--showduplicates", "dnfpt-lib")
	if err != nil {
		t.Fatalf("dnf info: %v\n%s", err, stderr)
	}
	for _, want := range []string{
		// The rule's class, and "patched" found from the release's vendor marker.
		"Summary      : [RHEL-ABI: abi-changed,patched] dnfproxy test fixture",
		"RHEL ABI compatibility: abi-changed — adds the DNFPT_1.1 symbol version (https://example.org/alma-lib)",
		`RHEL ABI compatibility: patched — release 1.el9.alma.1 carries the vendor marker ".alma.1"`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("dnf info lacks %q:\n%s", want, out)
		}
	}
	if got := d.RepoQuery("--whatprovides", "abi-divergence(rhel)"); !slices.Equal(got, []string{almaLib}) {
		t.Fatalf("whatprovides abi-divergence(rhel): %v, want [%s]", got, almaLib)
	}
	if got := d.RepoQuery("--whatprovides", "abi-divergence(rhel:abi-changed)"); !slices.Equal(got, []string{almaLib}) {
		t.Fatalf("whatprovides abi-divergence(rhel:abi-changed): %v", got)
	}
	// Annotated packages still install (the newest build is the alma one).
	d.Install("dnfpt-lib")
	if out := rpmQuery(t, d, "dnfpt-lib"); !strings.Contains(out, "alma.1") {
		t.Fatalf("installed %q, want the annotated alma build", out)
	}

	// A local package that Conflicts: abi-divergence(rhel) blocks them.
	d2 := testenv.NewDNF(t, map[string]string{"test": f.p.URL("/test/el9/")},
		testenv.WithRepoOption("test", "repo_gpgcheck", "1"), testenv.WithRepoOption("test", "gpgkey", keyURL))
	d2.Install(testenv.RPMPath(testenv.RPMConflict))
	if _, stderr, err := d2.Run("install", "dnfpt-lib-1.0-1.el9.alma.1"); err == nil {
		t.Fatal("the conflicting divergent build installed")
	} else if !strings.Contains(stderr+out, "conflict") {
		t.Logf("dnf refused: %s", stderr)
	}
	d2.Install("--nobest", "dnfpt-lib") // dnf picks the compatible build instead
	if out := rpmQuery(t, d2, "dnfpt-lib"); strings.Contains(out, "alma") {
		t.Fatalf("installed %q despite the conflict", out)
	}

	// The raw view is upstream's bytes.
	repomd, _ := viewFiles(t, f.p, "/test@raw/el9/")
	if !bytes.Equal(repomd, readFile(t, f.dir+"/el9/repodata/repomd.xml")) {
		t.Fatal("raw repomd.xml differs from upstream")
	}
	md, _ := metadata.ParseRepomd(repomd)
	for _, rec := range md.Records {
		_, body, _ := f.p.get(t, "/test@raw/el9/"+rec.Href)
		if !bytes.Equal(body, readFile(t, f.dir+"/el9/"+rec.Href)) {
			t.Fatalf("raw %s differs from upstream", rec.Href)
		}
	}
	// The rewritten repomd.xml carries the abi-divergence record and no
	// sqlite or zchunk record.
	_, files := viewFiles(t, f.p, "/test/el9/")
	if !bytes.Contains(files["abi-divergence"], []byte(almaLib)) {
		t.Fatalf("abi-divergence record lacks the finding: %s", files["abi-divergence"])
	}
	for typ := range files {
		if strings.HasSuffix(typ, "_db") || strings.HasSuffix(typ, "_zck") {
			t.Fatalf("rewritten repomd.xml still lists %s", typ)
		}
	}
}

func rpmQuery(t *testing.T, d *testenv.DNF, name string) string {
	t.Helper()
	out, err := exec.Command(testenv.RequireTool(t, "rpm"), "--root", d.Root(), "-q", name).CombinedOutput()
	if err != nil {
		t.Fatalf("rpm -q %s: %v %s", name, err, out)
	}
	return strings.TrimSpace(string(out))
}

func TestViewFilterE2E(t *testing.T) {
	rules := almaRule + `  - name: tool-broken
    match:
      name: dnfpt-tool
    class: abi-changed
    reason: "drops a symbol"
`
	f := newViewFixture(t, config.ModeFilter, rules)
	d := testenv.NewDNF(t, map[string]string{"test": f.p.URL("/test/el9/")},
		testenv.WithRepoOption("test", "repo_gpgcheck", "1"),
		testenv.WithRepoOption("test", "gpgkey", f.p.URL("/test/el9/repodata/repomd.xml.key")))
	got := d.RepoQuery()
	if slices.Contains(got, almaLib) || slices.Contains(got, "dnfpt-tool-2.0-1.el9.noarch") {
		t.Fatalf("filtered packages still listed: %v", got)
	}
	if !slices.Contains(got, "dnfpt-lib-1.0-1.el9.noarch") {
		t.Fatalf("compatible build missing: %v", got)
	}
	// dnf falls back to the older compatible build.
	d.Install("dnfpt-app")
	if out := rpmQuery(t, d, "dnfpt-lib"); out != "dnfpt-lib-1.0-1.el9.noarch" {
		t.Fatalf("installed %q, want the compatible build", out)
	}
	// A filtered package with no other build is not installable.
	if _, _, err := d.Run("install", "dnfpt-tool"); err == nil {
		t.Fatal("filtered dnfpt-tool installed")
	}
	// Gone from all three files and from the advisories, consistently.
	_, files := viewFiles(t, f.p, "/test/el9/")
	almaSum := sha256File(t, f.dir+"/el9/Packages/"+testenv.RPMLibAlma)
	for _, typ := range []string{"primary", "filelists", "other"} {
		if bytes.Contains(files[typ], []byte(almaSum)) || bytes.Contains(files[typ], []byte(`name="dnfpt-tool"`)) ||
			bytes.Contains(files[typ], []byte("<name>dnfpt-tool</name>")) {
			t.Errorf("%s still lists a filtered package", typ)
		}
		if !bytes.Contains(files[typ], []byte(`packages="2"`)) {
			t.Errorf("%s: package count not 2 (4 upstream, 2 filtered)", typ)
		}
	}
	// The advisory loses the filtered noarch build; its x86_64 entry names
	// no package of this repo and stays.
	if bytes.Contains(files["updateinfo"], []byte(`release="1.el9.alma.1" epoch="0" arch="noarch"`)) ||
		bytes.Contains(files["updateinfo"], []byte(`name="dnfpt-tool"`)) ||
		!bytes.Contains(files["updateinfo"], []byte(`release="1.el9.alma.1" epoch="0" arch="x86_64"`)) ||
		!bytes.Contains(files["updateinfo"], []byte("ALSA-2024:0001")) {
		t.Errorf("updateinfo not filtered right:\n%s", files["updateinfo"])
	}
	rep, err := f.p.srv.views.Report(context.Background(), "test", "el9/", true)
	if err != nil {
		t.Fatal(err)
	}
	actions := map[string]string{}
	for _, p := range rep.Packages {
		actions[p.NEVRA] = string(p.Action)
	}
	if actions[almaLib] != "filter" || actions["dnfpt-tool-2.0-1.el9.noarch"] != "filter" || len(actions) != 2 {
		t.Fatalf("report actions %v", actions)
	}
	if len(rep.Affected) != 0 {
		t.Fatalf("affected %v: dnfpt-app still has a compatible dnfpt-lib", rep.Affected)
	}
}

func TestViewFilterListsAffectedDependents(t *testing.T) {
	f := newViewFixture(t, config.ModeFilter, `rules:
  - name: all-lib
    match: {name: dnfpt-lib}
    reason: "every build diverges"
`)
	rep, err := f.p.srv.views.Report(context.Background(), "test", "el9/", true)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Affected) != 1 || rep.Affected[0].NEVRA != "dnfpt-app-1.0-1.el9.noarch" ||
		!slices.Equal(rep.Affected[0].Requires, []string{"dnfpt-lib"}) || len(rep.Affected[0].Filtered) != 2 {
		t.Fatalf("affected: %+v", rep.Affected)
	}
	d := testenv.NewDNF(t, map[string]string{"test": f.p.URL("/test/el9/")})
	if _, _, err := d.Run("install", "dnfpt-app"); err == nil {
		t.Fatal("dnfpt-app installed although its only providers are filtered")
	}
}

func sha256File(t *testing.T, path string) string {
	t.Helper()
	sum := sha256.Sum256(readFile(t, path))
	return hex.EncodeToString(sum[:])
}
