package proxy

import (
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dnfproxy/dnfproxy/internal/config"
	"github.com/dnfproxy/dnfproxy/internal/testenv"
	"github.com/dnfproxy/dnfproxy/metadata"
)

// These tests drive the real dnf binary through the proxy. Without dnf
// they skip, except under CI=true where they fail (testenv.RequireTool).

func TestE2EInstallThroughProxyThenUpstreamStopped(t *testing.T) {
	dir := newRepoDir(t, "el9", testenv.InitialRPMs())
	up := newFakeUpstream(t, dir)
	p := startProxy(t, []config.Repo{testRepo("test", up.URL(), 300*time.Millisecond)}, nil)
	baseurl := p.URL("/test/el9/")

	d := testenv.NewDNF(t, map[string]string{"test": baseurl})
	d.MakeCache()
	if got, want := d.RepoQuery(), testenv.InitialNEVRAs(); !slices.Equal(got, want) {
		t.Fatalf("repoquery through the proxy: %v, want %v", got, want)
	}
	if got := d.RepoQuery("--requires", "dnfpt-app"); !slices.Contains(got, "dnfpt-lib") {
		t.Fatalf("dnfpt-app requires %v, want dnfpt-lib", got)
	}
	d.Install("dnfpt-app")
	for _, name := range []string{"dnfpt-app", "dnfpt-lib"} {
		if !d.Installed(name) {
			t.Fatalf("%s not installed", name)
		}
	}
	if n := up.Hits("/el9/Packages/" + testenv.RPMLib); n != 1 {
		t.Fatalf("upstream served the dependency %d times, want 1", n)
	}

	// Upstream gone, TTL passed: a fresh dnf (new cache, new root) still
	// installs everything fetched before, from the proxy's cache.
	up.srv.Close()
	time.Sleep(400 * time.Millisecond)
	d2 := testenv.NewDNF(t, map[string]string{"test": baseurl})
	d2.Install("dnfpt-app")
	if !d2.Installed("dnfpt-app") || !d2.Installed("dnfpt-lib") {
		t.Fatal("install from the cache with upstream stopped failed")
	}
	// What was never fetched fails cleanly.
	if _, stderr, err := d2.Run("install", "dnfpt-tool"); err == nil {
		t.Fatal("installing a never-fetched package with upstream stopped succeeded")
	} else if !strings.Contains(stderr, "dnfpt-tool") {
		t.Logf("dnf said: %s", stderr)
	}
}

func TestE2EUpstreamRegeneratesMidTest(t *testing.T) {
	dir := newRepoDir(t, "el9", testenv.InitialRPMs())
	repoDir := filepath.Join(dir, "el9")
	up := newFakeUpstream(t, dir)
	const ttl = 2 * time.Second
	p := startProxy(t, []config.Repo{testRepo("test", up.URL(), ttl)}, nil)
	d := testenv.NewDNF(t, map[string]string{"test": p.URL("/test/el9/")})
	d.MakeCache()
	if got := d.RepoQuery(); slices.Contains(got, "dnfpt-extra-1.0-1.el9.noarch") {
		t.Fatal("dnfpt-extra visible before it was published")
	}
	_, oldRepomd, err := p.get(t, "/test/el9/repodata/repomd.xml")
	if err != nil {
		t.Fatal(err)
	}

	time.Sleep(1100 * time.Millisecond) // createrepo_c's revision is in seconds
	testenv.UpdateRepo(t, repoDir, testenv.RPMExtra)
	time.Sleep(ttl + 200*time.Millisecond)
	waitRepomdChange(t, p, "/test/el9/repodata/repomd.xml", oldRepomd)

	if got := d.RepoQuery(); !slices.Contains(got, "dnfpt-extra-1.0-1.el9.noarch") {
		t.Fatalf("after the TTL dnf does not see the new package: %v", got)
	}
	d.Install("dnfpt-extra")
	if !d.Installed("dnfpt-extra") {
		t.Fatal("dnfpt-extra not installed")
	}
	// A client still holding the old repomd.xml can fetch every file it
	// lists, though upstream deleted them.
	old, err := metadata.ParseRepomd(oldRepomd)
	if err != nil {
		t.Fatal(err)
	}
	for _, rec := range old.Records {
		if status, _, err := p.get(t, "/test/el9/"+rec.Href); err != nil || status != http.StatusOK {
			t.Fatalf("old generation file %s: %d %v", rec.Href, status, err)
		}
	}
	checkServesAll(t, p, oldRepomd)
}
