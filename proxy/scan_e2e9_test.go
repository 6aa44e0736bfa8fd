package proxy

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dnfproxy/dnfproxy/cache"
	"github.com/dnfproxy/dnfproxy/internal/config"
	"github.com/dnfproxy/dnfproxy/internal/keys"
	"github.com/dnfproxy/dnfproxy/internal/testenv"
	"github.com/dnfproxy/dnfproxy/internal/view"
)

// countingStore counts the opens of each key.
type countingStore struct {
	cache.Store
	mu   sync.Mutex
	gets map[string]int
}

func (s *countingStore) Get(ctx context.Context, key string) (cache.Object, error) {
	s.mu.Lock()
	s.gets[key]++
	s.mu.Unlock()
	return s.Store.Get(ctx, key)
}

// opens returns how often keys matching match were opened.
func (s *countingStore) opens(match func(string) bool) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for k, c := range s.gets {
		if match(k) {
			n += c
		}
	}
	return n
}

// startCountingProxy is startProxy over a store that counts opens.
func startCountingProxy(t *testing.T, repos []config.Repo, edit func(*config.Config)) (*testProxy, *countingStore) {
	t.Helper()
	var cs *countingStore
	p := startProxyOver(t, repos, edit, func(s cache.Store) cache.Store {
		cs = &countingStore{Store: s, gets: map[string]int{}}
		return cs
	})
	return p, cs
}

// startAllLibProxy runs a proxy for one repo "test" in mode whose rules
// file makes every dnfpt-lib build diverge, over a counting store.
func startAllLibProxy(t *testing.T, mode config.Mode) (*testProxy, *countingStore) {
	t.Helper()
	dir := newRepoDir(t, "el9", append(testenv.InitialRPMs(), testenv.RPMLibAlma))
	rulesFile := filepath.Join(t.TempDir(), "rules.yaml")
	if err := os.WriteFile(rulesFile, []byte("rules:\n  - name: all-lib\n    match: {name: dnfpt-lib}\n    reason: \"every build diverges\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	up := newFakeUpstream(t, dir)
	r := testRepo("test", up.URL(), time.Hour)
	r.Compat.Mode = mode
	return startCountingProxy(t, []config.Repo{r}, func(c *config.Config) {
		c.RuleFiles = []string{rulesFile}
		c.Signing.KeyFile = "testdata/signing-key.asc"
	})
}

// TestPrimaryReadTwicePerGenerationOncePerView counts how often a filter
// repo's primary.xml is opened from the store for one generation: the
// switch's pass, which builds the package index and the analysis (with the
// affected dependents of the filter view) together, and the view's
// rewrite. With the analysis in a pass of its own it was 3; before the
// analysis kept what the affected dependents need, 5.
func TestPrimaryReadTwicePerGenerationOncePerView(t *testing.T) {
	p, cs := startAllLibProxy(t, config.ModeFilter)
	primary := func(k string) bool {
		return strings.HasPrefix(k, keys.MD+"test/el9/repodata/") && strings.Contains(k, "-primary.xml")
	}
	// The filter view: repomd.xml and the rewritten primary.
	_, files := viewFiles(t, p, "/test/el9/")
	if len(files["primary"]) == 0 {
		t.Fatal("no rewritten primary")
	}
	rep, err := p.srv.views.Report(context.Background(), "test", "el9/", true)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Affected) != 1 || rep.Affected[0].NEVRA != "dnfpt-app-1.0-1.el9.noarch" {
		t.Fatalf("affected dependents: %+v", rep.Affected)
	}
	p.settle(t)
	// index + analysis (with the affected dependents) + the filter view's rewrite
	if n := cs.opens(primary); n != 2 {
		t.Errorf("primary.xml opened %d times for one generation and one view, want 2 (index with the analysis, rewrite)", n)
	}
	// A second view of the same generation reuses the analysis: one more read.
	before := cs.opens(primary)
	_, files = viewFiles(t, p, "/test@annotate/el9/")
	if len(files["primary"]) == 0 {
		t.Fatal("no annotate primary")
	}
	if n := cs.opens(primary) - before; n != 1 {
		t.Errorf("the annotate view opened primary.xml %d times, want 1 (its rewrite)", n)
	}
}

// TestConfiguredDecodeLimitsReachTheScanners sets limits.max_xml_element
// below the size of one fixture <package>: the generation is refused with
// the configured limit in the error, so the key reaches the repo's scan.
func TestConfiguredDecodeLimitsReachTheScanners(t *testing.T) {
	dir := newRepoDir(t, "el9", testenv.InitialRPMs())
	up := newFakeUpstream(t, dir)
	p := startProxy(t, []config.Repo{testRepo("test", up.URL(), time.Hour)}, func(c *config.Config) {
		c.Limits.MaxXMLElement = 300
	})
	st, body, _ := p.get(t, "/test/el9/repodata/repomd.xml")
	if st == 200 {
		t.Fatalf("repomd.xml served (%d) although every <package> exceeds max_xml_element", st)
	}
	_, err := p.srv.repos["test"].gens.Refresh(context.Background(), "el9/")
	if err == nil || !strings.Contains(err.Error(), "over 300 bytes") {
		t.Fatalf("refresh error %v (status %d %s), want the 300-byte element limit", err, st, body)
	}
}

// TestFilterViewOfAnnotateRepoListsAffected: an annotate repo's analysis
// leaves out what the affected dependents need (no filter view is in use
// at its switch); a client asking for the @filter view later still gets
// them in its abi-divergence record, from one more read of primary.xml,
// and the filter view's rewrite is the other.
func TestFilterViewOfAnnotateRepoListsAffected(t *testing.T) {
	p, cs := startAllLibProxy(t, config.ModeAnnotate)
	primary := func(k string) bool {
		return strings.HasPrefix(k, keys.MD+"test/el9/repodata/") && strings.Contains(k, "-primary.xml")
	}
	if _, files := viewFiles(t, p, "/test/el9/"); len(files["primary"]) == 0 {
		t.Fatal("no annotate primary")
	}
	p.settle(t)
	if n := cs.opens(primary); n != 2 {
		t.Errorf("annotate view: primary.xml opened %d times, want 2 (index with the analysis, rewrite)", n)
	}
	before := cs.opens(primary)
	_, files := viewFiles(t, p, "/test@filter/el9/")
	var rec struct {
		Affected []view.AffectedPackage `json:"affected"`
	}
	if err := json.Unmarshal(files["abi-divergence"], &rec); err != nil {
		t.Fatalf("abi-divergence of the filter view: %v", err)
	}
	if len(rec.Affected) != 1 || rec.Affected[0].NEVRA != "dnfpt-app-1.0-1.el9.noarch" || !slices.Equal(rec.Affected[0].Requires, []string{"dnfpt-lib"}) {
		t.Fatalf("affected dependents of the filter view: %+v", rec.Affected)
	}
	p.settle(t)
	if n := cs.opens(primary) - before; n != 2 {
		t.Errorf("the filter view opened primary.xml %d times, want 2 (the affected dependents' data, its rewrite)", n)
	}
}

// TestReferencePrimaryReadOnce counts the opens of a reference repo's
// primary.xml for one cold annotate: the reference's own switch builds its
// package index and the summary the analysis compares with in one pass, so
// the analysis does not read it again (it did: 2 opens).
func TestReferencePrimaryReadOnce(t *testing.T) {
	refDir := newRepoDir(t, "el9", testenv.InitialRPMs())
	dir := newRepoDir(t, "el9", []string{testenv.RPMLibAlma, testenv.RPMApp, testenv.RPMTool})
	refUp, up := newFakeUpstream(t, refDir), newFakeUpstream(t, dir)
	ref := testRepo("ref", refUp.URL(), time.Hour)
	r := testRepo("alma", up.URL(), time.Hour)
	r.Compat.Mode = config.ModeAnnotate
	r.Compat.Reference = "ref"
	r.Compat.ELF.Enabled = false
	p, cs := startCountingProxy(t, []config.Repo{ref, r}, func(c *config.Config) {
		c.Signing.KeyFile = "testdata/signing-key.asc"
	})
	refPrimary := func(k string) bool {
		return strings.HasPrefix(k, keys.MD+"ref/el9/repodata/") && strings.Contains(k, "-primary.xml")
	}
	if _, files := viewFiles(t, p, "/alma/el9/"); len(files["primary"]) == 0 {
		t.Fatal("no annotate primary")
	}
	rep, err := p.srv.views.Report(context.Background(), "alma", "el9/", true)
	if err != nil {
		t.Fatal(err)
	}
	var classes []string
	for _, d := range rep.Packages {
		if d.Name == "dnfpt-lib" {
			classes = d.Classes
		}
	}
	if !slices.Contains(classes, "abi-extended") {
		t.Fatalf("dnfpt-lib classes %v, want abi-extended from the comparison with the reference (report %+v)", classes, rep.Packages)
	}
	p.settle(t)
	if n := cs.opens(refPrimary); n != 1 {
		t.Errorf("the reference's primary.xml opened %d times, want 1 (its index pass gives the analysis its summary)", n)
	}
}
