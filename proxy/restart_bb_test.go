package proxy_test

// The restart suite (issue 7, acceptance): for each view, fill, restart,
// an eviction round with a small storage.max_size while upstream is down,
// a purge of repodata/, a new signing key. After each step a fresh dnf
// runs makecache and installs, and every file the served repomd.xml lists
// answers 200 with its checksum. The focused tests below show breaks 1, 2,
// 3 and 11 with plain HTTP.

import (
	"bytes"
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"

	"github.com/dnfproxy/dnfproxy/internal/config"
	"github.com/dnfproxy/dnfproxy/internal/testenv"
	"github.com/dnfproxy/dnfproxy/metadata"
)

// viewUpstream is an upstream with el9/: the initial packages, the vendor
// build of dnfpt-lib (which the rules annotate) and an updateinfo.
func viewUpstream(t testing.TB) (*testenv.SickUpstream, string) {
	t.Helper()
	dir := makeRepo(t, "el9", append(testenv.InitialRPMs(), testenv.RPMLibAlma))
	addUpdateinfo(t, filepath.Join(dir, "el9"), fixtureUpdateinfo())
	return testenv.NewSickUpstream(t, dir), dir
}

// startViewProxy serves up as repo "test" in mode, with the alma rule.
func startViewProxy(t testing.TB, up *testenv.SickUpstream, mode config.Mode, edit func(*config.Config)) *bbProxy {
	t.Helper()
	rules := writeFile(t, "rules.yaml", almaRuleYAML)
	return startBB(t, []config.Repo{bbRepo("test", up.URL(), mode)}, func(c *config.Config) {
		c.RuleFiles = []string{rules}
		if edit != nil {
			edit(c)
		}
	})
}

// viewBase is the client path of el9/ in a view.
func viewBase(view string) string {
	if view == "raw" {
		return "/test/el9/"
	}
	return "/test@" + view + "/el9/"
}

// newSigningKey writes a new armored private key and returns its path.
func newSigningKey(t testing.TB) string {
	t.Helper()
	dir := t.TempDir()
	if _, err := metadata.LoadOrCreateSigner("", dir); err != nil {
		t.Fatal(err)
	}
	return filepath.Join(dir, metadata.SigningKeyFile)
}

// checkSignature checks that the view's repomd.xml.asc is a signature of
// its repomd.xml by the key repomd.xml.key serves, as dnf's
// repo_gpgcheck=1 does; with localKey set, by the key in that file.
func checkSignature(t testing.TB, p *bbProxy, base string, localKey ...string) {
	t.Helper()
	names := []string{"repomd.xml", "repomd.xml.asc", "repomd.xml.key"}
	if len(localKey) > 0 {
		names = names[:2]
	}
	var docs [3][]byte
	for i, name := range names {
		st, _, body, err := p.get(t, base+"repodata/"+name)
		if err != nil || st != http.StatusOK {
			t.Errorf("%srepodata/%s: %d %v", base, name, st, err)
			return
		}
		docs[i] = body
	}
	if len(localKey) > 0 {
		var err error
		if docs[2], err = os.ReadFile(localKey[0]); err != nil {
			t.Fatal(err)
		}
	}
	keys, err := openpgp.ReadArmoredKeyRing(bytes.NewReader(docs[2]))
	if err != nil {
		t.Errorf("repomd.xml.key: %v", err)
		return
	}
	if _, err := openpgp.CheckArmoredDetachedSignature(keys, bytes.NewReader(docs[0]), bytes.NewReader(docs[1]), nil); err != nil {
		t.Errorf("repomd.xml.asc does not verify with repomd.xml.key: %v", err)
	}
}

// dnfClient is a fresh dnf for a view of the proxy with repo_gpgcheck=1.
// In the rewriting views gpgkey= is the proxy's repodata/repomd.xml.key;
// in raw it is upstream's key as a local file, as distributions install
// theirs (see TestBB_RawUpstreamKeyServedAfterEviction for the key through
// the proxy).
func dnfClient(t testing.TB, p *bbProxy, view, upstreamKey string) *testenv.DNF {
	t.Helper()
	base := viewBase(view)
	key := p.URL(base + "repodata/repomd.xml.key")
	if view == "raw" {
		key = "file://" + upstreamKey
	}
	return testenv.NewDNF(t, map[string]string{"t": p.URL(base)},
		testenv.WithTimeout(60*time.Second),
		testenv.WithRepoOption("t", "repo_gpgcheck", "1"),
		testenv.WithRepoOption("t", "gpgkey", key))
}

// dnfInstalls runs makecache and `install dnfpt-app` with a fresh dnf.
func dnfInstalls(t *testing.T, p *bbProxy, view, upstreamKey string) {
	t.Helper()
	testenv.RequireRoot(t)
	d := dnfClient(t, p, view, upstreamKey)
	d.MakeCache()
	d.Install("dnfpt-app")
	for _, name := range []string{"dnfpt-app", "dnfpt-lib"} {
		if !d.Installed(name) {
			t.Errorf("%s not installed after `dnf install dnfpt-app`", name)
		}
	}
}

// signedViewUpstream is viewUpstream signed with a throwaway key; it
// returns the path of upstream's public key too.
func signedViewUpstream(t testing.TB) (*testenv.SickUpstream, string) {
	t.Helper()
	up, dir := viewUpstream(t)
	root := filepath.Join(dir, "el9")
	testenv.NewRepoSigner(t).Sign(root)
	return up, filepath.Join(root, "repodata", "repomd.xml.key")
}

func TestBB_RestartSuite(t *testing.T) {
	testenv.RequireTool(t, "dnf")
	testenv.RequireRoot(t)
	for _, view := range []string{"raw", "annotate", "filter"} {
		t.Run(view, func(t *testing.T) {
			if view != "raw" {
				testenv.KnownBreak(t, "views lose files on purge of repodata/ and signing key change (breaks 2, 3)")
			}
			mode := config.Mode(view)
			if view == "raw" {
				mode = config.ModeOff
			}
			// Upstream signs its repomd.xml: raw passes the signature
			// through, the other views sign with the proxy's key.
			up, upKey := signedViewUpstream(t)
			p := startViewProxy(t, up, mode, nil)
			base := "/test/el9/"  // the repo's own mode
			var localKey []string // raw: upstream's key, as dnf has it
			if view == "raw" {
				localKey = []string{upKey}
			}
			check := func(t *testing.T) {
				t.Helper()
				dnfInstalls(t, p, view, upKey)
				checkListedFiles(t, p, base)
				checkSignature(t, p, base, localKey...)
			}
			// Each step is a subtest: one that fails does not hide the next.
			t.Run("fill", check)
			t.Run("restart", func(t *testing.T) {
				p.restart(nil)
				check(t)
			})
			t.Run("restart-evict-upstream-down", func(t *testing.T) {
				p.restart(func(c *config.Config) { c.Storage.MaxSize = 1 * config.KiB })
				up.Set(testenv.ResetFault())
				defer up.Heal()
				res, err := p.srv.Evict(t.Context())
				if err != nil {
					t.Fatal(err)
				}
				t.Logf("eviction: %+v", res)
				if res.Objects == 0 {
					t.Errorf("the eviction round evicted nothing: the step tests nothing")
				}
				d := dnfClient(t, p, view, upKey)
				d.MakeCache()
				checkListedFiles(t, p, base)
				checkSignature(t, p, base, localKey...)
				// Packages are not pinned: installing needs upstream.
				up.Heal()
				dnfInstalls(t, p, view, upKey)
			})
			t.Run("purge-repodata", func(t *testing.T) {
				p.restart(func(c *config.Config) { c.Storage.MaxSize = config.Default().Storage.MaxSize })
				checkListedFiles(t, p, base) // the views are in use
				p.purge(t, "test", "el9/repodata/")
				check(t)
			})
			t.Run("new-signing-key", func(t *testing.T) {
				key := newSigningKey(t)
				p.restart(func(c *config.Config) { c.Signing.KeyFile = key })
				check(t)
			})
		})
	}
}

// TestBB_RestartEvictKeepsAnnotateViewWhole is break 1: after a restart,
// an eviction round must keep every file the served (signed) annotate
// repomd.xml lists, with upstream down. Today's code passes it only
// because its files are younger than the 10-minute "fresh" grace (break
// 10), which a short test cannot outwait.
// TestBB_RawUpstreamKeyServedAfterEviction: with gpgkey= pointing at the
// proxy's raw repodata/repomd.xml.key (upstream's key beside repomd.xml,
// which no repomd.xml lists), an eviction round followed by an upstream
// outage must not leave repo_gpgcheck=1 clients without the key. Not in
// issue 7's list: found while writing the restart suite.
func TestBB_RawUpstreamKeyServedAfterEviction(t *testing.T) {
	testenv.RequireTool(t, "dnf")
	up, _ := signedViewUpstream(t)
	p := startViewProxy(t, up, config.ModeOff, nil)
	checkSignature(t, p, "/test/el9/")
	pkg := "/test/el9/Packages/" + testenv.RPMTool
	if !waitFor(10*time.Second, func() bool {
		st, _, _, err := p.get(t, pkg)
		rec := p.logs.request(pkg)
		return err == nil && st == http.StatusOK && rec != nil && rec["cache"] == "hit"
	}) {
		t.Fatalf("%s never became a cache hit", pkg)
	}
	p.restart(func(c *config.Config) { c.Storage.MaxSize = 1 * config.KiB })
	up.Set(testenv.ResetFault())
	if _, err := p.srv.Evict(t.Context()); err != nil {
		t.Fatal(err)
	}
	d := testenv.NewDNF(t, map[string]string{"t": p.URL("/test/el9/")},
		testenv.WithTimeout(60*time.Second),
		testenv.WithRepoOption("t", "repo_gpgcheck", "1"),
		testenv.WithRepoOption("t", "gpgkey", p.URL("/test/el9/repodata/repomd.xml.key")))
	d.MakeCache()
}

func TestBB_RestartEvictKeepsAnnotateViewWhole(t *testing.T) {
	up, _ := viewUpstream(t)
	p := startViewProxy(t, up, config.ModeAnnotate, nil)
	checkListedFiles(t, p, "/test/el9/")
	// Something the round may evict: a package, committed (a hit) before
	// the restart, which would cancel its fill.
	pkg := "/test/el9/Packages/" + testenv.RPMTool
	if !waitFor(10*time.Second, func() bool {
		st, _, _, err := p.get(t, pkg)
		rec := p.logs.request(pkg)
		return err == nil && st == http.StatusOK && rec != nil && rec["cache"] == "hit"
	}) {
		t.Fatalf("%s never became a cache hit", pkg)
	}
	p.restart(func(c *config.Config) { c.Storage.MaxSize = 1 * config.KiB })
	up.Set(testenv.ResetFault())
	res, err := p.srv.Evict(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if res.Objects == 0 {
		t.Fatalf("the eviction round evicted nothing (%+v): the test tests nothing", res)
	}
	checkListedFiles(t, p, "/test/el9/")
	checkSignature(t, p, "/test/el9/")
}

// TestBB_PurgeRepodataKeepsViewWhole is break 2: after DELETE
// /api/v1/cache?prefix=<root>repodata/, every file the annotate view lists
// (updateinfo among them) answers 200 with its checksum.
func TestBB_PurgeRepodataKeepsViewWhole(t *testing.T) {
	up, _ := viewUpstream(t)
	p := startViewProxy(t, up, config.ModeAnnotate, nil)
	_, files := checkListedFiles(t, p, "/test/el9/")
	if _, ok := files["updateinfo"]; !ok {
		t.Fatalf("the view lists no updateinfo; the test needs one")
	}
	p.purge(t, "test", "el9/repodata/")
	checkListedFiles(t, p, "/test/el9/")
	checkSignature(t, p, "/test/el9/")
}

// TestBB_NewSigningKeyResignsViews is break 3: after signing.key_file
// changes and a restart, repomd.xml.asc is made with the key that
// repomd.xml.key serves.
func TestBB_NewSigningKeyResignsViews(t *testing.T) {
	up, _ := viewUpstream(t)
	p := startViewProxy(t, up, config.ModeAnnotate, nil)
	checkSignature(t, p, "/test/el9/")
	key := newSigningKey(t)
	p.restart(func(c *config.Config) { c.Signing.KeyFile = key })
	checkSignature(t, p, "/test/el9/")
}

// TestBB_RestartKeepsDivergentPackagesMetric is break 11: the divergence
// gauge is there after a restart, before any client touches a view.
func TestBB_RestartKeepsDivergentPackagesMetric(t *testing.T) {
	up, _ := viewUpstream(t)
	p := startViewProxy(t, up, config.ModeAnnotate, nil)
	checkListedFiles(t, p, "/test/el9/")
	hasGauge := func(m string) bool {
		for line := range strings.Lines(m) {
			if strings.HasPrefix(line, "dnfproxy_divergent_packages{") && strings.Contains(line, `repo="test"`) &&
				!strings.HasSuffix(strings.TrimSpace(line), " 0") {
				return true
			}
		}
		return false
	}
	if m := p.metrics(t); !hasGauge(m) {
		t.Fatalf("before the restart, /metrics has no dnfproxy_divergent_packages for repo test:\n%s", grepLines(m, "divergent"))
	}
	p.restart(nil)
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	for !hasGauge(p.metrics(t)) {
		if ctx.Err() != nil {
			t.Fatalf("after a restart, /metrics has no dnfproxy_divergent_packages for repo test:\n%s",
				grepLines(p.metrics(t), "divergent"))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func grepLines(s, sub string) string {
	var b strings.Builder
	for line := range strings.Lines(s) {
		if strings.Contains(line, sub) {
			b.WriteString(line)
		}
	}
	return b.String()
}
