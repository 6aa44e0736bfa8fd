package proxy

import (
	"bytes"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dnfproxy/dnfproxy/internal/config"
	"github.com/dnfproxy/dnfproxy/internal/testenv"
)

func TestRulesReloadKeepsServing(t *testing.T) {
	f := newViewFixture(t, config.ModeAnnotate, almaRule)
	rulesFile := f.p.cfg.RuleFiles[0]
	_, before := viewFiles(t, f.p, "/test/el9/")
	if bytes.Contains(before["primary"], []byte("[RHEL-ABI: abi-changed,patched] dnfproxy test fixture: a command")) {
		t.Fatal("dnfpt-tool annotated before its rule exists")
	}

	// Clients keep asking while the rules change.
	var stop atomic.Bool
	var wg sync.WaitGroup
	var requests, failures atomic.Int64
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				resp, err := http.Get(f.p.URL("/test/el9/repodata/repomd.xml"))
				requests.Add(1)
				if err != nil || resp.StatusCode != http.StatusOK {
					failures.Add(1)
				}
				if resp != nil {
					resp.Body.Close()
				}
			}
		}()
	}
	newRules := almaRule + `  - name: tool
    match: {name: dnfpt-tool}
    class: abi-extended
    reason: "adds a symbol"
`
	if err := os.WriteFile(rulesFile, []byte(newRules), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := f.p.srv.LoadRules(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, files := viewFiles(t, f.p, "/test/el9/")
		if bytes.Contains(files["primary"], []byte("<summary>[RHEL-ABI: abi-extended] ")) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("new rules never reached the view")
		}
		time.Sleep(50 * time.Millisecond)
	}
	stop.Store(true)
	wg.Wait()
	if failures.Load() != 0 || requests.Load() == 0 {
		t.Fatalf("%d of %d requests failed during the reload", failures.Load(), requests.Load())
	}

	// A broken rules file is refused and the current rules stay.
	if err := os.WriteFile(rulesFile, []byte("rules:\n  - name: x\n    match: {}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := f.p.srv.LoadRules(); err == nil {
		t.Fatal("broken rules accepted")
	}
	_, files := viewFiles(t, f.p, "/test/el9/")
	if !bytes.Contains(files["primary"], []byte("<summary>[RHEL-ABI: abi-extended] ")) {
		t.Fatal("a failed reload dropped the rules in force")
	}
}

func TestViewRepomdIsDeterministic(t *testing.T) {
	f := newViewFixture(t, config.ModeFilter, almaRule)
	_, first, err := f.p.get(t, "/test/el9/repodata/repomd.xml")
	if err != nil {
		t.Fatal(err)
	}
	// Another proxy, fresh storage, same upstream and rules: same bytes.
	r := testRepo("test", f.up.URL(), time.Minute)
	r.Compat.Mode = config.ModeFilter
	p2 := startProxy(t, []config.Repo{r}, func(c *config.Config) {
		c.RuleFiles = f.p.cfg.RuleFiles
		c.Signing.KeyFile = "testdata/signing-key.asc"
	})
	_, second, err := p2.get(t, "/test/el9/repodata/repomd.xml")
	if err != nil || !bytes.Equal(first, second) {
		t.Fatalf("rewritten repomd.xml differs between two proxies (err %v):\n%s\n---\n%s", err, first, second)
	}
	// And across a restart of the first one.
	storage := f.p.cfg.Storage.Dir
	rules := f.p.cfg.RuleFiles
	f.p.Close()
	p3 := startProxy(t, []config.Repo{r}, func(c *config.Config) {
		c.Storage.Dir = storage
		c.RuleFiles = rules
		c.Signing.KeyFile = "testdata/signing-key.asc"
	})
	_, third, err := p3.get(t, "/test/el9/repodata/repomd.xml")
	if err != nil || !bytes.Equal(first, third) {
		t.Fatalf("rewritten repomd.xml changed across a restart (err %v)", err)
	}
	if _, err := os.Stat(filepath.Join(testenv.TestdataDir(), "rpms")); err != nil {
		t.Fatal(err)
	}
}

func TestPurgeForgetsViews(t *testing.T) {
	f := newViewFixture(t, config.ModeAnnotate, almaRule)
	viewFiles(t, f.p, "/test/el9/") // builds and serves the view
	if _, err := f.p.srv.Purge(t.Context(), "test", ""); err != nil {
		t.Fatal(err)
	}
	// Every file the view's repomd.xml lists is served again, rebuilt from
	// upstream, not a 404 for a purged object.
	_, files := viewFiles(t, f.p, "/test/el9/")
	if !bytes.Contains(files["primary"], []byte("[RHEL-ABI: abi-changed,patched]")) {
		t.Fatal("view after the purge lost its annotation")
	}
}
