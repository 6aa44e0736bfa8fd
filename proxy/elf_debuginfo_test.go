package proxy

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dnfproxy/dnfproxy/internal/testenv"
	"github.com/dnfproxy/dnfproxy/internal/view"
)

// TestELFLayerAbipkgdiffDebuginfo runs the deep layer with a debuginfo repo
// (compat.abipkgdiff.debuginfo), real abipkgdiff and libabigail's libICE
// pair (el6 → el7). libICE's struct _IceConn changed; only DWARF shows it.
//   - The debuginfo repo first holds no libICE debuginfo: the finding has
//     abipkgdiff's symbol-level report, no struct _IceConn, and a line
//     naming the debuginfo packages looked for on both sides.
//   - The repo then publishes both libICE-debuginfo packages: after its
//     refresh the stored result without debuginfo is not reused; abipkgdiff
//     runs again with --d1/--d2 and the finding names struct _IceConn.
//
// The debuginfo RPMs come through the cache (upstream serves each once).
func TestELFLayerAbipkgdiffDebuginfo(t *testing.T) {
	testenv.RequireTool(t, "abipkgdiff")
	dir, _ := libabigailPairs(t)
	rpm := func(name string) string { return filepath.Join(dir, name) }
	const (
		nevra  = "libICE-1.0.9-2.el7.x86_64"
		debug1 = "libICE-debuginfo-1.0.6-1.el6.x86_64"
		debug2 = "libICE-debuginfo-1.0.9-2.el7.x86_64"
	)
	refDir := newRepoDir(t, "el9", []string{rpm("libICE-1.0.6-1.el6.x86_64.rpm")})
	curDir := newRepoDir(t, "el9", []string{rpm("libICE-1.0.9-2.el7.x86_64.rpm")})
	// An unrelated debuginfo package: the repo is not empty, only lacks
	// libICE's.
	debugDir := newRepoDir(t, "el9", []string{rpm("libcdio-debuginfo-0.94-1.fc26.x86_64.rpm")})
	refUp, curUp, debugUp := newFakeUpstream(t, refDir), newFakeUpstream(t, curDir), newFakeUpstream(t, debugDir)
	repos := elfRepos(refUp.URL(), curUp.URL())
	repos = append(repos, testRepo("debug", debugUp.URL(), time.Hour))
	repos[1].Compat.ABIPkgDiff.Enabled = true
	repos[1].Compat.ABIPkgDiff.Debuginfo = []string{"debug"}
	p := startProxy(t, repos, nil)

	reasons := func(m map[string]view.DivergentPackage) string { return strings.Join(m[nevra].Reasons, "\n") }
	without := "abipkgdiff ran without debuginfo for the reference side (no " + debug1 + ") and this side (no " + debug2 + ") in debug"
	got := reasons(waitReport(t, p, "el9/", func(m map[string]view.DivergentPackage) bool {
		return strings.Contains(reasons(m), without)
	}))
	for _, want := range []string{"in6addr_any", "abipkgdiff reports"} {
		if !strings.Contains(got, want) {
			t.Errorf("without debuginfo: reasons lack %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "struct _IceConn") {
		t.Errorf("without debuginfo the type change is visible?\n%s", got)
	}
	before := p.srv.views.ELFStats()
	// The view follows the finished pass over the first debuginfo
	// generation before that generation changes.
	debugGen, _ := p.srv.repos["debug"].gens.Generations("el9/")
	waitViewInput(t, p, "alma", "el9/", "debuginfo="+debugGen.Sum()+":done")

	testenv.AddRPMs(t, filepath.Join(debugDir, "el9"), rpm(debug1+".rpm"), rpm(debug2+".rpm"))
	// createrepo_c's revision is a timestamp and revalidation is
	// conditional on a Last-Modified of whole seconds: when this runs in
	// the second of the first fetch, the new repomd.xml must still look
	// newer (it did not, and the refresh kept the old generation).
	testenv.CreateRepo(t, filepath.Join(debugDir, "el9"), "--update", "--revision", strconv.FormatInt(time.Now().Unix()+60, 10))
	future := time.Now().Add(5 * time.Second)
	if err := os.Chtimes(filepath.Join(debugDir, "el9", "repodata", "repomd.xml"), future, future); err != nil {
		t.Fatal(err)
	}
	if res, err := p.srv.repos["debug"].gens.Refresh(context.Background(), "el9/"); err != nil || !res.Changed {
		t.Fatalf("refresh of the debuginfo repo: changed %v, %v", res.Changed, err)
	}
	// The debuginfo repo's new generation alone (no client asks for the
	// view, no report is read) gets the view rebuilt with it.
	debugGen, _ = p.srv.repos["debug"].gens.Generations("el9/")
	waitViewInput(t, p, "alma", "el9/", "debuginfo="+debugGen.Sum()+":")
	got = reasons(waitReport(t, p, "el9/", func(m map[string]view.DivergentPackage) bool {
		return strings.Contains(reasons(m), "struct _IceConn")
	}))
	if strings.Contains(got, "without debuginfo") {
		t.Errorf("with debuginfo the finding still says it ran without:\n%s", got)
	}
	if !strings.Contains(got, "in6addr_any") {
		t.Errorf("with debuginfo: reasons lack in6addr_any:\n%s", got)
	}
	after := p.srv.views.ELFStats()
	if n := after.Analysed - before.Analysed; n != 1 {
		t.Errorf("with debuginfo: %d comparisons run, want 1 (abipkgdiff again; the symbol result reused)", n)
	}
	for _, f := range []string{debug1, debug2} {
		if n := debugUp.Hits("/el9/Packages/" + f + ".rpm"); n != 1 {
			t.Errorf("%s fetched %d times from upstream, want 1 (through the cache)", f, n)
		}
	}
	t.Logf("with debuginfo:\n%s", firstN(got, 12))
}

func firstN(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[:n]
	}
	return strings.Join(lines, "\n")
}

// waitViewInput polls the views' statuses, which start nothing, until the
// repo's view of root was built from an input naming want.
func waitViewInput(t *testing.T, p *testProxy, name, root, want string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		var inputs []string
		for _, st := range p.srv.views.Statuses() {
			if st.Repo == name && st.Root == root {
				if strings.Contains(st.Input, want) {
					return
				}
				inputs = append(inputs, st.View+": "+st.Input)
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 30 s no view of %s %s was built from an input naming %s: %q", name, root, want, inputs)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
