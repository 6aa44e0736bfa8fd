package proxy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dnfproxy/dnfproxy/internal/abi"
	"github.com/dnfproxy/dnfproxy/internal/config"
	"github.com/dnfproxy/dnfproxy/internal/testenv"
	"github.com/dnfproxy/dnfproxy/internal/view"
	"github.com/dnfproxy/dnfproxy/metadata"
)

// abiCorpus builds the given packages of the generated ABI corpus
// (testdata/abi/packages.txt) into a temporary directory and returns it;
// <id>.rpm is each package.
func abiCorpus(t testing.TB, ids ...string) string {
	t.Helper()
	for _, tool := range []string{"gcc", "rpmbuild", "createrepo_c"} {
		testenv.RequireTool(t, tool)
	}
	dir := t.TempDir()
	out, err := exec.Command(filepath.Join(testenv.TestdataDir(), "abi", "build.sh"), append([]string{dir}, ids...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("testdata/abi/build.sh: %v\n%s", err, out)
	}
	return dir
}

func corpusRPM(dir, id string) string { return filepath.Join(dir, id+".rpm") }

// elfRepos is a reference repo "rhel" and a rebuild "alma" comparing with
// it, in annotate mode with the ELF layer on.
func elfRepos(refURL, curURL string) []config.Repo {
	ref := testRepo("rhel", refURL, time.Minute)
	cur := testRepo("alma", curURL, time.Minute)
	cur.Compat.Mode = config.ModeAnnotate
	cur.Compat.Reference = "rhel"
	cur.Compat.ELF = config.ELF{Enabled: true, Concurrency: 2}
	return []config.Repo{ref, cur}
}

// waitReport polls a root's divergence report until ok says it is the one
// expected and no ELF pass runs, and returns it.
func waitReport(t testing.TB, p *testProxy, root string, ok func(map[string]view.DivergentPackage) bool) map[string]view.DivergentPackage {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		rep, err := p.srv.views.Report(context.Background(), "alma", root, true)
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]view.DivergentPackage{}
		for _, pk := range rep.Packages {
			got[pk.NEVRA] = pk
		}
		if !p.srv.views.ELFPending() && ok(got) {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("report of %s not as expected after 60 s (ELF pass running: %v): %+v", root, p.srv.views.ELFPending(), got)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func hasClass(pk view.DivergentPackage, class string) bool { return slices.Contains(pk.Classes, class) }

// TestELFLayerSymbolRemovedDNF is the "libxyz" case: the rebuild ships the
// same NEVRA as the reference, but its library no longer exports one
// symbol (libabt's abt_b) while its version node stays, so rpm's provides
// are identical and only the ELF layer sees it. Through real dnf, the
// package provides abi-divergence(rhel:abi-changed) once the background
// pass is done, and dnf info names the symbol.
func TestELFLayerSymbolRemovedDNF(t *testing.T) {
	corpus := abiCorpus(t, "ref-abt", "abt-removed")
	const nevra = "libabt-1.0-1.el9.x86_64"
	refDir := newRepoDir(t, "el9", append(testenv.InitialRPMs(), corpusRPM(corpus, "ref-abt")))
	curDir := newRepoDir(t, "el9", append(testenv.InitialRPMs(), corpusRPM(corpus, "abt-removed")))
	refUp, curUp := newFakeUpstream(t, refDir), newFakeUpstream(t, curDir)
	p := startProxy(t, elfRepos(refUp.URL(), curUp.URL()), func(c *config.Config) {
		c.Signing.KeyFile = "testdata/signing-key.asc"
	})

	d := testenv.NewDNF(t, map[string]string{"alma": p.URL("/alma/el9/")})
	deadline := time.Now().Add(60 * time.Second)
	for {
		got := d.RepoQuery("--whatprovides", "abi-divergence(rhel:abi-changed)")
		if slices.Equal(got, []string{nevra}) {
			break
		}
		if len(got) > 0 || time.Now().After(deadline) {
			t.Fatalf("whatprovides abi-divergence(rhel:abi-changed) = %v, want [%s]", got, nevra)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if s := p.srv.views.ELFStats(); s.Analysed != 1 || s.PackagesRead != 2 {
		t.Errorf("ELF layer work: %+v, want one pair analysed from two RPMs", s)
	}
	// Both RPMs came through the cache: upstream served each once.
	if n := refUp.Hits("/el9/Packages/ref-abt.rpm"); n != 1 {
		t.Errorf("reference RPM fetched %d times from upstream, want 1", n)
	}
	out, _, err := d.Run("info", "libabt")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"[RHEL-ABI: abi-changed]", "abt_b@ABT_1.0"} {
		if !strings.Contains(out, want) {
			t.Errorf("dnf info lacks %q:\n%s", want, out)
		}
	}
	// The other packages are identical builds: nothing to say.
	if got := d.RepoQuery("--whatprovides", "abi-divergence(rhel)"); !slices.Equal(got, []string{nevra}) {
		t.Errorf("whatprovides abi-divergence(rhel) = %v, want [%s]", got, nevra)
	}
}

// TestELFLayerGenerationsAndRestart counts the ELF layer's work: the first
// pass compares both pairs; a new upstream generation with one changed
// package compares only that pair (the reference build is not read again);
// a restart on the same store compares nothing and serves the same views.
func TestELFLayerGenerationsAndRestart(t *testing.T) {
	corpus := abiCorpus(t, "ref-abt", "abt-removed", "abt-added", "ref-two", "two-dropped")
	refDir := newRepoDir(t, "el9", []string{corpusRPM(corpus, "ref-abt"), corpusRPM(corpus, "ref-two")})
	curDir := newRepoDir(t, "el9", []string{corpusRPM(corpus, "abt-removed"), corpusRPM(corpus, "two-dropped")})
	refUp, curUp := newFakeUpstream(t, refDir), newFakeUpstream(t, curDir)
	storage := t.TempDir()
	repos := elfRepos(refUp.URL(), curUp.URL())
	edit := func(c *config.Config) { c.Storage.Dir = storage }
	p := startProxy(t, repos, edit)

	got := waitReport(t, p, "el9/", func(m map[string]view.DivergentPackage) bool {
		return hasClass(m["libabt-1.0-1.el9.x86_64"], metadata.ClassABIChanged) && hasClass(m["libtwo-1.0-2.el9.x86_64"], metadata.ClassABIChanged)
	})
	if r := strings.Join(got["libtwo-1.0-2.el9.x86_64"].Reasons, "\n"); !strings.Contains(r, "libtwo_b.so.1") {
		t.Errorf("libtwo's reasons do not name the dropped library:\n%s", r)
	}
	first := p.srv.views.ELFStats()
	if first.Analysed != 2 || first.PackagesRead != 4 {
		t.Fatalf("first pass: %+v, want 2 pairs from 4 RPMs", first)
	}

	// Upstream publishes libabt 1.0-4 (one symbol added) instead of 1.0-1.
	if err := os.Remove(filepath.Join(curDir, "el9", "Packages", "abt-removed.rpm")); err != nil {
		t.Fatal(err)
	}
	testenv.AddRPMs(t, filepath.Join(curDir, "el9"), corpusRPM(corpus, "abt-added"))
	// createrepo_c's revision is a timestamp; a refresh never goes back.
	testenv.CreateRepo(t, filepath.Join(curDir, "el9"), "--revision", strconv.FormatInt(time.Now().Unix()+60, 10))
	// Revalidation is conditional (Last-Modified has whole seconds): make
	// the new repomd.xml visibly newer than the one fetched this second.
	future := time.Now().Add(5 * time.Second)
	if err := os.Chtimes(filepath.Join(curDir, "el9", "repodata", "repomd.xml"), future, future); err != nil {
		t.Fatal(err)
	}
	if res, err := p.srv.repos["alma"].gens.Refresh(context.Background(), "el9/"); err != nil || !res.Changed {
		t.Fatalf("refresh: changed %v, %v", res.Changed, err)
	}
	waitReport(t, p, "el9/", func(m map[string]view.DivergentPackage) bool {
		pk, ok := m["libabt-1.0-4.el9.x86_64"]
		return ok && hasClass(pk, metadata.ClassABIExtended) && !hasClass(pk, metadata.ClassABIChanged)
	})
	second := p.srv.views.ELFStats()
	if n := second.Analysed - first.Analysed; n != 1 {
		t.Errorf("second generation analysed %d pairs, want 1 (only the changed package)", n)
	}
	if n := second.PackagesRead - first.PackagesRead; n != 1 {
		t.Errorf("second generation read %d RPMs, want 1 (the reference build's interface is stored)", n)
	}
	// The annotate view follows: dnf sees the new verdict. Its rebuild
	// runs in the background after the pass; wait for it before reading.
	if err := p.srv.views.BuildNow(context.Background(), "alma", "el9/"); err != nil {
		t.Fatal(err)
	}
	_, repomd, err := p.get(t, "/alma/el9/repodata/repomd.xml")
	if err != nil {
		t.Fatal(err)
	}
	p.Close()

	p2 := startProxy(t, repos, edit)
	rep, err := p2.srv.views.Report(context.Background(), "alma", "el9/", true)
	if err != nil {
		t.Fatal(err)
	}
	var classes []string
	for _, pk := range rep.Packages {
		classes = append(classes, pk.NEVRA+":"+strings.Join(pk.Classes, ","))
	}
	slices.Sort(classes)
	if want := []string{"libabt-1.0-4.el9.x86_64:version-differs,abi-extended", "libtwo-1.0-2.el9.x86_64:version-differs,abi-changed"}; !slices.Equal(classes, want) {
		t.Errorf("report after restart %v, want %v", classes, want)
	}
	time.Sleep(300 * time.Millisecond) // a wrongly started pass would have begun
	if s := p2.srv.views.ELFStats(); s.Analysed != 0 || s.PackagesRead != 0 || p2.srv.views.ELFPending() {
		t.Errorf("after a restart the ELF layer worked again: %+v (pending %v)", s, p2.srv.views.ELFPending())
	}
	_, repomd2, err := p2.get(t, "/alma/el9/repodata/repomd.xml")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(repomd, repomd2) {
		t.Errorf("the annotate view changed across the restart")
	}
}

// libabigailPair is one binary pair of the libabigail corpus.
type libabigailPair struct{ id, old, new string }

func libabigailPairs(t testing.TB) (string, []libabigailPair) {
	t.Helper()
	dir := filepath.Join(filepath.Dir(testenv.TestdataDir()), "..", "shared", "corpora", "libabigail")
	b, err := os.ReadFile(filepath.Join(dir, "PAIRS.tsv"))
	if err != nil {
		if testenv.InCI() {
			t.Fatalf("libabigail corpus missing: %v", err)
		}
		t.Skipf("libabigail corpus missing (%v); skipping", err)
	}
	var out []libabigailPair
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Split(line, "\t")
		if strings.HasPrefix(line, "#") || len(f) < 3 {
			continue
		}
		p := libabigailPair{id: f[0], old: filepath.Join(dir, f[1]), new: filepath.Join(dir, f[2])}
		_, e1 := os.Stat(p.old)
		_, e2 := os.Stat(p.new)
		if e1 == nil && e2 == nil {
			out = append(out, p)
		}
	}
	if len(out) < 20 {
		t.Fatalf("only %d usable pairs in PAIRS.tsv", len(out))
	}
	return dir, out
}

// strongest reduces classes to the ABI verdict: abi-changed, abi-extended
// or none.
func strongest(classes []string) string {
	switch {
	case slices.Contains(classes, metadata.ClassABIChanged):
		return metadata.ClassABIChanged
	case slices.Contains(classes, metadata.ClassABIExtended):
		return metadata.ClassABIExtended
	}
	return "none"
}

// TestELFLayerLibabigailCorpus takes libabigail's own RPM pairs through the
// proxy: each pair is a repo root, the old package in the reference repo
// and the new one in the repo compared with it. The verdict the admin API
// reports must agree with the ELF layer's package-level verdict on the same
// two files: a removed symbol or library is abi-changed, additions only
// abi-extended; the metadata layer may only add abi-changed where rpm's
// soname provides say so.
func TestELFLayerLibabigailCorpus(t *testing.T) {
	_, pairs := libabigailPairs(t)
	testenv.RequireTool(t, "createrepo_c")
	testenv.RequireTool(t, "rpm")
	refDir, curDir := t.TempDir(), t.TempDir()
	for _, pr := range pairs {
		testenv.MakeRepo(t, filepath.Join(refDir, pr.id), []string{pr.old})
		testenv.MakeRepo(t, filepath.Join(curDir, pr.id), []string{pr.new})
	}
	refUp, curUp := newFakeUpstream(t, refDir), newFakeUpstream(t, curDir)
	a := startAdmin(t, elfRepos(refUp.URL(), curUp.URL()), nil)
	p := a.testProxy

	// The package-level verdicts, meanwhile (distinct stand-in checksums:
	// a package compared with itself is analysed too, and agrees).
	want := make([]string, len(pairs))
	wantErr := make([]error, len(pairs))
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		a := abi.NewAnalyzer(abi.Options{Concurrency: 1})
		open := func(_ context.Context, r abi.PackageRef) (io.ReadCloser, error) { return os.Open(r.Href) }
		for i, pr := range pairs {
			old := abi.PackageRef{Checksum: metadata.Checksum{Type: "path", Value: "old:" + pr.old}, Href: pr.old}
			nw := abi.PackageRef{Checksum: metadata.Checksum{Type: "path", Value: "new:" + pr.new}, Href: pr.new}
			// The proxy pairs builds of one name.arch only.
			if rpmNameArch(pr.old) != rpmNameArch(pr.new) {
				want[i] = "none (no pair)"
				continue
			}
			fs, err := a.ComparePair(context.Background(), old, nw, open)
			var classes []string
			for _, f := range fs {
				classes = append(classes, f.Class)
			}
			want[i], wantErr[i] = strongest(classes), err
		}
	}()

	start := time.Now()
	for _, pr := range pairs {
		if _, err := p.srv.views.Report(context.Background(), "alma", pr.id+"/", true); err != nil {
			t.Fatalf("%s: %v", pr.id, err)
		}
	}
	for p.srv.views.ELFPending() {
		if time.Since(start) > 90*time.Second {
			t.Fatal("ELF passes still running after 90 s")
		}
		time.Sleep(100 * time.Millisecond)
	}
	elapsed := time.Since(start)
	wg.Wait()

	var table strings.Builder
	fmt.Fprintf(&table, "\n%-28s %-13s %-13s %-5s %s\n", "pair", "proxy", "package", "agree", "first reason")
	agree := 0
	for i, pr := range pairs {
		if wantErr[i] != nil {
			t.Errorf("%s: package-level analysis: %v", pr.id, wantErr[i])
			continue
		}
		var rep view.Report
		a.api(t, "GET", "/api/v1/repos/alma/divergences?path="+pr.id+"/", nil, http.StatusOK, &rep)
		var classes, reasons []string
		for _, pk := range rep.Packages {
			classes = append(classes, pk.Classes...)
			reasons = append(reasons, pk.Reasons...)
		}
		got := strongest(classes)
		// Identical files are one package: no pair, no ELF comparison.
		same := sameFile(t, pr.old, pr.new)
		ok := got == want[i] || same && got == "none" || want[i] == "none (no pair)" && got == "none"
		if ok {
			agree++
		}
		first := ""
		for _, r := range reasons {
			if strings.HasPrefix(r, metadata.ClassABIChanged) || strings.HasPrefix(r, metadata.ClassABIExtended) {
				first = r
				break
			}
		}
		if len(first) > 90 {
			first = first[:90] + "…"
		}
		fmt.Fprintf(&table, "%-30s %-13s %-15s %-5v %s\n", pr.id, got, want[i], ok, first)
		if !ok {
			t.Errorf("%s: proxy says %s (%v), the ELF layer on the two files %s", pr.id, got, classes, want[i])
		}
	}
	fmt.Fprintf(&table, "agreement %d/%d; proxy passes took %s; upstream RPM transfers %d\n", agree, len(pairs), elapsed.Round(time.Millisecond), curUp.TotalHits()+refUp.TotalHits())
	t.Log(table.String())
}

// rpmNameArch is an RPM's name.arch as rpm reads it.
func rpmNameArch(path string) string {
	out, err := exec.Command("rpm", "-qp", "--nosignature", "--qf", "%{NAME}.%{ARCH}", path).Output()
	if err != nil {
		return "?" + path
	}
	return string(out)
}

func sameFile(t testing.TB, a, b string) bool {
	t.Helper()
	x, err1 := os.ReadFile(a)
	y, err2 := os.ReadFile(b)
	if err := errors.Join(err1, err2); err != nil {
		t.Fatal(err)
	}
	return bytes.Equal(x, y)
}

// TestELFLayerAbipkgdiff turns the deep layer on: the same pass runs
// abipkgdiff --dso-only (no debuginfo) on the pair, and its verdict and
// report join the finding.
func TestELFLayerAbipkgdiff(t *testing.T) {
	testenv.RequireTool(t, "abipkgdiff")
	corpus := abiCorpus(t, "ref-abt", "abt-removed")
	refDir := newRepoDir(t, "el9", []string{corpusRPM(corpus, "ref-abt")})
	curDir := newRepoDir(t, "el9", []string{corpusRPM(corpus, "abt-removed")})
	refUp, curUp := newFakeUpstream(t, refDir), newFakeUpstream(t, curDir)
	repos := elfRepos(refUp.URL(), curUp.URL())
	repos[1].Compat.ABIPkgDiff.Enabled = true
	p := startProxy(t, repos, nil)
	got := waitReport(t, p, "el9/", func(m map[string]view.DivergentPackage) bool {
		return strings.Contains(strings.Join(m["libabt-1.0-1.el9.x86_64"].Reasons, "\n"), "abipkgdiff reports")
	})
	reasons := strings.Join(got["libabt-1.0-1.el9.x86_64"].Reasons, "\n")
	for _, want := range []string{"abt_b@ABT_1.0", "abipkgdiff reports an incompatible ABI change", "abt_b"} {
		if !strings.Contains(reasons, want) {
			t.Errorf("reasons lack %q:\n%s", want, reasons)
		}
	}
	if s := p.srv.views.ELFStats(); s.Analysed != 2 {
		t.Errorf("ELF layer work %+v, want the pair compared twice (symbols, abipkgdiff)", s)
	}
}

// TestELFLayerStablelistBreaksReported: with the reference's
// kernel-abi-stablelists, a kernel whose kernel(printk) CRC changed (on
// the stablelist) and kernel(kmalloc) CRC changed (not on it) is
// abi-changed, and the divergence report counts the stablelist break apart:
// printk, not kmalloc.
func TestELFLayerStablelistBreaksReported(t *testing.T) {
	corpus := abiCorpus(t, "ref-kernel", "ref-kabi", "kernel-crc")
	refDir := newRepoDir(t, "el9", []string{corpusRPM(corpus, "ref-kernel"), corpusRPM(corpus, "ref-kabi")})
	curDir := newRepoDir(t, "el9", []string{corpusRPM(corpus, "kernel-crc")})
	refUp, curUp := newFakeUpstream(t, refDir), newFakeUpstream(t, curDir)
	a := startAdmin(t, elfRepos(refUp.URL(), curUp.URL()), func(c *config.Config) {
		c.Signing.KeyFile = "testdata/signing-key.asc"
	})
	p := a.testProxy
	deadline := time.Now().Add(60 * time.Second)
	for {
		rep, err := p.srv.views.Report(context.Background(), "alma", "el9/", true)
		if err != nil {
			t.Fatal(err)
		}
		if !p.srv.views.ELFPending() && len(rep.StablelistBreaks) > 0 {
			if !slices.Equal(rep.StablelistBreaks, []string{"printk"}) {
				t.Fatalf("stablelist breaks %v, want [printk] (kmalloc is not on the stablelist)", rep.StablelistBreaks)
			}
			var classes []string
			for _, pk := range rep.Packages {
				if pk.Name == "kernel-core" {
					classes = pk.Classes
				}
			}
			if !slices.Contains(classes, "abi-changed") {
				t.Fatalf("kernel-core classes %v, want abi-changed", classes)
			}
			// The dashboard names the break too.
			status, _, body := a.do(t, "GET", "/", "Bearer "+testToken, nil)
			want := `alma /el9/: 1 kABI stablelist symbol changed CRC against rhel (third-party kernel modules built for it may not load): <code>printk</code></p>`
			if status != http.StatusOK || !strings.Contains(string(body), want) {
				t.Fatalf("dashboard (%d) lacks %q:\n%s", status, want, body)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no stablelist break reported after 60 s: %+v", rep)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
