package proxy

import (
	"bufio"
	"bytes"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dnfproxy/dnfproxy/internal/config"
	"github.com/dnfproxy/dnfproxy/internal/testenv"
)

// scrape reads /metrics (without a token) into series → value, the series
// written as in the text format: name{label="v",...}.
func scrape(t testing.TB, a *testAdmin) map[string]float64 {
	t.Helper()
	status, hdr, body := a.do(t, "GET", "/metrics", "", nil)
	if status != http.StatusOK {
		t.Fatalf("/metrics: %d %s", status, body)
	}
	if ct := hdr.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Errorf("/metrics Content-Type %q", ct)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(bytes.NewReader(body))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("/metrics line %q: %v", line, err)
		}
		out[line[:i]] = v
	}
	return out
}

func fileSize(t testing.TB, dir, rel string) int64 {
	t.Helper()
	fi, err := os.Stat(filepath.Join(dir, rel))
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

func TestMetricsHooks(t *testing.T) {
	up := newFakeUpstream(t, newRepoDir(t, "", testenv.InitialRPMs()))
	a := startAdmin(t, []config.Repo{testRepo("test", up.URL(), time.Minute)}, nil)

	a.srv.metrics.observeEviction(3, 3000)
	a.srv.metrics.observeEviction(0, 0)
	m := scrape(t, a)
	for series, want := range map[string]float64{
		`dnfproxy_evictions_total`:     3,
		`dnfproxy_evicted_bytes_total`: 3000,
	} {
		if got, ok := m[series]; !ok || got != want {
			t.Errorf("%s = %v (present %v), want %v", series, got, ok, want)
		}
	}
	// Requests to unknown repos carry no repo label.
	a.get(t, "/nope/x.rpm")
	for series := range scrape(t, a) {
		if strings.Contains(series, `repo="nope"`) || strings.Contains(series, `repo=""`) {
			t.Errorf("series for an unknown repo: %s", series)
		}
	}
	// The metrics are the Server's own, not the global registry's: a
	// second Server in the process has its own counts.
	b := startAdmin(t, []config.Repo{testRepo("test", up.URL(), time.Minute)}, nil)
	if _, ok := scrape(t, b)[`dnfproxy_evictions_total`]; !ok {
		t.Error("second server has no metrics")
	} else if v := scrape(t, b)[`dnfproxy_evictions_total`]; v != 0 {
		t.Errorf("second server shares evictions: %v", v)
	}
}

func TestMetricsNilSafe(t *testing.T) {
	var m *metrics
	m.fillDone("x", time.Second, 1)
	m.upstreamError("x", "y")
	s := &Server{}
	s.metrics.observeEviction(1, 1)
}

// TestMetricsDivergentPackages scrapes the divergent-package gauge of a
// repo served with rules, before and after the rules change.
func TestMetricsDivergentPackages(t *testing.T) {
	f := newViewFixture(t, config.ModeAnnotate, almaRule)
	viewFiles(t, f.p, "/test/el9/")
	gauge := func() map[string]float64 {
		out := map[string]float64{}
		mfs, err := f.p.srv.metrics.reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			if mf.GetName() != "dnfproxy_divergent_packages" {
				continue
			}
			for _, m := range mf.GetMetric() {
				labels := map[string]string{}
				for _, l := range m.GetLabel() {
					labels[l.GetName()] = l.GetValue()
				}
				out[labels["repo"]+"/"+labels["class"]] = m.GetGauge().GetValue()
			}
		}
		return out
	}
	if got := gauge(); len(got) != 2 || got["test/abi-changed"] != 1 || got["test/patched"] != 1 {
		t.Fatalf("divergent packages %v, want test/abi-changed 1 and test/patched 1", got)
	}
	// Without the rule only the vendor marker remains.
	if err := os.WriteFile(f.p.cfg.RuleFiles[0], []byte("rules: []\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := f.p.srv.LoadRules(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		viewFiles(t, f.p, "/test/el9/")
		got := gauge()
		if len(got) == 1 && got["test/patched"] == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the rules change: %v, want only test/patched 1", got)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestMetricsRequests checks the request series a dashboard graphs: counts
// by repo, result and status code, durations by repo and result, and the
// time of the last successful revalidation beside the generation's age.
func TestMetricsRequests(t *testing.T) {
	up := newFakeUpstream(t, newRepoDir(t, "", testenv.InitialRPMs()))
	a := startAdmin(t, []config.Repo{testRepo("test", up.URL(), time.Minute)}, nil)
	before := time.Now()
	a.fetch(t, "/test/repodata/repomd.xml")
	a.fetch(t, "/test/"+pkgLib) // miss
	a.fetch(t, "/test/"+pkgLib) // hit
	a.fetch(t, "/test/"+pkgLib) // hit
	if status, _, _ := a.get(t, "/test/Packages/none-1.0-1.noarch.rpm"); status != http.StatusNotFound {
		t.Fatalf("unknown package: %d", status)
	}
	m := scrape(t, a)
	for series, want := range map[string]float64{
		`dnfproxy_requests_total{code="200",repo="test",result="hit"}`:                   2,
		`dnfproxy_requests_total{code="200",repo="test",result="miss"}`:                  2, // repomd.xml and the package
		`dnfproxy_requests_total{code="404",repo="test",result="error"}`:                 1,
		`dnfproxy_request_duration_seconds_count{repo="test",result="hit"}`:              2,
		`dnfproxy_request_duration_seconds_count{repo="test",result="miss"}`:             2,
		`dnfproxy_request_duration_seconds_bucket{repo="test",result="error",le="+Inf"}`: 1,
	} {
		if got, ok := m[series]; !ok || got != want {
			t.Errorf("%s = %v (present %v), want %v", series, got, ok, want)
		}
	}
	if sum := m[`dnfproxy_request_duration_seconds_sum{repo="test",result="miss"}`]; sum <= 0 || sum > time.Since(before).Seconds() {
		t.Errorf("miss duration sum %v s, want in (0, %v]", sum, time.Since(before).Seconds())
	}
	last, ok := m[`dnfproxy_metadata_last_success_timestamp_seconds{repo="test",root=""}`]
	if !ok || last < float64(before.Unix()) || last > float64(time.Now().Unix()+1) {
		t.Errorf("last success timestamp %v (present %v), want between %d and now", last, ok, before.Unix())
	}
	if _, ok := m[`go_goroutines`]; !ok {
		t.Error("no go_goroutines")
	}
	if _, ok := m[`process_resident_memory_bytes`]; !ok {
		t.Error("no process_resident_memory_bytes")
	}
}

// TestMetricsViewBuilds counts view builds and their failures: a filter
// view that drops a package must rewrite updateinfo.xml, and over one that
// no parser accepts it fails (raw is served); a repo without it builds.
func TestMetricsViewBuilds(t *testing.T) {
	modifyrepo := testenv.RequireTool(t, "modifyrepo_c")
	good := newRepoDir(t, "el9", append(testenv.InitialRPMs(), testenv.RPMLibAlma))
	bad := newRepoDir(t, "el9", append(testenv.InitialRPMs(), testenv.RPMLibAlma))
	info := filepath.Join(t.TempDir(), "updateinfo.xml")
	// Truncated inside a tag, as a broken upstream file would be.
	if err := os.WriteFile(info, []byte("<?xml version=\"1.0\"?>\n<updates>\n  <update from=\"x\" type=\"bugfix\">\n    <id>BROKEN-1</id>\n    <pkglist><collection><package name=\"dnfpt-lib\" "), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(modifyrepo, "--mdtype=updateinfo", info, filepath.Join(bad, "el9", "repodata")).CombinedOutput(); err != nil {
		t.Fatalf("modifyrepo_c: %v\n%s", err, out)
	}
	var repos []config.Repo
	for name, dir := range map[string]string{"good": good, "bad": bad} {
		r := testRepo(name, newFakeUpstream(t, dir).URL(), time.Minute)
		r.Compat.Mode = config.ModeFilter
		repos = append(repos, r)
	}
	rules := filepath.Join(t.TempDir(), "rules.yaml")
	if err := os.WriteFile(rules, []byte(almaRule), 0o644); err != nil {
		t.Fatal(err)
	}
	a := startAdmin(t, repos, func(c *config.Config) {
		c.Signing.KeyFile = "testdata/signing-key.asc"
		c.RuleFiles = []string{rules}
	})
	a.fetch(t, "/good/el9/repodata/repomd.xml")
	a.fetch(t, "/bad/el9/repodata/repomd.xml") // served (raw) although the view failed
	var m map[string]float64
	deadline := time.Now().Add(30 * time.Second)
	for {
		m = scrape(t, a)
		if m[`dnfproxy_view_build_failures_total{repo="bad",view="filter"}`] >= 1 &&
			m[`dnfproxy_view_builds_total{repo="good",view="filter"}`] >= 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 30 s: failures{bad} %v, builds{good} %v",
				m[`dnfproxy_view_build_failures_total{repo="bad",view="filter"}`], m[`dnfproxy_view_builds_total{repo="good",view="filter"}`])
		}
		time.Sleep(50 * time.Millisecond)
	}
	if v, ok := m[`dnfproxy_view_builds_total{repo="bad",view="filter"}`]; ok && v > 0 {
		t.Errorf("the failed view counted as built %v times", v)
	}
	if v, ok := m[`dnfproxy_view_build_failures_total{repo="good",view="filter"}`]; ok && v > 0 {
		t.Errorf("the good view counted %v failures", v)
	}
}

// TestMetricsPromtool gives a scrape after traffic to `promtool check
// metrics`, which applies Prometheus's naming and format conventions.
func TestMetricsPromtool(t *testing.T) {
	promtool := testenv.RequireTool(t, "promtool")
	up := newFakeUpstream(t, newRepoDir(t, "", testenv.InitialRPMs()))
	a := startAdmin(t, []config.Repo{testRepo("test", up.URL(), time.Minute)}, nil)
	a.fetch(t, "/test/repodata/repomd.xml")
	a.fetch(t, "/test/"+pkgLib)
	a.get(t, "/test/Packages/none.rpm")
	status, _, body := a.do(t, "GET", "/metrics", "", nil)
	if status != http.StatusOK {
		t.Fatalf("/metrics: %d", status)
	}
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = bytes.NewReader(body)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}
}

// TestAdminPprof serves the Go profiler on the admin listener, behind the
// token.
func TestAdminPprof(t *testing.T) {
	up := newFakeUpstream(t, newRepoDir(t, "", testenv.InitialRPMs()))
	a := startAdmin(t, []config.Repo{testRepo("test", up.URL(), time.Minute)}, nil)
	for path, want := range map[string]string{
		"/debug/pprof/":                  "goroutine",
		"/debug/pprof/heap?debug=1":      "heap profile",
		"/debug/pprof/goroutine?debug=1": "goroutine profile",
		"/debug/pprof/cmdline":           "",
	} {
		status, _, body := a.do(t, "GET", path, "Bearer "+testToken, nil)
		if status != http.StatusOK || !strings.Contains(string(body), want) {
			t.Errorf("GET %s: %d, want 200 with %q:\n%.300s", path, status, want, body)
		}
		for _, auth := range []string{"", "Bearer wrong", basicAuth("admin", testToken)} {
			if status, _, _ := a.do(t, "GET", path, auth, nil); status != http.StatusUnauthorized {
				t.Errorf("GET %s with %q: %d, want 401", path, auth, status)
			}
		}
	}
}
